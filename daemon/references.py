"""What a task refers to must exist when it is accepted: a verifier reward term's
verification task, a synthesis task's judge, the synthesis task a classification task asks
to write for it. A reference that does not hold raises `InvalidTask` naming the field (the
message is dead-lettered)."""

from __future__ import annotations

from synlearner.daemon.flywheel import NEAREST
from synlearner.daemon.state import State
from synlearner.learner.rewards import parse as parse_reward
from synlearner.stream.errors import InvalidTask
from synlearner.stream.schema import Task


def check_references(state: State, task: Task) -> None:
    _verifiers(state, task)
    _labelled(state, task)


def _verifiers(state: State, task: Task) -> None:
    """A `verifier` reward term must name a verification task learned before."""
    if task.kind != "generation" or task.reward is None:
        return
    for i, term in enumerate(parse_reward(task.reward)):
        tid = term.params.get("task") if term.name == "verifier" else None
        entry = state.latest(str(tid)) if tid is not None else None
        if tid is not None and (entry is None or entry.kind != "verification"):
            raise InvalidTask(f"reward.{i}.task: {tid!r} is not a learned verification task",
                              task.task_id, code="unsupported")

def _labelled(state: State, task: Task) -> None:
    """A synthesis task's judge must be a learned classification task with its labels;
    the synthesis task a classification task asks to write for it (`synthesize.from`),
    a learned synthesis task with its labels."""
    if task.kind == "synthesis":
        ref, field, kind = (task.synthesis or {}).get("judge"), "synthesis.judge", "classification"
    elif task.kind == "classification" and task.synthesize:
        ref, field, kind = task.synthesize.get("from"), "synthesize.from", "synthesis"
        ref = None if ref == NEAREST else ref
    else:
        return
    if ref is None:
        return
    entry = state.latest(ref)
    if entry is None or entry.kind != kind:
        raise InvalidTask(f"{field}: {ref!r} is not a learned {kind} task", task.task_id,
                          code="unsupported")
    try:
        labels = state.load_task(ref).labels
    except (OSError, ValueError) as exc:  # its definition is unreadable: never escapes
        raise InvalidTask(f"{field}: the definition of {ref!r} cannot be read ({exc})",
                          task.task_id, code="unsupported") from None
    if set(labels) != set(task.labels):
        raise InvalidTask(f"{field}: {ref!r} has other labels than this task "
                          f"({len(labels)} labels, {len(set(labels) & set(task.labels))} "
                          "shared)", task.task_id, code="unsupported")
