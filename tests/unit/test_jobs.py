"""Scheduled upkeep (drift, retention, compaction): what each job does to a real state and
memory, run by the main loop; failures counted, never raised."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from synlearner.daemon import jobs
from synlearner.daemon.build import Parts
from synlearner.daemon.loop import Daemon
from synlearner.daemon.service import Service
from synlearner.memory import Record
from synlearner.stream import InMemorySource
from synlearner.stream.spool import expire_done, rotate_results
from tests.unit.doubles import CentroidLearner, unit_config, unit_daemon
from tests.unit.test_loop import task_raw


def learned(tmp_path: Path, *raws: bytes, **overrides: object) -> tuple[Daemon, CentroidLearner]:
    learner = CentroidLearner()
    daemon = unit_daemon(unit_config(tmp_path, **overrides), InMemorySource(list(raws)), learner)
    daemon.run()
    return daemon, learner


def test_drift_re_evaluates_every_task_and_exports_the_largest_drop(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    daemon, learner = learned(tmp_path, task_raw("a"), task_raw("b"))
    daemon.run_job("drift")
    assert daemon.job_results["drift"]["outcome"] == "ok"
    assert daemon.metrics.drift._value.get() == 0.0  # nothing changed under the adapters
    a = learner.adapters["a"]  # an adapter changed on disk under the daemon: labels swapped
    learner.adapters["a"] = dict(zip(a, reversed(list(a.values())), strict=True))
    with caplog.at_level("WARNING", logger="synlearner.daemon"):
        daemon.run_job("drift")
    assert daemon.metrics.drift._value.get() == 1.0  # "a" went from 1.0 to 0.0
    assert any("drift: task a scores 0.000, recorded 1.000" in r.getMessage() for r in caplog.records)
    assert "largest drop +1.000" in daemon.job_results["drift"]["summary"]
    assert daemon.metrics.job_runs.labels(name="drift")._value.get() == 2


def test_retention_keeps_the_latest_adapter_versions_per_key(tmp_path: Path) -> None:
    daemon, _ = learned(tmp_path, task_raw("a"), task_raw("a", flip=True), task_raw("a"),
                        **{"daemon.jobs.adapter_versions": 2})
    folders = sorted(p.name for p in (tmp_path / "adapters" / "a").iterdir())
    assert folders == ["000002", "000003"]  # the commit keeps two versions
    daemon.apply_config(unit_config(tmp_path, **{"daemon.jobs.adapter_versions": 1}))
    daemon.run_job("retention")
    assert sorted(p.name for p in (tmp_path / "adapters" / "a").iterdir()) == ["000003"]
    assert daemon.job_results["retention"]["summary"].startswith("1 adapter folders removed")


def test_spool_retention_expires_done_messages_and_rotates_the_results(tmp_path: Path) -> None:
    done = tmp_path / "done"
    done.mkdir()
    old, new = done / "old.json", done / "new.json"
    for p in (old, new):
        p.write_text("{}")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert expire_done(tmp_path, 600) == 1 and not old.exists() and new.exists()
    results = tmp_path / "results.jsonl"
    results.write_text('{"a": 1}\n' * 10)
    assert not rotate_results(results, 1000)
    assert rotate_results(results, 50)
    assert not results.exists() and (tmp_path / "results.jsonl.1").read_text().count("\n") == 10


def test_compaction_drops_duplicate_records_and_keeps_the_index_whole(tmp_path: Path) -> None:
    daemon, _ = learned(tmp_path, task_raw("a"))
    memory = daemon.memory
    before = memory.counts()["records"]
    wrong = Record(task_id="a", kind="error", split="train", input="great tasty", target="positive",
                   prediction="negative", correct=False, loss=2.0)
    memory.add([wrong] * 5)  # the same wrong answer made in five rounds
    daemon.run_job("compaction")
    assert memory.counts()["records"] == before + 1
    assert memory._index.ntotal == before + 1  # the FAISS index lost the same ids
    assert "4 duplicate records dropped" in daemon.job_results["compaction"]["summary"]
    [hits] = memory.search(memory.embed(["great tasty"]), k=1, kind="error")
    assert [h.record.prediction for h in hits] == ["negative"]


def test_a_failing_job_is_counted_and_the_loop_goes_on(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    daemon, _ = learned(tmp_path, task_raw("a"))

    def broken(ctx: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(jobs.JOBS, "retention", broken)
    daemon.jobs_due.add("retention")
    daemon._run_jobs()
    assert daemon.metrics.job_failures.labels(name="retention")._value.get() == 1
    assert daemon.job_results["retention"]["outcome"] == "failed"
    assert "No space left" in daemon.status()["jobs"]["retention"]["summary"]


def test_idle_only_jobs_wait_for_a_quiet_stream(tmp_path: Path) -> None:
    learner = CentroidLearner()
    source = InMemorySource([task_raw("a")])
    daemon = unit_daemon(unit_config(tmp_path), source, learner)
    daemon.jobs_due |= {"drift", "retention"}
    daemon._run_jobs()  # a message is waiting: retention runs, drift waits
    assert "retention" in daemon.job_results and daemon.jobs_due == {"drift"}
    daemon.run()
    assert "drift" in daemon.job_results and not daemon.jobs_due


def test_the_service_schedules_each_job_at_its_interval(tmp_path: Path) -> None:
    cfg = unit_config(tmp_path, **{"daemon.jobs.compaction_every_s": 0, "daemon.api.enabled": False})
    daemon = unit_daemon(cfg, InMemorySource(), CentroidLearner())
    svc = Service(cfg, Parts(daemon, daemon.metrics, daemon.memory))
    svc.start()
    try:
        scheduled = {j.id: j.trigger.interval.total_seconds() for j in svc.scheduler.get_jobs()}
        assert scheduled["drift"] == 6 * 3600 and scheduled["retention"] == 3600
        assert "compaction" not in scheduled  # 0: off
        svc.scheduler.get_job("retention").func(*svc.scheduler.get_job("retention").args)
        assert daemon.jobs_due == {"retention"}  # the scheduler only queues it
    finally:
        svc.close()
