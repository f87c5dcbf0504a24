// Header injection: tag every request before it reaches the upstream (a Pre hook).
// API definition: examples/javascript/apps/add-headers.json
var addHeaders = new TykJS.TykMiddleware.NewMiddleware({});

addHeaders.NewProcessRequest(function (request, session, config) {
    var data = config.config_data || {};
    request.SetHeaders["X-Gateway"] = data.gateway_name || "trio-gateway";
    request.SetHeaders["X-Api-Id"] = config.APIID;
    request.DeleteHeaders.push("X-Internal-Debug"); // never let clients set it
    return addHeaders.ReturnData(request, {});
});
