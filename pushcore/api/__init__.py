"""The HTTP API (aiohttp): device-side, server-side and admin routes, auth and OpenAPI.

Routes are declared once, in the ``ROUTES`` tables of the modules in ``routes/``; the router
and the OpenAPI document (``GET /v1/openapi.json``) are both generated from those tables, so
they cannot disagree.  Bodies are decoded into msgspec structs that refuse unknown fields;
every error leaves as ``{"error": {"code", "message", "field"?}}``.
"""
