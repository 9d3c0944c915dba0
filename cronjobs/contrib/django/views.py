"""The status page inside the project, behind Django's staff login:

    urlpatterns = [..., path("cron/", include("cronjobs.contrib.django.urls"))]

Staff users see it after logging in through the admin's login page; the `[http] token` of run-cron's
own page plays no part here.
"""

from __future__ import annotations

import threading
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_safe

_jobs_loaded = threading.Lock()
_loaded = False


def _config_and_registry() -> tuple[Any, Any]:
    """The configuration, and the registry with the apps' cronjobs modules imported (once per process)."""
    global _loaded
    from ...registry import load_modules, registry
    from ...retention import register
    from .source import DjangoSource, django_config

    config = django_config()
    with _jobs_loaded:
        if not _loaded:
            load_modules(config.jobs, config.python_path, config.path)
            DjangoSource().load_jobs(config)
            register(registry, config)
            _loaded = True
    return config, registry


def _django_response(response: Any) -> HttpResponse:
    """A run-cron web Response (status, headers, body bytes or an iterable) as Django's response."""
    if isinstance(response.body, bytes):
        answer: Any = HttpResponse(response.body, status=response.status)
    else:
        answer = StreamingHttpResponse(response.body, status=response.status)
    for name, value in response.headers:
        answer[name] = value
    return answer


@require_safe
@staff_member_required
def status(request: HttpRequest) -> HttpResponse:
    from ...web import page
    from ...web.store import db_guard

    config, registry = _config_and_registry()
    body = page.status_page(config, registry, request.path.rstrip("/"), db_guard)
    answer = HttpResponse(body.encode("utf-8"), content_type="text/html; charset=utf-8")
    for name, value in page.PAGE_HEADERS:
        answer[name] = value
    return answer


@require_safe
@staff_member_required
def attachment(request: HttpRequest, uuid: str, name: str) -> HttpResponse:
    from ...web import page
    from ...web.store import db_guard

    config, _ = _config_and_registry()
    # page.attachment takes the WSGI path (PEP 3333: latin-1 text); Django hands over decoded text
    rest = f"{uuid}/{name}".encode().decode("latin-1")
    return _django_response(page.attachment(config, rest, db_guard))
