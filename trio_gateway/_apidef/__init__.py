"""API definitions: one canonical model, readers for Tyk Classic and Tyk OAS, a folder loader."""
