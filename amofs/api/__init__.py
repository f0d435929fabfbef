"""L1: the Files API client — the only package that imports httpx."""
