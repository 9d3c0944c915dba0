#!/usr/bin/env bash
# cronjobs.contrib.django against Django 6, which needs Python >= 3.12 (the main suite may run on an
# older one, where tests/contrib/test_django.py skips). A virtualenv under .ci/venvs/ (kept between
# runs, gitignored) with the project and its django extra; fails if the Django tests skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=""
for candidate in python3.13 python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[3-9]*/bin/python3 \
                 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        python=$(command -v "$candidate")
        break
    fi
done
if [ -z "$python" ]; then
    echo "django.sh: no Python >= 3.12 found (python3.12, python3.13 or pyenv): Django 6 needs one" >&2
    exit 1
fi
venv=.ci/venvs/django
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
# An editable install: only a change of the dependencies needs another pip run (~25 s).
stamp=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$stamp" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check -e ".[django,test]"
    echo "$stamp" >"$venv/.installed"
fi
report=$(mktemp)
trap 'rm -f "$report"' EXIT
"$venv/bin/python" -m pytest -q -rs -p no:cacheprovider --junitxml="$report" tests/contrib
"$venv/bin/python" - "$report" <<'PY'
import sys
import xml.etree.ElementTree as ET

suites = ET.parse(sys.argv[1]).getroot()
suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
if not tests or skipped:
    sys.exit(f"django.sh: {skipped} of {tests} tests skipped; with Django 6 installed none may skip")
print(f"django.sh: {tests} tests ran, none skipped")
PY
