"""The kit for plugin and driver authors (issue 14).

:mod:`trio_gateway.testing.conformance`: behaviour vectors for the example plugins and a runner
that checks a driver against them over real sockets (docs/conformance.md).
"""
