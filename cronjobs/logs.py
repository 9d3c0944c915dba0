"""Logging to a file that several processes (cron ticks, the web trigger, the worker) append to."""

from __future__ import annotations

import logging
import logging.handlers
import os
from typing import Any


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Size-based rotation that tolerates other processes rotating the same file.

    Each process opens the file in append mode, so whole lines from several writers interleave but
    never overwrite each other. Before writing it checks whether the path still names the file it has
    open; if another process rotated it, it reopens instead of writing into the rotated file.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream is not None:
                try:
                    same = os.path.samestat(os.stat(self.baseFilename), os.fstat(self.stream.fileno()))
                except OSError:
                    same = False
                if not same:
                    self.stream.close()
                    self.stream = self._open()
        except Exception:
            self.handleError(record)
            return
        super().emit(record)


def add_file_handler(logger: logging.Logger, config: Any) -> None:
    handler = SharedRotatingFileHandler(
        config.log.file, maxBytes=config.log.max_bytes, backupCount=config.log.backups, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(getattr(logging, config.log.level))
    logger.addHandler(handler)
    logger.setLevel(min(logger.level or logging.WARNING, handler.level))
