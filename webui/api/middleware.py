"""ASGI middleware: a request id on every HTTP request, and optional HTTP basic auth in front of everything.

Basic auth covers the UI, Gradio's own routes, the JSON API and /metrics alike, so there is one
mechanism and no gap between them. Only ``/health`` stays open: Supervisor, Docker and load
balancers probe it without credentials, and it reveals nothing but the model state.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..logging_setup import REQUEST_ID, new_request_id

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
OPEN_PATHS = frozenset({"/health"})


class RequestIdMiddleware:
    """Gives each HTTP request an id, visible to every log line it causes and returned as X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class BasicAuthMiddleware:
    """Refuses every request except OPEN_PATHS unless it carries the configured user and password."""

    def __init__(self, app: ASGIApp, user: str, password: str, realm: str = "SeqGPT-560M") -> None:
        self.app = app
        self._user = user.encode()
        self._password = password.encode()
        self._realm = realm

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers", [])).get(b"authorization", b"")
        if self._authorised(header):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("-",))[0]
        if header:
            log.warning("login refused: wrong user or password for %s from %s", scope.get("path"), client)
        else:
            log.info("login required: no credentials for %s from %s", scope.get("path"), client)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps(
            {
                "error": "需要登录 · authentication required: send the user and password set in SEQGPT_AUTH "
                "(HTTP basic auth)",
                "request_id": REQUEST_ID.get(),
            },
            ensure_ascii=False,
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", f'Basic realm="{self._realm}", charset="UTF-8"'.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _authorised(self, header: bytes) -> bool:
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        # Compare both parts every time, so the answer takes as long for a wrong user as a wrong password.
        user_ok = secrets.compare_digest(user, self._user)
        password_ok = secrets.compare_digest(password, self._password)
        return bool(sep) and user_ok and password_ok
