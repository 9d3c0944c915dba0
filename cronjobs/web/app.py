"""The HTTP trigger, the health check and the status page: one WSGI application (PEP 3333).

Routes, all below the optional `[http] prefix`:

    GET|POST /run                   one tick, as the CLI runs it, under `[http] time_limit`  (token)
    GET      /health                age of the last tick, queue depth, failing jobs         (open)
    GET      /                      the status page (filters: ?status=&type=&owner=)        (token or cookie)
    POST     /action                retry, cancel or run now; 303 back to the page          (cookie + CSRF)
    GET      /live                  tick running, run in flight, progress (JSON)            (token or cookie)
    GET      /page.js               the page's script                                       (open)
    GET      /attachment/UUID/NAME  one attachment of a message or job run                  (token or cookie)

Serve `cronjobs.web:application` (reads $RUN_CRON_CONFIG) with any WSGI server, run bin/run-cron.cgi as
CGI, or try it with `run-cron serve`. The token is compared in constant time and never logged: the
request log of `serve` drops query strings.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import threading
import time
from typing import Any, Callable, Iterable, Optional, Union
from urllib.parse import parse_qs, quote

from ..errors import CronjobsError, StoreError
from ..host.config import ENV_VAR, Config, find_config_path, load_config
from ..runtime.lock import LockError, SupervisorLock
from .http import (
    STATUS_TEXT,
    UNREAD_BODY,
    Environ,
    RequestError,
    Response,
    StartResponse,
    content_length,
    cookie_value,
    cookies,
    error_response,
    json_response,
    loggable_target,
    printable,
    read_body,
    request_token,
    token_matches,
)
from .store import db_guard, read_health, read_metrics, register_fork_hooks, seconds_until_allowed, trigger_lock

log = logging.getLogger(__name__)

#: Set by bin/run-cron.cgi when it could not run the project's .venv interpreter.
CGI_FALLBACK = "RUN_CRON_CGI_FALLBACK"
COOKIE = "run_cron_page"
COOKIE_MAX_AGE = 30 * 86400
_ROUTES = {"/run": ("GET", "POST"), "/health": ("GET", "HEAD"), "/metrics": ("GET", "HEAD"), "/": ("GET", "HEAD"),
           "/action": ("POST",), "/live": ("GET",), "/page.js": ("GET", "HEAD")}


class App:
    """The WSGI application. `config` is a Config, a path, or None for $RUN_CRON_CONFIG.

    The configuration and the jobs modules are loaded at the first request (and again after a failure),
    so a bad configuration answers 500 with a one-line message and is logged, never shown. A long-running
    server imports the jobs modules again when one of their files changes (mtime or size), so a job
    added later shows up without a restart.
    """

    def __init__(self, config: Union[Config, str, os.PathLike, None] = None) -> None:
        self._path = None if config is None or isinstance(config, Config) else os.fspath(config)
        self._config: Optional[Config] = config if isinstance(config, Config) else None
        self._jobs_loaded = False
        self._jobs_files: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        register_fork_hooks()

    def config(self, environ: Optional[Environ] = None) -> Config:
        with self._lock:
            if self._config is None:
                # mod_wsgi's SetEnv reaches the WSGI environ, not os.environ.
                path = find_config_path(self._path or (environ or {}).get(ENV_VAR))
                config = load_config(path)
                if config.log.file:
                    from ..host.logs import add_file_handler

                    add_file_handler(logging.getLogger("cronjobs"), config)
                self._config = config
            return self._config

    def load_jobs(self, config: Config) -> Any:
        """The registry with the configured jobs modules imported: once, and again after they changed."""
        from ..registry import load_modules, registry
        from ..runtime.retention import register

        with self._lock:
            if self._jobs_loaded and self._jobs_files != _module_files(config.jobs):
                log.info("jobs module changed: loading %s again", ", ".join(config.jobs))
                _forget_modules(config.jobs)
                registry.clear()
                self._jobs_loaded = False
            if not self._jobs_loaded:
                if config.env_file:
                    from ..host.envfile import load

                    load(config.env_file, config.path)
                load_modules(config.jobs, config.python_path, config.path)
                register(registry, config)  # the built-in daily prune job, as the CLI declares it
                self._jobs_files = _module_files(config.jobs)
                self._jobs_loaded = True
        return registry

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        began = time.monotonic()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            response = self.dispatch(environ, method, began)
        except RequestError as exc:
            response = error_response(exc.status, exc.message)
        except (StoreError, LockError) as exc:  # the files run-cron works on, not the request: retry later
            log.error("cannot answer %s %s: %s", printable(method), self.loggable(environ), exc)
            what = "database" if isinstance(exc, StoreError) else "lock file"
            response = json_response(503, {"status": "error", "error": f"{what} unavailable: {exc.reason}"})
        except CronjobsError as exc:  # configuration or jobs module: one line is enough
            log.error("cannot answer %s %s: %s", printable(method), self.loggable(environ), exc)
            response = Response(500, b"run-cron: internal error (see the server's log)\n")
        except Exception:
            log.exception("internal error answering %s %s", printable(method), self.loggable(environ))
            response = Response(500, b"run-cron: internal error (see the server's log)\n")
        fallback = os.environ.get(CGI_FALLBACK)
        if fallback:
            log.warning("run-cron.cgi: %s", fallback)
            response.headers.append(("X-Run-Cron-Warning", fallback.encode("latin-1", "replace").decode("latin-1")))
        start_response(f"{response.status} {STATUS_TEXT.get(response.status, '')}".strip(), response.headers)
        if method == "HEAD":
            close = getattr(response.body, "close", None)
            if close is not None:
                close()
            return [b""]
        return [response.body] if isinstance(response.body, bytes) else response.body

    def secrets(self) -> list[str]:
        """What a log must never show: the token, once the configuration is loaded."""
        token = self._config.http.token if self._config is not None else None
        return [token] if token else []

    def loggable(self, environ: Environ) -> str:
        return loggable_target(environ.get("PATH_INFO"), self.secrets())

    def dispatch(self, environ: Environ, method: str, began: float) -> Response:
        config = self.config(environ)
        length = content_length(environ)
        if length > config.http.max_body:  # at once, before reading: the client may never send it all
            environ[UNREAD_BODY] = True
            return error_response(413, f"request body larger than {config.http.max_body} bytes")
        body = read_body(environ, length)
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
        public = route == "/health" or (route == "/metrics" and config.http.public_metrics)
        if not public and not config.http.token:
            return error_response(404, "not found")  # no token configured: trigger and page are off
        if method not in allowed:
            return Response(405, b"method not allowed\n", headers=[("Allow", ", ".join(allowed))])
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if route == "/health":
            healthy, report = read_health(config)
            return json_response(200 if healthy else 503, report)
        if route == "/metrics":
            if not public and not token_matches(request_token(environ, query), config.http.token or ""):
                return error_response(403, "forbidden: wrong or missing token")
            return Response(200, read_metrics(config).encode("utf-8"), "text/plain; version=0.0.4; charset=utf-8")
        if route == "/run":
            return self.run(config, environ, query, began)
        if route == "/page.js":
            from .assets import JS

            return Response(200, JS.encode("utf-8"), "text/javascript; charset=utf-8")
        return self.page(config, environ, query, route, path[len("/attachment/"):], base, body)

    def run(self, config: Config, environ: Environ, query: dict[str, list[str]], began: float) -> Response:
        from ..runtime.eventlog import TickLog
        from ..runtime.tick import run_tick

        assert config.http.token is not None
        if not token_matches(request_token(environ, query), config.http.token):
            return error_response(403, "forbidden: wrong or missing token")
        registry = self.load_jobs(config)
        if SupervisorLock(config.lock_file).held_elsewhere():
            return _locked()  # a running tick is 409 whenever it started; 429 is for a finished one
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
        warning = os.environ.get(CGI_FALLBACK)
        return json_response(503 if result.interrupted else 200, {  # 503: a stop signal cut the tick short
            **result.to_json(), "time_limit": config.http.time_limit,
            **({"warning": f"run-cron.cgi: {warning}"} if warning else {})})

    def page(self, config: Config, environ: Environ, query: dict[str, list[str]], route: str, rest: str,
             base: str, body: bytes = b"") -> Response:
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
        if route == "/live":
            from .store import live_state

            return json_response(200, live_state(config))
        if route == "/action":
            return self.action(config, environ, body, base)
        secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""
        cookie = (f"{COOKIE}={expected}; Path={quote(base.encode('latin-1', 'replace'))}/; "
                  f"Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Strict{secure}")
        html = web_page.status_page(config, self.load_jobs(config), base, db_guard, query, interactive=True)
        return Response(200, html.encode("utf-8"), "text/html; charset=utf-8",
                        [("Set-Cookie", cookie), *web_page.PAGE_HEADERS])

    def action(self, config: Config, environ: Environ, body: bytes, base: str) -> Response:
        """A button of the page: check the CSRF token and origin, act, then 303 back to the page."""
        from .actions import csrf_matches, perform, redirect_target, same_origin

        assert config.http.token is not None
        form = parse_qs(body.decode("utf-8", "replace"))
        if not same_origin(environ) or not csrf_matches(next(iter(form.get("csrf") or []), None), config.http.token):
            return error_response(403, "forbidden: the form is not from this status page (reload it)")
        notice = perform(config, form, lambda: self.load_jobs(config), db_guard)
        log.info("page action %s %s: %s", printable((form.get("action") or ["-"])[0]),
                 printable(notice.get("subject", "-")), notice["notice"])
        location = redirect_target(base, notice, form)
        return Response(303, b"", headers=[("Location", location)])


def _module_files(modules: Iterable[str]) -> dict[str, tuple[float, int]]:
    """mtime and size of each imported jobs module's file (what tells a long-running server to reload)."""
    import sys

    files = {}
    for name in modules:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            try:
                stat = os.stat(path)
            except OSError:
                files[path] = (-1.0, -1)
            else:
                files[path] = (stat.st_mtime, stat.st_size)
    return files


def _forget_modules(modules: Iterable[str]) -> None:
    """Drop the jobs modules so the next import reads their files again.

    Their bytecode caches go too: a cache is trusted while the source's whole-second mtime and size
    match, which an edit within the same second can keep.
    """
    import importlib
    import importlib.util
    import sys

    for name in modules:
        module = sys.modules.pop(name, None)
        path = getattr(module, "__file__", None)
        if path and path.endswith(".py"):
            try:
                os.unlink(importlib.util.cache_from_source(path))
            except (OSError, NotImplementedError, ValueError):
                pass
    importlib.invalidate_caches()


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


#: Seconds a read from a client may stall (request line, headers, body) before the request is given up:
#: a body shorter than its Content-Length is answered 400 after this, not after a minute.
READ_TIMEOUT = 10.0
#: After a 413, read and drop at most this much for at most LINGER seconds, then close.
LINGER_BYTES = 1 << 20
LINGER = 1.0


def make_server(app: Callable[..., Any], host: str = "127.0.0.1", port: int = 8080) -> Any:
    """A threading wsgiref server (so /health answers during a tick) for hostile clients.

    Malformed requests (bad request line or version, a target over 64 KB, a stalled or short body)
    get their 400/414/505 answer and one log line, never a traceback. The request log shows method,
    path and status only: no query string, nothing from the word "token" on in any encoding, never
    the token itself, no control characters.
    """
    import socket
    import sys
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    secrets = app.secrets if isinstance(app, App) else list

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        request_queue_size = 128

        def handle_error(self, request: Any, client_address: Any) -> None:
            # socketserver prints a traceback here (a client that stalls or resets): one line instead
            error = sys.exc_info()[1]
            log.info("%s dropped: %s", client_address[0], type(error).__name__ if error else "error")

    class Handler(WSGIRequestHandler):
        timeout = READ_TIMEOUT
        # An unparsable request line leaves the version at this default, and the standard library answers
        # "HTTP/0.9" requests without a status line: the client would see no answer at all.
        default_request_version = "HTTP/1.0"
        # Errors the standard library answers itself, as JSON like the app's own, without echoing input
        error_content_type = "application/json"
        error_message_format = '{"error": "%(code)d: %(explain)s"}\n'
        environ: dict[str, Any] = {}

        def get_environ(self) -> dict[str, Any]:
            self.environ = super().get_environ()
            return self.environ

        def handle(self) -> None:
            self.environ = {}
            super().handle()
            if self.environ.get(UNREAD_BODY):
                self._linger()

        def _linger(self) -> None:
            """Close after draining what the client still sends, so it reads the answer, not a reset."""
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + LINGER
                drained = 0
                while drained < LINGER_BYTES and time.monotonic() < deadline:
                    self.connection.settimeout(max(deadline - time.monotonic(), 0.01))
                    chunk = self.connection.recv(65536)
                    if not chunk:
                        break
                    drained += len(chunk)
            except OSError:
                pass

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            # `command` and `path` are unset when the request line could not be parsed
            log.info("%s %s %s %s", self.address_string(), printable(getattr(self, "command", None) or "-"),
                     loggable_target(getattr(self, "path", None), secrets()),
                     int(code) if isinstance(code, int) else code)  # HTTPStatus prints its name before 3.11

        def log_error(self, format: str, *args: Any) -> None:
            """Dropped: send_error's messages quote the raw request line; log_request logs the status."""

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), loggable_target(format % args, secrets()))

    server = Server((host, port), Handler)
    server.set_app(app)
    return server
