"""Declaring jobs: decorator forms, names, order, and load errors that name module and job."""

from __future__ import annotations

import pytest

import cronjobs
from cronjobs.errors import JobDefinitionError
from cronjobs.registry import Job, registry


@pytest.fixture(autouse=True)
def clean_registry():
    saved = dict(registry.jobs), dict(registry.handlers)
    registry.clear()
    yield
    registry.clear()
    registry.jobs.update(saved[0])
    registry.handlers.update(saved[1])


def test_decorator_forms_and_default_names():
    @cronjobs.daily
    def purge(ctx):
        return "purged"

    @cronjobs.hourly(name="named", cli_only=True)
    def other(ctx):
        pass

    @cronjobs.cron("*/15 8-18 * * 1-5", name="poll-feeds")
    def poll(ctx):
        pass

    assert purge(None) == "purged"  # still the plain function
    assert registry.jobs["purge"].schedule == "daily"
    assert registry.jobs["named"].cli_only
    assert registry.jobs["poll-feeds"].schedule == "*/15 8-18 * * 1-5"
    assert isinstance(purge.cronjob, Job)


def test_tick_order_is_by_period_then_cron_then_declaration():
    declarations = [
        ("c1", cronjobs.cron("@daily", name="c1")),
        ("m", cronjobs.minutely(name="m")),
        ("y", cronjobs.yearly(name="y")),
        ("d1", cronjobs.daily(name="d1")),
        ("c2", cronjobs.cron("* * * * *", name="c2")),
        ("d2", cronjobs.daily(name="d2")),
        ("w", cronjobs.weekly(name="w")),
        ("h", cronjobs.hourly(name="h")),
        ("mo", cronjobs.monthly(name="mo")),
    ]
    for _, declare in declarations:
        declare(lambda ctx: None)
    assert [job.name for job in registry.ordered_jobs()] == ["y", "mo", "w", "d1", "d2", "h", "m", "c1", "c2"]


def test_duplicate_name_is_an_error_naming_module_and_job():
    @cronjobs.daily
    def twice(ctx):
        pass

    with pytest.raises(JobDefinitionError, match=r"^test_registry: job 'twice': a job of this name is "
                                                 r"already declared in test_registry$"):
        @cronjobs.hourly(name="twice")
        def other(ctx):
            pass


def test_bad_expression_is_reported_when_validated():
    @cronjobs.cron("61 * * * *", name="broken")
    def broken(ctx):
        pass

    with pytest.raises(JobDefinitionError, match=r"job 'broken': bad cron expression '61 \* \* \* \*'"):
        registry.validate()


def test_select_for_force():
    @cronjobs.daily
    def a(ctx):
        pass

    @cronjobs.hourly
    def b(ctx):
        pass

    assert [j.name for j in registry.select(["hourly"])] == ["b"]
    assert [j.name for j in registry.select(["b", "a"])] == ["a", "b"]
    assert [j.name for j in registry.select(["all"])] == ["a", "b"]


def test_cli_reports_a_broken_expression_with_module_and_job(project):
    project.write_jobs('@cronjobs.cron("0 25 * * *", name="bad-hour")\ndef f(ctx): pass\n')
    result = project.run()
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "run-cron: error: jobs: job 'bad-hour': bad cron expression '0 25 * * *': '25', not in 0-23 for Hours"
    ]


def test_list_reports_a_broken_expression_too(project):
    project.write_jobs('@cronjobs.cron("0 25 * * *", name="bad-hour")\ndef f(ctx): pass\n')
    result = project.run("list")
    assert (result.returncode, len(result.stderr.splitlines())) == (2, 1)
    assert "job 'bad-hour': bad cron expression" in result.stderr


def test_cli_reports_duplicate_names(project):
    project.write_jobs("@cronjobs.daily\ndef f(ctx): pass\n@cronjobs.hourly(name='f')\ndef g(ctx): pass\n")
    result = project.run()
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "run-cron: error: jobs: job 'f': a job of this name is already declared in jobs"
    ]


def test_interval_decorators_say_when_their_period_begins():
    assert "Monday at midnight" in cronjobs.weekly.__doc__
    assert "cron's @weekly is Sunday" in cronjobs.weekly.__doc__
    assert "both copies of a repeated hour" in cronjobs.hourly.__doc__
