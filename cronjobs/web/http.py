"""HTTP plumbing of the web app: responses, the token and cookie checks, and request bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any, Callable, Iterable, Optional, Union
from urllib.parse import unquote

STATUS_TEXT = {200: "OK", 303: "See Other", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
               405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests",
               500: "Internal Server Error", 503: "Service Unavailable"}
#: Set in the environ when a body was left unread (413): `run-cron serve` then drains it before closing,
#: so the client reads the answer instead of a connection reset.
UNREAD_BODY = "cronjobs.unread_body"
LOGGED_TARGET_MAX = 200
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


class RequestError(Exception):
    """The request itself is malformed: answered with `status` and `message`, never a traceback."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def content_length(environ: Environ) -> int:
    """The declared body length; 0 when absent, RequestError(400) when it is not a whole number >= 0."""
    text = (environ.get("CONTENT_LENGTH") or "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise RequestError(400, "invalid Content-Length")
    return int(text)


def read_body(environ: Environ, length: int) -> bytes:
    """Read the whole body of `length` bytes (the caller has refused larger ones).

    A body that ends early, or stalls past the server's read timeout, is a RequestError(400): the client
    is told at once instead of the request hanging and ending as an internal error.
    """
    stream = environ.get("wsgi.input")
    chunks: list[bytes] = []
    left = length
    try:
        while stream is not None and left > 0:
            chunk = stream.read(min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError:  # the read timeout of the server's socket, or a reset
        pass
    if left > 0:
        raise RequestError(400, f"request body shorter than its Content-Length ({length} bytes)")
    return b"".join(chunks)


_TOKEN_WORD = re.compile("token", re.IGNORECASE)


def loggable_target(target: Optional[str], secrets: Iterable[str] = ()) -> str:
    """A request target as it may be logged: no query string, no token, printable, short.

    The target is percent-decoded until stable first, so no encoding of the query mark or of the word
    "token" slips through; everything from the word "token" on is dropped (whatever separator precedes
    its value), and so is any occurrence of a known secret, even in the path itself.
    """
    if not target:
        return "-"
    text = target
    for _ in range(5):
        decoded = unquote(text, errors="replace")
        if decoded == text:
            break
        text = decoded
    text = text.split("?", 1)[0]
    match = _TOKEN_WORD.search(text)
    if match:
        text = text[:match.start()] + "[redacted]"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return printable(text)[:LOGGED_TARGET_MAX] or "-"


def printable(text: str) -> str:
    """`text` without control characters (a client must not write terminal escapes into a log)."""
    return "".join(char if char.isprintable() else "?" for char in text)
