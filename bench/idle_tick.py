"""Target 1: an idle `run-cron` tick costs at most 1.15x `python -c "import click, filelock, sqlite3"`.

Runs the venv's own console script against a temporary configuration whose jobs module declares
interval jobs and a cron job, runs one tick so nothing is due, then times idle ticks interleaved with
the floor command (medians). Every timed tick is checked to have been idle (`tick.outcome` in the tick file).
Also asserts with `python -X importtime` that the idle path imports no peewee, crontab or croniter,
and lists what it imports beyond the floor.

    .venv/bin/python bench/idle_tick.py [RUNS] [--no-bytecode]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from _common import PYTHON, RUN_CRON, make_setup, median, verdict

from cronjobs.runtime.idle import read_tick

TARGET = 1.15
FORBIDDEN = ("peewee", "crontab", "croniter")
FLOOR = [PYTHON, "-c", "import click, filelock, sqlite3"]


ENV = dict(os.environ)


def timed(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - began


def imported(command: list[str]) -> dict[str, tuple[int, int]]:
    """Module -> (self us, cumulative us) from `python -X importtime`."""
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=ENV)
    modules = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|")
        modules[name.strip()] = (int(own), int(cumulative))
    return modules


def last_outcome(database: str) -> str:
    return read_tick(database).get("tick.outcome", "?")


def main() -> int:
    numbers = [arg for arg in sys.argv[1:] if arg.isdigit()]
    runs = int(numbers[0]) if numbers else 60
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as directory:
        config = make_setup(directory)
        if "--no-bytecode" not in sys.argv:
            # As deployed, modules load from cached bytecode: pip compiles what it installs, and
            # Python writes __pycache__ on first import. This environment sets PYTHONDONTWRITEBYTECODE,
            # which would recompile cronjobs (but not click or filelock) on every tick, so both commands
            # get a bytecode cache under the temporary directory instead (warmed up below).
            ENV.pop("PYTHONDONTWRITEBYTECODE", None)
            ENV["PYTHONPYCACHEPREFIX"] = os.path.join(directory, "pycache")
        print(f"bytecode cache: {ENV.get('PYTHONPYCACHEPREFIX', 'none (PYTHONDONTWRITEBYTECODE)')}")
        database = os.path.join(directory, "run-cron.sqlite3")
        tick = [RUN_CRON, "--config", config]
        first = subprocess.run([*tick, "-v"], capture_output=True, text=True, env=ENV)
        print(f"first tick (runs the jobs): exit {first.returncode}")
        check = subprocess.run([*tick, "-v"], capture_output=True, text=True, env=ENV)
        idle = "nothing due" in check.stderr
        print(f"second tick says: {check.stderr.strip()!r} -> idle: {idle}")
        if not idle:
            print("FAIL: the tick is not idle after the first one")
            return 1

        # Imports of the idle path versus the floor.
        tick_modules = imported([PYTHON, "-X", "importtime", *tick])
        floor_modules = imported([PYTHON, "-X", "importtime", "-c", "import click, filelock, sqlite3"])
        bad = sorted(name for name in tick_modules if name.split(".")[0] in FORBIDDEN)
        extra = {name: times for name, times in tick_modules.items() if name not in floor_modules}
        print(f"\nidle path imports {len(tick_modules)} modules, the floor {len(floor_modules)}; "
              f"{len(extra)} beyond the floor (self us, sum {sum(t[0] for t in extra.values())} us):")
        for name, (own, cumulative) in sorted(extra.items(), key=lambda item: -item[1][0]):
            print(f"  {own:6d} us  (cumulative {cumulative:6d})  {name}")
        print(f"forbidden modules imported (peewee, crontab, croniter): {bad or 'none'} -> {verdict(not bad)}")

        # Warm up both, then interleave.
        for _ in range(3):
            timed(FLOOR)
            timed(tick)
        floor_times, tick_times, not_idle = [], [], 0
        for index in range(runs):
            pair = [("floor", FLOOR), ("tick", tick)]
            if index % 2:
                pair.reverse()  # alternate which goes first
            for name, command in pair:
                seconds = timed(command)
                if name == "tick":
                    tick_times.append(seconds)
                    not_idle += last_outcome(database) != "idle"
                else:
                    floor_times.append(seconds)
        floor, idle_tick = median(floor_times), median(tick_times)
        ratio = idle_tick / floor
        print(f"\n{runs} interleaved runs each (medians):")
        print(f"  floor  python -c 'import click, filelock, sqlite3': {floor * 1000:7.1f} ms "
              f"(min {min(floor_times) * 1000:.1f})")
        print(f"  idle   run-cron --config <tmp>:                     {idle_tick * 1000:7.1f} ms "
              f"(min {min(tick_times) * 1000:.1f})")
        print(f"  ticks that were not idle: {not_idle}")
        ok = ratio <= TARGET and not bad and not_idle == 0
        print(f"ratio {ratio:.3f} (target <= {TARGET}) -> {verdict(ok)}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
