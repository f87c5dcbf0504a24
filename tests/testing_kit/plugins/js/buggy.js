// JavaScript (Tyk JSVM) plugins, buggy and fixed: the battery covers the driver without
// knowing it (tests/testing_kit/test_other_drivers.py).
var bugNoErrors = new TykJS.TykMiddleware.NewMiddleware({});
bugNoErrors.NewProcessRequest(function (request, session, config) {
    // A missing header: undefined has no split().
    request.SetHeaders["X-Client-Version"] = request.Headers["User-Agent"][0].split("/")[1];
    return bugNoErrors.ReturnData(request, {});
});

var fixedNoErrors = new TykJS.TykMiddleware.NewMiddleware({});
fixedNoErrors.NewProcessRequest(function (request, session, config) {
    var agent = (request.Headers["User-Agent"] || [""])[0];
    var slash = agent.indexOf("/");
    request.SetHeaders["X-Client-Version"] = slash < 0 ? "" : agent.slice(slash + 1);
    return fixedNoErrors.ReturnData(request, {});
});

var bugCustomAuth = new TykJS.TykMiddleware.NewMiddleware({});
bugCustomAuth.NewProcessRequest(function (request, session, config) {
    // Any Authorization value at all is let through.
    var auth = request.Headers["Authorization"];
    if (auth !== undefined) {
        var result = bugCustomAuth.ReturnAuthData(request, {"rate": 100, "per": 60});
        result.AuthValue = auth[0] || "anonymous";
        return result;
    }
    request.ReturnOverrides.ResponseCode = 403;
    request.ReturnOverrides.ResponseError = "Key not authorised";
    return bugCustomAuth.ReturnAuthData(request, {});
});

var fixedCustomAuth = new TykJS.TykMiddleware.NewMiddleware({});
fixedCustomAuth.NewProcessRequest(function (request, session, config) {
    var auth = (request.Headers["Authorization"] || [""])[0];
    if (auth === "Bearer good-token") {
        var result = fixedCustomAuth.ReturnAuthData(request, {"rate": 100, "per": 60});
        result.AuthValue = "good-token";
        return result;
    }
    request.ReturnOverrides.ResponseCode = 403;
    request.ReturnOverrides.ResponseError = "Key not authorised";
    return fixedCustomAuth.ReturnAuthData(request, {});
});

// 2. a slow path (long URLs) that overruns the hook's deadline (0.2 s in the test's definition)
var bugDeadlines = new TykJS.TykMiddleware.NewMiddleware({});
bugDeadlines.NewProcessRequest(function (request, session, config) {
    if (request.URL.length > 12) {
        var until = Date.now() + 400;
        while (Date.now() < until) {}
    }
    return bugDeadlines.ReturnData(request, {});
});

var fixedDeadlines = new TykJS.TykMiddleware.NewMiddleware({});
fixedDeadlines.NewProcessRequest(function (request, session, config) {
    if (request.URL.length > 12) {
        var until = Date.now() + 10; // bounded well inside the deadline
        while (Date.now() < until) {}
    }
    return fixedDeadlines.ReturnData(request, {});
});

// 5. a "last user" fallback kept in a closure: every call starts from the globals as loaded
// (as Tyk's VM copy does), but state reachable only through a closure survives the call
var lastUser = (function () {
    var last = null;
    return {get: function () { return last; }, set: function (user) { last = user; }};
})();
var bugStateIsolation = new TykJS.TykMiddleware.NewMiddleware({});
bugStateIsolation.NewProcessRequest(function (request, session, config) {
    var user = request.Headers["X-User"];
    if (user) {
        lastUser.set(user[0]);
    } else if (lastUser.get() !== null) {
        request.SetHeaders["X-User"] = lastUser.get();
    }
    return bugStateIsolation.ReturnData(request, {});
});

var fixedStateIsolation = new TykJS.TykMiddleware.NewMiddleware({});
fixedStateIsolation.NewProcessRequest(function (request, session, config) {
    return fixedStateIsolation.ReturnData(request, {});
});

// 6. the wrong shape: SetHeaders must be an object (name -> value), not a list
var bugStageWrites = new TykJS.TykMiddleware.NewMiddleware({});
bugStageWrites.NewProcessRequest(function (request, session, config) {
    if (request.Method !== "GET") {
        request.SetHeaders = ["X-Served: yes"];
    }
    return bugStageWrites.ReturnData(request, {});
});

var fixedStageWrites = new TykJS.TykMiddleware.NewMiddleware({});
fixedStageWrites.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Served"] = "yes";
    return fixedStageWrites.ReturnData(request, {});
});

// 8. a Response hook (our extension) that replaces the body and keeps the upstream's
// Content-Encoding (the driver sets Content-Length; the coding is the plugin's word)
var bugResponseConsistency = new TykJS.TykMiddleware.NewMiddleware({});
bugResponseConsistency.NewProcessRequest(function (request, session, config) {
    request.Body = '{"wrapped": true}';
    return bugResponseConsistency.ReturnData(request, {});
});

var fixedResponseConsistency = new TykJS.TykMiddleware.NewMiddleware({});
fixedResponseConsistency.NewProcessRequest(function (request, session, config) {
    request.Body = '{"wrapped": true}';
    request.DeleteHeaders.push("Content-Encoding"); // the new body is plain
    return fixedResponseConsistency.ReturnData(request, {});
});

// 9. declared deterministic, but the result depends on a counter (in a closure: a plain global
// counter is put back to its loaded value before every call)
var nextShard = (function () {
    var n = 0;
    return function () { return n++ % 4; };
})();
var bugDeterminism = new TykJS.TykMiddleware.NewMiddleware({});
bugDeterminism.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Shard"] = String(nextShard());
    return bugDeterminism.ReturnData(request, {});
});

var fixedDeterminism = new TykJS.TykMiddleware.NewMiddleware({});
fixedDeterminism.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Shard"] = String(request.URL.length % 4);
    return fixedDeterminism.ReturnData(request, {});
});
