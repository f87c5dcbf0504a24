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

    // -- Per-request script state, as in Tyk ---------------------------------------------------
    // Tyk runs every request on a copy of the API's VM, so what a call changes in the globals is
    // gone for the next request. Here one VM serves every request, so once the API's files are
    // loaded `snapshot()` records the state reachable from the global object, and every run
    // starts with `restore()`: globals added since are deleted, reassigned ones set back, and each
    // object, array, Map and Set reachable at load put back *in place* (same identity, so
    // closures holding it see the restored contents). What is not restored (docs/javascript.md,
    // "Concurrency and state"): variables captured only by closures, top-level let/const/class
    // (not properties of the global object), non-enumerable properties, accessors, the built-in
    // objects and prototypes, `_` (Underscore.js) and this module's own state.
    var untracked = {__tyk: true, _: true};
    var saved = null;   // {names, values, known, records}

    function isObject(v) {
        return v !== null && (typeof v === "object" || typeof v === "function");
    }

    function dataKeys(obj) {
        var keys = Object.keys(obj);
        var out = [];
        for (var i = 0; i < keys.length; i++) {
            var d = Object.getOwnPropertyDescriptor(obj, keys[i]);
            if (d !== undefined && "value" in d) { out.push(keys[i]); }
        }
        return out;
    }

    // Records every object reachable from `start` (a work list, not recursion: a long chain of
    // objects must not overflow the stack at load).
    function remember(start, seen, records, budget) {
        var todo = [start];
        while (todo.length > 0) {
            if (todo.length > budget.left) { throw budget; }
            var obj = todo.pop();
            if (!isObject(obj) || seen.has(obj)) { continue; }
            seen.add(obj);
            var rec = {obj: obj, kind: 0, keys: null, values: null};
            if (Array.isArray(obj)) {
                rec.kind = 1;
                rec.values = obj.slice();
                for (var a = 0; a < rec.values.length; a++) { todo.push(rec.values[a]); }
            } else if (obj instanceof Map || obj instanceof Set) {
                rec.kind = obj instanceof Map ? 2 : 3;
                rec.values = Array.from(obj);
                for (var e = 0; e < rec.values.length; e++) {
                    if (rec.kind === 2) { todo.push(rec.values[e][0], rec.values[e][1]); }
                    else { todo.push(rec.values[e]); }
                }
            } else if (typeof obj === "function" && Object.keys(obj).length === 0) {
                // A function without properties of its own at load (nearly all): not tracked, to
                // keep the per-call check small; its prototype is, if it has properties of its own.
                rec = null;
                if (isObject(obj.prototype) && Object.keys(obj.prototype).length > 0) {
                    todo.push(obj.prototype);
                }
            } else {
                rec.keys = dataKeys(obj);
                rec.values = [];
                for (var i = 0; i < rec.keys.length; i++) {
                    rec.values.push(obj[rec.keys[i]]);
                    todo.push(obj[rec.keys[i]]);
                }
                if (typeof obj === "function") { todo.push(obj.prototype); }
                todo.push(Object.getPrototypeOf(obj));
            }
            if (rec !== null) {
                records.push(rec);
                budget.left -= 1 + rec.values.length;
                if (budget.left < 0) { throw budget; }
            }
        }
    }

    // The objects of this file and of the TykJS library (loaded before the user's files) are not
    // tracked, only their global names: the check per call covers what the user's scripts made
    // (measured: each tracked object costs ~0.5 us per call; the library has eight).
    var library = null;

    function markLibrary() {
        library = new Set([globalThis, Object.prototype, Function.prototype, Array.prototype,
                           Map.prototype, Set.prototype, state, api]);
        var names = Object.keys(globalThis);
        for (var i = 0; i < names.length; i++) {
            if (!untracked[names[i]]) { reach(globalThis[names[i]], library); }
        }
    }

    function reach(value, seen) {
        if (!isObject(value) || seen.has(value)) { return; }
        seen.add(value);
        var keys = dataKeys(value);
        for (var i = 0; i < keys.length; i++) { reach(value[keys[i]], seen); }
        if (typeof value === "function") { reach(value.prototype, seen); }
        reach(Object.getPrototypeOf(value), seen);
    }

    // Returns how many values it recorded, or -1 when the state is larger than `limit` values
    // (object fields, array elements): then nothing is restored (the check per call would cost
    // ~0.15 us per value) and the API's globals persist between requests.
    function snapshot(limit) {
        var seen = new Set(library === null ? [globalThis, state, api] : library);
        var names = Object.keys(globalThis).filter(function (n) { return !untracked[n]; });
        var values = [];
        var known = Object.create(null);
        var records = [];
        for (var i = 0; i < names.length; i++) {
            var d = Object.getOwnPropertyDescriptor(globalThis, names[i]);
            values.push(d !== undefined && "value" in d ? d.value : undefined);
            known[names[i]] = true;
        }
        var budget = {left: limit};
        try {
            for (var j = 0; j < values.length; j++) { remember(values[j], seen, records, budget); }
        } catch (e) {
            if (e !== budget) { throw e; }
            saved = null;
            return -1;
        }
        saved = {names: names, values: values, known: known, records: records,
                 all: Object.keys(globalThis)};
        return limit - budget.left;
    }

    function restoreObject(rec) {
        var obj = rec.obj, keys = rec.keys, values = rec.values, i;
        var current = Object.keys(obj);
        var same = current.length === keys.length;
        for (i = 0; same && i < current.length; i++) { same = current[i] === keys[i]; }
        if (!same) {
            // Keys added, deleted or reordered: rebuild, so key order (JSON text) is as loaded.
            for (i = 0; i < current.length; i++) { delete obj[current[i]]; }
        }
        for (i = 0; i < keys.length; i++) {
            if (!same || obj[keys[i]] !== values[i]) { obj[keys[i]] = values[i]; }
        }
    }

    function restoreArray(rec) {
        var obj = rec.obj, values = rec.values;
        if (obj.length !== values.length) { obj.length = values.length; }
        for (var i = 0; i < values.length; i++) {
            if (obj[i] !== values[i] || !(i in obj)) { obj[i] = values[i]; }
        }
    }

    function restoreCollection(rec) {
        var obj = rec.obj, values = rec.values, same = obj.size === values.length, i = 0;
        if (same) {
            obj.forEach(function (v, k) {
                var e = values[i++];
                if (rec.kind === 2 ? e[0] !== k || e[1] !== v : e !== v) { same = false; }
            });
        }
        if (same) { return; }
        obj.clear();
        for (i = 0; i < values.length; i++) {
            if (rec.kind === 2) { obj.set(values[i][0], values[i][1]); } else { obj.add(values[i]); }
        }
    }

    function restore() {
        var s = saved, i;
        var current = Object.keys(globalThis);
        // The usual case, checked first: the same global names as at the snapshot, in order.
        var same = current.length === s.all.length;
        for (i = 0; same && i < current.length; i++) { same = current[i] === s.all[i]; }
        for (i = 0; !same && i < current.length; i++) {
            if (!s.known[current[i]] && !untracked[current[i]]) { delete globalThis[current[i]]; }
        }
        for (i = 0; i < s.names.length; i++) {
            if (globalThis[s.names[i]] !== s.values[i]) { globalThis[s.names[i]] = s.values[i]; }
        }
        for (i = 0; i < s.records.length; i++) {
            var rec = s.records[i];
            if (rec.kind === 0) { restoreObject(rec); }
            else if (rec.kind === 1) { restoreArray(rec); }
            else { restoreCollection(rec); }
        }
    }

    // Run fn() for the gateway; returns the JSON text {out, pending, logs}, or, when fn returned
    // a string and nothing is pending or logged, U+0001 followed by that string. Every run (a
    // replay too) starts from the state as loaded, as each request does in Tyk.
    function run(answers, fn) {
        if (saved !== null) {
            restore();
        }
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

    // The functions the gateway calls, one per middleware or virtual endpoint, registered on
    // first use (a closure over the dotted name, so a later definition of the name is the one
    // called, and top-level let/const names resolve as in a direct call). Kept here, not in a
    // global, so that restore() leaves them alone.
    var targets = Object.create(null);

    function register(target, fn) { targets[target] = fn; }

    // What the gateway calls: `target` with the arguments in `argsText` (a JSON array, parsed
    // afresh by every run, so a replay starts from the same objects) and the answers so far.
    function runText(target, answersText, argsText) {
        var fn = targets[target];
        return run(JSON.parse(answersText), function () { return fn(JSON.parse(argsText)); });
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
        runText: runText,
        register: register,
        markLibrary: markLibrary,
        snapshot: snapshot,
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
