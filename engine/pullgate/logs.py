"""Structured logs: one line per record, JSON (the default) or text.

Records that carry ``extra={"fields": {...}}`` have those fields merged into the JSON object
(the decision log, reload events); others log their message under ``msg``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from queue import Queue
from typing import Any, TextIO

__all__ = ["event", "setup_logging"]

_MARK = "_pullgate_handler"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["msg"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        text = record.getMessage()
        if isinstance(fields, dict):
            text += " " + " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f"{record.levelname.lower()} {record.name}: {text}"


class _Enqueue(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: formatting happens there, not on the
    request path (our records carry their fields in a dict nobody mutates afterwards)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def setup_logging(
    fmt: str = "json",
    stream: TextIO | None = None,
    level: int = logging.INFO,
    *,
    background: bool = False,
) -> logging.handlers.QueueListener | None:
    """Send the ``pullgate`` loggers to ``stream`` (stderr), one line per record.

    With ``background`` (the daemon), records are formatted and written by a thread of their
    own; the returned listener must be stopped at exit, which flushes what is queued.
    """
    root = logging.getLogger("pullgate")
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    listener = None
    handler: logging.Handler = writer
    if background:
        queue: Queue[logging.LogRecord] = Queue()
        handler = _Enqueue(queue)
        listener = logging.handlers.QueueListener(queue, writer)
        listener.start()
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return listener


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log a named event with structured fields."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": {"event": name, **fields}})
