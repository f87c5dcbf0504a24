"""Sessions (Tyk's SessionState), the SessionStore interface and its implementations."""
