// Request validation: refuse an order without a JSON body holding "item" and a positive integer
// "quantity". A Post hook; it answers 400 itself, so a bad request never reaches the upstream.
// API definition: examples/javascript/apps/validate-order.json
var validateOrder = new TykJS.TykMiddleware.NewMiddleware({});

function refuse(request, message) {
    request.ReturnOverrides.ResponseCode = 400;
    request.ReturnOverrides.ResponseError = message; // sent as Tyk's {"error": "..."} body
    return validateOrder.ReturnData(request, {});
}

validateOrder.NewProcessRequest(function (request, session, config) {
    if (request.Method !== "POST" && request.Method !== "PUT") {
        return validateOrder.ReturnData(request, {});
    }
    var order;
    try {
        order = JSON.parse(request.Body);
    } catch (e) {
        return refuse(request, "body must be JSON");
    }
    if (order === null || typeof order !== "object" || !("item" in order)) {
        return refuse(request, "missing field: item");
    }
    var quantity = order.quantity;
    if (typeof quantity !== "number" || quantity % 1 !== 0 || quantity < 1) {
        return refuse(request, "quantity must be a positive integer");
    }
    return validateOrder.ReturnData(request, {});
});
