"""Analytics records in Tyk Pump's format: build, buffer, write, plugins (docs/observability.md)."""
