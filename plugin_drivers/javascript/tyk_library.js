// Tyk's JSVM middleware API, written for trio-gateway from the contract in docs/javascript.md
// (the behaviour of Tyk's js/tyk.js; none of its code). Loaded into every VM before the user's
// files. `b64enc`, `b64dec` and `log` are built-ins the VM provides before this file runs.

var TykJS = {
    TykMiddleware: {
        MiddlewareComponentMeta: function (configuration) {
            this.configuration = configuration;
        }
    },
    TykEventHandlers: {
        EventHandlerComponentMeta: function () {}
    }
};

(function () {
    var base = TykJS.TykMiddleware.MiddlewareComponentMeta.prototype;

    base.ProcessRequest = function (request, session, config) {
        log("Process Request Not Implemented");
        return request;
    };

    // The request object as Tyk builds it (MiniRequestObject, fields in Go's order) from what
    // the gateway sends: the fields that are not constants (to_js_request_parts); a field the
    // gateway does send is kept.
    function requestObject(r) {
        var o = {
            Headers: r.Headers,
            SetHeaders: r.SetHeaders || {},
            DeleteHeaders: r.DeleteHeaders || [],
            Body: r.Body,
            URL: r.URL,
            Params: r.Params,
            AddParams: r.AddParams || {},
            ExtendedParams: r.ExtendedParams || {},
            DeleteParams: r.DeleteParams || [],
            ReturnOverrides: r.ReturnOverrides || {ResponseCode: 0, ResponseError: "",
                ResponseBody: "", ResponseHeaders: null, OverrideError: false},
            IgnoreBody: r.IgnoreBody || false,
            Method: r.Method,
            RequestURI: r.RequestURI,
            Scheme: r.Scheme
        };
        if (r.StatusCode !== undefined) { o.StatusCode = r.StatusCode; }
        return o;
    }

    // What the gateway calls: the body arrives base64-encoded and leaves base64-encoded; the
    // returned Request's Headers are emptied (changes go through SetHeaders/DeleteHeaders).
    base.DoProcessRequest = function (parts, session, config) {
        var request = requestObject(parts);
        var original = request.Body;
        var text = original === "" ? "" : b64dec(original);
        request.Body = text;
        var result = this.ProcessRequest(request, session, config);
        if (!result) {
            log("Middleware didn't return request object!");
            return undefined;
        }
        var out = result.Request;
        if (out) {
            out.Headers = {};
            var body = out.Body === undefined ? "" : String(out.Body);
            // A body the script left as it was goes back byte for byte: decoding it as text
            // turned bytes that are not UTF-8 (a gzip body, an image) into U+FFFD, and encoding
            // that text again would corrupt it (Tyk does; docs/tyk-differences.md).
            out.Body = body === text ? original : b64enc(body);
            // What the gateway does not read back (Tyk applies neither) is not sent back:
            // less JSON to write here and to parse there (docs/performance.md).
            delete out.Headers;
            delete out.Params;
            delete out.Method;
            delete out.RequestURI;
            delete out.Scheme;
            delete out.StatusCode;
            var ro = out.ReturnOverrides;
            if (ro && ro.ResponseCode === 0 && ro.ResponseError === "" && ro.ResponseBody === "" &&
                    ro.ResponseHeaders === null && ro.OverrideError === false &&
                    Object.keys(ro).length === 5) {
                delete out.ReturnOverrides;  // untouched: the same as absent
            }
        }
        return JSON.stringify(result);
    };

    var NewMiddleware = function (configuration) {
        TykJS.TykMiddleware.MiddlewareComponentMeta.call(this, configuration);
    };
    NewMiddleware.prototype = Object.create(base);
    NewMiddleware.prototype.constructor = NewMiddleware;
    NewMiddleware.prototype.NewProcessRequest = function (callback) {
        this.ProcessRequest = callback;
    };
    NewMiddleware.prototype.ReturnData = function (request, sessionMeta) {
        return {Request: request, SessionMeta: sessionMeta};
    };
    NewMiddleware.prototype.ReturnAuthData = function (request, session) {
        return {Request: request, Session: session};
    };
    TykJS.TykMiddleware.NewMiddleware = NewMiddleware;

    var handlerBase = TykJS.TykEventHandlers.EventHandlerComponentMeta.prototype;
    handlerBase.Handle = function (event, context) {
        log("Handler not implemented!");
        return event;
    };
    handlerBase.DoProcessEvent = function (event, context) {
        this.Handle(event, context);
    };
    var NewEventHandler = function () {
        TykJS.TykEventHandlers.EventHandlerComponentMeta.call(this);
    };
    NewEventHandler.prototype = Object.create(handlerBase);
    NewEventHandler.prototype.constructor = NewEventHandler;
    NewEventHandler.prototype.NewHandler = function (callback) {
        this.Handle = callback;
    };
    TykJS.TykEventHandlers.NewEventHandler = NewEventHandler;
})();

// Virtual endpoints return this string.
function TykJsResponse(response, sessionMeta) {
    return JSON.stringify({Response: response, SessionMeta: sessionMeta});
}
