#!/bin/sh
# run-cron's HTTP trigger, health check and status page as a CGI script (RFC 3875), for hosts that
# offer CGI but no WSGI. Symlink or copy it into your cgi-bin and call .../run-cron.cgi/run?token=...
#
# It finds the project from its own (symlink-resolved) location, or from $RUN_CRON_HOME if you copied
# it; it prefers the project's .venv/ interpreter, and says so (a response header and the log) when it
# must fall back to the system python3 because the web server's user cannot run that one. The configuration is $RUN_CRON_CONFIG (set it with
# SetEnv or setenv.add-environment), else the project's config/run-cron.ini.
self=$(readlink -f "$0" 2>/dev/null || echo "$0")
here=${RUN_CRON_HOME:-$(cd "$(dirname "$self")/.." && pwd)}
python=python3
venv_python="$here/.venv/bin/python"
if [ -x "$venv_python" ]; then
    python="$venv_python"
elif [ -e "$venv_python" ] || [ -L "$venv_python" ]; then
    # The project has an interpreter this user (the web server's) may not run: say so rather than
    # silently using another Python, which may lack the project's packages.
    RUN_CRON_CGI_FALLBACK="$venv_python is not executable by user $(id -un 2>/dev/null || id -u); using $(command -v python3 || echo python3)"
    export RUN_CRON_CGI_FALLBACK
fi
RUN_CRON_CONFIG=${RUN_CRON_CONFIG:-$here/config/run-cron.ini}
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export RUN_CRON_CONFIG PYTHONPATH
exec "$python" -c 'from cronjobs.web import run_cgi; run_cgi()'
