"""The one error type of the agent's HTTP API: a status, a code, a message and the field."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError"]


class ApiError(Exception):
    """An answer other than 200, sent as JSON ``{"error": {...}}``.

    Args:
        status: HTTP status.
        code: Short machine-readable code (``invalid_model``, ``queue_full``...).
        message: One line for a person; names the request field when there is one.
        field: The request field at fault, if any.
        headers: Extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message}
        if self.field is not None:
            err["field"] = self.field
        return {"error": err}
