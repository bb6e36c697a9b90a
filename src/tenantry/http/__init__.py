"""The HTTP mechanics every route shares: the per-request unit of work, hot lanes, and the typed
dependencies that authenticate a request and resolve its org or team scope."""
