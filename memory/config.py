"""The `memory` section of the config: which encoder embeds records, the index, capacity and
replay. `ExperienceMemory` takes it as it is; each default is declared here only."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReplayConfig(_Section):
    policy: Literal["reservoir", "balanced", "nearest", "errors_first"] = "errors_first"
    ratio: float = Field(0.5, ge=0)  # replay examples per new training example
    max_examples: int = Field(256, ge=0)


class SimilarityConfig(_Section):
    """How much each part of a task's description counts in task similarity (weights of
    the cosines; a part one of the two tasks lacks, e.g. no instruction, is left out)."""

    instruction: float = Field(0.4, ge=0)  # what the task asks
    labels: float = Field(0.4, ge=0)  # the mean embedding of its label names
    inputs: float = Field(0.2, ge=0)  # the centroid of its inputs (what they look like)


class MemoryConfig(_Section):
    # model: the base encoder of the classification learner (adapters off); hashing: no model
    embedder: Literal["model", "hashing"] = "model"
    index: Literal["flat", "hnsw"] = "flat"
    capacity: int = Field(200_000, gt=0)
    replay: ReplayConfig = ReplayConfig()
    similarity: SimilarityConfig = SimilarityConfig()
