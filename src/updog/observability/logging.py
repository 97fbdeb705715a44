"""Structured logging: one JSON object per line on stderr, every line carrying ``request_id``.

The request id lives in a :class:`contextvars.ContextVar` (set by
:class:`updog.observability.request_id.RequestIdMiddleware`), so it follows the request
across ``await`` points and into ``run_in_threadpool`` workers (which copy the context).
Records from the standard library (uvicorn, alembic, psycopg) go through the same
renderer, so the stream is uniformly JSON lines.

A line looks like::

    {"event": "request", "level": "info", "logger": "updog.access", "timestamp":
     "2025-01-01T12:00:00.000000Z", "request_id": "4f9c...", "method": "GET", ...}
"""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

#: The current request's id; ``None`` outside a request (start-up, background work).
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "updog_request_id", default=None
)


def _add_request_id(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Put the current request id on every line (``null`` outside a request)."""
    event_dict.setdefault("request_id", request_id_var.get())
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str | int = "INFO", stream: TextIO | None = None) -> None:
    """Route structlog and the standard library's logging to JSON lines on ``stream``.

    ``stream`` defaults to ``sys.stderr`` (looked up at call time, so a test's capture
    works). Idempotent: calling it again replaces the handler instead of adding one.
    """
    out = stream if stream is not None else sys.stderr
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        numeric = logging.INFO

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.set_name("updog-json")

    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "updog-json":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric)
    # uvicorn installs its own handlers when it configures logging; make its records
    # propagate to ours instead (its access log is replaced by ``updog.access``).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = True

    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, **initial: Any) -> Any:
    """A structlog logger named ``name`` (bound with ``initial`` key/values)."""
    return structlog.get_logger(name, **initial)
