"""Tyk's control API (``/tyk/...``) and the health checks, behind the admin secret."""
