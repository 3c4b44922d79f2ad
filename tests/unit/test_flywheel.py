"""The data flywheel's bookkeeping: which synthesis task writes, what the filter keeps, where
the kept examples go (the numpy learner; a writer double stands in for the causal LM)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from synlearner.daemon.state import State
from synlearner.learner import synthesis as S
from synlearner.learner.base import Judge
from synlearner.memory import ExperienceMemory
from synlearner.stream import InMemorySource, Task
from tests.conftest import raw
from tests.unit.doubles import EMB, CentroidLearner, unit_config
from tests.unit.test_loop import task_raw

WRITTEN = [("positive", "great tasty lovely day out"),
           ("positive", "awful cold sour soup again"),  # the filter gives it the other label
           ("negative", "awful cold sour night here"),
           ("negative", "awful cold sour night here"),  # a near copy of the one before
           ("positive", "great"),  # too short
           ("negative", "awful cold sour 1")]  # a copy of a real train text


class TemplateWriter(CentroidLearner):
    """Learns synthesis tasks as the numpy learner does; writes `WRITTEN`."""

    kind = "synthesis"

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, str | None, int]] = []

    def write(self, source: Task, adapter: str | None, labels: Sequence[str],
              examples: Sequence[tuple[str, str]], n: int, temperature: float,
              seed: int) -> list[tuple[S.PlanItem, str]]:
        self.asked.append((source.task_id, adapter, n))
        return [(S.PlanItem(label), text) for label, text in WRITTEN[:n]]

    def judge_of(self, task: Task) -> Judge:
        return Judge.of("reviews", "", task.labels, "reviews")


def test_kept_synthetic_examples_train_the_task_and_are_remembered_apart(tmp_path: Path) -> None:
    from synlearner.daemon.attempts import Attempts
    from synlearner.daemon.loop import Daemon
    from synlearner.daemon.metrics import Metrics
    from synlearner.stream import InMemoryResultSink

    def asking(task_id: str, **synthesize: object) -> bytes:
        body = json.loads(task_raw(task_id))
        body["synthesize"] = synthesize
        return json.dumps(body).encode()

    write = json.loads(task_raw("write"))
    write["kind"] = "synthesis"
    source = InMemorySource([task_raw("reviews"), json.dumps(write).encode(),
                             asking("few", count=6, **{"from": "write"}),
                             asking("orphan", count=6, **{"from": "nope"}),
                             asking("near", count=4), raw("after")])
    cfg = unit_config(tmp_path, **{"memory.replay.ratio": 4.0, "learner.init": "fresh"})
    memory = ExperienceMemory(cfg.state_dir / "memory", EMB, cfg.memory)
    writer = TemplateWriter()
    learner = CentroidLearner()
    Daemon(cfg, source, InMemoryResultSink(), memory,
           {"classification": learner, "synthesis": writer}, State.load(cfg.state_dir),
           Metrics(), Attempts(cfg.state_dir / "attempts")).run()
    assert [d[1] for d in source.dead_letters] == [
        "synthesize.from: 'nope' is not a learned synthesis task"]
    # `from` names the writer; `nearest` finds it by task similarity (same labels)
    assert writer.asked == [("write", "write", 6), ("write", "write", 4)]
    state = State.read(cfg.state_dir)
    few = state.latest("few")
    assert few is not None
    # kept: the two of the intended label that are no copy, too short or near copy
    assert {k: few.extras["synthesis"][k] for k in ("generated", "confident", "kept")} == {
        "generated": 6.0, "confident": 5.0, "kept": 2.0}
    assert few.extras["synthesis"]["kept_agreement"] == 1.0
    assert few.train_examples == 6 + 2  # trained on the real examples and the kept ones
    synthetic = memory.records(task_id="few", split="synthetic")
    assert sorted(r.input for r in synthetic if r.kind == "experience") == [
        "awful cold sour night here", "great tasty lovely day out"]
    assert len(memory.records(task_id="few", split="train", kind="experience")) == 6
    after = memory.recall("later", [f"great tasty lovely {i}" for i in range(20)], seed=0)
    assert any(item.record.split == "synthetic" for item in after)  # replayed like train data
    memory.close()
