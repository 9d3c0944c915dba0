"""The tables: peewee models bound to a database that is passed in (no module-global database).

Engine-neutral; what differs per engine (indexes, transactions, the hot path's SQL) lives in the
engine's own module beside this one. Timestamps are UTC epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import peewee as pw

#: Bumped by every release that changes the tables; `migrate` brings older files up to date.
SCHEMA_VERSION = 2


@dataclass
class Models:
    """The model classes bound to one database."""

    JobState: Any
    Message: Any
    Attempt: Any
    Warning: Any
    Attachment: Any
    AttachmentChunk: Any

    def all(self) -> list[Any]:
        return [
            self.JobState,
            self.Message,
            self.Attempt,
            self.Warning,
            self.Attachment,
            self.AttachmentChunk,
        ]


def make_models(database: pw.Database) -> Models:
    """Model classes bound to `database` (no module-global database, as in huey's SqlHuey).

    Columns that are indexed are VARCHAR(255) (MariaDB cannot index TEXT) and times are DOUBLE (a
    FLOAT is single precision on the servers); SQLite stores both as before.
    """

    class Base(pw.Model):
        class Meta:
            legacy_table_names = False

    class JobState(Base):
        name = pw.CharField(max_length=255, primary_key=True)
        schedule = pw.TextField()  # schedule and time zone the cached next_due was computed for
        first_seen = pw.DoubleField()
        last_run = pw.DoubleField(null=True)  # start of the most recent finished run
        last_finished = pw.DoubleField(null=True)
        last_outcome = pw.TextField(null=True)
        last_error = pw.TextField(null=True)
        failures = pw.IntegerField(default=0)
        next_due = pw.DoubleField(null=True)  # read by the idle check, which never parses a schedule
        current = pw.TextField(null=True)  # uuid of a run that has not finished (resumed first)

    class Message(Base):
        uuid = pw.CharField(max_length=255, unique=True)
        kind = pw.CharField(max_length=255, default="message")  # "message", or "job": a periodic job's run
        type = pw.CharField(max_length=255)
        payload = pw.TextField(null=True)  # JSON
        status = pw.CharField(max_length=255, default="new")
        priority = pw.IntegerField(default=0)
        run_at = pw.DoubleField()
        key = pw.CharField(max_length=255, null=True)
        owner = pw.CharField(max_length=255, null=True)
        attempts = pw.IntegerField(default=0)  # attempts used up; a continuation uses none
        max_attempts = pw.IntegerField(default=3)
        offset_json = pw.TextField(null=True)
        state_json = pw.TextField(null=True)
        seq = pw.IntegerField(default=0)  # checkpoint counter: did a cut run make progress?
        done = pw.DoubleField(null=True)
        total = pw.DoubleField(null=True)
        progress = pw.DoubleField(default=0)
        error = pw.TextField(null=True)  # the last error, one line
        created_at = pw.DoubleField()
        started_at = pw.DoubleField(null=True)
        finished_at = pw.DoubleField(null=True)
        # The attempt under way (its `attempt` row is written when it ends): when it began and the
        # checkpoint counter then, so recovery can tell a cut run that progressed from one that did not.
        attempt_started_at = pw.DoubleField(null=True)
        attempt_seq = pw.IntegerField(null=True)
        # Server engines: the worker that claimed it, whose database session holds a lock of that name
        # while it lives (see store/server.py). SQLite's single supervisor lock makes it unneeded there.
        runner = pw.CharField(max_length=64, null=True)

    class Attempt(Base):
        message = pw.ForeignKeyField(Message, on_delete="CASCADE", backref="attempt_rows")
        number = pw.IntegerField()
        started_at = pw.DoubleField()
        finished_at = pw.DoubleField(null=True)
        outcome = pw.TextField(null=True)  # completed, failed, timeout, continued, crashed, retry, ...
        error = pw.TextField(null=True)
        traceback = pw.TextField(null=True)
        seq_start = pw.IntegerField(default=0)

    class Warning(Base):
        message = pw.ForeignKeyField(Message, on_delete="CASCADE", backref="warning_rows")
        at = pw.DoubleField()
        text = pw.TextField()

    class Attachment(Base):
        message = pw.ForeignKeyField(Message, on_delete="CASCADE", backref="attachment_rows")
        name = pw.CharField(max_length=255)
        size = pw.IntegerField(default=0)
        created_at = pw.DoubleField()

        class Meta:
            indexes = ((("message", "name"), True),)

    class AttachmentChunk(Base):
        # Large files live here, in chunks, so neither the queue table nor memory grows with them.
        attachment = pw.ForeignKeyField(Attachment, on_delete="CASCADE")
        seq = pw.IntegerField()
        data = pw.BlobField()

    models = Models(JobState, Message, Attempt, Warning, Attachment, AttachmentChunk)
    database.bind(models.all(), bind_refs=False, bind_backrefs=False)
    return models
