"""Operations against real tools: systemd-analyze on the unit, a real Prometheus scraping a
real daemon, promtool on the exposition, and every Grafana dashboard query."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from synlearner.daemon.build import build_daemon
from synlearner.daemon.config import load_config
from synlearner.daemon.service import Service
from synlearner.daemon.tools.demo import demo_stream
from synlearner.stream import SpoolPublisher

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
TOOLS = Path(os.environ.get("SYNLEARNER_TOOLS", Path.home() / ".cache/synlearner/tools"))


def tool(name: str) -> str:
    path = TOOLS / "prometheus" / "usr" / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `bash .ci/tools.sh` to fetch Prometheus")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed to check the unit"
    unit = (ROOT / "configs/systemd/synlearner.service").read_text()
    exe = Path(sys.executable).parent / "synlearner"
    path = tmp_path / "synlearner.service"
    path.write_text(unit.replace("/opt/synlearner/.venv/bin/synlearner", str(exe)))
    out = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout + out.stderr == ""  # warnings count as failures
    sec = subprocess.run([analyze, "security", "--offline=true", str(path)],
                         capture_output=True, text=True)
    level = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", sec.stdout).group(1))
    assert level <= 2.0, sec.stdout[-2000:]
    assert "Type=notify" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # the unit `synlearner install-service` writes (this environment's executable, a state
    # directory elsewhere) verifies as cleanly and keeps its hardening
    from synlearner.daemon.tools.install import install

    install(tmp_path / "root", "synlearner", Path("/srv/learner"))
    installed = tmp_path / "root/etc/systemd/system/synlearner.service"
    out = subprocess.run([analyze, "verify", str(installed)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout + out.stderr == ""
    sec = subprocess.run([analyze, "security", "--offline=true", str(installed)],
                         capture_output=True, text=True)
    assert float(re.search(r"Overall exposure level for \S+: ([\d.]+)", sec.stdout).group(1)) <= 2.0
    for key in ("TimeoutStartSec=", "MemoryMax=", "TasksMax=", "LimitNOFILE=", "IPAddressDeny=any",
                "StartLimitIntervalSec=", "StartLimitBurst="):
        assert f"\n{key}" in unit, key


# dashboard series that a classification task never sets (their queries are still run)
NEED_GENERATION = ("synlearner_selftrain_balance", "synlearner_selftrain_pass_at",
                   "synlearner_preference_pairs")


def query(base: str, expr: str) -> dict:  # type: ignore[type-arg]  # Prometheus API JSON
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return json.loads(urllib.request.urlopen(url, timeout=10).read())  # type: ignore[no-any-return]


def test_prometheus_scrapes_the_daemon_and_dashboard_queries_return_data(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs/default.yaml", {
        "state_dir": str(tmp_path / "state"), "daemon.http.port": 0, "daemon.api.port": 0,
        "stream.poll_timeout_s": 0.2, "learner.train": {"max_steps": 10},
    }, env={})
    task = demo_stream(seed=1, n_train=24, n_eval=20)[0]
    SpoolPublisher(cfg.spool_dir).submit(json.dumps(task).encode(), task["task_id"])
    SpoolPublisher(cfg.spool_dir).submit(b"not json", "bad")
    parts = build_daemon(cfg)
    service = Service(cfg, parts)
    service.start()
    worker = threading.Thread(target=parts.daemon.run, daemon=True)
    worker.start()
    prom = None
    try:
        deadline = time.monotonic() + 300
        while parts.daemon.metrics.tasks_learned._value.get() < 1 or parts.daemon.source.pending():
            assert time.monotonic() < deadline, "the daemon did not learn the task"
            time.sleep(0.2)
        assert service.http is not None and service.api is not None
        api = f"http://127.0.0.1:{service.api.port}"
        texts = [e["input"] for e in task["eval"][:3]]

        def predict(task_id: str) -> list[dict]:  # type: ignore[type-arg]
            body = json.dumps({"task_id": task_id, "inputs": texts}).encode()
            request = urllib.request.Request(f"{api}/v1/predict", body,
                                             {"Content-Type": "application/json"})
            return json.loads(urllib.request.urlopen(request, timeout=120).read())["answers"]  # type: ignore[no-any-return]

        before = predict(task["task_id"])  # the first request loads the API's copy of the model
        assert len(before) == 3 and before[0]["task_id"] == task["task_id"]
        with pytest.raises(urllib.error.HTTPError) as unknown:
            predict("nope")
        assert unknown.value.code == 404
        # while the daemon trains another task, the API answers from the committed adapters:
        # the same answers, never the adapter in training
        second = demo_stream(seed=1, n_train=24, n_eval=20)[1]
        SpoolPublisher(cfg.spool_dir).submit(json.dumps(second).encode(), second["task_id"])
        while parts.daemon.current != second["task_id"]:
            assert time.monotonic() < deadline, "the daemon did not start the second task"
            time.sleep(0.05)
        assert predict(task["task_id"]) == before
        while parts.daemon.metrics.tasks_learned._value.get() < 2:
            assert time.monotonic() < deadline, "the daemon did not learn the second task"
            time.sleep(0.2)
        parts.daemon.jobs_due.add("retention")  # the main loop runs it at its next poll
        while "retention" not in parts.daemon.job_results:
            assert time.monotonic() < deadline, "the main loop did not run the queued job"
            time.sleep(0.2)
        target = f"127.0.0.1:{service.http.port}"
        exposition = urllib.request.urlopen(f"http://{target}/metrics", timeout=5).read()
        lint = subprocess.run([tool("promtool"), "check", "metrics"], input=exposition,
                              capture_output=True)
        assert lint.returncode == 0 and lint.stdout + lint.stderr == b"", lint

        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s}\n"
            f"scrape_configs:\n  - job_name: synlearner\n    static_configs:\n"
            f"      - targets: ['{target}']\n")
        rules = ROOT / "configs/prometheus/synlearner-alerts.yml"
        check = subprocess.run([tool("promtool"), "check", "rules", str(rules)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        shipped = subprocess.run([tool("promtool"), "check", "config", str(rules.parent / "prometheus.yml")],
                                 capture_output=True, text=True)
        assert shipped.returncode == 0, shipped.stdout + shipped.stderr
        # every alert fires on the series that should raise it, and only after its `for`
        tested = subprocess.run([tool("promtool"), "test", "rules", "synlearner-alerts.test.yml"],
                                capture_output=True, text=True, cwd=rules.parent)
        assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
        names = set(re.findall(r"- alert: (\w+)", rules.read_text()))
        assert names == set(re.findall(r"alertname: (\w+)",
                                       (rules.parent / "synlearner-alerts.test.yml").read_text()))
        prom = subprocess.Popen(
            [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if query(base, "count_over_time(up[1m])")["data"]["result"] and int(
                        query(base, "count_over_time(up[1m])")["data"]["result"][0]["value"][1]) >= 4:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not scrape the daemon"
            time.sleep(0.5)
        assert query(base, 'up{job="synlearner"}')["data"]["result"][0]["value"][1] == "1"
        dashboard = json.loads((ROOT / "configs/grafana/synlearner-dashboard.json").read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        assert len(exprs) >= 25
        declared = set(re.findall(rb"^# TYPE (\w+) ", exposition, re.M))
        for expr in exprs:
            answer = query(base, expr)
            assert answer["status"] == "success", (expr, answer)
            for name in re.findall(r"synlearner_\w+", expr):  # names the daemon exports
                family = re.sub(r"_(bucket|count|sum|total)$", "", name)
                assert family.encode() in {re.sub(rb"_total$", b"", d) for d in declared}, name
            if any(name in expr for name in NEED_GENERATION):
                continue  # series only a generation task's self-training or DPO phase sets
            assert answer["data"]["result"], f"no data for dashboard query {expr}"
        learned = query(base, "synlearner_tasks_learned_total")["data"]["result"][0]["value"][1]
        assert learned == "2"
        dead = query(base, "synlearner_tasks_dead_lettered_total")["data"]["result"]
        assert dead[0]["value"][1] == "1"
    finally:
        if prom is not None:
            prom.terminate()
            prom.wait(timeout=30)
        parts.daemon.stop()
        worker.join(timeout=60)
        service.close()
