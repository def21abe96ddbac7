"""A real Apache Kafka broker on loopback, without Docker.

Kafka's jars come from Maven Central through Maven into a cache folder, once; after that a
start takes seconds. One process is both broker and KRaft controller. Its storage is formatted
the first time a home folder is used and kept after that, because the command log is the system
of record: stopping the broker must not lose it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import BrokerError

KAFKA_VERSION = "4.4.0"
_SCALA = "2.13"
# Kafka 4.x logs through SLF4J 1.7 and ships no binding: this one routes it into log4j2 at the
# version Kafka itself resolves, so the broker's log is not silently empty.
_SLF4J_BINDING = ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.25.5")
_READY_LINE = "Kafka Server started"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cqrs</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>{b_group}</groupId>
      <artifactId>{b_artifact}</artifactId>
      <version>{b_version}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
"""


class KafkaDistribution:
    """Kafka's runtime jars in `<cache_dir>/kafka-<version>/libs`, fetched by Maven once."""

    def __init__(self, cache_dir: Path, version: str = KAFKA_VERSION) -> None:
        self.root = Path(cache_dir).resolve() / f"kafka-{version}"
        self.version = version
        self.libs = self.root / "libs"
        self._marker = self.root / ".complete"

    @property
    def is_cached(self) -> bool:
        return self._marker.exists()

    def ensure(self) -> Path:
        """Return the libs folder, fetching it first if this cache has not got it yet."""
        if self.is_cached:
            return self.libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "Maven (`mvn`) is not on PATH: it fetches Kafka from Maven Central the first "
                "time; install Maven, or set CQRS_BROKERS to use a running broker"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        if self.libs.exists():
            shutil.rmtree(self.libs)
        pom = self.root / "pom.xml"
        b_group, b_artifact, b_version = _SLF4J_BINDING
        pom.write_text(
            _POM.format(
                version=self.version,
                scala=_SCALA,
                b_group=b_group,
                b_artifact=b_artifact,
                b_version=b_version,
            )
        )
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={self.libs}",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-3000:]
            raise BrokerError(f"Maven could not fetch Kafka {self.version}:\n{tail}")
        if not any(self.libs.glob(f"kafka_{_SCALA}-{self.version}.jar")):
            raise BrokerError(f"Maven finished but {self.libs} has no Kafka jar")
        self._marker.write_text(json.dumps(sorted(p.name for p in self.libs.iterdir())))
        return self.libs


@dataclass
class BrokerState:
    """What a started broker leaves in `<home>/broker.json`, so another process can find it."""

    pid: int
    port: int
    controller_port: int
    started_at: float

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the JVM binds: connections of the previous run in TIME_WAIT do not block it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _is_broker_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline


class LocalBroker:
    """One single-node KRaft broker whose files live under `home`."""

    def __init__(
        self, home: Path, distribution: KafkaDistribution, port: int | None = None
    ) -> None:
        self.home = Path(home).resolve()
        self.dist = distribution
        self.requested_port = port
        self.log_dir = self.home / "kraft"
        self.log_file = self.home / "broker.log"
        self._state_file = self.home / "broker.json"
        self._ports_file = self.home / "ports.json"

    def status(self) -> BrokerState | None:
        """The running broker's state, or None if none runs from this home."""
        if not self._state_file.exists():
            return None
        state = BrokerState(**json.loads(self._state_file.read_text()))
        return state if _is_broker_process(state.pid) else None

    def start(self, timeout_s: float = 90.0) -> BrokerState:
        """Start the broker (or find it already running) and wait until it answers."""
        running = self.status()
        if running is not None:
            return running
        libs = self.dist.ensure()
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java (`java`, 17 or newer) is not on PATH; the broker needs it")
        self.home.mkdir(parents=True, exist_ok=True)
        port, cport = self._ports()
        for p in (port, cport):
            if not _port_is_free(p):
                raise BrokerError(
                    f"port {p} on 127.0.0.1 is taken; the broker in {self.home} was formatted "
                    f"with it. Free the port, or use another data dir (CQRS_DATA_DIR)"
                )
        config = self.home / "server.properties"
        config.write_text(self._server_properties(port, cport))
        log4j = self.home / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        classpath = f"{libs}/*"
        if not (self.log_dir / "meta.properties").exists():
            self._format(java, classpath, config)
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                [
                    java,
                    "-Xms256m",
                    "-Xmx512m",
                    "-XX:+UseG1GC",
                    f"-Dlog4j2.configurationFile={log4j}",
                    "-cp",
                    classpath,
                    "kafka.Kafka",
                    str(config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        state = BrokerState(pid=proc.pid, port=port, controller_port=cport, started_at=time.time())
        self._state_file.write_text(json.dumps(asdict(state)))
        try:
            self._wait_ready(proc, state, log_offset, timeout_s)
        except BrokerError:
            self._terminate(proc.pid, 10)
            raise
        return state

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker cleanly (SIGTERM, then SIGKILL after `timeout_s`); False if none ran."""
        state = self.status()
        if state is None:
            return False
        self._terminate(state.pid, timeout_s)
        self._state_file.unlink(missing_ok=True)
        return True

    def _ports(self) -> tuple[int, int]:
        """Ports are chosen once per home: the KRaft voter record holds the controller's."""
        if self._ports_file.exists() and (self.log_dir / "meta.properties").exists():
            saved = json.loads(self._ports_file.read_text())
            if self.requested_port not in (None, saved["port"]):
                raise BrokerError(
                    f"the broker in {self.home} was formatted on port {saved['port']}; "
                    f"drop --port, or use another data dir for port {self.requested_port}"
                )
            return saved["port"], saved["controller_port"]
        port = self.requested_port or free_port()
        cport = free_port()
        while cport == port:
            cport = free_port()
        self._ports_file.write_text(json.dumps({"port": port, "controller_port": cport}))
        return port, cport

    def _server_properties(self, port: int, cport: int) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{cport}",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # Large commands must reach the pipeline (and its DLQ) rather than bounce here.
            "message.max.bytes": str(16 * 1024 * 1024),
            "replica.fetch.max.bytes": str(16 * 1024 * 1024),
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def _format(self, java: str, classpath: str, config: Path) -> None:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        cmd = [
            java,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            # `=` form: a random id may start with "-", which argparse would take for a flag.
            f"--cluster-id={cluster_id}",
            f"--config={config}",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerError(
                f"formatting KRaft storage in {self.log_dir} failed:\n{done.stdout}{done.stderr}"
            )

    def _wait_ready(
        self, proc: subprocess.Popen[bytes], state: BrokerState, log_offset: int, timeout_s: float
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with code {proc.returncode} while starting; "
                    f"log tail ({self.log_file}):\n{self._log_tail(log_offset)}"
                )
            with self.log_file.open("rb") as f:
                f.seek(log_offset)
                started = _READY_LINE.encode() in f.read()
            if started and _answers(state.port):
                return
            time.sleep(0.25)
        raise BrokerError(
            f"the broker did not answer on {state.bootstrap} within {timeout_s:.0f}s; "
            f"log tail ({self.log_file}):\n{self._log_tail(log_offset)}"
        )

    def _log_tail(self, offset: int, size: int = 4000) -> str:
        with self.log_file.open("rb") as f:
            f.seek(max(offset, self.log_file.stat().st_size - size))
            return f.read().decode(errors="replace")

    @staticmethod
    def _terminate(pid: int, timeout_s: float) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _is_broker_process(pid) or _is_zombie(pid):
                _reap(pid)
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _reap(pid: int) -> None:
    """Collect the exit status when the broker is our own child, so it leaves no zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _answers(port: int) -> bool:
    """True once the broker serves metadata (a bare TCP accept comes earlier than that)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=f"127.0.0.1:{port}",
            bootstrap_timeout_ms=3000,
            request_timeout_ms=3000,
        )
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()
