"""Tyk plugin bundles: fetch, verify, unpack, read the manifest, build (docs/bundles.md)."""
