"""HTTP routes: thin functions that open a transaction and call a service.

Endpoints are plain ``def``s (FastAPI runs them in its thread pool, so database
work never blocks the event loop) and answer with orjson-encoded dicts; the
``response_model`` of each route documents the shape in the OpenAPI schema.
"""
