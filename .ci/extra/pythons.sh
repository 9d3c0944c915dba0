#!/usr/bin/env bash
# The oldest and the newest Python that run-cron claims (python_requires >= 3.9, tested up to 3.13),
# beside scripts/test's full run on the default interpreter: each in its own venv under .ci/venvs/
# (gitignored), the project installed with its test extras, the tests run with that interpreter (the
# CLI the tests start is `sys.executable -m cronjobs`, so the subprocesses run on it too).
#
# Budget: .ci/run must stay under ~11 minutes on a 2-core machine, and the main suite takes ~4.5 of
# them; two more full runs do not fit. So:
# - Python 3.9 (the oldest: syntax and standard-library APIs newer than it would fail here) runs the
#   whole suite but the browser test of the status page (chromium does not depend on the Python), the
#   reliability suite's fast subset (same code paths as tests/test_tick.py and test_interrupt.py, at
#   many times their cost) and the hypothesis fuzzing (tests/fuzz, run on the default Python);
# - Python 3.13 (the newest: removed modules, changed defaults) runs a representative subset: the
#   core modules' unit tests, the CLI and tick end to end, signals, the HTTP trigger under `serve`
#   and as CGI, the worker mode and the queue API.
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
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]" 2>&1 \
        | { grep -v "^WARNING: Location" || true; }
    echo "== Python $version: pytest $*"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
}

run_on 3.9.18 tests --ignore=tests/test_web_page.py --ignore=tests/reliability --ignore=tests/fuzz
run_on 3.13.0 \
    tests/test_board.py tests/test_config.py tests/test_context.py tests/test_cli.py tests/test_tick.py \
    tests/test_interrupt.py tests/test_supervisor.py tests/test_worker.py tests/test_runs.py \
    tests/test_scheduler.py tests/test_schedule.py tests/test_store.py tests/test_queue_e2e.py \
    tests/test_web.py tests/test_cgi.py tests/test_worker_mode.py tests/test_broken_store.py
