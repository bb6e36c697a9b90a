"""Route-table entries of metering (see tests/routes.py for what an entry says)."""

from __future__ import annotations

from routes import RouteCase

CASES: list[RouteCase] = []
