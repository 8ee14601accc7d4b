"""Routing: which routes an event matches (``index``); the router thread is built on it."""
from __future__ import annotations

from orgloop.router.index import RouteIndex

__all__ = ["RouteIndex"]
