"""HTTP protocol cores: bytes in, events out. No I/O here (see ``_server.py`` for the shell)."""
