"""Learning methods as plugins: each is one module that registers itself here.

A method names the task kinds it applies to and adds to a task's run through hooks that the
daemon's phases fire, in the spirit of Avalanche's strategy plugins and PEFT's method
registry:

- `recall(task, ctx)`: what it needs from memory before training (wrong answers for
  preference pairs, the model's own right answers for self-training); kept for this run;
- `stage(task, recalled, ctx)`: the training it adds, as a `Stage` the learner runs after
  the ones before it, in the order the task names its methods;
- `after_evaluate(task, outcome, recalled, ctx)`: what it does once the task is learned and scored;
- `metrics(registry)`: its metrics, set from its figures once a task is committed;
- `report(tasks)`: its lines of the text report.

Its figures live in one `extras[name]` mapping that the outcome, the state, the result, the
report and /metrics carry without knowing its fields. A task names its methods by registry
name (`methods` in the message); a task that names none gets its kind's defaults
(`learner.generation.methods` and `learner.generation.synthesis.methods`). Method modules import their
algorithms (torch and the like) only inside their hooks, so the registry loads without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from synlearner.learner.base import Learner, LearnOutcome, Stage
from synlearner.learner.config import LearnerConfig
from synlearner.memory.base import Memory
from synlearner.stream.schema import Task

Figures = Mapping[str, Any]  # a method's own figures: JSON-able, its fields its own


class MethodContext(Protocol):
    """What a method's hooks may use of the daemon that runs them."""

    @property
    def memory(self) -> Memory: ...

    @property
    def learners(self) -> Mapping[str, Learner]: ...

    def section(self, key: str) -> Any:
        """The config section at dotted `key` (a method's `config_key`)."""
        ...


class Method:
    """A learning method: override the hooks it needs (each does nothing by default)."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    config_key: ClassVar[str] = ""  # its config section, a dotted path ("": none)
    stored_as: ClassVar[str] = ""  # the state entry field that held its figures before extras

    def restored(self, stored: Any) -> Figures:
        """Its figures from the value an entry stored before `extras` (`stored_as`)."""
        return dict(stored)

    def recall(self, task: Task, ctx: MethodContext) -> Any:
        """What the method needs from memory before training (None: nothing)."""
        return None

    def stage(self, task: Task, recalled: Any, ctx: MethodContext | None) -> Stage | None:
        """The training it adds (None: none)."""
        return None

    def after_evaluate(self, task: Task, outcome: LearnOutcome, recalled: Any,
                       ctx: MethodContext) -> Figures | None:
        """What it does once the task is learned and scored: figures of its own to keep in
        `extras[name]` beside those its stage produced (None: none)."""
        return None

    def metrics(self, registry: Any) -> Callable[[str, Figures], None] | None:
        """Declare its metrics on a daemon's registry (a prometheus_client
        `CollectorRegistry`, once, when the daemon is built); returns what sets them from a
        committed task's column and figures (None: it has no metrics)."""
        return None

    def report(self, tasks: Sequence[Mapping[str, Any]]) -> list[str]:
        """Its lines of the text report, from each task's `extras` (empty: none)."""
        return []


REGISTRY: dict[str, Method] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add a method to the registry under its `name`."""
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def unknown_methods(kind: str, names: Iterable[str]) -> list[str]:
    """The names that are no registered method of `kind` tasks, each with why."""
    out = []
    for name in names:
        method = REGISTRY.get(name)
        if method is None:
            out.append(f"{name!r} is not a method (known: {', '.join(sorted(REGISTRY))})")
        elif kind not in method.kinds:
            out.append(f"{name!r} is not a method of {kind} tasks")
    return out


def stages_of(task: Task, defaults: Sequence[str], ctx: MethodContext | None = None,
              recalled: Mapping[str, Any] | None = None) -> tuple[Stage, ...]:
    """The training stages of the methods `task` runs (those it names, else `defaults`),
    with what each recalled (a learner given no stages runs these, recalling nothing)."""
    methods = methods_of(task, {task.kind: defaults})
    stages = [m.stage(task, (recalled or {}).get(m.name), ctx) for m in methods]
    return tuple(s for s in stages if s is not None)


def default_methods(cfg: LearnerConfig) -> dict[str, tuple[str, ...]]:
    """Each task kind's methods where a task names none."""
    return {"generation": tuple(cfg.generation.methods),
            "synthesis": tuple(cfg.generation.synthesis.methods)}


def methods_of(task: Task, defaults: Mapping[str, Sequence[str]]) -> list[Method]:
    """The methods a task runs: those it names, else its kind's `defaults`."""
    names = task.methods or tuple(defaults.get(task.kind, ()))
    return [REGISTRY[n] for n in names if n in REGISTRY and task.kind in REGISTRY[n].kinds]
