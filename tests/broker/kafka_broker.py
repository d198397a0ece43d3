"""A real single-node Apache Kafka 4.x broker (KRaft) for tests, built from Maven Central jars.

Used by the pytest session fixture (``with KafkaBroker() as broker: ...``) and by hand::

    python -m tests.broker.kafka_broker   # prints the bootstrap address, runs until SIGTERM/SIGINT

Needs ``java`` 17+ (PATH or ``JAVA_HOME``), ``mvn`` and kafka-python (readiness probe).
The jars are cached outside the repository, see :func:`libs_dir`.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from kafka import KafkaAdminClient

__all__ = ["KAFKA_VERSION", "KafkaBroker", "ensure_jars", "find_java", "libs_dir", "main"]

KAFKA_VERSION = "4.1.1"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
POM = Path(__file__).with_name("pom.xml")
MARKER = ".complete"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0

JVM_FLAGS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
TOOL_JVM_FLAGS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={datadir}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
num.network.threads=2
num.io.threads=2
background.threads=2
log.cleaner.dedupe.buffer.size=16777216
"""

LOG4J2_PROPERTIES = """\
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
"""

log = logging.getLogger(__name__)


def libs_dir() -> Path:
    """Return the jar cache: ``$ALIGNWATCH_KAFKA_LIBS`` or ``~/.cache/alignwatch/kafka-*-libs``."""
    env = os.environ.get("ALIGNWATCH_KAFKA_LIBS")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "alignwatch" / f"kafka-{KAFKA_VERSION}-libs"


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _is_complete(directory: Path) -> bool:
    marker = directory / MARKER
    return marker.is_file() and marker.read_text().strip() == _pom_digest()


def ensure_jars(directory: Path | None = None) -> Path:
    """Download the broker jars with Maven into ``directory`` unless already complete; return it.

    The jars land in a temporary sibling dir that is renamed into place only after Maven
    succeeded and the marker (the pom's SHA-256) was written; a lock serialises concurrent callers.
    """
    target = directory if directory is not None else libs_dir()
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_complete(target):
            return target
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError("Maven ('mvn') is not on PATH; it is needed to fetch the Kafka jars")
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            cmd = [
                mvn,
                "-B",
                "-q",
                "-f",
                str(POM),
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ]
            log.info("Fetching Kafka %s jars into %s", KAFKA_VERSION, target)
            started = time.monotonic()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(
                    f"mvn copy-dependencies failed (exit {proc.returncode}):\n"
                    f"{_tail(proc.stdout + proc.stderr)}"
                )
            if not any(staging.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
                raise RuntimeError(f"mvn finished but kafka_2.13-{KAFKA_VERSION}.jar is missing")
            (staging / MARKER).write_text(_pom_digest() + "\n")
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
            log.info("Fetched Kafka jars in %.1f s", time.monotonic() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def find_java() -> str:
    """Return the ``java`` executable: ``$JAVA_HOME/bin/java`` if set, else from PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("'java' (17+) is not on PATH and JAVA_HOME is not set")
    return java


def _free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free TCP ports on 127.0.0.1 (held open together while picking)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _random_cluster_id() -> str:
    """Return a Kafka-style cluster id: 16 random bytes as unpadded URL-safe base64."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


_LIVE: set[KafkaBroker] = set()


@atexit.register
def _kill_leftovers() -> None:
    for broker in list(_LIVE):
        broker.stop()


class KafkaBroker:
    """A single-node KRaft Kafka broker in a subprocess, with its config and data in a temp dir.

    ``start()`` formats storage and waits until the broker answers metadata requests;
    ``stop_process()``/``start_process()`` take it down and bring it back on the same
    ports and data (for outage tests); ``stop()`` kills it and deletes the temp dir.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        libs: Path | None = None,
        extra_properties: Mapping[str, str] | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> None:
        """Configure (but do not start) a broker; free loopback ports are picked when not given."""
        picked = iter(_free_ports(2))
        self.port: int = port if port is not None else next(picked)
        self.controller_port: int = controller_port if controller_port is not None else next(picked)
        if self.port == self.controller_port:
            self.controller_port = next(picked)
        self._libs = libs
        self._extra = dict(extra_properties or {})
        self.ready_timeout = ready_timeout
        self.workdir: Path | None = None
        self.cluster_id: str | None = None
        self.last_start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cmd: list[str] = []

    @property
    def bootstrap_servers(self) -> str:
        """The client bootstrap address, ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's combined stdout/stderr log (appended to across restarts)."""
        if self.workdir is None:
            raise RuntimeError("broker has not been started")
        return self.workdir / "broker.log"

    @property
    def is_running(self) -> bool:
        """Whether the broker JVM is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the broker JVM while it runs."""
        return self._proc.pid if self.is_running and self._proc is not None else None

    def start(self) -> Self:
        """Fetch jars if needed, write config, format storage, start the broker and wait for it."""
        if self.workdir is not None:
            raise RuntimeError("broker already started; use start_process() to restart it")
        started = time.monotonic()
        libs = ensure_jars(self._libs)
        java = find_java()
        self.workdir = Path(tempfile.mkdtemp(prefix="alignwatch-kafka-"))
        _LIVE.add(self)
        try:
            datadir = self.workdir / "data"
            props = SERVER_PROPERTIES.format(
                port=self.port, cport=self.controller_port, datadir=datadir
            )
            props += "".join(f"{key}={value}\n" for key, value in self._extra.items())
            (self.workdir / "server.properties").write_text(props)
            (self.workdir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
            base = [java, f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}"]
            classpath = ["-cp", str(libs / "*")]
            self.cluster_id = _random_cluster_id()
            fmt = subprocess.run(
                [
                    *base,
                    *TOOL_JVM_FLAGS,
                    *classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    self.cluster_id,
                    "-c",
                    "server.properties",
                ],
                cwd=self.workdir,
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise RuntimeError(
                    f"kafka StorageTool format failed (exit {fmt.returncode}):\n"
                    f"{_tail(fmt.stdout + fmt.stderr)}"
                )
            self._cmd = [*base, *JVM_FLAGS, *classpath, "kafka.Kafka", "server.properties"]
            self.start_process()
        except BaseException:
            self.stop()
            raise
        self.last_start_seconds = time.monotonic() - started
        log.info(
            "Kafka %s broker ready at %s in %.1f s (incl. jar check and format)",
            KAFKA_VERSION,
            self.bootstrap_servers,
            self.last_start_seconds,
        )
        return self

    def start_process(self) -> None:
        """(Re)start the JVM on the same ports and data dir (no reformat); wait until ready."""
        if self.workdir is None or not self._cmd:
            raise RuntimeError("broker has not been started; call start() first")
        if self.is_running:
            return
        started = time.monotonic()
        with open(self.log_path, "ab") as out:
            out.write(f"==== starting broker at {time.strftime('%H:%M:%S')} ====\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                self._cmd,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(started + self.ready_timeout)
        log.info(
            "Kafka broker process up at %s in %.1f s",
            self.bootstrap_servers,
            time.monotonic() - started,
        )

    def _wait_ready(self, deadline: float) -> None:
        """Poll until the broker serves a metadata request, else raise with the log tail."""
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.is_running:
                raise RuntimeError(self._failure(f"broker exited with code {self._returncode()}"))
            if _port_open(self.port):
                remaining_ms = max(1000, int((deadline - time.monotonic()) * 1000))
                try:
                    admin = KafkaAdminClient(
                        bootstrap_servers=self.bootstrap_servers,
                        client_id="alignwatch-broker-probe",
                        bootstrap_timeout_ms=min(remaining_ms, 5_000),
                        request_timeout_ms=min(remaining_ms, 5_000),
                    )
                    try:
                        admin.list_topics()
                        return
                    finally:
                        admin.close()
                except Exception as exc:  # any client error: not ready yet
                    last_error = exc
            time.sleep(0.2)
        self._terminate()
        raise RuntimeError(
            self._failure(
                f"broker not ready after {self.ready_timeout:.0f} s (last: {last_error!r})"
            )
        )

    def _returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def _failure(self, reason: str) -> str:
        try:
            tail = _tail(self.log_path.read_text(errors="replace"))
        except OSError:
            tail = "<no broker log>"
        head = f"Kafka broker at {self.bootstrap_servers}: {reason}"
        return f"{head}\n--- tail of {self.log_path} ---\n{tail}"

    def _terminate(self, timeout: float = STOP_TIMEOUT_S) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("Kafka broker did not exit %.0f s after SIGTERM; sending SIGKILL", timeout)
            proc.kill()
            proc.wait()
        log.info(
            "Kafka broker process stopped in %.1f s (exit %s)",
            time.monotonic() - started,
            proc.returncode,
        )

    def stop_process(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the JVM (SIGTERM, SIGKILL after ``timeout`` s); keep config and data."""
        self._terminate(timeout)

    def stop(self) -> None:
        """Stop the broker JVM and delete the temp dir; safe to call more than once."""
        self._terminate()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self._cmd = []
        _LIVE.discard(self)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Start a broker, print its bootstrap address and run until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        description="Run a single-node Kafka broker for alignwatch tests."
    )
    parser.add_argument("--port", type=int, default=None, help="client port (default: a free one)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python: the readiness probe
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with KafkaBroker(port=args.port) as broker:
        print(broker.bootstrap_servers, flush=True)  # the CLI's output
        log.info("Broker log: %s; stop with SIGTERM or Ctrl-C", broker.log_path)
        while not stop.wait(1.0):
            if not broker.is_running:
                log.error("Kafka broker exited unexpectedly; see %s", broker.log_path)
                with contextlib.suppress(OSError):
                    sys.stderr.write(_tail(broker.log_path.read_text(errors="replace")) + "\n")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
