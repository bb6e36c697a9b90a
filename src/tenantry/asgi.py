"""The ASGI entry point for uvicorn and other servers: `uvicorn tenantry.asgi:app`."""

import gc
import sys

from tenantry.app import create_app

app = create_app()

# What the process built at start-up (modules, routes, the app) lives as long as the process:
# moved out of the collector's sight, full collections walk only what requests allocate, and
# pause the server for less.
gc.collect()
gc.freeze()

# Requests make no reference cycles (tests/kit/test_request_lifecycle.py), so the cycle collector
# finds next to nothing on the hot paths; what it costs is its pauses. At the default threshold
# (700 new container objects) a batch of 1,000 usage events, which holds tens of thousands of
# them until it is answered, set off dozens of young collections that moved its objects to the
# older generations, whose full collections then stopped one request for about 10 ms each. At
# 10,000 the hot paths rarely set one off (measured: ingestion over HTTP 10 % faster, its p90
# from 31 to 21 ms per batch; admission p99 0.5 ms lower on both databases).
gc.set_threshold(10_000, 10, 10)

# A thread that computes holds the interpreter lock until it waits for I/O or another thread has
# asked for the lock for this long (5 ms by default). The API-calls ledger's write, a few to tens
# of milliseconds of Python beside the requests, then made every admission that needed the lock
# meanwhile wait up to 5 ms at each of its steps: at 400 admissions/s on PostgreSQL each write
# put dozens of them over 5 ms (p99 6.7-10.8 ms in three rounds, 4.1-4.3 ms at 1 ms, same
# sitting; one client, 100/s and 50 clients in a closed loop within noise).
sys.setswitchinterval(0.001)
