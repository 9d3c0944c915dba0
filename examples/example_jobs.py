"""Example jobs module, named by `jobs = example_jobs` in config/run-cron.ini.

Keep job modules light at import time: they are imported on every tick, including idle ones.
Import heavy libraries inside the job functions.
"""

import time

import cronjobs


@cronjobs.daily
def purge_sessions(ctx):
    """Runs once per day, in the first tick after midnight (in the configured time zone)."""
    ctx.log.info("purging expired sessions")


@cronjobs.hourly
def refresh_cache(ctx):
    ctx.log.info("refreshing cache")


@cronjobs.cron("*/15 8-18 * * 1-5", name="poll-feeds")
def poll(ctx):
    ctx.log.info("polling feeds")


@cronjobs.handler("example.count")
def count(ctx, payload):
    """A resumable handler: it continues from its last checkpoint on the next tick.

    Each checkpoint is committed at once. Past the soft deadline the checkpoint, after committing,
    stops the handler, and the next tick continues from that offset: no `should_stop()` test needed.
    """
    total = int(payload.get("to", 100))
    for i in range(ctx.offset or 0, total):
        time.sleep(0.01)  # stands in for the real work on item i: a row, an e-mail, a file
        ctx.checkpoint(offset=i + 1, state={"sum": ctx.state.get("sum", 0) + i}, done=i + 1, total=total)
