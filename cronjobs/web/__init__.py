"""The web app: HTTP trigger, health check and status page (see cronjobs.web.app).

`cronjobs.web:application` is what WSGI servers serve; bin/run-cron.cgi calls `run_cgi`.
"""

from .app import App, application, make_app, make_server, run_cgi

__all__ = ["App", "application", "make_app", "make_server", "run_cgi"]
