"""Client errors of the HTTP service: :class:`RequestError` (an HTTP status, a message, an error code
and the offending parameter) and the OpenAI-style JSON body every error is sent as
(``{"error": {"message", "type", "code", "param"}}``). No web framework is imported here."""

from __future__ import annotations


class RequestError(Exception):
    """A client error: HTTP ``status`` with an actionable ``message`` (and an error ``code``)."""

    def __init__(self, status: int, message: str, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    kind = "invalid_request_error" if status < 500 else ("service_unavailable" if status == 503 else "server_error")
    if status == 429:
        kind = "rate_limit_error"
    if status == 404 and code is None:
        code = "not_found"
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}
