"""Experience and error memory: records in SQLite, vectors in FAISS, replay policies."""

from synlearner.memory.base import (
    Embedder,
    Hit,
    Memory,
    Record,
    RecordKind,
    ReplayItem,
    ReplayRequest,
    TaskInfo,
)
from synlearner.memory.embedders import HashingEmbedder
from synlearner.memory.index import INDEX_KINDS
from synlearner.memory.replay import POLICIES
from synlearner.memory.store import ExperienceMemory

__all__ = [
    "INDEX_KINDS",
    "POLICIES",
    "Embedder",
    "ExperienceMemory",
    "HashingEmbedder",
    "Hit",
    "Memory",
    "Record",
    "RecordKind",
    "ReplayItem",
    "ReplayRequest",
    "TaskInfo",
]
