"""JavaScript (Tyk JSVM / ``otto``) plugins: the engine layer the ``otto`` driver is built on.

``engine`` hides the JavaScript engine (QuickJS-NG) behind :class:`JsVm`; ``scripts`` preloads a
VM per API with Tyk's library and built-ins; ``request_object`` translates between the gateway's
request and Tyk's JS request object (pure). The driver class itself is not here yet
(docs/javascript.md says what remains).
"""

from __future__ import annotations
