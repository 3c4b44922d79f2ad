"""A real single-node KRaft Apache Kafka broker on 127.0.0.1, for trying the Kafka stream
on one machine and for the Kafka tests and benchmark (`bench/bench_kafka.py`): Apache
Kafka's own jars, which `.ci/tools.sh` fetches from Maven Central (`pom.xml` beside this
module) into `~/.cache/synlearner/tools`, run with Java 17 on free loopback ports."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

KAFKA_VERSION = "3.9.1"
TOOLS = Path(os.environ.get("SYNLEARNER_TOOLS", Path.home() / ".cache/synlearner/tools"))
LIB = TOOLS / f"kafka-{KAFKA_VERSION}" / "lib"

LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KafkaBroker:
    def __init__(self, workdir: Path) -> None:
        if not (LIB / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            raise RuntimeError(f"no Kafka broker jars in {LIB}: run `bash .ci/tools.sh` first")
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("java (17+) is needed to run the Kafka broker")
        self.java = java
        self.dir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": "16777216",
            "num.network.threads": "1",
            "num.io.threads": "2",
            "auto.create.topics.enable": "false",
        }
        self.config = self.dir / "server.properties"
        self.config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.dir / "log4j.properties").write_text(LOG4J)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cluster_id = "A" + cluster_id[1:] if cluster_id.startswith("-") else cluster_id
        self._java("kafka.tools.StorageTool", "format", "--ignore-formatted", "-t", cluster_id,
                   "-c", str(self.config), wait=True)

    def _java(self, main: str, *args: str, wait: bool = False) -> subprocess.Popen[bytes]:
        cmd = [self.java, "-Xms256m", "-Xmx512m", "-XX:ActiveProcessorCount=2",
               f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
               "-cp", f"{LIB}/*", main, *args]
        log = (self.dir / "broker.log").open("ab")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        if wait and proc.wait(timeout=120) != 0:
            raise RuntimeError(f"{main} failed: {(self.dir / 'broker.log').read_text()[-2000:]}")
        return proc

    def start(self, timeout: float = 90.0) -> None:
        self.proc = self._java("kafka.Kafka", str(self.config))
        deadline = time.monotonic() + timeout
        from kafka import KafkaAdminClient

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited: {(self.dir / 'broker.log').read_text()[-3000:]}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                admin.list_topics()
                admin.close()
                return
            except Exception:  # noqa: BLE001  # not up yet
                time.sleep(0.5)
        raise RuntimeError(f"broker did not start in {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def create_topic(self, name: str, partitions: int = 1) -> None:
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            admin.close()
