"""The ASGI entry point for uvicorn and other servers: `uvicorn tenantry.asgi:app`."""

import gc

from tenantry.app import create_app

app = create_app()

# What the process built at start-up (modules, routes, the app) lives as long as the process:
# moved out of the collector's sight, full collections walk only what requests allocate, and
# pause the server for less.
gc.collect()
gc.freeze()
