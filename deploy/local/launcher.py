"""Run a single-node Apache Kafka (KRaft, broker+controller) from Maven-resolved jars.

No Docker and no Kafka tarball: Maven copies the jars named by the packaged ``pom.xml``
into a cache, and the broker runs as a detached ``java ... kafka.Kafka`` process whose
state (KRaft logs, ports, pid, ``broker.out``) lives in one data directory, so a killed
or stopped broker can be started again on the same data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

from catalogflow.streams.errors import CatalogflowError
from confluent_kafka.admin import AdminClient

Progress = Callable[[str], None]

_PACKAGE = "catalogflow.localbroker"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_MARKER = ".catalogflow-complete"
_TAIL_LINES = 40


def _read_kafka_version() -> str:
    """The Kafka version is declared once, in the packaged pom.xml."""
    root = ET.fromstring(resources.files(_PACKAGE).joinpath("pom.xml").read_text())
    node = root.find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not node.text:
        raise CatalogflowError("pom.xml has no <kafka.version> property")
    return node.text.strip()


KAFKA_VERSION = _read_kafka_version()


def default_cache_dir() -> Path:
    override = os.environ.get("CATALOGFLOW_KAFKA_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "catalogflow" / f"kafka-{KAFKA_VERSION}"


def _ignore(_: str) -> None:
    pass


@dataclass(frozen=True)
class BrokerConfig:
    """Where a local broker keeps its state and how it listens.

    ``port``/``controller_port`` 0 means "pick a free port"; the ports actually used are
    saved in ``data_dir`` on first start and reused on every restart of the same data.
    """

    data_dir: Path
    cache_dir: Path = field(default_factory=default_cache_dir)
    host: str = "127.0.0.1"
    port: int = 0
    controller_port: int = 0
    heap_mb: int = 512


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str | None
    data_dir: Path
    kafka_version: str


def tail(path: Path, lines: int = _TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise CatalogflowError("java not found: Kafka 4.x needs Java 17+ on PATH or JAVA_HOME")
    return found


def ensure_jars(cache_dir: Path, progress: Progress = _ignore) -> Path:
    """Return ``cache_dir`` holding every jar the broker needs, resolving them once.

    Maven copies into a sibling temp dir that is renamed into place after a marker is
    written, so an interrupted download is never mistaken for a complete cache.
    """
    if (cache_dir / _MARKER).is_file():
        return cache_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise CatalogflowError("mvn not found: Maven is needed once to fetch the Kafka jars")
    progress(f"resolving Kafka {KAFKA_VERSION} jars with Maven into {cache_dir}")
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir.parent, prefix=".kafka-jars-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(resources.files(_PACKAGE).joinpath("pom.xml").read_text())
        out = Path(tmp) / "jars"
        cmd = [
            mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom),
            "dependency:copy-dependencies", f"-DoutputDirectory={out}", "-DincludeScope=runtime",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0 or not any(out.glob("kafka_2.13-*.jar")):
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-_TAIL_LINES:])
            raise CatalogflowError(
                f"Maven could not resolve the Kafka jars (exit {done.returncode}).\n"
                f"command: {' '.join(cmd)}\n{tail}"
            )
        (out / _MARKER).write_text(KAFKA_VERSION + "\n")
        if cache_dir.exists() and not (cache_dir / _MARKER).is_file():
            shutil.rmtree(cache_dir)  # a half-copied cache from an older attempt
        try:
            out.rename(cache_dir)
        except OSError:
            if not (cache_dir / _MARKER).is_file():  # lost a race to another process?
                raise
    return cache_dir


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(host: str, port: int) -> bool:
    """Bind like the JVM does (SO_REUSEADDR), so TIME_WAIT after a kill is not "in use"."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _process_alive(pid: int) -> bool:
    """True for a live (not zombie) ``kafka.Kafka`` JVM; guards against reused pids."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            return False
        state = stat.rsplit(")", 1)[-1].split()[0]
        return state not in ("Z", "X") and b"kafka.Kafka" in cmdline
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class LocalBroker:
    """One broker process bound to one data directory.

    Another ``LocalBroker`` on the same data dir (or the CLI) sees the same process
    through the pid file, so ``stop``/``status`` work across processes.
    """

    def __init__(self, config: BrokerConfig, progress: Progress = _ignore) -> None:
        self.config = config
        self.progress = progress
        self.last_start_seconds: float | None = None
        self.last_format_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.config.data_dir.resolve()

    @property
    def log_dir(self) -> Path:
        """KRaft metadata and topic partitions (``log.dirs``)."""
        return self.data_dir / "kraft"

    @property
    def output_file(self) -> Path:
        """The JVM's stdout/stderr: warnings, errors and start/stop lines."""
        return self.data_dir / "broker.out"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def _ports_file(self) -> Path:
        return self.data_dir / "ports.json"

    # -- public API --------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> str:
        """Start the broker (formatting storage on first use) and return its bootstrap.

        Blocks until a metadata request answers. Raises ``CatalogflowError`` quoting the
        tail of ``broker.out`` if the JVM exits or ``timeout`` passes first.
        """
        began = time.monotonic()
        pid = self._running_pid()
        if pid is not None:
            bootstrap = self._bootstrap()
            self.progress(f"already running (pid {pid}) at {bootstrap}")
            return bootstrap
        jars = ensure_jars(self.config.cache_dir, self.progress)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port, controller_port = self._resolve_ports()
        for p in (port, controller_port):
            if not _port_is_free(self.config.host, p):
                raise CatalogflowError(f"port {self.config.host}:{p} is already in use")
        properties = self._render_properties(port, controller_port)
        if not (self.log_dir / "meta.properties").is_file():
            self._format(jars, properties)
        self.progress(f"starting Kafka {KAFKA_VERSION} (data in {self.data_dir})")
        self._launch(jars, properties)
        bootstrap = f"{self.config.host}:{port}"
        self._wait_ready(bootstrap, began + timeout)
        self.last_start_seconds = time.monotonic() - began
        self.progress(f"ready at {bootstrap} in {self.last_start_seconds:.1f} s")
        return bootstrap

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``. False if no broker was running."""
        pid = self._running_pid()
        if pid is None:
            return False
        self.progress(f"stopping broker (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout):
            self.progress(f"no exit after {timeout:.0f} s; killing pid {pid}")
            os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
        self._pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL at once, like a crash (for fault tests). False if none was running."""
        pid = self._running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        self._wait_exit(pid, 10.0)
        self._pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> BrokerStatus:
        pid = self._running_pid()
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=self._bootstrap() if pid is not None else None,
            data_dir=self.data_dir,
            kafka_version=KAFKA_VERSION,
        )

    # -- internals ---------------------------------------------------------------------
    def _running_pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None  # reaped: no zombie left behind
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if self._proc is not None and self._proc.pid == pid:
            return pid
        return pid if _process_alive(pid) else None

    def _bootstrap(self) -> str:
        port, _ = self._saved_ports() or (self.config.port, 0)
        return f"{self.config.host}:{port}"

    def _saved_ports(self) -> tuple[int, int] | None:
        try:
            saved = json.loads(self._ports_file.read_text())
            return int(saved["port"]), int(saved["controller_port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _resolve_ports(self) -> tuple[int, int]:
        """Saved ports win; the controller port is fixed once the quorum is formatted."""
        host = self.config.host
        saved = self._saved_ports()
        if saved is not None:
            port, controller_port = saved
            if self.config.controller_port not in (0, controller_port):
                raise CatalogflowError(
                    f"{self.data_dir} was formatted with controller port {controller_port}, "
                    f"not {self.config.controller_port}"
                )
            if self.config.port not in (0, port):
                port = self.config.port  # the client port may move freely
        else:
            port = self.config.port or free_port(host)
            controller_port = self.config.controller_port or free_port(host)
            while controller_port == port:
                controller_port = free_port(host)
        self._ports_file.write_text(json.dumps({"port": port, "controller_port": controller_port}))
        return port, controller_port

    def _render_properties(self, port: int, controller_port: int) -> Path:
        template = Template(resources.files(_PACKAGE).joinpath("server.properties").read_text())
        text = template.substitute(
            host=self.config.host,
            port=port,
            controller_port=controller_port,
            log_dirs=self.log_dir,
        )
        path = self.data_dir / "server.properties"
        path.write_text(text)
        return path

    def _tool(self, jars: Path, *args: str) -> str:
        cmd = [_java(), "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", f"{jars}/*",
               "kafka.tools.StorageTool", *args]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise CatalogflowError(
                f"StorageTool {args[0]} failed (exit {done.returncode}): "
                f"{' '.join(cmd)}\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def _format(self, jars: Path, properties: Path) -> None:
        began = time.monotonic()
        self.progress(f"formatting KRaft storage in {self.log_dir}")
        cluster_id = self._tool(jars, "random-uuid").split()[-1]
        self._tool(jars, "format", "--standalone", "-t", cluster_id, "-c", str(properties))
        self.last_format_seconds = time.monotonic() - began

    def _launch(self, jars: Path, properties: Path) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        # A copy, so the running JVM never depends on where the package is installed.
        log4j = self.data_dir / "log4j2.properties"
        log4j.write_text(resources.files(_PACKAGE).joinpath("log4j2.properties").read_text())
        heap = f"{self.config.heap_mb}m"
        cmd = [
            _java(), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={logs}", "-cp", f"{jars}/*", "kafka.Kafka", str(properties),
        ]  # fmt: skip
        with self.output_file.open("ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting ===\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # outlives the CLI; Ctrl-C in a shell does not reach it
            )
        self._pid_file.write_text(f"{self._proc.pid}\n")

    def _cluster_id(self) -> str | None:
        try:
            lines = (self.log_dir / "meta.properties").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id":
                return value.strip()
        return None

    def _wait_ready(self, bootstrap: str, deadline: float) -> None:
        """Poll with metadata requests; TCP accept alone comes before the broker is usable.

        The cluster id is compared so a different broker on the same port never counts.
        """
        assert self._proc is not None
        expected = self._cluster_id()
        last_error = "no answer"
        while True:
            if self._proc.poll() is not None:
                self._pid_file.unlink(missing_ok=True)
                raise CatalogflowError(
                    f"broker exited with code {self._proc.returncode} during start-up; "
                    f"tail of {self.output_file}:\n{tail(self.output_file)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise CatalogflowError(
                    f"broker not ready at {bootstrap} in time ({last_error}); "
                    f"tail of {self.output_file}:\n{tail(self.output_file)}"
                )
            try:
                admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
                metadata = admin.list_topics(timeout=min(2.0, max(remaining, 0.1)))
                if metadata.brokers and metadata.cluster_id == expected:
                    return
                last_error = f"cluster id {metadata.cluster_id}, expected {expected}"
            except Exception as exc:  # KafkaException: not reachable yet
                last_error = str(exc)
            time.sleep(0.2)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            self._proc = None
            return True
        deadline = time.monotonic() + timeout
        while _process_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True
