"""Read-only answers about the store: status and metrics, history, `show`/`list` views, `why`, `doctor`."""
