"""One module per resource: the server's behaviour, free of HTTP.

Each function takes an open connection (the route picks a read or write
transaction), the caller and validated request models, and returns plain dicts
shaped like the reply models of runner/models.py, or raises runner.server.errors.
"""
