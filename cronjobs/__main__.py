"""`python -m cronjobs` is `run-cron`."""

from .cli import main

main()
