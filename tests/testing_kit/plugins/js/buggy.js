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
