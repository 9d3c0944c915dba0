"""Every benchmark beside its reference, in one run, printed as one markdown table.

    .venv/bin/pip install -e .[bench]          # huey, the reference queue
    .venv/bin/python bench/run.py [--quick] [--rounds N] [--only idle,tick,drain,scripts,overshoot,latency]

Measured from outside, on the installed code, interleaving each figure with its reference and taking
medians (the machine may be busy with other work):

1. idle tick: `run-cron` with nothing due versus `python -c "import click, filelock, sqlite3"`.
2. whole tick: one `run-cron` process draining 20,000 no-op messages, process start to exit minus an
   idle tick of the same project, versus huey's SqliteHuey dequeue/execute loop in-process, at the same
   `synchronous` level (NORMAL, the default; FULL).
3. queue drain in-process (`Worker.drain_queue`) versus the same huey loop (FULL and NORMAL).
4. claim + complete with 1M queued versus 1k queued (bench/claim_scaling.py).
5. `ctx.checkpoint` cost (bench/checkpoint_cost.py) and tick memory (bench/tick_memory.py).
6. hard-limit overshoot: a handler in an endless loop that ignores SIGTERM, `--time-limit 2`; how long
   past the limit until the worker is dead and the tick has exited.
7. enqueue latency (p50/p99) of a separate "web" process calling `queue.enqueue` in a loop while a tick
   drains 20,000 messages at full speed, versus the same process on a quiet queue.

Exit status 1 if any figure misses its target.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

from _common import PYTHON, ROOT, RUN_CRON, fill_queue, make_setup, median

HERE = os.path.dirname(os.path.abspath(__file__))
FLOOR = [PYTHON, "-c", "import click, filelock, sqlite3"]

Row = tuple[str, str, str, str, str]  # benchmark, target, ours, reference, result
rows: list[Row] = []


def add(name: str, target: str, ours: str, reference: str, ok: bool | None) -> None:
    verdict = "info" if ok is None else ("PASS" if ok else "FAIL")
    rows.append((name, target, ours, reference, verdict))
    print(f"  -> {name}: {ours} vs {reference}: {verdict}", flush=True)


def bytecode_env(directory: str) -> dict[str, str]:
    """As deployed: modules load from cached bytecode (see bench/README.md, idle tick)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(directory, "pycache")
    return env


def timed(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - began


# -- 1. idle tick ------------------------------------------------------------------------------------


def idle_tick(directory: str, runs: int) -> None:
    print(f"idle tick: {runs} interleaved runs", flush=True)
    env = bytecode_env(directory)
    config = make_setup(directory)
    tick = [RUN_CRON, "--config", config]
    subprocess.run(tick, env=env, capture_output=True)  # the periodic jobs run once; then it is idle
    for _ in range(3):
        timed(FLOOR, env), timed(tick, env)
    floors, ticks = [], []
    for index in range(runs):
        pair = [(floors, FLOOR), (ticks, tick)]
        for times, command in pair[::-1] if index % 2 else pair:
            times.append(timed(command, env))
    floor, ours = median(floors), median(ticks)
    add("idle tick", "<= 1.15x floor", f"{ours * 1e3:.1f} ms ({ours / floor:.3f}x)",
        f"{floor * 1e3:.1f} ms `python -c \"import click, filelock, sqlite3\"`", ours / floor <= 1.15)


# -- 2./3. queue throughput ----------------------------------------------------------------------------


def tick_project(directory: str, name: str, level: str, count: int) -> str:
    project = os.path.join(directory, name)
    os.mkdir(project)
    with open(os.path.join(project, "bench_jobs.py"), "w") as handle:
        handle.write("import cronjobs\n\n@cronjobs.handler('bench.noop')\ndef noop(ctx, payload):\n    pass\n")
    config = os.path.join(project, "run-cron.ini")
    with open(config, "w") as handle:
        handle.write(f"[run-cron]\ndatabase = db.sqlite3\nlock_file = run-cron.lock\njobs = bench_jobs\n"
                     f"python_path = .\ntime_limit = 0\nsynchronous = {level}\n")
    refill(project, count)
    return config


def refill(project: str, count: int) -> None:
    from cronjobs.store import connect_store

    database, _ = connect_store(os.path.join(project, "db.sqlite3"))  # creates the schema
    database.close()
    connection = sqlite3.connect(os.path.join(project, "db.sqlite3"), isolation_level=None)
    try:
        fill_queue(connection, count)
    finally:
        connection.close()


def completed(project: str) -> int:
    connection = sqlite3.connect(os.path.join(project, "db.sqlite3"))
    try:
        return connection.execute(
            "SELECT COUNT(*) FROM message WHERE kind = 'message' AND status = 'completed'").fetchone()[0]
    finally:
        connection.close()


def whole_tick(directory: str, count: int, rounds: int) -> None:
    from queue_throughput import theirs

    for level in ("NORMAL", "FULL"):
        print(f"whole tick, synchronous={level}: {count} messages, {rounds} rounds", flush=True)
        env = bytecode_env(directory)
        config = tick_project(directory, f"tick-{level}", level, 0)
        project = os.path.dirname(config)
        subprocess.run([RUN_CRON, "--config", config, "--force", "all"], check=True, env=env)
        ours, huey = [], []
        for _ in range(rounds):
            refill(project, count)
            before = completed(project)
            drain = timed([RUN_CRON, "--config", config], env)
            assert completed(project) - before == count
            idle = median([timed([RUN_CRON, "--config", config], env) for _ in range(5)])
            ours.append(count / (drain - idle))
            seconds, done = theirs(directory, count, level)
            huey.append(done / seconds)
        rate, reference = median(ours), median(huey)
        add(f"whole tick, 20k no-op messages, {level}", ">= 2x huey", f"{rate:,.0f} msg/s ({rate / reference:.2f}x)",
            f"{reference:,.0f} msg/s huey", rate / reference >= 2.0)


def in_process(directory: str, count: int, rounds: int) -> None:
    from queue_throughput import ours, theirs

    for level in ("NORMAL", "FULL"):
        print(f"in-process drain, synchronous={level}: {count} messages, {rounds} rounds", flush=True)
        mine, huey = [], []
        for _ in range(rounds):
            seconds, done = ours(directory, count, level)
            mine.append(done / seconds)
            seconds, done = theirs(directory, count, level)
            huey.append(done / seconds)
        rate, reference = median(mine), median(huey)
        add(f"drain_queue in-process, {level}", ">= 2x huey", f"{rate:,.0f} msg/s ({rate / reference:.2f}x)",
            f"{reference:,.0f} msg/s huey", rate / reference >= 2.0)


# -- 4./5. the single-figure scripts ------------------------------------------------------------------


def script(name: str, *args: str) -> str:
    print(f"{name} {' '.join(args)}", flush=True)
    result = subprocess.run([PYTHON, os.path.join(HERE, name), *args], capture_output=True, text=True, cwd=HERE)
    return result.stdout


def single_figures(quick: bool) -> None:
    out = script("claim_scaling.py", *(["200"] if quick else []))
    found = re.findall(r"with\s+([\d,]+) queued: median\s+([\d.]+) us", out)
    ratio = re.search(r"ratio ([\d.]+)", out)
    if len(found) >= 2 and ratio:
        add("claim + complete, 1M queued", "<= 1.5x 1k queued", f"{found[-1][1]} us ({ratio.group(1)}x)",
            f"{found[0][1]} us with {found[0][0]}", float(ratio.group(1)) <= 1.5)
    else:
        add("claim + complete, 1M queued", "<= 1.5x 1k queued", "error", out[-200:], False)
    out = script("checkpoint_cost.py")
    figure = re.search(r"median ([\d.]+) ms, p99 ([\d.]+) ms", out) or re.search(r"median ([\d.]+) ms", out)
    if figure:
        add("ctx.checkpoint (WAL, NORMAL)", "< 0.2 ms", f"{figure.group(1)} ms median", "0.2 ms target",
            float(figure.group(1)) < 0.2)
    out = script("tick_memory.py", *(["2000"] if quick else []))
    figure = re.search(r"peak RSS[^:]*: ([\d.]+) MB", out)
    if figure:
        add("peak RSS, tick of 10k messages" if not quick else "peak RSS, tick of 2k messages", "< 60 MB",
            f"{figure.group(1)} MB", "60 MB target", float(figure.group(1)) < 60)


# -- 6. hard-limit overshoot ---------------------------------------------------------------------------

STUBBORN = """
import signal
import cronjobs

@cronjobs.handler("bench.stubborn")
def stubborn(ctx, payload):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        pass
"""


def overshoot(directory: str, runs: int, limit: float = 2.0) -> None:
    print(f"hard-limit overshoot: {runs} ticks with --time-limit {limit:g}", flush=True)
    project = os.path.join(directory, "stubborn")
    os.mkdir(project)
    with open(os.path.join(project, "bench_jobs.py"), "w") as handle:
        handle.write(STUBBORN)
    config = os.path.join(project, "run-cron.ini")
    with open(config, "w") as handle:
        handle.write("[run-cron]\ndatabase = db.sqlite3\nlock_file = run-cron.lock\njobs = bench_jobs\n"
                     "python_path = .\n")
    env = bytecode_env(directory)
    from cronjobs.runtime.idle import read_tick

    floors, overshoots, inside = [], [], []
    for _ in range(runs):
        subprocess.run([RUN_CRON, "--config", config, "enqueue", "bench.stubborn", "--max-attempts", "100"],
                       check=True, env=env, capture_output=True)
        floors.append(timed(FLOOR, env))
        began = time.perf_counter()
        tick = subprocess.Popen([RUN_CRON, "--config", config, "--time-limit", f"{limit:g}"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tick.wait()
        overshoots.append(time.perf_counter() - began - limit - floors[-1])
        inside.append(float(read_tick(os.path.join(project, "db.sqlite3"))["tick.duration"]) - limit)
    value, floor = median(overshoots), median(floors)
    add("hard-limit overshoot (endless loop, SIGTERM ignored)", "< 0.5 s past the limit",
        f"{value * 1e3:.0f} ms past start-up + limit (max {max(overshoots) * 1e3:.0f}); "
        f"tick's own duration {median(inside) * 1e3:.0f} ms past the limit",
        f"{limit:g} s limit, {floor * 1e3:.0f} ms interpreter start (subtracted)", value < 0.5)


# -- 7. enqueue latency under a draining tick ------------------------------------------------------------

ENQUEUER = """
import json, sys, time
sys.path[:0] = [{root!r}]
import cronjobs
queue = cronjobs.connect(database={database!r})
stop_file, count = {stop!r}, {count}
latencies = []
import os
while len(latencies) < count and not os.path.exists(stop_file):
    began = time.perf_counter()
    queue.enqueue("bench.other", {{"n": len(latencies)}}, delay=86400)  # a real insert the tick leaves alone
    latencies.append(time.perf_counter() - began)
    time.sleep(0.001)
print(json.dumps(latencies))
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def enqueuer(project: str, count: int) -> subprocess.Popen:
    code = ENQUEUER.format(root=ROOT, database=os.path.join(project, "db.sqlite3"),
                           stop=os.path.join(project, "stop"), count=count)
    return subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE, text=True)


def enqueue_latency(directory: str, count: int) -> None:
    print(f"enqueue latency: a web process enqueuing while a tick drains {count} messages", flush=True)
    env = bytecode_env(directory)
    config = tick_project(directory, "latency", "NORMAL", 0)
    project = os.path.dirname(config)
    subprocess.run([RUN_CRON, "--config", config, "--force", "all"], check=True, env=env)
    quiet = json.loads(enqueuer(project, 500).communicate()[0])
    refill(project, count)
    busy: list[float] = []
    tick = subprocess.Popen([RUN_CRON, "--config", config], env=env)
    while completed(project) == 0 and tick.poll() is None:
        time.sleep(0.005)
    web = enqueuer(project, 100_000)
    tick.wait()
    open(os.path.join(project, "stop"), "w").close()
    busy = json.loads(web.communicate()[0])
    p50, p99 = percentile(busy, 0.5), percentile(busy, 0.99)
    q50, q99 = percentile(quiet, 0.5), percentile(quiet, 0.99)
    add("enqueue latency while a tick drains", "p99 < 100 ms",
        f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms ({len(busy)} enqueues)",
        f"quiet queue: p50 {q50 * 1e3:.2f} ms, p99 {q99 * 1e3:.2f} ms", p99 < 0.1)


def machine() -> str:
    cores = os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cores} cores ({model or platform.machine()}), Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, load average {load:.1f} at the start")


def main() -> int:
    quick = "--quick" in sys.argv
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else (1 if quick else 3)
    count = 2000 if quick else 20_000
    print(machine(), flush=True)
    header = machine()
    steps: dict[str, Callable[[str], Any]] = {
        "idle": lambda d: idle_tick(d, 10 if quick else 60),
        "tick": lambda d: whole_tick(d, count, rounds),
        "drain": lambda d: in_process(d, count, rounds),
        "scripts": lambda d: single_figures(quick),
        "overshoot": lambda d: overshoot(d, 2 if quick else 5),
        "latency": lambda d: enqueue_latency(d, count),
    }
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else list(steps)
    for name in only:
        with tempfile.TemporaryDirectory(prefix="bench-run-") as directory:
            steps[name](directory)
    print(f"\n{header}\n")
    print("| benchmark | target | run-cron | reference | result |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0 if all(row[4] != "FAIL" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
