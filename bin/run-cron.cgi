#!/bin/sh
# run-cron's HTTP trigger, health check and status page as a CGI script (RFC 3875), for hosts that
# offer CGI but no WSGI. Symlink or copy it into your cgi-bin and call .../run-cron.cgi/run?token=...
#
# It finds the project from its own (symlink-resolved) location, or from $RUN_CRON_HOME if you copied
# it; it prefers the project's .venv/ interpreter. The configuration is $RUN_CRON_CONFIG (set it with
# SetEnv or setenv.add-environment), else the project's config/run-cron.ini.
self=$(readlink -f "$0" 2>/dev/null || echo "$0")
here=${RUN_CRON_HOME:-$(cd "$(dirname "$self")/.." && pwd)}
python=python3
if [ -x "$here/.venv/bin/python" ]; then
    python="$here/.venv/bin/python"
fi
RUN_CRON_CONFIG=${RUN_CRON_CONFIG:-$here/config/run-cron.ini}
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export RUN_CRON_CONFIG PYTHONPATH
exec "$python" -c 'from cronjobs.web import run_cgi; run_cgi()'
