"""HTTP plumbing of the web app: responses, the token and cookie checks, and request bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Callable, Iterable, Optional, Union

DRAIN_LIMIT = 1 << 20  # read at most this much of an oversized body, so the 413 reaches the client
STATUS_TEXT = {200: "OK", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
               413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
               503: "Service Unavailable"}
COMMON_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                  ("Referrer-Policy", "no-referrer")]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class Response:
    def __init__(self, status: int, body: Union[bytes, Iterable[bytes]] = b"", content_type: str = "text/plain",
                 headers: Optional[list[tuple[str, str]]] = None) -> None:
        self.status = status
        self.body = body
        self.headers = [("Content-Type", content_type), *COMMON_HEADERS, *(headers or [])]
        if isinstance(body, bytes):
            self.headers.append(("Content-Length", str(len(body))))


def json_response(status: int, data: dict[str, Any], headers: Optional[list[tuple[str, str]]] = None) -> Response:
    body = (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8")
    return Response(status, body, "application/json", headers)


def error_response(status: int, message: str, **extra: Any) -> Response:
    return json_response(status, {"error": message, **extra})


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def token_matches(given: Optional[str], token: str) -> bool:
    """Constant-time comparison (of digests, so not even the token's length leaks)."""
    return given is not None and hmac.compare_digest(_digest(given), _digest(token))


def cookie_value(token: str) -> str:
    """What the page cookie holds: derived from the token, so the cookie cannot start a tick."""
    return hmac.new(token.encode("utf-8"), b"run-cron status page", hashlib.sha256).hexdigest()


def cookies(environ: Environ) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            cookies.setdefault(name, value.strip().strip('"'))
    return cookies


def request_token(environ: Environ, query: dict[str, list[str]]) -> Optional[str]:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    values = query.get("token")
    return values[0] if values else None


def content_length(environ: Environ) -> int:
    try:
        return max(int(environ.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def read_body(environ: Environ, length: int) -> None:
    """Read (and drop) the body: a server that closes with unread input may reset the connection."""
    stream = environ.get("wsgi.input")
    left = min(length, DRAIN_LIMIT)
    while stream is not None and left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        left -= len(chunk)
