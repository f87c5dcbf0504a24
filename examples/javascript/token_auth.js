// Custom authentication: accept bearer tokens listed in config_data and build a session.
// The auth hook returns the session with ReturnAuthData and names its key in AuthValue; the Post
// hook (require_session) passes the user upstream and notes the path asked for in the session's
// meta_data (stored with the session). The auth hook builds the session anew on every request, so
// meta_data describes the latest request only (a count across requests would always be 1). An
// unknown token gets 403 "Key not authorised".
// API definition: examples/javascript/apps/token-auth.json
var tokenAuth = new TykJS.TykMiddleware.NewMiddleware({});

tokenAuth.NewProcessRequest(function (request, session, config) {
    var header = request.Headers["Authorization"] ? request.Headers["Authorization"][0] : "";
    var parts = header.split(" ");
    var users = (config.config_data || {}).tokens || {};
    if (parts.length !== 2 || parts[0].toLowerCase() !== "bearer" || !users[parts[1]]) {
        request.ReturnOverrides.ResponseCode = 403;
        request.ReturnOverrides.ResponseError = "Key not authorised";
        return tokenAuth.ReturnAuthData(request, {});
    }
    var result = tokenAuth.ReturnAuthData(request, {
        "rate": 100,
        "per": 60,
        "meta_data": {"user": users[parts[1]]}
    });
    result.AuthValue = parts[1];
    return result;
});

var tagUser = new TykJS.TykMiddleware.NewMiddleware({});

tagUser.NewProcessRequest(function (request, session, config) {
    var meta = session.meta_data || {};
    request.SetHeaders["X-User"] = meta.user || "";
    request.DeleteHeaders.push("Authorization");
    meta.last_path = request.URL.split("?")[0];
    return tagUser.ReturnData(request, meta); // replaces meta_data wholesale
});
