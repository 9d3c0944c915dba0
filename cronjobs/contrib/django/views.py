"""The status page inside the project, behind Django's staff login:

    urlpatterns = [..., path("cron/", include("cronjobs.contrib.django.urls"))]

Django checks the user (staff only, others go to the admin's login page); then run-cron's own web app
answers, as `run-cron serve` does: the page, its live updates, attachments, and its Retry, Cancel and
Run now buttons (protected by the app's own CSRF token and origin check, so Django's CSRF middleware
is not asked). The app's token is the `[http] token` if configured, else one derived from SECRET_KEY;
staff never need to know it, and the page's token cookie is not passed on.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import threading
from typing import Any, Optional

from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from ...web.app import App

_app_lock = threading.Lock()
_app: Optional[App] = None


class DjangoPageApp(App):
    """run-cron's web app with the apps' cronjobs.py modules in its registry, as `manage.py run_cron` has."""

    def load_jobs(self, config: Any) -> Any:
        from .source import DjangoSource

        registry = super().load_jobs(config)
        DjangoSource().load_jobs(config)  # once per process in effect: imports are cached
        return registry


def page_token(configured: Optional[str]) -> str:
    """The app's token: the configured one, else a secret derived from SECRET_KEY (never shown)."""
    from django.conf import settings

    if configured:
        return configured
    return hmac.new(settings.SECRET_KEY.encode(), b"cronjobs.contrib.django status page", hashlib.sha256).hexdigest()


def app() -> App:
    """The web app for this process, on the project's configuration, mounted where the URLconf puts it."""
    global _app
    from .source import django_config

    with _app_lock:
        if _app is None:
            config = copy.deepcopy(django_config())
            config.http.token = page_token(config.http.token)
            config.http.prefix = ""  # the URLconf decides where it lives
            _app = DjangoPageApp(config)
        return _app


@csrf_exempt  # the app checks its own CSRF token and the request's origin on every POST
@transaction.non_atomic_requests  # "Run now" forks a tick, which first closes this thread's connections
@staff_member_required
def page(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Every route of run-cron's web app below the include()'s prefix, for staff users."""
    web = app()
    environ = dict(request.META)
    mount = request.path[: len(request.path) - len(rest)].rstrip("/")
    environ["SCRIPT_NAME"] = request.META.get("SCRIPT_NAME", "").rstrip("/") + mount
    environ["PATH_INFO"] = "/" + rest
    environ["HTTP_AUTHORIZATION"] = f"Bearer {web.config().http.token}"  # Django has checked the user
    environ["wsgi.input"] = io.BytesIO(request.body)  # read already by Django's middleware, if a POST
    environ["CONTENT_LENGTH"] = str(len(request.body))
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = int(status.split(" ", 1)[0]), headers

    body = web(environ, start_response)
    if isinstance(body, list):
        response: HttpResponse = HttpResponse(b"".join(body), status=answer["status"])
    else:
        response = StreamingHttpResponse(body, status=answer["status"])  # type: ignore[assignment]
    for name, value in answer["headers"]:
        if name.lower() != "set-cookie":  # the page's token cookie: staff log in through Django instead
            response[name] = value
    return response
