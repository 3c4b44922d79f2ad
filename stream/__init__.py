"""Task stream: wire schema, sources and sinks."""

from synlearner.stream.base import Delivery, ResultSink, TaskPublisher, TaskSource
from synlearner.stream.errors import InvalidTask, SourceUnavailable
from synlearner.stream.inmemory import InMemoryResultSink, InMemorySource
from synlearner.stream.schema import (
    SCHEMA_V1,
    Example,
    Limits,
    Task,
    TaskMessage,
    TaskResult,
    parse_task,
)
from synlearner.stream.spool import JsonlResultSink, SpoolPublisher, SpoolSource

__all__ = [
    "SCHEMA_V1",
    "Delivery",
    "Example",
    "InMemoryResultSink",
    "InMemorySource",
    "InvalidTask",
    "JsonlResultSink",
    "Limits",
    "ResultSink",
    "SourceUnavailable",
    "SpoolPublisher",
    "SpoolSource",
    "Task",
    "TaskMessage",
    "TaskPublisher",
    "TaskResult",
    "TaskSource",
    "parse_task",
]
