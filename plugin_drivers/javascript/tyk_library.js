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

    // What the gateway calls: the body arrives base64-encoded and leaves base64-encoded; the
    // returned Request's Headers are emptied (changes go through SetHeaders/DeleteHeaders).
    base.DoProcessRequest = function (request, session, config) {
        var original = request.Body;
        var text = original === "" ? "" : b64dec(original);
        request.Body = text;
        var result = this.ProcessRequest(request, session, config);
        if (!result) {
            log("Middleware didn't return request object!");
            return undefined;
        }
        if (result.Request) {
            result.Request.Headers = {};
            var body = result.Request.Body === undefined ? "" : String(result.Request.Body);
            // A body the script left as it was goes back byte for byte: decoding it as text
            // turned bytes that are not UTF-8 (a gzip body, an image) into U+FFFD, and encoding
            // that text again would corrupt it (Tyk does; docs/tyk-differences.md).
            result.Request.Body = body === text ? original : b64enc(body);
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
