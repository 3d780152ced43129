"""Structured logging for every quern process: JSON lines in production, readable lines on a TTY.

``configure_logging`` runs once per process before anything logs. Stdlib loggers (dramatiq,
pika, uvicorn) are routed through the same processors. Context is bound in two places only:
the gateway's request middleware (``request_id``) and ``MessageContext`` below (``message_id``,
``actor``) for Dramatiq workers.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from dramatiq.middleware import Middleware

from shared.settings import Settings


def configure_logging(settings: Settings) -> None:
    """Set up structlog and the stdlib root logger from the settings."""
    json_output = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor
    if json_output:
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer()

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # pika narrates every frame at INFO; its warnings still come through.
    logging.getLogger("pika").setLevel(max(logging.WARNING, root.level))


class MessageContext(Middleware):
    """Bind ``message_id`` and ``actor`` to the log context while a message is processed."""

    def before_process_message(self, broker: Any, message: Any) -> None:
        structlog.contextvars.bind_contextvars(message_id=message.message_id, actor=message.actor_name)

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        structlog.contextvars.unbind_contextvars("message_id", "actor")

    after_skip_message = after_process_message
