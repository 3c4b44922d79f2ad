"""The `memory` section of the config: which encoder embeds records, the index, capacity and
replay. `ExperienceMemory` takes it as it is; each default is declared here only."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReplayConfig(_Section):
    """Which past examples are replayed while a new task trains, and how many."""

    policy: Literal["reservoir", "balanced", "nearest", "errors_first"] = Field(
        "errors_first", description="reservoir (uniform) | balanced (as many per past task) | "
                                    "nearest | errors_first (past mistakes, then nearest)")
    ratio: float = Field(0.5, ge=0, description="replayed examples per new training example")
    max_examples: int = Field(256, ge=0, description="most examples replayed for one task")


class SimilarityConfig(_Section):
    """How much each part of a task's description counts in task similarity (weights of
    the cosines; a part one of the two tasks lacks, e.g. no instruction, is left out)."""

    instruction: float = Field(0.4, ge=0, description="weight of what the task asks (its instruction)")
    labels: float = Field(0.4, ge=0, description="weight of the mean embedding of its label names")
    inputs: float = Field(0.2, ge=0, description="weight of the centroid of its inputs (what they look like)")


class MemoryConfig(_Section):
    embedder: Literal["model", "hashing"] = Field(
        "model", description="model (the base encoder of the classifier, adapters off) | hashing (no model)")
    index: Literal["flat", "hnsw"] = Field("flat", description="the vector index: flat (exact) | hnsw")
    capacity: int = Field(
        200_000, gt=0, description="records kept; the oldest experience goes first, errors last")
    replay: ReplayConfig = Field(ReplayConfig(), description="replay of past examples while a task trains")
    similarity: SimilarityConfig = Field(SimilarityConfig(), description="the weights of task similarity")
