#!/usr/bin/env bash
# Install like a user: build the sdist and, from it, the wheel (python -m build), check both (twine
# check --strict), install the wheel into a fresh virtualenv and run ticks from it on a temporary
# configuration, far from this checkout so nothing is imported from it.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
"$python" -m twine check --strict "$work"/dist/*
wheel=$(ls "$work"/dist/run_cron-*.whl)
sdist=$(ls "$work"/dist/run_cron-*.tar.gz)
# what a user's project needs is in them: the Django command, the README shown on the package index
"$python" - "$wheel" "$sdist" <<'PY'
import sys
import tarfile
import zipfile

wheel = zipfile.ZipFile(sys.argv[1]).namelist()
sdist = tarfile.open(sys.argv[2]).getnames()
for name in ("cronjobs/contrib/django/management/commands/run_cron.py", "cronjobs/contrib/flask.py"):
    assert name in wheel, f"{name} is not in the wheel"
assert any(name.endswith("/README.md") for name in sdist), "README.md is not in the sdist"
PY

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "$wheel"
mkdir -p "$work/site/config"
cd "$work/site"
cat >config/run-cron.ini <<'INI'
[run-cron]
database = ../var/run-cron.sqlite3
lock_file = ../var/run-cron.lock
jobs = sitejobs
python_path = ..
INI
mkdir -p var
cat >sitejobs.py <<'PY'
import cronjobs


@cronjobs.minutely
def hello(ctx):
    with open("hello.txt", "a") as handle:
        handle.write("ran\n")


@cronjobs.handler("greet")
def greet(ctx, payload):
    with open("greet.txt", "w") as handle:
        handle.write(payload["name"])
PY
run_cron="$work/venv/bin/run-cron"
"$work/venv/bin/python" -c 'import cronjobs, sys; sys.exit(0 if cronjobs.__file__.startswith(sys.prefix) else 1)'
"$run_cron" --version
"$run_cron" enqueue greet '{"name": "wheel"}' >/dev/null
"$run_cron" -v              # first tick: runs hello and greet
[ "$(cat hello.txt)" = "ran" ] && [ "$(cat greet.txt)" = "wheel" ]
"$run_cron"                 # the next tick: exit 0, whether hello is due again or not
"$run_cron" history --job hello --json | "$work/venv/bin/python" -c \
    'import json, sys; assert json.load(sys.stdin)[-1]["outcome"] == "completed"'
line=$("$run_cron" install --print)
[ "$line" = "* * * * * $work/venv/bin/run-cron --config $work/site/config/run-cron.ini >/dev/null # run-cron: $work/site/config/run-cron.ini" ] ||
    { echo "wheel.sh: unexpected crontab line: $line" >&2; exit 1; }
echo "wheel.sh: $(basename "$wheel") and $(basename "$sdist") built, checked, installed and ticked"
