"""The HTTP trigger, the health check and the status page: one WSGI application (PEP 3333).

Routes, all below the optional `[http] prefix`:

    GET|POST /run                   one tick, as the CLI runs it, under `[http] time_limit`  (token)
    GET      /health                age of the last tick, queue depth, failing jobs         (open)
    GET      /                      the status page                                         (token or cookie)
    GET      /attachment/UUID/NAME  one attachment of a message                             (token or cookie)

Serve `cronjobs.web:application` (reads $RUN_CRON_CONFIG) with any WSGI server, run bin/run-cron.cgi as
CGI, or try it with `run-cron serve`. The token is compared in constant time and never logged: the
request log of `serve` drops query strings.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import re
import threading
import time
from typing import Any, Callable, Iterable, Optional, Union
from urllib.parse import parse_qs, quote

from ..config import ENV_VAR, Config, find_config_path, load_config
from ..errors import CronjobsError, StoreError
from ..lock import LockError
from .http import (
    STATUS_TEXT,
    Environ,
    Response,
    StartResponse,
    content_length,
    cookie_value,
    cookies,
    error_response,
    json_response,
    read_body,
    request_token,
    token_matches,
)
from .store import db_guard, read_health, register_fork_hooks, seconds_until_allowed, trigger_lock

log = logging.getLogger(__name__)

COOKIE = "run_cron_page"
COOKIE_MAX_AGE = 30 * 86400
_ROUTES = {"/run": ("GET", "POST"), "/health": ("GET", "HEAD"), "/": ("GET", "HEAD")}


class App:
    """The WSGI application. `config` is a Config, a path, or None for $RUN_CRON_CONFIG.

    The configuration and the jobs modules are loaded at the first request (and again after a failure),
    so a bad configuration answers 500 with a one-line message and is logged, never shown.
    """

    def __init__(self, config: Union[Config, str, os.PathLike, None] = None) -> None:
        self._path = None if config is None or isinstance(config, Config) else os.fspath(config)
        self._config: Optional[Config] = config if isinstance(config, Config) else None
        self._jobs_loaded = False
        self._lock = threading.Lock()
        register_fork_hooks()

    def config(self, environ: Optional[Environ] = None) -> Config:
        with self._lock:
            if self._config is None:
                # mod_wsgi's SetEnv reaches the WSGI environ, not os.environ.
                path = find_config_path(self._path or (environ or {}).get(ENV_VAR))
                config = load_config(path)
                if config.log.file:
                    from ..logs import add_file_handler

                    add_file_handler(logging.getLogger("cronjobs"), config)
                self._config = config
            return self._config

    def load_jobs(self, config: Config) -> Any:
        """The registry with the configured jobs modules imported (once; /health does not need them)."""
        from ..registry import load_modules, registry
        from ..retention import register

        with self._lock:
            if not self._jobs_loaded:
                load_modules(config.jobs, config.python_path, config.path)
                register(registry, config)  # the built-in daily prune job, as the CLI declares it
                self._jobs_loaded = True
        return registry

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        began = time.monotonic()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            response = self.dispatch(environ, method, began)
        except (StoreError, LockError) as exc:  # the files run-cron works on, not the request: retry later
            log.error("cannot answer %s %s: %s", method, environ.get("PATH_INFO", ""), exc)
            what = "database" if isinstance(exc, StoreError) else "lock file"
            response = json_response(503, {"status": "error", "error": f"{what} unavailable: {exc.reason}"})
        except CronjobsError as exc:  # configuration or jobs module: one line is enough
            log.error("cannot answer %s %s: %s", method, environ.get("PATH_INFO", ""), exc)
            response = Response(500, b"run-cron: internal error (see the server's log)\n")
        except Exception:
            log.exception("internal error answering %s %s", method, environ.get("PATH_INFO", ""))
            response = Response(500, b"run-cron: internal error (see the server's log)\n")
        start_response(f"{response.status} {STATUS_TEXT.get(response.status, '')}".strip(), response.headers)
        if method == "HEAD":
            close = getattr(response.body, "close", None)
            if close is not None:
                close()
            return [b""]
        return [response.body] if isinstance(response.body, bytes) else response.body

    def dispatch(self, environ: Environ, method: str, began: float) -> Response:
        config = self.config(environ)
        path = environ.get("PATH_INFO") or "/"
        base = environ.get("SCRIPT_NAME", "").rstrip("/")
        prefix = config.http.prefix
        if prefix and not base.endswith(prefix):  # not already mounted at the prefix
            if path != prefix and not path.startswith(prefix + "/"):
                return error_response(404, "not found")
            path, base = path[len(prefix):] or "/", base + prefix
        route = "/attachment" if path.startswith("/attachment/") else path
        allowed = ("GET", "HEAD") if route == "/attachment" else _ROUTES.get(route)
        if allowed is None:
            return error_response(404, "not found")
        if route != "/health" and not config.http.token:
            return error_response(404, "not found")  # no token configured: trigger and page are off
        if method not in allowed:
            return Response(405, b"method not allowed\n", headers=[("Allow", ", ".join(allowed))])
        length = content_length(environ)
        if length > config.http.max_body:
            read_body(environ, length)
            return error_response(413, f"request body larger than {config.http.max_body} bytes")
        read_body(environ, length)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if route == "/health":
            healthy, report = read_health(config)
            return json_response(200 if healthy else 503, report)
        if route == "/run":
            return self.run(config, environ, query, began)
        return self.page(config, environ, query, route, path[len("/attachment/"):], base)

    def run(self, config: Config, environ: Environ, query: dict[str, list[str]], began: float) -> Response:
        from ..eventlog import TickLog
        from ..tick import run_tick

        assert config.http.token is not None
        if not token_matches(request_token(environ, query), config.http.token):
            return error_response(403, "forbidden: wrong or missing token")
        registry = self.load_jobs(config)
        wait = seconds_until_allowed(config)
        if wait is not None:
            return _too_soon(wait)
        with trigger_lock(config.lock_file + ".http") as held:
            if not held:
                return _locked()
            wait = seconds_until_allowed(config)  # again, now that no other HTTP tick can start
            if wait is not None:
                return _too_soon(wait)
            events = TickLog("http")
            result = run_tick(config, registry, time_limit=config.http.time_limit, trigger="http", started=began,
                              on_event=events, min_interval=config.http.min_interval)
            events.finished(result)
        if result.status == "locked":
            return _locked()
        if result.status == "too_soon":  # a tick from cron or the worker started since the check above
            return _too_soon(max(1, math.ceil(result.retry_after or 1)))
        log.info("http tick: %s, %s in %.3f s%s", result.status, result.outcome, result.duration,
                 " (stopped at the time limit)" if result.timed_out else "")
        return json_response(200, {**result.to_json(), "time_limit": config.http.time_limit})

    def page(self, config: Config, environ: Environ, query: dict[str, list[str]], route: str, rest: str,
             base: str) -> Response:
        from . import page as web_page

        assert config.http.token is not None
        expected = cookie_value(config.http.token)
        given = request_token(environ, query)
        if given is not None:
            if not token_matches(given, config.http.token):
                return error_response(403, "forbidden: wrong token")
        elif not hmac.compare_digest(cookies(environ).get(COOKIE, "").encode("ascii", "replace"),
                                     expected.encode("ascii")):
            return error_response(403, "forbidden: open this page once with ?token=YOUR_TOKEN")
        if route == "/attachment":
            return web_page.attachment(config, rest, db_guard)
        secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""
        cookie = (f"{COOKIE}={expected}; Path={quote(base.encode('latin-1', 'replace'))}/; "
                  f"Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Strict{secure}")
        body = web_page.status_page(config, self.load_jobs(config), base, db_guard)
        return Response(200, body.encode("utf-8"), "text/html; charset=utf-8",
                        [("Set-Cookie", cookie), *web_page.PAGE_HEADERS])


def _too_soon(wait: int) -> Response:
    return json_response(429, {"status": "too_soon", "error": "the last tick started too recently",
                               "retry_after": wait}, [("Retry-After", str(wait))])


def _locked() -> Response:
    return json_response(409, {"status": "locked", "error": "another tick is running"})


def make_app(config: Union[Config, str, os.PathLike, None] = None) -> App:
    """The WSGI application for `config` (a Config or an INI path; None: $RUN_CRON_CONFIG)."""
    return App(config)


#: For WSGI servers: `gunicorn cronjobs.web:application`, Passenger, mod_wsgi, waitress.
application = make_app()


def run_cgi() -> None:
    """Answer one CGI request (RFC 3875) from os.environ and stdin: what bin/run-cron.cgi calls."""
    from wsgiref.handlers import CGIHandler

    CGIHandler().run(application)


_SECRET_IN_LOG = re.compile(r"(token=)[^&\s\"']*", re.IGNORECASE)


def make_server(app: Callable[..., Any], host: str = "127.0.0.1", port: int = 8080) -> Any:
    """A threading wsgiref server (so /health answers during a tick) whose log never shows the token."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        request_queue_size = 128

    class Handler(WSGIRequestHandler):
        timeout = 60

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            path = self.path.split("?", 1)[0]
            log.info("%s %s %s %s", self.address_string(), self.command, path, code)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), _SECRET_IN_LOG.sub(r"\1***", format % args))

    server = Server((host, port), Handler)
    server.set_app(app)
    return server
