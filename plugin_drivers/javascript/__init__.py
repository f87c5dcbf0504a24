"""JavaScript (Tyk JSVM / ``otto``) plugins: the ``otto`` / ``javascript`` driver.

``engine`` hides the JavaScript engine (QuickJS-NG) behind :class:`JsVm`; ``scripts`` preloads a
VM per API with Tyk's library and built-ins; ``request_object`` translates between the gateway's
request and Tyk's JS request object (pure); ``host`` is the gateway side of the built-ins
(logs, ``TykMakeHttpRequest``, the key store); ``driver`` is the driver (docs/javascript.md).
"""

from __future__ import annotations
