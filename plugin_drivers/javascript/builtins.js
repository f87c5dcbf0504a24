// Tyk's JSVM built-in functions for trio-gateway, and the protocol by which a call reaches the
// gateway. Loaded first into every VM. Written for this project (docs/javascript.md).
//
// The engine refuses calls into Python while a call's time limit is armed, so nothing here calls
// Python. `log`/`rawlog` collect lines that the gateway writes after the call. The built-ins that
// need the gateway (TykMakeHttpRequest, TykGetKeyData, TykSetKeyData, TykBatchRequest) answer
// from the results the gateway has already fetched for this call; for a request the gateway has
// not answered yet they record it and stop the script, the gateway performs it, and the call is
// run again from the start with one more answer (see scripts.py).

var __tyk = (function () {
    var state = {answers: [], next: 0, pending: null, logs: []};
    var suspend = {toString: function () { return "trio-gateway: waiting for the gateway"; }};

    function hostCall(name, args) {
        var key = JSON.stringify([name, args]);
        var i = state.next++;
        if (i < state.answers.length && state.answers[i][0] === key) {
            var answer = state.answers[i][1];
            return answer === null ? undefined : answer;
        }
        // A different request than last time (the script is not deterministic): drop the
        // answers from here on and ask again.
        state.answers.length = Math.min(state.answers.length, i);
        if (state.pending === null) {
            state.pending = [name, args, key];
        }
        throw suspend;
    }

    // Run fn() for the gateway; returns the JSON text {out, pending, logs}, or, when fn returned
    // a string and nothing is pending or logged, U+0001 followed by that string.
    function run(answers, fn) {
        state.answers = answers;
        state.next = 0;
        state.pending = null;
        state.logs = [];
        var out;
        try {
            out = fn();
        } catch (e) {
            if (e !== suspend && state.pending === null) {
                throw e;
            }
        }
        if (state.pending !== null) {
            out = undefined;
        }
        if (typeof out === "string" && state.pending === null && state.logs.length === 0) {
            // The usual middleware call: its value is already text (DoProcessRequest's JSON).
            // Marked and returned as is, it is not escaped into an envelope and parsed again.
            // join, not +: the binding cannot hand Python a concatenated ("rope") string.
            return ["\u0001", out].join("");
        }
        return JSON.stringify({out: out === undefined ? null : out, pending: state.pending,
                               logs: state.logs});
    }

    function str(value) {
        return value === undefined || value === null ? "" : String(value);
    }

    // UTF-8 <-> JS strings, with U+FFFD for what cannot be encoded or decoded (as Go does).
    function utf8Bytes(text) {
        var out = [];
        for (var i = 0; i < text.length; i++) {
            var c = text.charCodeAt(i);
            if (c >= 0xD800 && c <= 0xDBFF && i + 1 < text.length) {
                var d = text.charCodeAt(i + 1);
                if (d >= 0xDC00 && d <= 0xDFFF) {
                    c = 0x10000 + ((c - 0xD800) << 10) + (d - 0xDC00);
                    i++;
                }
            }
            if (c >= 0xD800 && c <= 0xDFFF) { c = 0xFFFD; }
            if (c < 0x80) { out.push(c); }
            else if (c < 0x800) { out.push(0xC0 | (c >> 6), 0x80 | (c & 63)); }
            else if (c < 0x10000) { out.push(0xE0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)); }
            else {
                out.push(0xF0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63),
                         0x80 | (c & 63));
            }
        }
        return out;
    }

    function utf8Text(bytes) {
        var out = "";
        var i = 0;
        while (i < bytes.length) {
            var b = bytes[i];
            var need = b < 0x80 ? 0 : b >= 0xF0 && b < 0xF5 ? 3 : b >= 0xE0 ? 2 : b >= 0xC2 ? 1 : -1;
            var c = need === 0 ? b : need === 1 ? b & 31 : need === 2 ? b & 15 : b & 7;
            var ok = need >= 0 && i + need < bytes.length;
            for (var k = 1; ok && k <= need; k++) {
                var n = bytes[i + k];
                if (n === undefined || (n & 0xC0) !== 0x80) { ok = false; } else { c = (c << 6) | (n & 63); }
            }
            if (ok && ((need === 2 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) ||
                       (need === 3 && (c < 0x10000 || c > 0x10FFFF)))) {
                ok = false;
            }
            if (!ok) {
                out += "\uFFFD";
                i += 1;
                continue;
            }
            out += String.fromCodePoint(c);
            i += need + 1;
        }
        return out;
    }

    function encode(text, padded) {
        var bytes = utf8Bytes(str(text));
        var latin = "";
        for (var i = 0; i < bytes.length; i++) { latin += String.fromCharCode(bytes[i]); }
        var b64 = btoa(latin);
        return padded ? b64 : b64.replace(/=+$/, "");
    }

    // Like Tyk: a failure is logged and the script gets undefined.
    function decode(text, rawOnly) {
        var data = str(text);
        var latin;
        try {
            if (rawOnly && data.indexOf("=") >= 0) {
                throw new Error("padding in raw base64");
            }
            latin = atob(data);
        } catch (e) {
            state.logs.push(["error", "Failed to base64 decode: " + e]);
            return undefined;
        }
        var bytes = [];
        for (var i = 0; i < latin.length; i++) { bytes.push(latin.charCodeAt(i)); }
        return utf8Text(bytes);
    }

    var api = {
        run: run,
        hostCall: hostCall,
        log: function (line) { state.logs.push(["log", line]); },
        rawlog: function (line) { state.logs.push(["rawlog", line]); },
        encode: encode,
        decode: decode,
        str: str
    };
    return api;
})();

function log(message) { __tyk.log(__tyk.str(message)); }
function rawlog(message) { __tyk.rawlog(__tyk.str(message)); }
function b64enc(text) { return __tyk.encode(text, true); }
function b64dec(text) { return __tyk.decode(text, false); }
function rawb64enc(text) { return __tyk.encode(text, false); }
function rawb64dec(text) { return __tyk.decode(text, true); }
function TykMakeHttpRequest(requestJSON) {
    return __tyk.hostCall("TykMakeHttpRequest", [__tyk.str(requestJSON)]);
}
function TykGetKeyData(key, apiId) {
    return __tyk.hostCall("TykGetKeyData", [__tyk.str(key), __tyk.str(apiId)]);
}
function TykSetKeyData(key, sessionJSON, suppressReset) {
    return __tyk.hostCall("TykSetKeyData", [__tyk.str(key), __tyk.str(sessionJSON), __tyk.str(suppressReset)]);
}
function TykBatchRequest(requestJSON) {
    return __tyk.hostCall("TykBatchRequest", [__tyk.str(requestJSON)]);
}
