"""Every message settles: quarantine after crashes, holding on failures that are not the
message's, failed tasks, commit discipline for new versions, no eval data in replay."""

from __future__ import annotations

import errno
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from synlearner.daemon.attempts import Attempts
from synlearner.daemon.loop import Daemon
from synlearner.daemon.park import request_park
from synlearner.daemon.state import State
from synlearner.learner.base import LearnOutcome, LearnPlan, Progress, no_progress
from synlearner.memory import ReplayItem
from synlearner.memory.base import ReplayRequest
from synlearner.stream import InMemorySource, Task
from synlearner.stream.base import Delivery
from synlearner.stream.errors import SourceUnavailable
from tests.conftest import raw
from tests.unit.doubles import EMB, CentroidLearner, unit_config, unit_daemon
from tests.unit.test_loop import task_raw


def build(tmp_path: Path, source: InMemorySource, learner: CentroidLearner,
          **overrides: object) -> Daemon:
    return unit_daemon(unit_config(tmp_path, **{"memory.replay.ratio": 1.0, **overrides}),
                       source, learner)


def statuses(daemon: Daemon) -> list[tuple[str, str]]:
    return [(r.task_id, r.status) for r in daemon.results.results]  # type: ignore[attr-defined]


def failing_learner(fail: dict[str, list[BaseException]]) -> CentroidLearner:
    """A learner whose `learn` raises the listed exceptions for a task, one per call."""
    learner = CentroidLearner()
    original = learner.learn

    def learn(task: Task, replay: Sequence[ReplayItem], plan: LearnPlan,
              progress: Progress = no_progress) -> LearnOutcome:
        if fail.get(task.task_id):
            raise fail[task.task_id].pop(0)
        return original(task, replay, plan, progress)

    learner.learn = learn  # type: ignore[method-assign]  # failure injection
    return learner


def test_attempts_are_counted_durably_and_undone_on_a_requested_stop(tmp_path: Path) -> None:
    ledger = Attempts(tmp_path)
    assert ledger.begin("topic/0/7").number == 1
    ledger.note("topic/0/7", "phase train")
    again = Attempts(tmp_path).begin("topic/0/7")  # a restart reads what was written
    assert (again.number, again.last) == (2, "phase train")
    ledger.undo("topic/0/7")
    assert ledger.count("topic/0/7") == 1
    ledger.clear("topic/0/7")
    assert ledger.count("topic/0/7") == 0 and not list(tmp_path.iterdir())


def test_spool_sidecars_without_their_message_are_dropped_on_start(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_bytes(b"{}")
    ledger = Attempts(tmp_path, sidecar=True)
    ledger.begin("m.json")
    ledger.begin("gone.json")
    Attempts(tmp_path, sidecar=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.json.attempts"]


def test_a_message_that_crashed_the_process_max_attempts_times_is_quarantined(
    tmp_path: Path,
) -> None:
    source = InMemorySource([task_raw("poison"), task_raw("next")])
    ledger = Attempts(tmp_path / "attempts")
    for _ in range(3):  # three earlier processes died while learning mem-1
        ledger.begin("mem-1")
        ledger.note("mem-1", "phase train of task poison")
    learner = CentroidLearner()
    daemon = build(tmp_path, source, learner, **{"stream.max_attempts": 3})
    daemon.run()
    assert learner.trained == ["next"]
    (delivery, reason), = source.dead_letters
    assert reason == "crashed 3 times at the same point: last in phase train of task poison"
    assert delivery.attrs["attempts"] == "3"
    assert statuses(daemon) == [("", "invalid"), ("next", "learned")]
    assert daemon.metrics.dead_letters.labels(reason="crashed")._value.get() == 1
    assert not list((tmp_path / "attempts").iterdir())  # settled messages leave no record


def test_only_deaths_at_the_same_point_count_toward_the_quarantine(tmp_path: Path) -> None:
    """A process killed from outside dies wherever it happens to be: ten kills at different
    points never quarantine a message; three deaths in a row at one point do, and a death
    elsewhere starts that count again."""
    ledger = Attempts(tmp_path)
    for i in range(10):
        attempt = ledger.begin("good")
        assert attempt.same <= 1, attempt
        ledger.note("good", "phase recall of task good")
        ledger.note("good", f"train step {2 * i + 1}/40 of task good")  # killed here
    sames = []
    for point in ("step 5", "step 5", "step 9", "step 9"):
        sames.append(ledger.begin("bad").same)
        ledger.note("bad", point)
    ledger.undo("bad")  # a requested stop is no death: the count stays as it was
    for point in ("step 9", "step 9"):
        sames.append(ledger.begin("bad").same)
        ledger.note("bad", point)
    assert sames + [ledger.begin("bad").same] == [0, 1, 2, 1, 1, 2, 3]
    sames = []
    for step in (37, 38, 37, 38):  # the kill races the step it lands in
        sames.append(ledger.begin("oom").same)
        ledger.note("oom", f"train step {step}/{100 + step % 3} of task big")
    assert sames + [ledger.begin("oom").same] == [0, 1, 2, 3, 4]


def test_a_message_that_never_settles_is_quarantined_wherever_it_died(tmp_path: Path) -> None:
    source = InMemorySource([task_raw("wander"), task_raw("next")])
    ledger = Attempts(tmp_path / "attempts")
    for i in range(15):  # fifteen deaths, each at another point
        ledger.begin("mem-1")
        ledger.note("mem-1", f"train step {10 * i + 1}/200 of task wander")
    daemon = build(tmp_path, source, CentroidLearner(), **{"stream.max_attempts": 3})
    daemon.run()
    (delivery, reason), = source.dead_letters
    assert reason == "crashed 15 times at different points: last in train step 141/200 of task wander"
    assert statuses(daemon) == [("", "invalid"), ("next", "learned")]


def test_a_good_task_killed_at_different_points_is_learned(tmp_path: Path) -> None:
    source = InMemorySource([task_raw("good")])
    ledger = Attempts(tmp_path / "attempts")
    for i in range(10):  # ten earlier processes were killed at ten different points
        ledger.begin("mem-1")
        ledger.note("mem-1", f"train step {i + 1}/12 of task good")
    learner = CentroidLearner()
    daemon = build(tmp_path, source, learner, **{"stream.max_attempts": 3})
    daemon.run()
    assert statuses(daemon) == [("good", "learned")] and not source.dead_letters


def test_failures_that_are_not_the_messages_fault_hold_and_retry(tmp_path: Path) -> None:
    class FlakySource(InMemorySource):
        outages = 2

        def ack(self, delivery: Delivery) -> None:
            if self.outages:
                self.outages -= 1
                raise SourceUnavailable("broker down")
            super().ack(delivery)

    learner = failing_learner({"a": [OSError(errno.ENOSPC, "No space left on device")]})
    source = FlakySource([task_raw("a")])
    daemon = build(tmp_path, source, learner)
    daemon.run()
    assert learner.trained == ["a"] and not source.dead_letters
    assert len(source.acked) == 1 and statuses(daemon) == [("a", "learned")]  # published once
    m = daemon.metrics
    assert m.backoffs.labels(operation="learn")._value.get() == 1
    assert m.backoffs.labels(operation="ack")._value.get() == 2
    assert m.stream_held._value.get() == 0


def test_a_task_that_cannot_be_learned_fails_and_the_stream_goes_on(tmp_path: Path) -> None:
    one_class = raw("one", train=[{"input": "nice", "output": "positive"}] * 3)
    learner = failing_learner({"boom": [ValueError("shapes do not match")]})
    source = InMemorySource([one_class, task_raw("boom"), task_raw("ok")])
    daemon = build(tmp_path, source, learner)
    daemon.run()
    reasons = [reason for _, reason in source.dead_letters]
    assert reasons[0].startswith("learning failed: LearningError: train: every example has the "
                                 "label 'positive'")
    assert reasons[1] == "learning failed: ValueError: shapes do not match"
    assert statuses(daemon) == [("one", "failed"), ("boom", "failed"), ("ok", "learned")]
    assert daemon.metrics.tasks_failed._value.get() == 2


def test_a_label_without_training_examples_fails_the_task(tmp_path: Path) -> None:
    msg = raw("gap", labels=["positive", "negative", "neutral"])
    source = InMemorySource([msg])
    build(tmp_path, source, CentroidLearner()).run()
    assert "labels ['neutral'] have no training examples" in source.dead_letters[0][1]


def test_a_failed_new_version_leaves_the_committed_one_untouched(tmp_path: Path) -> None:
    learner = failing_learner({})
    source = InMemorySource([task_raw("a")])
    daemon = build(tmp_path, source, learner)
    daemon.run()
    v1_records = sorted(r.input for r in daemon.memory.records(task_id="a"))  # type: ignore[attr-defined]
    v1_adapter = dict(learner.adapters["a"])
    v1_entry = State.load(tmp_path).latest("a")
    assert v1_entry is not None

    def fail_at_commit(*_: object, **__: object) -> None:
        raise RuntimeError("disk gone at the commit point")

    daemon.state.record = fail_at_commit  # type: ignore[method-assign]  # v2 dies at the commit
    source.submit(task_raw("a", flip=True), "")

    def operator() -> None:  # the commit holds (the storage's fault): park it
        deadline = time.monotonic() + 30
        while not daemon.held and time.monotonic() < deadline:
            time.sleep(0.01)
        request_park(tmp_path, "a", 30)

    thread = threading.Thread(target=operator)
    thread.start()
    daemon.run()
    thread.join()
    assert statuses(daemon)[-1] == ("a", "failed")
    assert source.dead_letters[-1][1].startswith("parked by an operator while holding: "
                                                 "StorageFault: commit: RuntimeError")
    state = State.load(tmp_path)
    assert [e.version for e in state.entries] == [1]
    assert state.load_task("a").train[0].output == "positive"  # v1's definition
    assert (tmp_path / v1_entry.adapter / "centroids.json").exists()
    assert sorted(r.input for r in daemon.memory.records(task_id="a")) == v1_records  # type: ignore[attr-defined]
    assert learner.adapters["a"] == v1_adapter  # the committed adapter is back in use
    # the pending records of the failed version are gone after a restart
    daemon.memory.close()
    again = build(tmp_path, InMemorySource(), CentroidLearner())
    assert [t for t in again.memory.task_ids() if "#" in t] == []  # type: ignore[attr-defined]


def test_a_new_version_replaces_the_old_one_at_its_commit(tmp_path: Path) -> None:
    source = InMemorySource([task_raw("a"), task_raw("a", flip=True)])
    daemon = build(tmp_path, source, CentroidLearner())
    daemon.run()
    state = State.load(tmp_path)
    v2 = state.latest("a")
    assert v2 is not None and v2.version == 2
    assert state.load_task("a").train[0].output == "negative"
    assert sorted(p.name for p in (tmp_path / "adapters" / "a").iterdir()) == ["000002"]
    assert sorted(p.name for p in (tmp_path / "tasks").iterdir()) == ["a.v2.json"]
    targets = {r.target for r in daemon.memory.records(task_id="a", split="train")  # type: ignore[attr-defined]
               if r.input.startswith("great")}
    assert targets == {"negative"}  # only v2's records
    assert daemon.memory.task_ids() == ["a"]  # type: ignore[attr-defined]


def test_a_crash_between_the_commit_and_the_memory_switch_is_finished_on_start(
    tmp_path: Path,
) -> None:
    source = InMemorySource([task_raw("a")])
    daemon = build(tmp_path, source, CentroidLearner())
    daemon.memory.adopt = lambda pending, task_id: None  # type: ignore[method-assign]  # crash here
    daemon.run()
    assert [t for t in daemon.memory.task_ids() if "#" in t]  # type: ignore[attr-defined]
    daemon.memory.close()
    again = build(tmp_path, InMemorySource(), CentroidLearner())
    assert again.memory.task_ids() == ["a"]  # type: ignore[attr-defined]
    assert len(again.memory.records(task_id="a")) > 0  # type: ignore[attr-defined]


def test_replay_never_sees_evaluation_data(tmp_path: Path) -> None:
    learner = CentroidLearner()
    learner.confused = {"a"}  # every answer of task a is wrong: train and eval errors
    source = InMemorySource([task_raw("a")])
    daemon = build(tmp_path, source, learner)
    daemon.run()
    memory = daemon.memory
    evals = {r.input for r in memory.records(task_id="a", split="eval")}  # type: ignore[attr-defined]
    assert evals and memory.records(task_id="a", kind="error", split="eval")  # type: ignore[attr-defined]
    queries = EMB.embed(sorted(evals))
    for policy in ("reservoir", "balanced", "nearest", "errors_first"):
        items = memory.replay(policy, ReplayRequest("b", queries, n=50))
        assert items, policy
        assert all(i.record.split == "train" for i in items), policy
        assert not {i.record.input for i in items} & evals, policy


def test_truncation_is_reported_in_the_result_and_metrics(tmp_path: Path) -> None:
    long = "word " * 1000
    train = [{"input": long, "output": "positive"}, {"input": "awful", "output": "negative"}] * 3
    source = InMemorySource([raw("long", train=train)])
    daemon = build(tmp_path, source, CentroidLearner())
    daemon.run()
    result, = daemon.results.results  # type: ignore[attr-defined]
    assert result.status == "learned" and result.truncated == {"train.input": 3}
    assert json.loads(result.to_json())["truncated"] == {"train.input": 3}
    assert daemon.metrics.input_truncated.labels(what="train.input")._value.get() == 3


@pytest.mark.parametrize("bad", [b"\xff\xfe", b"[" * 100_000, b'{"a": ' + b"9" * 50_000 + b"}"])
def test_poison_bytes_are_dead_letters_with_a_reason(tmp_path: Path, bad: bytes) -> None:
    source = InMemorySource([bad, task_raw("after")])
    daemon = build(tmp_path, source, CentroidLearner())
    daemon.run()
    assert statuses(daemon) == [("", "invalid"), ("after", "learned")]
    reason = source.dead_letters[0][1]
    assert reason.startswith("message: ") and ("UTF-8" in reason or "max_" in reason), reason
