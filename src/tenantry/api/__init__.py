"""The REST API: one module of routes per domain, HTTP only (parse, call the service, shape the
answer)."""
