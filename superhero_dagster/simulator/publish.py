"""The original's log-to-pub/sub publisher: a ``logging.Handler`` that PUBLISHes records.

A record that carries a ``queue`` attribute (``logger.info(msg, extra={"queue": ..., "task": ...})``)
is published on the channel named by ``queue``; other records are ignored. Payload (SYSTEM.md)::

    {"level": "INFO", "timestamp": "2023-07-25T10:00:03.123456", "name": "redis.<queue>",
     "log_message": "<msg>", "task": <task>}

Wire formats: ``original`` JSON-encodes that object **twice** (the channel carries a JSON string
whose content is the object), as the original publisher did; ``plain`` encodes it once.

Why the publish target is a callable: the driver collects the PUBLISH commands of a whole game into
one pipelined round trip, so the handler must not insist on a connection of its own.
``RedisPublishHandler(client.publish)`` publishes immediately.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _q  # what json.dumps uses for a str
from typing import Any

WIRE_FORMATS = ("original", "plain")

#: Timestamp layout of the payload's ``timestamp`` (UTC, microseconds always present).
PAYLOAD_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def payload_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(PAYLOAD_TIME_FORMAT)


def encode_payload(
    queue: str,
    message: str,
    task: Any,
    timestamp: str,
    level: str = "INFO",
    wire_format: str = "original",
) -> str:
    """The text of one published record, in the chosen wire format.

    Byte-identical to ``json.dumps`` of the payload object (twice for ``original``), written out by
    hand because the simulator encodes tens of thousands of these per second.
    """
    task_json = _q(task) if isinstance(task, str) else json.dumps(task)
    head, middle = _fixed_parts(level, queue, message)
    text = f"{head}{_q(timestamp)}{middle}{task_json}}}"
    return _q(text) if wire_format == "original" else text


@functools.lru_cache(maxsize=1024)
def _fixed_parts(level: str, queue: str, message: str) -> tuple[str, str]:
    """The payload around its timestamp and task: the same for every record of a kind."""
    head = f'{{"level": {_q(level)}, "timestamp": '
    middle = f', "name": {_q("redis." + queue)}, "log_message": {_q(message)}, "task": '
    return head, middle


class RedisPublishHandler(logging.Handler):
    """Publishes records that have a ``queue`` attribute; ``timestamp`` and ``task`` are optional.

    ``record.timestamp`` (a string) overrides the record's creation time so a seeded run can
    reproduce its payloads byte for byte; ``record.task`` is sent as given (a JSON string for most
    records, an object for 'Cleaning Game Records', like the original).
    """

    def __init__(
        self,
        publish: Callable[[str, str], object],
        wire_format: str = "original",
        level: int = logging.NOTSET,
    ) -> None:
        if wire_format not in WIRE_FORMATS:
            raise ValueError(f"wire_format must be one of {WIRE_FORMATS}, got {wire_format!r}")
        super().__init__(level)
        self.publish = publish
        self.wire_format = wire_format

    def format_payload(self, record: logging.LogRecord) -> str:
        timestamp = getattr(record, "timestamp", None)
        if not isinstance(timestamp, str):
            timestamp = payload_timestamp(datetime.fromtimestamp(record.created, UTC))
        return encode_payload(
            record.queue,  # type: ignore[attr-defined]
            record.getMessage(),
            getattr(record, "task", None),
            timestamp,
            record.levelname,
            self.wire_format,
        )

    def emit(self, record: logging.LogRecord) -> None:
        queue = getattr(record, "queue", None)
        if not queue:
            return
        try:
            self.publish(queue, self.format_payload(record))
        except Exception:
            self.handleError(record)


class TaskRecord(logging.LogRecord):
    """A LogRecord built without the stack and process lookups of ``LogRecord.__init__``.

    Why: the simulator emits one record per attack, and the standard constructor (thread, process
    and caller lookups) costs more than writing the game to Redis. It is still a real LogRecord:
    any handler or formatter can use it.
    """

    def __init__(
        self,
        name: str,
        msg: str,
        queue: str,
        task: object,
        timestamp: str,
        level: int = logging.INFO,
    ) -> None:
        self.__dict__.update(
            name=name,
            msg=msg,
            args=(),
            levelname=logging.getLevelName(level),
            levelno=level,
            pathname=__file__,
            filename="publish.py",
            module="publish",
            lineno=0,
            funcName="",
            exc_info=None,
            exc_text=None,
            stack_info=None,
            created=0.0,
            msecs=0.0,
            relativeCreated=0.0,
            thread=None,
            threadName=None,
            processName=None,
            process=None,
            taskName=None,
            queue=queue,
            task=task,
            timestamp=timestamp,
        )


def publishing_logger(name: str, handler: logging.Handler) -> logging.Logger:
    """A private logger (outside the global hierarchy) whose only output is ``handler``.

    Why private: the simulator emits thousands of records per second; they must not reach the
    application's root handlers (console) nor leak handlers between runs.
    """
    logger = logging.Logger(name, logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    return logger
