"""The crontab line that runs this installation's ticks, and installing or removing exactly that line.

The line names the launcher by absolute path (cron's PATH is minimal, and a version manager's shim costs
a start-up per minute) and the configuration by absolute path. Standard output goes to /dev/null and
standard error stays, so cron mails only when a tick reports a failure. The line carries a comment
naming the configuration, which is how it is found again: the user's other lines are never touched.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import dataclass
from typing import Optional

from ..errors import CronjobsError

#: Minute steps that divide the hour evenly (cron's */7 would fire at :56 and again at :00).
EVERY_CHOICES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)
COMMENT_PREFIX = "run-cron:"


class CrontabError(CronjobsError):
    """The crontab could not be read or written."""

    def __init__(self, where: str, cause: object) -> None:
        super().__init__(f"crontab {where}: {cause}")


@dataclass
class Entry:
    """The schedule, command and identifying comment of this installation's crontab line."""

    schedule: str
    command: str
    comment: str

    @property
    def line(self) -> str:
        return f"{self.schedule} {self.command} # {self.comment}"


@dataclass
class Change:
    """What `install` or `remove` did: "installed", "updated", "unchanged", "removed" or "absent"."""

    action: str
    entry: Entry
    target: str


def launcher(executable: Optional[str] = None) -> list[str]:
    """This installation's own launcher as an absolute command.

    The `run-cron` console script next to the interpreter (a virtualenv's bin/), else the interpreter
    itself with `-m cronjobs`. Symlinks are not resolved: a virtualenv's python is a symlink, and
    resolving it would escape the virtualenv.
    """
    python = os.path.abspath(executable or sys.executable)
    script = os.path.join(os.path.dirname(python), "run-cron")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [python, "-m", "cronjobs"]


def schedule_for(every: int) -> str:
    if every not in EVERY_CHOICES:
        raise CronjobsError(
            f"--every {every}: expected one of {', '.join(map(str, EVERY_CHOICES))} (minutes that divide the hour)"
        )
    if every == 1:
        return "* * * * *"
    if every == 60:
        return "0 * * * *"
    return f"*/{every} * * * *"


def build_entry(config_path: str, every: int = 1, command: Optional[list[str]] = None) -> Entry:
    """The line for the configuration at `config_path` (made absolute), run every `every` minutes."""
    config_path = os.path.abspath(config_path)
    return command_entry([*(command or launcher()), "--config", config_path], config_path, every)


def command_entry(words: list[str], identity: str, every: int = 1) -> Entry:
    """The line that runs `words` every `every` minutes, found again by `identity` (a path) in its comment."""
    text = " ".join(shlex.quote(word) for word in words) + " >/dev/null"
    # cron turns an unescaped % into a newline, even inside quotes
    return Entry(schedule_for(every), text.replace("%", "\\%"), f"{COMMENT_PREFIX} {identity}".replace("%", "\\%"))


def _open(tab_file: Optional[str]):  # -> crontab.CronTab
    from crontab import CronTab

    try:
        if tab_file is None:
            return CronTab(user=True)
        if not os.path.exists(tab_file):
            return CronTab(tab="")
        return CronTab(tabfile=tab_file)
    except (OSError, UnicodeDecodeError) as exc:
        raise CrontabError("read" if tab_file is None else tab_file, exc) from None


def _write(tab, tab_file: Optional[str]) -> None:
    try:
        if tab_file is None:
            tab.write_to_user(user=True)
            return
        temporary = f"{tab_file}.tmp{os.getpid()}"
        try:
            mode = stat.S_IMODE(os.stat(tab_file).st_mode)  # a crontab file keeps its mode
        except FileNotFoundError:
            mode = 0o600  # as crontab(1) leaves the files it writes
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, mode)
        with open(fd, "w", encoding="utf-8") as handle:
            handle.write(tab.render())
        os.replace(temporary, tab_file)
    except OSError as exc:
        raise CrontabError("write" if tab_file is None else tab_file, exc) from None


def _ours(tab, entry: Entry) -> list:  # -> list[crontab.CronItem]
    return [job for job in tab if job.comment == entry.comment or job.command == entry.command]


def install(entry: Entry, tab_file: Optional[str] = None) -> Change:
    """Make the crontab hold exactly one copy of `entry`; every other line stays as it was."""
    tab = _open(tab_file)
    target = tab_file or "the user's crontab"
    ours = _ours(tab, entry)
    if len(ours) == 1 and ours[0].render() == entry.line:
        return Change("unchanged", entry, target)
    for job in ours:
        tab.remove(job)
    job = tab.new(command=entry.command, comment=entry.comment)
    job.setall(entry.schedule)
    _write(tab, tab_file)
    return Change("updated" if ours else "installed", entry, target)


def remove(entry: Entry, tab_file: Optional[str] = None) -> Change:
    """Take this installation's line out of the crontab, if it is there."""
    tab = _open(tab_file)
    target = tab_file or "the user's crontab"
    ours = _ours(tab, entry)
    if not ours:
        return Change("absent", entry, target)
    for job in ours:
        tab.remove(job)
    _write(tab, tab_file)
    return Change("removed", entry, target)
