"""Run the CPU ``tritonserver`` of the nvidia-pytriton wheel on one model repository.

For development, tests and CI, where NVIDIA's Triton container is not at hand:
the wheel (``pip install 'modelmanager[triton-server]'``) ships Triton 2.51
with its Python backend and one backend stub per Python version, which is all
a repository written by :func:`modelmanager.triton.repo.build_repository`
needs. Production talks to NVIDIA's server through the same client.

What :meth:`TritonServer.start` prepares and launches::

    <work_dir>/                        given, or a temporary directory (removed by stop())
      backends/                        --backend-directory
        python/                        copy of pytriton/tritonserver/backends/python/*
          libtriton_python.so
          triton_python_backend_utils.py
          triton_python_backend_stub   the stub of the running Python (python_backend_stubs/3.X/)
      tritonserver.log                 the server's stdout and stderr

    LD_LIBRARY_PATH = <LIBDIR of the running interpreter>:<site-packages>/nvidia_pytriton.libs:...
    tritonserver --model-repository=<repository> --backend-directory=<work_dir>/backends
                 --http-address=<host> --http-port=P --grpc-address=<host> --grpc-port=Q
                 --metrics-address=<host> --metrics-port=R ...

The interpreter's LIBDIR comes first so the stub loads the libpython that
matches the interpreter's standard library; ``nvidia_pytriton.libs`` holds the
server's bundled shared libraries. The server binds loopback unless told
otherwise, and is ready when ``GET /v2/health/ready`` answers 200, which (with
Triton's default strict readiness) means every model of the repository loaded.

>>> with TritonServer(Path("triton-repo")) as server:  # doctest: +SKIP
...     client = tritonclient.grpc.InferenceServerClient(server.grpc_url)
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from types import TracebackType

from modelmanager import offline
from modelmanager.errors import ConfigurationInvalid, TritonUnavailable

__all__ = ["INSTALL_HINT", "TritonServer", "find_tritonserver"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'modelmanager[triton-server]'"
LOG_TAIL_LINES = 30
STOP_TIMEOUT_S = 15.0
_POLL_INTERVAL_S = 0.1
_ERROR_LINE = re.compile(r"E\d{4} ")
# Logged by every start on a machine without a GPU; not why a start failed.
_CPU_NOISE = re.compile(r"CudaDriverHelper|CUDA driver|NVML", re.IGNORECASE)


def find_tritonserver() -> Path:
    """The ``tritonserver`` binary of the installed nvidia-pytriton wheel.

    Raises:
        ConfigurationInvalid: nvidia-pytriton is not installed (or lacks the binary).
    """
    binary = _pytriton_dir() / "tritonserver" / "bin" / "tritonserver"
    if not os.access(binary, os.X_OK):
        raise ConfigurationInvalid(
            f"{binary} is missing or not executable; reinstall: {INSTALL_HINT}",
            setting="tritonserver",
            path=str(binary),
            hint=INSTALL_HINT,
        )
    return binary


def _pytriton_dir() -> Path:
    # find_spec locates the package without importing it (pytriton's import is heavy).
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationInvalid(
            f"tritonserver is not installed (the nvidia-pytriton wheel is absent): {INSTALL_HINT}",
            setting="tritonserver",
            hint=INSTALL_HINT,
        )
    return Path(next(iter(spec.submodule_search_locations)))


class TritonServer:
    """A ``tritonserver`` process serving one model repository, for as long as it is open.

    Args:
        repository: the model repository (``--model-repository``).
        host: the address every endpoint binds (loopback by default).
        http_port: HTTP/REST port; None picks a free one at start.
        grpc_port: gRPC port; None picks a free one at start.
        metrics_port: Prometheus metrics port; None picks a free one at start.
        work_dir: where the backend directory and the log go (kept); None uses a
            temporary directory that :meth:`stop` removes (a failed start keeps it, for
            the log its error names).
        startup_timeout_s: how long :meth:`start` waits for the server to be ready.

    Raises:
        ConfigurationInvalid: ``repository`` is not a directory.

    >>> with TritonServer(Path("triton-repo")) as server:  # doctest: +SKIP
    ...     print(server.http_url, server.grpc_url)
    http://127.0.0.1:40123 127.0.0.1:40125
    """

    def __init__(
        self,
        repository: Path,
        *,
        host: str = "127.0.0.1",
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        work_dir: Path | None = None,
        startup_timeout_s: float = 60,
    ) -> None:
        self.repository = Path(repository).absolute()
        if not self.repository.is_dir():
            raise ConfigurationInvalid(
                f"{self.repository} is not a directory; a Triton model repository is one",
                path=str(self.repository),
            )
        self.host = host
        self.startup_timeout_s = startup_timeout_s
        self._requested_ports = (http_port, grpc_port, metrics_port)
        self._ports: tuple[int, int, int] | None = None
        self._work_dir_arg = None if work_dir is None else Path(work_dir).absolute()
        self._work_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TritonServer:
        """Launch the server and wait until it is ready; a no-op while it runs.

        Raises:
            ConfigurationInvalid: nvidia-pytriton, or the stub for this Python, is missing.
            TritonUnavailable: the server exited, or was not ready within
                ``startup_timeout_s`` (with its exit code and the end of its log).
        """
        if self.running:
            return self
        self._terminate()  # a server that exited on its own may have left its stubs
        binary = find_tritonserver()
        work_dir = self._prepare_work_dir()
        try:
            backends = self._prepare_backends(work_dir)
            self._ports = _pick_ports(self.host, self._requested_ports)
            http_port, grpc_port, metrics_port = self._ports
            command = [
                str(binary),
                f"--model-repository={self.repository}",
                f"--backend-directory={backends}",
                f"--http-address={self.host}",
                f"--http-port={http_port}",
                f"--grpc-address={self.host}",
                f"--grpc-port={grpc_port}",
                f"--metrics-address={self.host}",
                f"--metrics-port={metrics_port}",
                "--allow-gpu-metrics=false",
                # In-flight requests get this long on SIGTERM; it fits within stop()'s wait.
                "--exit-timeout-secs=10",
            ]
            logger.info("starting %s", " ".join(command))
            # The network guard refuses programs it cannot see into; this one is ours.
            with open(self.log_path, "ab") as log, offline.allow_child_process(binary):
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_server_env(),
                    cwd=work_dir,
                    # Its own process group: a Ctrl-C meant for the caller does not reach
                    # it, and stop() can reap the backend stubs it leaves behind.
                    start_new_session=True,
                )
            self._wait_ready()
        except TritonUnavailable:
            self._terminate()  # the work dir stays, even a temporary one: the error names its log
            raise
        except BaseException:
            self.stop()
            raise
        logger.info("Triton ready at %s (pid %d)", self.http_url, self.pid)
        return self

    def stop(self) -> None:
        """Stop the server: SIGTERM, up to 15 s for a clean exit, then SIGKILL. Idempotent."""
        self._terminate()
        if self._work_dir is not None and self._work_dir_arg is None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    logger.warning(
                        "tritonserver (pid %d) ignored SIGTERM for %.0f s; killing it",
                        process.pid,
                        STOP_TIMEOUT_S,
                    )
                    process.kill()
                    process.wait()
            # Backend stubs share the server's process group; none may outlive it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
                _wait_group_gone(process.pid, timeout_s=2.0)
            logger.info("tritonserver (pid %d) exited with %s", process.pid, process.returncode)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what callers read -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code of a server that exited on its own; None while it runs, or unstarted."""
        return None if self._process is None else self._process.poll()

    def check_running(self) -> None:
        """Raise unless the server is still running (for callers that keep it for long).

        Raises:
            TritonUnavailable: the server was not started, was stopped, or exited on its
                own (then with its exit code and the end of its log).
        """
        process = self._started()
        code = process.poll()
        if code is not None:
            raise self._unavailable(f"tritonserver exited with code {code}")

    @property
    def pid(self) -> int:
        """The server's process id.

        Raises:
            TritonUnavailable: the server was not started (or was stopped).
        """
        return self._started().pid

    @property
    def http_url(self) -> str:
        """``http://host:port`` of the HTTP/REST endpoint."""
        return f"http://{self._host_for_url}:{self._port(0)}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC endpoint (as tritonclient.grpc takes it)."""
        return f"{self._host_for_url}:{self._port(1)}"

    @property
    def metrics_url(self) -> str:
        """``http://host:port/metrics``: the Prometheus metrics."""
        return f"http://{self._host_for_url}:{self._port(2)}/metrics"

    @property
    def log_path(self) -> Path:
        """The server's log (stdout and stderr); with a given ``work_dir``, also after stop."""
        if self._work_dir is None:
            raise self._not_started()
        return self._work_dir / "tritonserver.log"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log ("" if there is none yet)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(deque(f, maxlen=lines))
        except (OSError, TritonUnavailable):
            return ""

    # -- internals ---------------------------------------------------------------------------

    @property
    def _host_for_url(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def _port(self, index: int) -> int:
        if self._ports is None or self._process is None:
            raise self._not_started()
        return self._ports[index]

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise self._not_started()
        return self._process

    def _not_started(self) -> TritonUnavailable:
        return TritonUnavailable(
            "the Triton server has not been started", repository=str(self.repository)
        )

    def _prepare_work_dir(self) -> Path:
        if self._work_dir_arg is not None:
            self._work_dir_arg.mkdir(parents=True, exist_ok=True)
            self._work_dir = self._work_dir_arg
        else:
            self._work_dir = Path(tempfile.mkdtemp(prefix="modelmanager-triton-"))
        return self._work_dir

    @staticmethod
    def _prepare_backends(work_dir: Path) -> Path:
        tritonserver = _pytriton_dir() / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = tritonserver / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.is_file():
            raise ConfigurationInvalid(
                f"nvidia-pytriton has no Python backend stub for Python {version} ({stub})",
                setting="tritonserver",
                path=str(stub),
                hint=INSTALL_HINT,
            )
        backends = work_dir / "backends"
        python_backend = backends / "python"
        shutil.rmtree(python_backend, ignore_errors=True)
        shutil.copytree(
            tritonserver / "backends" / "python",
            python_backend,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        shutil.copy2(stub, python_backend / stub.name)
        return backends

    def _wait_ready(self) -> None:
        process = self._started()
        url = f"{self.http_url}/v2/health/ready"
        # Loopback only: a proxy from the environment must not see (or answer) this.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            code = process.poll()
            if code is not None:
                raise self._unavailable(f"tritonserver exited with code {code} while starting")
            try:
                # offline: allow polls our own tritonserver on loopback (self.http_url)
                with opener.open(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or not ready (a 400 is an HTTPError)
            if time.monotonic() >= deadline:
                raise self._unavailable(
                    f"tritonserver was not ready within {self.startup_timeout_s:g} s"
                )
            time.sleep(_POLL_INTERVAL_S)

    def log_errors(self, limit: int = 10) -> list[str]:
        """The server's error lines (``E…``), less the CUDA ones every CPU run logs."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                found = [
                    line.rstrip("\n")
                    for line in f
                    if _ERROR_LINE.match(line) and not _CPU_NOISE.search(line)
                ]
        except (OSError, TritonUnavailable):
            return []
        return found[-limit:]

    def _unavailable(self, reason: str) -> TritonUnavailable:
        process = self._process
        errors = self.log_errors()
        tail = self.log_tail()
        # The tail of a failed start is mostly the options table; the reason is earlier.
        shown = "".join(f"\n  {line}" for line in errors) or " none"
        return TritonUnavailable(
            f"{reason} (repository {self.repository}); errors in its log:{shown}\n"
            f"last lines of {self.log_path}:\n{tail}",
            repository=str(self.repository),
            exit_code=None if process is None else process.poll(),
            log_path=str(self.log_path),
            log_errors=errors,
            log_tail=tail,
        )


def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    """Wait until no live process is left in group ``pgid`` (zombies do not count)."""
    deadline = time.monotonic() + timeout_s
    while _live_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _live_group_members(pgid: int) -> bool:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False  # no procfs: SIGKILL was sent, which is all that can be done
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _server_env() -> dict[str, str]:
    libdir = sysconfig.get_config_var("LIBDIR")
    libs = _pytriton_dir().parent / "nvidia_pytriton.libs"
    parts = [p for p in (libdir, str(libs), os.environ.get("LD_LIBRARY_PATH")) if p]
    return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(parts)}


def _pick_ports(host: str, requested: tuple[int | None, ...]) -> tuple[int, int, int]:
    """The requested ports, with free ones for those left None (all held open while picking)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held: list[socket.socket] = []
    try:
        ports = []
        for port in requested:
            if port is not None:
                ports.append(port)
                continue
            sock = socket.socket(family, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports[0], ports[1], ports[2]
    finally:
        for sock in held:
            sock.close()
