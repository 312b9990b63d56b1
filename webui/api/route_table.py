"""The methods each route takes, read off the routes themselves: what a 404 lists and a 405's Allow header says.

Read from the routes rather than kept as a list beside them, so that a room's new route (jobs, the
knowledge base, request history) is in every 404's list and gets a 405 for a wrong method without
anyone remembering to add it here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from fastapi import FastAPI
from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute

from ..outcomes import RouteError

# The API router's last route, which answers any /api/ path no other route took.
CATCH_ALL = "/api/{path:path}"
# "{doc_id:path}" is shown as "{doc_id}".
CONVERTER = re.compile(r"\{(\w+):\w+\}")
# Allow headers and the 404's list name methods in this order.
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# What to send, for the routes whose body is not obvious from the method.
BODY_HINTS = {
    "/api/classify": "a JSON body",
    "/api/extract": "a JSON body",
    "/api/generate": "a JSON body",
    "/api/evaluate": "a multipart form (file, task)",
}


@dataclass(frozen=True)
class Route:
    path: str  # as declared, its {parameters} without their converters
    pattern: re.Pattern[str]
    methods: frozenset[str]


class RouteTable:
    """The app's routes by path, each with the methods it takes."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        merged: dict[str, Route] = {}
        for route in routes:
            if not isinstance(route, StarletteRoute) or route.path == CATCH_ALL:
                continue
            methods = frozenset(route.methods or ())
            if route.path in merged:
                methods |= merged[route.path].methods
            merged[route.path] = Route(CONVERTER.sub(r"{\1}", route.path), route.path_regex, methods)
        self.routes = tuple(merged.values())

    def allowed(self, path: str) -> frozenset[str]:
        """Every method some route takes at ``path``; empty when no route has it."""
        methods: frozenset[str] = frozenset()
        for route in self.routes:
            match = route.pattern.match(path)
            # A {parameter:path} also matches nothing; "/api/kb/documents/" names no document.
            if match and all(match.groupdict().values()):
                methods |= route.methods
        return methods

    def error(self, method: str, path: str) -> RouteError:
        """405 where the path exists but not for ``method``; 404, listing the routes, where it does not."""
        allowed = self.allowed(path)
        if allowed and method not in allowed:
            methods = ordered(allowed)
            body = f" with {BODY_HINTS[path]}" if path in BODY_HINTS and methods == ["POST"] else ""
            return RouteError(
                f"方法不允许 · {method} is not allowed on {path}: use {' or '.join(methods)}{body}; see /api/docs",
                status=405, allow=", ".join(methods),
            )
        return RouteError(
            f"没有这个地址 · there is no {path}: the routes are {self.listing()}; the API is described at /api/docs",
            status=404,
        )

    def listing(self) -> str:
        """Every route, grouped by method: ``POST /api/classify, /api/extract; GET /health, …``."""
        groups = []
        for method in METHOD_ORDER:
            paths = [route.path for route in self.routes if method in route.methods]
            if paths:
                groups.append(f"{method} {', '.join(paths)}")
        return "; ".join(groups)


def ordered(methods: frozenset[str]) -> list[str]:
    return sorted(methods, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER))


def route_table(app: FastAPI) -> RouteTable:
    """The table build_app made once every route was in place."""
    return cast(RouteTable, app.state.route_table)
