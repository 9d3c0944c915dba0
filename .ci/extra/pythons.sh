#!/usr/bin/env bash
# The oldest and the newest Python that run-cron claims (python_requires >= 3.9, tested up to 3.13),
# beside scripts/test's full run on the default interpreter: each in its own venv under .ci/venvs/
# (gitignored), the project installed with its test extras, the tests run with that interpreter (the
# CLI the tests start is `sys.executable -m cronjobs`, so the subprocesses run on it too).
#
# Budget: .ci/run must stay well under 15 minutes on a 2-core machine and the main suite takes ~4.5
# of them (two workers), engines.sh ~3, so both run the same representative subset, under a minute each: the core modules' unit tests
# (cron fields, schedule decisions without the slow minute-by-minute DST models, config, board,
# context, runs, queue, worker), real ticks through the CLI (tests/test_runs.py), stop signals
# through the CLI, serve and CGI (tests/test_interrupt.py) and the layout check. Python 3.13 reuses
# the virtualenv .ci/extra/django.sh made (it runs first, on the newest Python it finds).
# What differs between Pythons is syntax, the standard library and removed modules, which these
# reach; the rest of the suite runs on the default interpreter in scripts/test.
# Set PYENV_ROOT to look elsewhere for the interpreters; a missing one is skipped with a line.
set -euo pipefail
cd "$(dirname "$0")/../.."
pyenv_root=${PYENV_ROOT:-/root/.pyenv}

run_on() {  # version, pytest arguments...
    local version=$1 python venv
    shift
    python="$pyenv_root/versions/$version/bin/python3"
    if [ ! -x "$python" ]; then
        echo "== Python $version: not installed ($python), skipped"
        return 0
    fi
    venv=".ci/venvs/py${version%.*}"
    if [ -x .ci/venvs/django/bin/python ] && [ "$(.ci/venvs/django/bin/python -c 'import platform; print(platform.python_version())')" = "$version" ]; then
        venv=.ci/venvs/django  # the same interpreter with the test extras already installed
    else
        [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]" 2>&1 \
            | { grep -v "^WARNING: Location" || true; }
    fi
    echo "== Python $version: pytest $*"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
}

SUBSET=(tests/test_layout.py tests/test_cronspec.py tests/test_config.py tests/test_board.py
        tests/test_context.py tests/test_runs.py tests/test_scheduler.py tests/test_queue.py tests/test_worker.py
        tests/test_interrupt.py tests/test_schedule.py -k "not agree_with")
run_on 3.9.18 "${SUBSET[@]}"
run_on 3.13.0 "${SUBSET[@]}"
