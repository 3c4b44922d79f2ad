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
    bootstrap_servers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"])
    topic: str = "synlearner.tasks"
    results_topic: str = "synlearner.results"
    dead_letter_topic: str = "synlearner.tasks.dlq"
    group_id: str = "synlearner"
    client_id: str = "synlearner"
    max_poll_interval_ms: int = Field(300_000, gt=0)
    session_timeout_ms: int = Field(45_000, gt=0)
    poll_timeout_ms: int = Field(200, gt=0)
    delivery_timeout_s: float = Field(120.0, gt=0)
    unhealthy_after_s: float = Field(300.0, gt=0)  # the broker unreachable this long: unhealthy
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None  # prefer SYNLEARNER__STREAM__KAFKA__SASL_PASSWORD
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

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
    kind: Literal["spool", "kafka", "memory"] = "spool"
    spool_dir: Path | None = None  # default: <state_dir>/spool
    poll_timeout_s: float = Field(1.0, gt=0)
    # a message that died this many times in a row at the same point (it crashed the
    # process) is dead-lettered as `crashed N times at the same point`; also the tries a
    # task that runs out of memory gets
    max_attempts: int = Field(3, ge=1)
    backoff_max_s: float = Field(60.0, gt=0)  # longest wait between retries of a transient failure
    # spool failed/: a dead letter older than this is deleted when the next one is written (0: kept)
    failed_max_age_s: float = Field(30 * 86400, ge=0)
    # spool failed/: past this many dead letters the oldest are deleted (0: no limit)
    failed_max_count: int = Field(10_000, ge=0)
    limits: Limits = Limits()
    kafka: KafkaConfig = KafkaConfig()


