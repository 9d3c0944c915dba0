"""The `run-cron` command line: `main` is the console script's entry point (`cronjobs.cli:main`).

Kept to one import: every tick imports this package.
"""

from .main import main

__all__ = ["main"]
