"""Tests generated from the route table (routes.py and its routes_<domain>.py entries)."""
