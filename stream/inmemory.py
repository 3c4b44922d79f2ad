"""In-memory source and sink: test doubles that keep the same contract as the real ones."""

from __future__ import annotations

import threading
import time
from collections import deque

from synlearner.stream.base import Delivery
from synlearner.stream.schema import TaskResult


class InMemorySource:
    def __init__(self, messages: list[bytes] | None = None) -> None:
        self._queue: deque[Delivery] = deque()
        self._inflight: dict[str, Delivery] = {}
        self._lock = threading.Condition()
        self._seq = 0
        self.acked: list[Delivery] = []
        self.dead_letters: list[tuple[Delivery, str]] = []
        for raw in messages or []:
            self.submit(raw, "")

    def submit(self, raw: bytes, key: str) -> str:
        with self._lock:
            self._seq += 1
            delivery = Delivery(raw=raw, ref=f"mem-{self._seq}", published_at=time.time())
            self._queue.append(delivery)
            self._lock.notify_all()
            return delivery.ref

    def poll(self, timeout_s: float) -> Delivery | None:
        with self._lock:
            if not self._queue:
                self._lock.wait(timeout_s)
            if not self._queue:
                return None
            delivery = self._queue.popleft()
            self._inflight[delivery.ref] = delivery
            return delivery

    def ack(self, delivery: Delivery) -> None:
        with self._lock:
            self.acked.append(self._inflight.pop(delivery.ref))

    def fail(self, delivery: Delivery, reason: str) -> None:
        with self._lock:
            self._inflight.pop(delivery.ref)
            self.dead_letters.append((delivery, reason))

    def restart(self) -> None:
        """What a crash does: unacknowledged deliveries come back first."""
        with self._lock:
            self._queue.extendleft(reversed(list(self._inflight.values())))
            self._inflight.clear()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        pass


class InMemoryResultSink:
    def __init__(self) -> None:
        self.results: list[TaskResult] = []

    def publish(self, result: TaskResult) -> None:
        self.results.append(result)

    def close(self) -> None:
        pass
