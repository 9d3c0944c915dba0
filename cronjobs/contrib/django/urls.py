"""`path("cron/", include("cronjobs.contrib.django.urls"))`: the status page and its attachments, staff only."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "run_cron"
urlpatterns = [
    path("", views.status, name="status"),
    path("attachment/<str:uuid>/<path:name>", views.attachment, name="attachment"),
]
