from __future__ import annotations

from pathlib import Path

from trio_gateway.testing.conformance import definition_from_file, run_conformance

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_native() -> None:
    defs = {
        "add_headers": definition_from_file(EXAMPLES / "apps-plugins/add-headers.json"),
        "validate_order": definition_from_file(EXAMPLES / "apps-plugins/validate-order.json"),
        "rewrite_response": definition_from_file(EXAMPLES / "apps-plugins/rewrite-response.json"),
        "token_auth": definition_from_file(EXAMPLES / "apps-plugins/token-auth.json"),
    }
    report = await run_conformance(defs)
    print(report.format())
    report.assert_conforms()
