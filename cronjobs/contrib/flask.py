"""run-cron for Flask: enqueue from the app, the HTTP trigger and status page under a prefix, and jobs
that run inside the app context.

    # myapp.py, named by `jobs = myapp` in config/run-cron.ini (so every tick imports it)
    from flask import Flask
    from cronjobs.contrib.flask import RunCron

    app = Flask(__name__)
    app.config["RUN_CRON_CONFIG"] = "/home/me/site/config/run-cron.ini"
    cron = RunCron(app)               # or RunCron() and cron.init_app(app) in an app factory

    @cron.daily                       # runs in app.app_context(): current_app, Flask-SQLAlchemy's db ...
    def purge(ctx): ...

    @cron.handler("mail.send")
    def send(ctx, payload): ...

    @app.post("/signup")
    def signup():
        cron.enqueue("mail.send", {"to": request.form["email"]})

The trigger, /health and the status page answer under `RUN_CRON_PREFIX` (default "/cron"; None: not
mounted), as `run-cron serve` answers them, with the `[http] token` of the configuration.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Optional, TypeVar

from ..registry import cron as _cron
from ..registry import daily, handler, hourly, minutely, monthly, weekly, yearly

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_PREFIX = "/cron"


class RunCron:
    """The Flask extension. `config` (an INI path) overrides the app's `RUN_CRON_CONFIG`; neither:
    $RUN_CRON_CONFIG, else ./config/run-cron.ini, as for the `run-cron` command."""

    def __init__(self, app: Any = None, config: Optional[str] = None) -> None:
        self.app = None
        self.config_path = config
        self._queue: Any = None
        self._lock = threading.Lock()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        """Remember `app` for the jobs' context, and mount run-cron's WSGI app under the prefix."""
        self.app = app
        self.config_path = self.config_path or app.config.get("RUN_CRON_CONFIG")
        app.extensions["run_cron"] = self
        prefix = app.config.get("RUN_CRON_PREFIX", DEFAULT_PREFIX)
        if prefix:
            from werkzeug.middleware.dispatcher import DispatcherMiddleware

            from ..web import make_app

            app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/" + prefix.strip("/"): make_app(self.config_path)})

    # -- enqueueing -------------------------------------------------------------------------------

    def queue(self) -> Any:
        """run-cron's Queue on the configured store (opened on first use, shared by the app's threads)."""
        with self._lock:
            if self._queue is None:
                from ..messages.queue import connect

                self._queue = connect(self.config_path)
            return self._queue

    def enqueue(self, type: str, payload: Any = None, **options: Any) -> str:
        """Queue a message for the next tick; the options of `cronjobs.Queue.enqueue`. Returns its uuid."""
        return str(self.queue().enqueue(type, payload, **options))

    # -- jobs in the app context ------------------------------------------------------------------

    def in_app_context(self, func: F) -> F:
        """`func` wrapped to run inside the app context of the app given to `init_app`."""

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            if self.app is None:
                raise RuntimeError("RunCron has no Flask app: pass it to RunCron(app) or init_app(app) "
                                   "in the module the configuration's jobs names")
            with self.app.app_context():
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]

    def _periodic(self, schedule: Callable[..., Any]) -> Callable[..., Any]:
        def decorator(func: Optional[F] = None, *, name: Optional[str] = None, cli_only: bool = False) -> Any:
            def apply(f: F) -> F:
                schedule(name=name, cli_only=cli_only)(self.in_app_context(f))
                return f

            return apply(func) if func is not None else apply

        return decorator

    @property
    def yearly(self) -> Callable[..., Any]:
        return self._periodic(yearly)

    @property
    def monthly(self) -> Callable[..., Any]:
        return self._periodic(monthly)

    @property
    def weekly(self) -> Callable[..., Any]:
        return self._periodic(weekly)

    @property
    def daily(self) -> Callable[..., Any]:
        return self._periodic(daily)

    @property
    def hourly(self) -> Callable[..., Any]:
        return self._periodic(hourly)

    @property
    def minutely(self) -> Callable[..., Any]:
        return self._periodic(minutely)

    def cron(self, expression: str, *, name: Optional[str] = None, cli_only: bool = False) -> Callable[[F], F]:
        """`cronjobs.cron`, in the app context."""

        def apply(f: F) -> F:
            _cron(expression, name=name or f.__name__, cli_only=cli_only)(self.in_app_context(f))
            return f

        return apply

    def handler(self, message_type: str, *, cli_only: bool = False) -> Callable[[F], F]:
        """`cronjobs.handler`, in the app context."""

        def apply(f: F) -> F:
            handler(message_type, cli_only=cli_only)(self.in_app_context(f))
            return f

        return apply
