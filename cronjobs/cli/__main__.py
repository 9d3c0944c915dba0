"""`python -m cronjobs.cli` is `run-cron`."""

from .main import main

main()
