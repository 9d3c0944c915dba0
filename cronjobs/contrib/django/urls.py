"""`path("cron/", include("cronjobs.contrib.django.urls"))`: run-cron's status page, for staff users only."""

from __future__ import annotations

from django.urls import path, re_path

from . import views

app_name = "run_cron"
urlpatterns = [
    path("", views.page, name="status"),
    re_path(r"^(?P<rest>.+)$", views.page, name="page"),
]
