"""The `stream` section of the config: which source, its limits, quarantine and back-off,
and Kafka. Sources and sinks take it as it is; each default is declared here (limits in
`schema.Limits`) and nowhere else."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from synlearner.stream.schema import Limits


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(_Section):
    """Kafka (`stream.kind: kafka`): brokers, topics, the consumer group, timeouts, security."""

    bootstrap_servers: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:9092"], description="brokers to connect to first (host:port)")
    topic: str = Field("synlearner.tasks", description="the topic tasks are consumed from")
    results_topic: str = Field("synlearner.results", description="the topic task results are published to")
    dead_letter_topic: str = Field("synlearner.tasks.dlq", description="the topic dead letters go to")
    group_id: str = Field("synlearner", description="the consumer group (one per daemon sharing the work)")
    client_id: str = Field("synlearner", description="the client id the broker sees")
    max_poll_interval_ms: int = Field(
        300_000, gt=0, description="Kafka's max.poll.interval.ms (a thread polls throughout training)")
    session_timeout_ms: int = Field(45_000, gt=0, description="Kafka's session.timeout.ms")
    poll_timeout_ms: int = Field(200, gt=0, description="how long one poll of the broker waits")
    delivery_timeout_s: float = Field(
        120.0, gt=0, description="longest wait for the broker to acknowledge a published message")
    unhealthy_after_s: float = Field(
        300.0, gt=0, description="the broker unreachable this long: /healthz reports the daemon unhealthy")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 (with SASL_*)")
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(None, description="SASL password")
    ssl_cafile: Path | None = Field(None, description="CA certificates that sign the brokers' (PEM)")
    ssl_certfile: Path | None = Field(None, description="the client certificate (PEM)")
    ssl_keyfile: Path | None = Field(None, description="the client certificate's private key (PEM)")

    def common(self) -> dict[str, Any]:
        """The kafka-python client options every consumer and producer takes."""
        security = {
            "security_protocol": self.security_protocol, "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": (self.sasl_password.get_secret_value()
                                    if self.sasl_password else None),
            "ssl_cafile": str(self.ssl_cafile) if self.ssl_cafile else None,
            "ssl_certfile": str(self.ssl_certfile) if self.ssl_certfile else None,
            "ssl_keyfile": str(self.ssl_keyfile) if self.ssl_keyfile else None,
        }
        return {"bootstrap_servers": list(self.bootstrap_servers), "client_id": self.client_id,
                **{k: v for k, v in security.items() if v is not None}}


class StreamConfig(_Section):
    kind: Literal["spool", "kafka", "memory"] = Field(
        "spool", description="the task source: spool (a directory, the default) | kafka | memory (tests)")
    spool_dir: Path | None = Field(None, description="the spool directory (null: <state_dir>/spool)")
    poll_timeout_s: float = Field(1.0, gt=0, description="how long one poll of the source waits for a task")
    max_attempts: int = Field(3, ge=1, description="a message that crashed the process this often at "
                              "one point is dead-lettered; also the tries of a task out of memory")
    backoff_max_s: float = Field(
        60.0, gt=0, description="longest wait between retries of a failure that is not the message's")
    failed_max_age_s: float = Field(30 * 86400, ge=0, description="spool failed/: dead letters older "
                                    "than this go when the next one is written (0: kept)")
    failed_max_count: int = Field(
        10_000, ge=0, description="spool failed/: past this many dead letters the oldest go (0: no limit)")
    limits: Limits = Field(
        Limits(), description="what a task message may hold, and what happens to what is over")
    kafka: KafkaConfig = Field(KafkaConfig(), description="the Kafka source and sinks (`kind: kafka`)")
