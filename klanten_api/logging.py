"""Structured JSON logging: one JSON object per line, identifiers only (never personal data)."""
from __future__ import annotations

import datetime as dt
import json
import logging
import sys

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName",
                                                                         "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
        data = {"time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "level": record.levelname,
                "logger": record.name, "message": record.getMessage()}
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            # tracebacks can hold request data in exception messages: class name only
            data["exception_class"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(data, default=str, ensure_ascii=False)


# Libraries that would write request data (URLs with BSNs, validation messages quoting values) below these
# levels; their records are not even created.
QUIET_LIBRARIES = {"urllib3": logging.WARNING, "requests": logging.WARNING, "connexion": logging.ERROR,
                   "werkzeug": logging.WARNING, "httpx": logging.WARNING, "httpcore": logging.WARNING,
                   "sqlalchemy": logging.WARNING, "alembic": logging.WARNING}


def harden_library_loggers() -> None:
    for name, level in QUIET_LIBRARIES.items():
        logger = logging.getLogger(name)
        if logger.level < level:
            logger.setLevel(level)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)        # Python warnings become JSON log lines too
    # uvicorn's access log prints the full request line (query strings carry BSNs): ours replaces it
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("uvicorn.error").handlers[:] = []
    logging.getLogger("uvicorn.error").propagate = True
    harden_library_loggers()
