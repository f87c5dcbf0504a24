// Virtual endpoints: the gateway answers these paths itself; the upstream is not called.
// Tyk calls each function as NAME(request, session, config); it returns TykJsResponse(...).
// request: {Headers: {Name: [values]}, Body: "text", URL, Params: {name: [values]}, Scheme}.

// GET /js/virtual/health[?verbose=1]: a JSON health answer.
function virtualHealth(request, session, config) {
    var body = {status: "ok", api: config.APIID};
    if (request.Params.verbose) {
        body.gateway = config.config_data.gateway_name;
        body.url = request.URL;
    }
    return TykJsResponse({
        Body: JSON.stringify(body),
        Headers: {"Content-Type": "application/json", "Cache-Control": "no-store"},
        Code: 200
    }, session.meta_data);
}

// POST /js/virtual/echo: the body back. No Content-Type is set, so the client gets the type
// Go's server would sniff from the body (text/plain; charset=utf-8 for text or JSON).
function virtualEcho(request, session, config) {
    if (!request.Body) {
        throw new Error("nothing to echo"); // answers 500 "Error during virtual endpoint ..."
    }
    return TykJsResponse({Body: request.Body, Headers: {"X-Echoed": "yes"}, Code: 200},
                         session.meta_data);
}
