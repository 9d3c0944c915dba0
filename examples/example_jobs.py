"""Example jobs module, named by `jobs = example_jobs` in config/run-cron.ini.

Keep job modules light at import time: they are imported on every tick, including idle ones.
Import heavy libraries inside the job functions.
"""

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
    """A resumable handler: it continues from its last checkpoint after a kill."""
    total = int(payload.get("to", 100))
    for i in range(ctx.offset or 0, total):
        if ctx.should_stop():
            return  # the next tick continues from the checkpoint
        ctx.checkpoint(offset=i + 1, done=i + 1, total=total)
