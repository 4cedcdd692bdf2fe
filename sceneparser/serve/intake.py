"""What every request passes before the application sees it: API key, body size, a body-read
deadline, the in-flight limit (:class:`IntakeMiddleware`), and :func:`error_response`, the JSON
error reply used here and by the application."""

from __future__ import annotations

import asyncio
import hmac
import logging

from fastapi.responses import JSONResponse

from sceneparser.serve.config import ServeConfig
from sceneparser.serve.errors import error_body

log = logging.getLogger("sceneparser.serve")


def error_response(status: int, message: str, code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status_code=status, headers=headers)


class _Disconnected(Exception):
    """The client went away while sending its body."""


class IntakeMiddleware:
    """Everything a request must pass before the app sees it, cheapest first.

    * ``Authorization: Bearer <api_key>`` on every route but ``/health`` when a key is set (401,
      compared in constant time);
    * a declared ``Content-Length`` over ``max_bytes`` is 413;
    * the body is read completely, within ``body_timeout_s + body_timeout_s_per_mb`` per MB
      (declared length, else the cap): a client that stalls gets 408 and holds nothing; one that
      disconnects is one INFO log line; a chunked body over the cap is 413;
    * only then does the request count against ``max_inflight`` (beyond it: 503 at once), so
      slow uploads cannot lock real requests out.

    A refused request's body is read and dropped (up to ``max_drain_bytes``) before the answer
    goes out, so clients that send the whole body before reading (``urllib``, ``requests``) get
    the 4xx instead of a reset connection.
    """

    def __init__(self, app, config: "ServeConfig"):
        self.app = app
        self.cfg = config
        self.max_bytes = int(config.max_request_bytes)
        self.max_inflight = config.inflight_limit
        self.inflight = 0
        self.reading = 0
        self.max_reading = 4 * self.max_inflight + 16  # bodies being received at once
        self._key = config.api_key.encode() if config.api_key else None

    def _authorized(self, scope) -> bool:
        if self._key is None or scope.get("path") == "/health":
            return True
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        # compare_digest runs in time independent of where the strings differ
        return hmac.compare_digest(scheme.lower() + b" " + token.strip(), b"bearer " + self._key)

    def _deadline(self, declared: int | None) -> float:
        size = declared if declared is not None else self.max_bytes
        return self.cfg.body_timeout_s + self.cfg.body_timeout_s_per_mb * size / 1e6

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        if declared is not None and declared < 0:
            return await self._refuse(scope, receive, send, 400, "invalid Content-Length header", "invalid_request",
                                      drain=False)
        if not self._authorized(scope):
            return await self._refuse(scope, receive, send, 401,
                                      "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                      "invalid_api_key", declared=declared, headers={"WWW-Authenticate": "Bearer"})
        if declared is not None and declared > self.max_bytes:
            return await self._refuse(
                scope, receive, send, 413,
                f"the request body is {declared} bytes, over the {self.max_bytes}-byte cap "
                "(start the server with a larger --max-request-bytes)", "too_large", declared=declared)
        if self.reading >= self.max_reading:
            return await self._refuse(scope, receive, send, 503, "the server is busy receiving other requests; retry",
                                      "busy", drain=False, headers={"Retry-After": "1"})
        self.reading += 1
        try:
            body = await asyncio.wait_for(self._read_body(receive), timeout=self._deadline(declared))
        except asyncio.TimeoutError:
            log.info("request body of %s %s not received within the deadline: 408", scope.get("method"), scope.get("path"))
            resp = error_response(408, "the request body was not received in time", "request_timeout",
                                  headers={"Connection": "close"})
            return await resp(scope, receive, send)
        except _Disconnected:
            log.info("client disconnected while sending %s %s", scope.get("method"), scope.get("path"))
            return None
        except BodyTooLargeError as exc:
            await self._drain(receive, None)
            resp = error_response(413, f"{exc} (start the server with a larger --max-request-bytes)", "too_large")
            return await resp(scope, receive, send)
        finally:
            self.reading -= 1
        counted = self.max_inflight is not None and scope.get("path") != "/health"
        if counted and self.inflight >= self.max_inflight:
            resp = error_response(503, f"the server is busy ({self.inflight} requests in flight); retry shortly",
                                  "busy", headers={"Retry-After": "1"})
            return await resp(scope, receive, send)
        if counted:
            self.inflight += 1
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: waits for the client to go away

        try:
            return await self.app(scope, replay, send)
        finally:
            if counted:
                self.inflight -= 1

    async def _read_body(self, receive) -> bytes:
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                raise BodyTooLargeError(self.max_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _drain(self, receive, declared: int | None) -> bool:
        """Read and drop the rest of the body (bounded in size and time); False if it was not all read."""
        if declared is not None and declared > self.cfg.max_drain_bytes:
            return False

        async def drain():
            seen = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return False
                seen += len(message.get("body", b""))
                if seen > self.cfg.max_drain_bytes:
                    return False
                if not message.get("more_body", False):
                    return True

        try:
            return await asyncio.wait_for(drain(), timeout=self._deadline(declared))
        except asyncio.TimeoutError:
            return False

    async def _refuse(self, scope, receive, send, status, message, code, *, declared=None, drain=True, headers=None):
        complete = drain and await self._drain(receive, declared)
        headers = dict(headers or {})
        if not complete:
            headers["Connection"] = "close"
        resp = error_response(status, message, code, headers=headers)
        return await resp(scope, receive, send)


class BodyTooLargeError(Exception):
    def __init__(self, limit: int):
        super().__init__(f"the request body is larger than the {limit}-byte cap")
        self.limit = limit
