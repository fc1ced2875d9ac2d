"""A real tritonserver (nvidia-pytriton, CPU) serving the repository build_repository writes.

Most tests share the session's server (tests/triton_fixtures.py); the lifecycle
tests start their own. No mocks: every request goes to a real server process.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException
from typer.testing import CliRunner

from modelmanager.cli.triton import triton_app
from modelmanager.errors import ConfigurationInvalid, TritonUnavailable
from modelmanager.mapping.spec import parse_mapping
from modelmanager.triton.repo import build_repository
from modelmanager.triton.server import INSTALL_HINT, TritonServer, find_tritonserver
from tests.triton_fixtures import (
    PREPROCESS_PRESET,
    TRITON_MODEL,
    TritonFixture,
    mlp_mapping,
    write_mlp_models,
)

ROLES = ("v1", "v2")
PROTOCOLS = ("http", "grpc")


def get_json(url: str, data: bytes | None = None) -> Any:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def refused(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``port`` any more."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def group_members(pgid: int) -> list[int]:
    """Processes still in process group ``pgid`` (the server's stubs would be)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def processes_naming(path: Path) -> list[int]:
    """Processes whose command line mentions ``path`` (a server or stub serving it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if str(path).encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def infer(protocol: str, triton: dict[str, Any], x: np.ndarray, version: str | None = None) -> Any:
    """``y`` for ``x`` from the server, through tritonclient's HTTP or gRPC client."""
    module: Any = httpclient if protocol == "http" else grpcclient
    url = triton["http_url"].removeprefix("http://") if protocol == "http" else triton["grpc_url"]
    client = module.InferenceServerClient(url)
    try:
        tensor = module.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer(
            triton["model_name"],
            [tensor],
            model_version=version if version is not None else str(triton["model_version"]),
            outputs=[module.InferRequestedOutput("y")],
        )
        return result.as_numpy("y")
    finally:
        client.close()


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    """A repository of one version of the MLP (its model.py may be broken by the test)."""
    models_root = tmp_path / "models"
    write_mlp_models(models_root)
    raw = mlp_mapping(models_root)
    del raw["components"]["scorer"]["v2"]
    repository = tmp_path / "repo"
    build_repository(parse_mapping(raw), models_root, repository)
    return repository


def break_initialize(repository: Path, statement: str) -> None:
    model_py = repository / TRITON_MODEL / "1" / "model.py"
    source = model_py.read_text()
    marker = "    def initialize(self, args):\n"
    model_py.write_text(source.replace(marker, f"{marker}        {statement}\n"))


# -- the shared server -----------------------------------------------------------------------


def test_model_metadata_lists_both_versions(triton_server: TritonFixture) -> None:
    metadata = get_json(f"{triton_server.server.http_url}/v2/models/{TRITON_MODEL}")
    assert metadata["name"] == TRITON_MODEL
    assert metadata["versions"] == ["1", "2"]
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 8]}]
    assert metadata["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}]


def test_repository_index_has_every_version_ready(triton_server: TritonFixture) -> None:
    index = get_json(f"{triton_server.server.http_url}/v2/repository/index", data=b"{}")
    assert sorted((m["name"], m["version"], m["state"]) for m in index) == [
        (TRITON_MODEL, "1", "READY"),
        (TRITON_MODEL, "2", "READY"),
    ]
    for version in ("1", "2"):
        url = f"{triton_server.server.http_url}/v2/models/{TRITON_MODEL}/versions/{version}/ready"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200


def test_mapping_points_at_the_server(triton_mapping: dict[str, Any]) -> None:
    mapping = parse_mapping(triton_mapping)  # a valid mapping, with the server's URLs
    versions = {}
    for spec in mapping.iter_specs():
        assert spec.triton is not None
        assert spec.triton.preprocess_preset == PREPROCESS_PRESET
        versions[spec.role] = spec.triton.model_version
    assert versions == {"v1": 1, "v2": 2}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("role", ROLES)
def test_inference_equals_onnxruntime_in_process(
    triton_server: TritonFixture, triton_mapping: dict[str, Any], protocol: str, role: str
) -> None:
    entry = triton_mapping["components"]["scorer"][role]
    x = np.random.default_rng(7).standard_normal((5, 8)).astype(np.float32)
    session = ort.InferenceSession(
        str(triton_server.models_root / entry["artifacts"]["onnx_path"]),
        providers=["CPUExecutionProvider"],
    )
    (expected,) = session.run(["y"], {"x": x})
    served = infer(protocol, entry["triton"], x)
    assert served.dtype == np.float32
    assert served.shape == (5, 4)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-7)


def test_each_pinned_version_answers_with_its_own_weights(
    triton_mapping: dict[str, Any],
) -> None:
    x = np.ones((2, 8), dtype=np.float32)
    v1, v2 = (infer("grpc", triton_mapping["components"]["scorer"][r]["triton"], x) for r in ROLES)
    assert not np.allclose(v1, v2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unknown_version_is_an_error_from_the_client(
    triton_mapping: dict[str, Any], protocol: str
) -> None:
    triton = triton_mapping["components"]["scorer"]["v1"]["triton"]
    with pytest.raises(InferenceServerException) as info:
        infer(protocol, triton, np.ones((1, 8), dtype=np.float32), version="7")
    assert "version 7 is not found" in str(info.value.message())
    assert str(info.value.status()) in {"404", "StatusCode.NOT_FOUND"}


def test_served_config_carries_the_preprocess_preset(triton_server: TritonFixture) -> None:
    server = triton_server.server
    http = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
    try:
        config = http.get_model_config(TRITON_MODEL, "1")
    finally:
        http.close()
    assert config["parameters"] == {"preprocess_preset": {"string_value": PREPROCESS_PRESET}}
    assert config["version_policy"] == {"specific": {"versions": [1, 2]}}
    assert config["max_batch_size"] == 64
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        response = grpc.get_model_config(TRITON_MODEL, "2")
    finally:
        grpc.close()
    assert response.config.parameters["preprocess_preset"].string_value == PREPROCESS_PRESET


def test_metrics_count_requests_per_version(
    triton_server: TritonFixture, triton_mapping: dict[str, Any]
) -> None:
    triton = triton_mapping["components"]["scorer"]["v2"]["triton"]
    infer("http", triton, np.ones((1, 8), dtype=np.float32))
    with urllib.request.urlopen(triton_server.server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    line = next(
        line
        for line in text.splitlines()
        if line.startswith(f'nv_inference_request_success{{model="{TRITON_MODEL}",version="2"}}')
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1


def test_server_binds_loopback_and_reports_where(triton_server: TritonFixture) -> None:
    server = triton_server.server
    assert server.running
    assert server.http_url.startswith("http://127.0.0.1:")
    assert server.grpc_url.startswith("127.0.0.1:")
    assert server.metrics_url.startswith("http://127.0.0.1:")
    assert "Started HTTPService at 127.0.0.1:" in server.log_path.read_text()
    assert "--backend-directory" in Path(f"/proc/{server.pid}/cmdline").read_text()


# -- servers of their own --------------------------------------------------------------------


def test_stop_ends_the_process_frees_the_port_and_is_idempotent(
    small_repo: Path, tmp_path: Path
) -> None:
    server = TritonServer(small_repo, work_dir=tmp_path / "work")
    with server:
        pid = server.pid
        port = int(server.http_url.rsplit(":", 1)[1])
        grpc_port = int(server.grpc_url.rsplit(":", 1)[1])
        assert group_members(pid)  # the server (and its backend stub)
        assert len(group_members(pid)) >= 2
    assert not server.running
    assert server.returncode is None  # the process is gone and forgotten
    assert group_members(pid) == []  # no backend stub outlives it
    assert refused(port)
    assert refused(grpc_port)
    server.stop()  # again: nothing to do
    server.stop()
    with pytest.raises(TritonUnavailable):
        _ = server.pid
    assert server.log_path == tmp_path / "work" / "tritonserver.log"  # a given work_dir is kept
    assert "Signal (15) received" in server.log_path.read_text()  # a clean stop, not a kill


def test_temporary_work_dir_is_removed_by_stop(tmp_path: Path) -> None:
    empty = tmp_path / "empty-repo"
    empty.mkdir()
    with TritonServer(empty) as server:
        work_dir = server.log_path.parent
        assert work_dir.is_dir()
        assert (work_dir / "backends/python/triton_python_backend_stub").is_file()
        assert get_json(f"{server.http_url}/v2/repository/index", data=b"{}") == []
    assert not work_dir.exists()


def test_broken_model_fails_start_with_its_log_lines(small_repo: Path, tmp_path: Path) -> None:
    # Triton exits on a model that fails to load (its --exit-on-error defaults to true),
    # so start() fails rather than returning a server whose model is not READY.
    break_initialize(small_repo, "raise RuntimeError('broken on purpose')")
    server = TritonServer(small_repo, work_dir=tmp_path / "work")
    with pytest.raises(TritonUnavailable) as info:
        server.start()
    error = info.value
    assert error.fields["exit_code"] == 1
    assert "broken on purpose" in str(error)
    assert any("failed to load 'mlp' version 1" in line for line in error.fields["log_errors"])
    assert "failed to load all models" in error.fields["log_tail"]
    assert error.fields["log_path"] == str(tmp_path / "work" / "tritonserver.log")
    assert not server.running


def test_start_times_out_and_kills_the_server(small_repo: Path, tmp_path: Path) -> None:
    break_initialize(small_repo, "import time; time.sleep(120)")
    server = TritonServer(small_repo, work_dir=tmp_path / "work", startup_timeout_s=1.5)
    started = time.monotonic()
    with pytest.raises(TritonUnavailable) as info:
        server.start()
    assert "not ready within 1.5 s" in str(info.value)
    assert "exit_code" not in info.value.fields  # it was still loading: no exit code
    assert time.monotonic() - started < 20
    assert processes_naming(small_repo) == []  # neither the server nor its stub is left


def test_port_in_use_fails_start(tmp_path: Path) -> None:
    empty = tmp_path / "empty-repo"
    empty.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TritonUnavailable) as info:
            TritonServer(empty, http_port=port, work_dir=tmp_path / "work").start()
    assert info.value.fields["exit_code"] != 0
    assert any("already in use" in line for line in info.value.fields["log_errors"])


def test_repository_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationInvalid) as info:
        TritonServer(tmp_path / "absent")
    assert info.value.fields["path"] == str(tmp_path / "absent")


def test_find_tritonserver() -> None:
    binary = find_tritonserver()
    assert binary.name == "tritonserver"
    assert os.access(binary, os.X_OK)


def test_find_tritonserver_without_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules is how Python says "this package cannot be imported".
    monkeypatch.setitem(sys.modules, "pytriton", None)
    with pytest.raises(ConfigurationInvalid) as info:
        find_tritonserver()
    assert INSTALL_HINT in str(info.value)
    assert info.value.fields["hint"] == INSTALL_HINT


# -- modelmanager triton serve ---------------------------------------------------------------


@pytest.fixture
def serve_process(triton_server: TritonFixture) -> Iterator[subprocess.Popen[bytes]]:
    """``triton serve REPO --json`` in a process of its own (stopped if a test leaves it)."""
    command = [
        sys.executable,
        "-c",
        "from modelmanager.cli.triton import triton_app; triton_app()",
        "serve",
        str(triton_server.repository),
        "--json",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            # SIGTERM first: serve then stops its tritonserver, which SIGKILL would orphan.
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def read_json_document(process: subprocess.Popen[bytes], timeout_s: float) -> Any:
    """The first JSON document the process prints (it keeps running afterwards)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        chunk = os.read(fd, 65536)  # not readline: a buffered reader hides lines from select
        if not chunk:
            break
        data += chunk
        try:
            return json.loads(data)
        except json.JSONDecodeError:
            continue
    stderr = process.stderr.read() if process.poll() is not None and process.stderr else b""
    raise AssertionError(f"no JSON document on stdout: {data!r}; stderr: {stderr!r}")


def test_cli_serve_until_sigterm(serve_process: subprocess.Popen[bytes]) -> None:
    info = read_json_document(serve_process, timeout_s=120)
    assert set(info) == {"repository", "http_url", "grpc_url", "metrics_url", "pid", "log_path"}
    assert info["http_url"].startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{info['http_url']}/v2/health/ready", timeout=10) as response:
        assert response.status == 200
    x = np.ones((1, 8), dtype=np.float32)
    triton = {"grpc_url": info["grpc_url"], "model_name": TRITON_MODEL, "model_version": 2}
    assert infer("grpc", triton, x).shape == (1, 4)

    serve_process.send_signal(signal.SIGTERM)
    assert serve_process.wait(timeout=30) == 0
    assert refused(int(info["http_url"].rsplit(":", 1)[1]))
    assert refused(int(info["grpc_url"].rsplit(":", 1)[1]))
    assert group_members(info["pid"]) == []


def test_cli_serve_missing_repository(tmp_path: Path) -> None:
    result = CliRunner().invoke(triton_app, ["serve", str(tmp_path / "absent"), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error_code"] == "configuration_invalid"


def test_cli_serve_reports_a_failed_start(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The temporary work dir of a failed start is kept (the error names its log): not in /tmp.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    break_initialize(small_repo, "raise RuntimeError('broken on purpose')")
    result = CliRunner().invoke(triton_app, ["serve", str(small_repo)])
    assert result.exit_code == 1
    assert "triton_unavailable" in result.output
    assert "broken on purpose" in result.output
