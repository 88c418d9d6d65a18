"""The access log never writes down a query string's values.

uvicorn logs each request's path with its query string (`"GET /v1/chat?ticket=tkt_..."`).
A key sent in the URL is refused (auth_guard.py), but the log line is written all the same;
so its values are replaced by `...`, keeping the parameter names for debugging. The filter
sits on uvicorn's access logger and on the logger of its WebSocket handshake lines.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(path: str) -> str:
    """`path` with every query value replaced: `/v1/ask?api_key=...`."""
    base, mark, query = path.partition("?")
    if not mark:
        return path
    names = [name for name, _ in parse_qsl(query, keep_blank_values=True)] or ["..."]
    return base + "?" + "&".join(f"{name[:64]}=..." for name in names)


class RedactQueryValues(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "?" in a for a in args):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        return True


def install() -> None:
    """Put the filter on uvicorn's loggers, once per process (logging is process-wide)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryValues) for f in logger.filters):
            logger.addFilter(RedactQueryValues())
