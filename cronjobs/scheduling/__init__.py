"""When periodic jobs are due: pure functions of (schedule, last run, now, timezone), cron expressions,
the decorators' options, catch-up policies and their slot ledger, clock skew. No I/O but the ledger's rows."""
