// Response rewriting: wrap the upstream's JSON answer in an envelope (a Response hook, our
// extension: Tyk's JSVM has no Response hooks). The object's Headers and Body are the
// upstream response's, StatusCode its status.
// API definition: examples/javascript/apps/rewrite-response.json
var wrapResponse = new TykJS.TykMiddleware.NewMiddleware({});

wrapResponse.NewProcessRequest(function (response, session, config) {
    var types = response.Headers["Content-Type"] || [];
    if (types.length === 0 || types[0].indexOf("json") < 0) {
        return wrapResponse.ReturnData(response, {});
    }
    var data;
    try {
        data = JSON.parse(response.Body);
    } catch (e) {
        return wrapResponse.ReturnData(response, {}); // not JSON after all: leave it alone
    }
    response.Body = JSON.stringify({data: data, status: response.StatusCode, api: config.APIID});
    response.SetHeaders["X-Rewritten-By"] = "trio-gateway";
    return wrapResponse.ReturnData(response, {});
});
