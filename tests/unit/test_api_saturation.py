"""The API port (uvicorn) under clients that never finish their request, and under a burst
of predictions: probes and reads answer at once, predictions queue within their limits.

Speed is measured in bench/, never here: the one deadline these tests keep is the
requirement's (/healthz and /readyz within 1 s while the port is saturated or the model
held). "At once" elsewhere means before whatever it would otherwise have waited for (a
slow client's request timeout, a held model, the queue's timeout), with a wide margin.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from synlearner.daemon.api import ApiServer, create_app
from synlearner.daemon.config import Config, load_config
from synlearner.daemon.serving import Busy, ModelQueue, Predictor
from synlearner.daemon.state import State
from tests.unit.slow_clients import closed_by_peer, connect, probe, saturated, trickle_until_closed

PROBE_S = 1.0  # the requirement: /healthz and /readyz answer within a second, whatever holds the port
HOLD_S = 10.0  # how long a held prediction keeps the model unless released


def answers_in_time(port: int, path: str, within_s: float) -> None:
    """`path` answers 200 within `within_s` (the probe's own timeout is wider, so that a
    late answer fails here with its time, not as a socket timeout)."""
    status, took, _ = probe(port, path, timeout_s=within_s + 5)
    assert status == 200 and took < within_s, (path, status, took)


def config(tmp_path: Path, **api: Any) -> Config:
    State.load(tmp_path / "state").close()  # an empty committed state: ready, nothing learned
    overrides = {"state_dir": str(tmp_path / "state"), "daemon.api.port": 0}
    return load_config(None, overrides | {f"daemon.api.{k}": v for k, v in api.items()}, env={})


class Serving:
    """An API server over loopback whose predictions wait, inside their turn on the model,
    until `release` is set."""

    def __init__(self, cfg: Config) -> None:
        self.predictor = Predictor(cfg, {})
        self.release, self.entered = threading.Event(), threading.Event()

        def held_predict(*_args: Any) -> list[Any]:
            self.entered.set()
            self.release.wait(HOLD_S)
            return []

        self.predictor._predict = held_predict  # type: ignore[method-assign]
        self.server = ApiServer(create_app(self.predictor, cfg.daemon.api), cfg.daemon.api)
        self.port = self.server.port
        self.server.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if probe(self.port, "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)

    def predict(self, timeout_s: float = 15) -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{self.port}/v1/predict",
                          json={"task_id": "t", "inputs": ["x"]}, timeout=timeout_s)

    def in_background(self, out: list[httpx.Response]) -> threading.Thread:
        thread = threading.Thread(target=lambda: out.append(self.predict()), daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.release.set()
        self.server.stop()


@pytest.fixture
def serving(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Serving]:
    """max_queue 1; queue_timeout_s as the test's parameter (0.5 s by default)."""
    s = Serving(config(tmp_path, max_queue=1, queue_timeout_s=getattr(request, "param", 0.5)))
    yield s
    s.stop()


def test_probes_answer_within_a_second_while_slow_clients_fill_the_port(tmp_path: Path) -> None:
    """70 idle connections and 32 that trickle a byte every 3 s, against the defaults: the
    probes within their second; a read before the slow clients' request timeout (5 s), the
    least it would wait if they held what answers it (they reconnect when cut off)."""
    cfg = config(tmp_path)
    s = Serving(cfg)
    try:
        with saturated(s.port, idle=70, trickle=32):
            for _ in range(3):
                for path in ("/healthz", "/readyz"):
                    answers_in_time(s.port, path, PROBE_S)
                answers_in_time(s.port, "/v1/tasks", cfg.daemon.api.request_timeout_s)
                time.sleep(1)
    finally:
        s.stop()


def test_a_trickled_request_is_cut_off_when_its_whole_time_is_up(tmp_path: Path) -> None:
    s = Serving(config(tmp_path, request_timeout_s=1.0))
    try:
        closed_after = trickle_until_closed(s.port, every_s=0.3)
        # closed when its 1 s is up, not before; a per-read timeout (each byte comes within
        # 0.3 s) would let the trickle, 17 s in all, run to its end (closed_after None)
        assert closed_after is not None and 0.9 <= closed_after < 5, closed_after
    finally:
        s.stop()


def test_past_max_pending_the_connection_waiting_longest_is_closed(tmp_path: Path) -> None:
    s = Serving(config(tmp_path, request_timeout_s=30, max_pending=4))
    socks = [connect(s.port) for _ in range(4)]
    try:
        time.sleep(0.2)
        assert not any(closed_by_peer(sock) for sock in socks)
        socks.append(connect(s.port))
        deadline = time.monotonic() + 10  # well before its own request timeout (30 s)
        while not closed_by_peer(socks[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert closed_by_peer(socks[0]) and not any(closed_by_peer(sock) for sock in socks[1:])
    finally:
        for sock in socks:
            sock.close()
        s.stop()


def test_reads_do_not_wait_behind_a_prediction(serving: Serving) -> None:
    out: list[httpx.Response] = []
    running = serving.in_background(out)
    assert serving.entered.wait(5)  # the prediction holds the model until released
    for path in ("/readyz", "/healthz"):
        answers_in_time(serving.port, path, PROBE_S)
    for path, expected in (("/v1/tasks", 200), ("/v1/tasks/nope", 404)):
        assert probe(serving.port, path, timeout_s=HOLD_S)[0] == expected, path
    assert running.is_alive() and not out  # all answered while the model was still held
    serving.release.set()
    running.join(15)
    assert [r.status_code for r in out] == [200]


@pytest.mark.parametrize("serving", [10.0], indirect=True)  # the one waiting stays
def test_a_full_queue_is_a_503_at_once_with_retry_after(serving: Serving) -> None:
    out: list[httpx.Response] = []
    first = serving.in_background(out)
    assert serving.entered.wait(5)
    waiting = serving.in_background(out)  # max_queue 1: this one waits
    deadline = time.monotonic() + 5
    while serving.predictor.queue.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    r = serving.predict()
    # refused for the full queue, not after waiting its 10 s (that 503 would name
    # queue_timeout_s), while the model is still held and the one waiting still waits
    assert r.status_code == 503 and time.monotonic() - started < 5
    assert int(r.headers["Retry-After"]) >= 1 and "daemon.api.max_queue" in r.json()["detail"]
    assert first.is_alive() and waiting.is_alive() and not out
    serving.release.set()
    first.join(15)
    waiting.join(15)


def test_a_wait_past_the_deadline_is_a_503_with_retry_after(serving: Serving) -> None:
    out: list[httpx.Response] = []
    first = serving.in_background(out)
    assert serving.entered.wait(5)
    started = time.monotonic()
    r = serving.predict()  # queue_timeout_s 0.5: it waits that long, not until the model is free
    assert r.status_code == 503 and 0.4 < time.monotonic() - started < HOLD_S / 2
    assert first.is_alive() and not out
    assert int(r.headers["Retry-After"]) >= 1 and "queue_timeout_s" in r.json()["detail"]
    serving.release.set()
    first.join(15)
    assert [r.status_code for r in out] == [200]


def test_the_queue_refuses_at_once_a_wait_it_expects_to_pass_the_deadline() -> None:
    queue = ModelQueue(max_waiting=4, timeout_s=1.0)
    queue.mean_turn_s = 0.6  # turns have lately taken 0.6 s
    release, taken = threading.Event(), threading.Event()

    def hold() -> None:
        with queue.turn():
            taken.set()
            release.wait(10)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(5)
    def wait() -> None:
        with contextlib.suppress(Busy), queue.turn():
            pass

    waiter = threading.Thread(target=wait, daemon=True)
    try:
        # nobody waits yet: about 0.6 s, within 1 s, so it waits, and times out (the model
        # is held for longer)
        with pytest.raises(Busy, match="waited"), queue.turn():
            pass
        # the same proportions, ten times longer, so that the waiter still waits however
        # late this thread runs: one waits, about 12 s, over 10 s: refused at once (before
        # the 10 s it would otherwise wait; a wait that ran out would say "waited")
        queue.timeout_s, queue.mean_turn_s = 10.0, 6.0
        waiter.start()
        deadline = time.monotonic() + 5
        while queue.waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(Busy, match="would be about") as refused, queue.turn():
            pass
        assert time.monotonic() - started < queue.timeout_s / 2 and refused.value.retry_after_s >= 1
    finally:
        release.set()
        holder.join(10)
        waiter.join(10)


def test_with_no_queue_a_free_model_is_still_taken() -> None:
    queue = ModelQueue(max_waiting=0, timeout_s=1.0)
    with queue.turn(), pytest.raises(Busy, match="max_queue"), queue.turn():
        pass  # the second turn is refused while the first holds the model
    with queue.turn():  # a free model is taken at once
        pass
