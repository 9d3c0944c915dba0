"""One tick and what runs inside it: the lock, the idle check, the supervisor and its forked worker, the
scheduler's choice, runs and their `ctx`, signals, the event log, retention, and the long-running service."""
