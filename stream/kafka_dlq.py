"""Dead letters on Kafka: how they are written, listed and put back on the tasks topic.

A dead letter carries the original bytes and key, with headers: `synlearner.error` (the
reason), `synlearner.source.{topic,partition,offset}` (where the task was read), and
`synlearner.attempts` when the daemon counted attempts. A record too large to republish
is dead-lettered as a small JSON stub (`synlearner.stub`, its size, SHA-256 and source
coordinates) with the same headers plus `synlearner.stub: 1`.

`list_dead_letters` reads the dead-letter topic from the beginning without a consumer group
(nothing is committed, any number of readers) and returns `DeadLetter`s. `requeue`
republishes dead letters to the tasks topic with their key (a stub: the original, read back
from its source coordinates while the tasks topic still retains it) and records what it
requeued in a small JSON file, so requeueing everything again skips them. Requeueing
everything also skips dead letters quarantined for crashing the process (`crashed`): those
go back only when named.

Anyone who may write to the dead-letter topic can put a stub there, so a stub is trusted
only as far as it is checked: its original is read back only from the configured tasks
topic, and only when its bytes have the SHA-256 the stub gives. A dead letter that is no
stub is republished as it is: who may write to the dead-letter topic may put a task on
the stream through a requeue, so give that topic the same write ACLs as the tasks topic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, MessageSizeTooLargeError

from synlearner.stream.base import DeadLetter, Delivery
from synlearner.stream.config import KafkaConfig, StreamConfig
from synlearner.stream.errors import SourceUnavailable
from synlearner.stream.io import write_atomic
from synlearner.stream.kafka_io import Headers, ProducerSlot, new_consumer, send_until
from synlearner.stream.kafka_io import producer as make_producer
from synlearner.stream.spool_dlq import crashed

log = logging.getLogger(__name__)
ERROR = "synlearner.error"
SOURCE = "synlearner.source."  # + topic, partition, offset
ATTEMPTS = "synlearner.attempts"
STUB = "synlearner.stub"
REQUEUED_FROM = "synlearner.requeued.from"  # on a requeued task: the dead letter's id
STUB_TEXT = "record too large to republish"
MAX_REASON_BYTES = 4096
MAX_REQUEUE_BYTES = 16 * 1024 * 1024  # the requeue producer's limit (the broker has its own)
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class RequeueReport:
    requeued: list[str] = field(default_factory=list)  # dead letter ids, in topic order
    skipped: dict[str, str] = field(default_factory=dict)  # id: why not


# -- writing --------------------------------------------------------------------------------
def dead_letter_headers(delivery: Delivery, reason: str) -> Headers:
    headers = [(ERROR, reason.encode()[:MAX_REASON_BYTES])]
    headers += [(f"{SOURCE}{k}", delivery.attrs[k].encode())
                for k in ("topic", "partition", "offset") if k in delivery.attrs]
    attempts = delivery.attrs.get("attempts")
    if attempts is not None:
        headers.append((ATTEMPTS, str(attempts).encode()))
    return headers


def stub(delivery: Delivery, headers: Headers) -> tuple[bytes, Headers]:
    """The small JSON record that stands in for one too large to republish."""
    source: dict[str, str | int] = {}
    for k in ("topic", "partition", "offset"):
        v = delivery.attrs.get(k)
        if v is not None:
            source[k] = int(v) if k != "topic" and v.isdigit() else v
    body = {STUB: STUB_TEXT, "bytes": len(delivery.raw),
            "sha256": hashlib.sha256(delivery.raw).hexdigest(), "source": source}
    return json.dumps(body).encode(), [*headers, (STUB, b"1")]


# -- reading --------------------------------------------------------------------------------
def send_dead_letter(slot: ProducerSlot, topic: str, delivery: Delivery, reason: str) -> None:
    """The original bytes to the dead-letter topic with the reason and source headers; a
    record too large to send again goes as a stub that points to its source."""
    headers = dead_letter_headers(delivery, reason)
    key = delivery.attrs.get("key")
    key_bytes = key.encode() if key is not None else None
    try:
        slot.send(topic, delivery.raw, key_bytes, headers)
    except MessageSizeTooLargeError as exc:
        log.warning("kafka: %s is too large to dead-letter (%d bytes: %r); sending a stub",
                    delivery.ref, len(delivery.raw), exc)
        value, headers = stub(delivery, headers)
        slot.send(topic, value, key_bytes, headers)


def list_dead_letters(stream: StreamConfig, requeued_log: Path | None = None,
                      timeout_s: float = 60.0) -> list[DeadLetter]:
    """Every record on the dead-letter topic, oldest first per partition; `requeued` is read
    from `requeued_log` (as written by `requeue`). Raises `SourceUnavailable` when the topic
    cannot be read to its end within `timeout_s`."""
    done = _read_log(requeued_log)
    settings = stream.kafka
    with _reader(settings) as consumer:
        return [_describe(rec, done) for rec in _scan(consumer, settings.dead_letter_topic, timeout_s)]


def requeue(stream: StreamConfig, ids: Sequence[str] | None, requeued_log: Path,
            force: bool = False, timeout_s: float = 60.0) -> list[str]:
    """Republish dead letters (`ids`, or all when None) to the tasks topic, keyed as before.
    Returns the ids requeued; dead letters already requeued are skipped unless `force`, and
    so are stubs whose original the tasks topic no longer holds (see `requeue_report`).
    Raises `KeyError` naming the ids that are not on the dead-letter topic (before it
    requeues anything), `SourceUnavailable` when the broker cannot be used."""
    return requeue_report(stream, ids, requeued_log, force, timeout_s).requeued


def requeue_report(stream: StreamConfig, ids: Sequence[str] | None, requeued_log: Path,
                   force: bool = False, timeout_s: float = 60.0) -> RequeueReport:
    """`requeue`, also telling why each requested dead letter that was not requeued was not.
    `ids` None: every dead letter but those quarantined for crashing the process."""
    done = _read_log(requeued_log)
    settings = stream.kafka
    wanted = None if ids is None else set(ids)
    if wanted:
        with _reader(settings) as consumer:
            known = {_id(rec) for rec in _scan(consumer, settings.dead_letter_topic, timeout_s)}
        if wanted - known:
            raise KeyError(f"no such dead letter: {', '.join(map(repr, sorted(wanted - known)))}")
    report = RequeueReport()
    producer: KafkaProducer | None = None
    with _reader(settings) as consumer, _reader(settings) as originals:
        try:
            for rec in _scan(consumer, settings.dead_letter_topic, timeout_s):
                dl_id = _id(rec)
                if wanted is not None and dl_id not in wanted:
                    continue
                if dl_id in done and not force:
                    report.skipped[dl_id] = f"already requeued as {done[dl_id].get('to', '?')}"
                    continue
                if wanted is None and crashed(_describe(rec, done)):
                    report.skipped[dl_id] = "quarantined for crashing the process: requeue it by id"
                    continue
                headers = _headers(rec)
                value: bytes = rec.value or b""
                if STUB in headers:
                    original = _original(originals, headers, value, settings.topic, timeout_s)
                    if isinstance(original, str):
                        report.skipped[dl_id] = original
                        log.warning("kafka: cannot requeue %s: %s", dl_id, original)
                        continue
                    value = original
                if producer is None:
                    producer = make_producer(
                        stream, max(stream.limits.max_message_bytes + 64 * 1024, MAX_REQUEUE_BYTES))
                to = send_until(producer, time.monotonic() + settings.delivery_timeout_s,
                                settings.topic, value, rec.key, [(REQUEUED_FROM, dl_id.encode())])
                done[dl_id] = {"to": to, "at": time.time()}
                _write_log(requeued_log, done)
                report.requeued.append(dl_id)
                log.info("kafka: requeued %s as %s", dl_id, to)
        finally:
            if producer is not None:
                producer.close(timeout=10)
    return report


@contextlib.contextmanager
def _reader(settings: KafkaConfig) -> Iterator[KafkaConsumer]:
    """A consumer without a group: assigns partitions itself, commits nothing."""
    try:
        consumer = new_consumer(**settings.common(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    except KafkaError as exc:
        raise SourceUnavailable(f"kafka: cannot reach the broker: {exc!r}") from exc
    try:
        yield consumer
    finally:
        consumer.close(autocommit=False)


def _scan(consumer: KafkaConsumer, topic: str, timeout_s: float) -> Iterator[Any]:
    """Records of `topic` from the beginning up to its end offsets as of now."""
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        if not parts:
            return
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts, timeout_ms=int(timeout_s * 1000))
        left = {tp for tp in parts if consumer.position(tp, timeout_ms=int(timeout_s * 1000)) < ends[tp]}
        deadline = time.monotonic() + timeout_s
        while left:
            if time.monotonic() >= deadline:
                raise SourceUnavailable(f"kafka: could not read {topic} to its end in {timeout_s} s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for rec in records:
                    if rec.offset < ends[tp]:
                        yield rec
            left = {tp for tp in left if consumer.position(tp, timeout_ms=5000) < ends[tp]}
            consumer.pause(*(set(parts) - left))
    except KafkaError as exc:
        raise SourceUnavailable(f"kafka: cannot read {topic}: {exc!r}") from exc


def _id(rec: Any) -> str:
    return f"{rec.topic}/{rec.partition}/{rec.offset}"


def _headers(rec: Any) -> dict[str, bytes]:
    return {k: v for k, v in (rec.headers or [])}


def _describe(rec: Any, done: dict[str, dict[str, Any]]) -> DeadLetter:
    headers = _headers(rec)
    text = {k: v.decode("utf-8", "replace") for k, v in headers.items()}
    source = "/".join(text.get(f"{SOURCE}{k}", "") for k in ("topic", "partition", "offset"))
    attempts = text.get(ATTEMPTS, "")
    dl_id = _id(rec)
    return DeadLetter(
        id=dl_id, reason=text.get(ERROR, ""),
        when=rec.timestamp / 1000 if rec.timestamp and rec.timestamp > 0 else 0.0,
        attempts=int(attempts) if attempts.isdigit() else 0,
        source="" if source == "//" else source, requeued=dl_id in done, stub=STUB in headers,
    )


def _stub_source(headers: dict[str, bytes], stub_value: bytes,
                 tasks_topic: str) -> tuple[TopicPartition, int, str] | str:
    """Where a stub's original is and its SHA-256, or why the stub cannot be trusted."""
    try:
        topic = headers[f"{SOURCE}topic"].decode()
        tp = TopicPartition(topic, int(headers[f"{SOURCE}partition"]))
        offset = int(headers[f"{SOURCE}offset"])
        body = json.loads(stub_value)
    except (KeyError, ValueError) as exc:
        return f"the stub does not say where its original is ({exc!r})"
    digest = body.get("sha256") if isinstance(body, dict) else None
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        return "the stub has no valid SHA-256 of its original; refusing to republish it"
    if topic != tasks_topic:
        return (f"the stub points to topic {topic!r}, not the tasks topic {tasks_topic!r}; "
                "refusing to republish from it")
    return tp, offset, digest


def _original(consumer: KafkaConsumer, headers: dict[str, bytes], stub_value: bytes,
              tasks_topic: str, timeout_s: float) -> bytes | str:
    """A stub's original bytes, read back from its source coordinates on the tasks topic and
    checked against its SHA-256, or why not."""
    source = _stub_source(headers, stub_value, tasks_topic)
    if isinstance(source, str):
        return source
    tp, offset, digest = source
    where = f"{tp.topic}/{tp.partition}/{offset}"
    try:
        consumer.assign([tp])
        first = consumer.beginning_offsets([tp], timeout_ms=int(timeout_s * 1000)).get(tp, 0)
        end = consumer.end_offsets([tp], timeout_ms=int(timeout_s * 1000)).get(tp, 0)
        if not first <= offset < end:
            return f"the original at {where} is no longer retained"
        consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for rec in consumer.poll(timeout_ms=500).get(tp, []):
                if rec.offset == offset:
                    value: bytes = rec.value or b""
                    if hashlib.sha256(value).hexdigest() != digest:
                        return f"the record at {where} is not the original (SHA-256 differs)"
                    return value
                if rec.offset > offset:
                    return f"the original at {where} is no longer retained"
    except KafkaError as exc:
        raise SourceUnavailable(f"kafka: cannot read {where}: {exc!r}") from exc
    raise SourceUnavailable(f"kafka: could not read {where} in {timeout_s} s")


# -- the requeued log -----------------------------------------------------------------------
def _read_log(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None or not path.exists():
        return {}
    data = json.loads(path.read_text())
    requeued = data.get("requeued", {}) if isinstance(data, dict) else {}
    return {str(k): v for k, v in requeued.items() if isinstance(v, dict)}


def _write_log(path: Path, requeued: dict[str, dict[str, Any]]) -> None:
    """Written atomically: a temporary file, fsync'd, renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"requeued": requeued}, indent=1, sort_keys=True).encode())
