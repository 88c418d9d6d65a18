"""A client's mistake is a line in the log, never a traceback.

uvicorn's WebSocket protocol (websockets-sansio) answers a text frame that is not UTF-8 as RFC
6455 asks, closing with 1007, but logs it with `logger.exception`: an ERROR and a traceback for
what is the client's fault, which buries the gateway's real failures and alarms whoever watches
the log. This filter, on uvicorn's error logger, keeps the line and drops the traceback.
"""

from __future__ import annotations

import logging

# What uvicorn logs, word for word, for faults that are the client's.
CLIENT_FAULTS = {
    "Invalid UTF-8 sequence received from client.": (
        "A WebSocket client sent a text frame that is not UTF-8; closed with 1007."
    ),
}


class ClientFaultsWithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        said = CLIENT_FAULTS.get(record.getMessage())
        if said is not None:
            record.msg, record.args = said, ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install(logger_name: str = "uvicorn.error") -> None:
    """Add the filter once (logging.config keeps a logger's filters when it reconfigures it)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, ClientFaultsWithoutTraceback) for f in logger.filters):
        logger.addFilter(ClientFaultsWithoutTraceback())
