"""`[run-cron] env_file`: KEY=VALUE lines put into os.environ before the jobs modules are imported.

Cron starts run-cron with a bare environment (no `.env`, a short PATH, $HOME as working directory);
a jobs module that reads its settings from the environment works under cron with this file. Variables
already set win, so an interactive shell or the web server can still override them.
"""

from __future__ import annotations

import os

from ..errors import ConfigError


def parse(text: str) -> dict[str, str]:
    """`KEY=VALUE` per line; `export ` prefixes, blank lines, `#` comments and matching quotes allowed."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise ValueError(f"line {number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def load(path: str, config_path: str) -> None:
    """Set the variables of `path` that the environment does not set yet; ConfigError if unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            values = parse(handle.read())
    except OSError as exc:
        raise ConfigError(config_path, "[run-cron] env_file", f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(config_path, "[run-cron] env_file", f"{path}: {exc}") from None
    for key, value in values.items():
        os.environ.setdefault(key, value)
