"""R-NET-1/2: the manager is always offline. Real libraries, real sockets (no network needed:
a refused call never leaves the process; an unrefused one would fail differently)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from modelmanager import ModelManager, NetworkAccessBlocked, offline
from tests.runner_components import frames, make_runner


@pytest.fixture(autouse=True)
def guarded() -> None:
    ModelManager(None, {"components": {}})  # making a manager installs the guard
    assert offline.installed()


def _blocked(call: Any) -> NetworkAccessBlocked:
    with pytest.raises(NetworkAccessBlocked) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("library", "call", "host"),
    [
        (
            "requests",
            lambda: __import__("requests").get("https://example.com/w.bin", timeout=5),
            "example.com",
        ),
        ("httpx", lambda: __import__("httpx").get("https://example.com/w.bin"), "example.com"),
        ("urllib", lambda: urllib.request.urlopen("https://example.com/w.bin"), "example.com"),
        (
            "torch.hub",
            lambda: __import__("torch.hub").hub.load_state_dict_from_url(
                "https://download.pytorch.org/models/x.pth"
            ),
            "download.pytorch.org",
        ),
        ("dns", lambda: socket.getaddrinfo("example.com", 443), "example.com"),
        (
            "dns gethostbyname",
            lambda: socket.gethostbyname("models.example.org"),
            "models.example.org",
        ),
        (
            "ip literal",
            lambda: socket.create_connection(("93.184.216.34", 80), timeout=1),
            "93.184.216.34",
        ),
    ],
)
def test_outside_hosts_are_refused_naming_the_host(library: str, call: Any, host: str) -> None:
    err = _blocked(call)
    assert err.code == "network_access_blocked"
    assert err.fields["host"] == host
    assert not isinstance(err, OSError)  # no retry-on-connection-error loop can swallow it
    assert "test_offline.py" in err.fields["origin"]  # where from: this test, not the library


def test_loopback_and_unix_sockets_pass() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        acceptor = threading.Thread(target=lambda: server.accept()[0].close(), daemon=True)
        acceptor.start()
        socket.create_connection(("localhost", port), timeout=5).close()
        acceptor.join(5)  # before the server socket closes under a pending accept()
    assert socket.getaddrinfo("localhost", 80)
    left, right = socket.socketpair(socket.AF_UNIX)
    left.close()
    right.close()


def test_allowed_hosts_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    offline.allow(["10.11.12.13"])
    assert offline.guard._guard.allowed("10.11.12.13")  # the mapping's Triton host, say
    assert not offline.guard._guard.allowed("10.11.12.14")


def test_offline_switches_are_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    ModelManager(None, {"components": {}})
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_triton_endpoint_of_the_mapping_still_works(triton_mapping: dict[str, Any]) -> None:
    import numpy as np

    mm = ModelManager(None, triton_mapping)
    handle = mm.get_runtime(mm.resolve("scorer", "v1"))
    assert handle({"x": np.ones((1, 8), np.float32)})["y"].shape == (1, 4)


class Downloads:
    """A component that reaches for a hub/URL, as a new user might."""

    name = "scene_stats"
    producer_version = "1.0.0"
    schema_version = "1"
    roles = ()

    def __init__(self, swallow: bool) -> None:
        self.swallow = swallow

    def process(self, request: Any) -> Any:
        import requests

        from modelmanager.run.contract import ComponentOutput

        try:
            requests.get("https://example.com/weights.bin", timeout=5)
        except Exception:
            if not self.swallow:
                raise
        return ComponentOutput({"x": frames()})


def test_run_fails_the_component_and_the_manifest_names_the_host(
    store: Any, tmp_path: Path
) -> None:
    result = make_runner(store, tmp_path, "run-1").run(
        [Downloads(swallow=False)], {"frames": frames()}
    )
    (entry,) = result.manifest.components
    assert (entry.status, entry.error_code) == ("failed", "network_access_blocked")
    assert entry.error_fields["host"] == "example.com"
    assert "test_offline.py" in entry.error_fields["origin"]


def test_a_refusal_the_component_swallowed_is_still_recorded(store: Any, tmp_path: Path) -> None:
    result = make_runner(store, tmp_path, "run-1").run(
        [Downloads(swallow=True)], {"frames": frames()}
    )
    (entry,) = result.manifest.components
    assert entry.status == "ok"
    assert any("example.com:443" in w and "test_offline.py" in w for w in entry.warnings)


HF_SCRIPT = """
import json, sys
{before}
from modelmanager import ModelManager, offline
ModelManager(None, {{"components": {{}}}})
{after}
try:
    {call}
except Exception as exc:
    refusal = offline.refusal_in(exc)
    print(json.dumps({{"refusal": refusal.to_dict() if refusal else None, "error": repr(exc)[:300]}}))
else:
    print(json.dumps({{"refusal": None, "error": None}}))
"""

HF_CALLS = {
    "hf_hub_download": (
        "import huggingface_hub",
        'huggingface_hub.hf_hub_download("org/model", "config.json")',
    ),
    "transformers": ("import transformers", 'transformers.AutoConfig.from_pretrained("org/model")'),
}


@pytest.mark.parametrize("imported", ["after the guard", "before the guard"])
@pytest.mark.parametrize("library", sorted(HF_CALLS))
def test_hugging_face_downloads_are_refused(library: str, imported: str, tmp_path: Path) -> None:
    """Imported after the guard, the library obeys HF_HUB_OFFLINE; imported before, it has read
    its switch already and the socket guard refuses it. Either way: network_access_blocked."""
    import_line, call = HF_CALLS[library]
    before, after = (import_line, "") if imported == "before the guard" else ("", import_line)
    script = HF_SCRIPT.format(before=before, after=after, call=call)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["HF_HOME"] = str(tmp_path / "hf")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert result["refusal"] is not None, result["error"]
    assert result["refusal"]["error_code"] == "network_access_blocked"
    assert result["refusal"]["host"] == "huggingface.co"


# -- R-NET-2: what else could leave the machine -----------------------------------------------
#
# A test that could send a packet if the guard let it through runs in a child process with a
# safety net: an audit hook added after the guard's (so called after it) that stops anything
# outside loopback, and any process start, before it happens. "allowed" = the guard let it
# through (the net stopped it); "blocked" = the guard refused it. Nothing ever leaves.

OUTSIDE = "93.184.216.34"

SAFETY_NET = """
import ipaddress, json, socket, sys

class Escaped(BaseException):
    '''The guard let this through; the net stops it here, before anything leaves.'''

def _outside(host):
    if host is None:
        return False
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower().rstrip(".") in ("", "localhost"):
        return False
    try:
        return not ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return True

def _numeric(host):
    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host))
    except ValueError:
        return False
    return True

def net(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address is not None:
            if _outside(address[0]):
                raise Escaped(f"{event} {address[0]}:{address[1]}")
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
        if _outside(args[0]) and not _numeric(args[0]):  # a numeric one sends nothing
            raise Escaped(f"{event} {args[0]}")
    elif event == "socket.gethostbyaddr":
        if _outside(args[0]):
            raise Escaped(f"{event} {args[0]}")
    elif event == "socket.getnameinfo":
        if _outside(args[0][0]):
            raise Escaped(f"{event} {args[0][0]}")
    elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"):
        raise Escaped(f"{event} {args[0]!r}")

def attempt(call):
    from modelmanager import offline
    try:
        call()
    except Escaped as exc:
        result = {"outcome": "allowed", "what": str(exc)}
    except Exception as exc:
        refusal = offline.refusal_in(exc)
        result = (
            {"outcome": "blocked", **refusal.to_dict()}
            if refusal is not None
            else {"outcome": "error", "error": repr(exc)[:300]}
        )
    else:
        result = {"outcome": "done"}
    result["installed"] = offline.installed()
    result["recorded"] = [str(a) for a in offline.blocked_attempts()]
    return result
"""

GUARDED_CHILD = """
import json, os, socket, sys
from modelmanager import ModelManager
ModelManager(None, json.loads(sys.argv[1]))  # the guard, and the mapping's Triton hosts
{net}
sys.addaudithook(net)
print(json.dumps(attempt(lambda: exec(sys.argv[2]))))
"""


def _in_guarded_child(
    code: str, mapping: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``code`` in a new process with the guard (and the safety net); what happened."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            GUARDED_CHILD.format(net=SAFETY_NET),
            __import__("json").dumps(mapping or {"components": {}}),
            code,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    return result


def _last_attempt() -> offline.BlockedAttempt:
    return offline.blocked_attempts()[-1]


CURL = shutil.which("curl") or "/bin/true"  # a harmless call of it either way: --version


@pytest.mark.parametrize(
    ("how", "call", "event"),
    [
        (
            "subprocess",
            lambda: subprocess.run([CURL, "--version"], check=False),
            "subprocess.Popen",
        ),
        (
            "subprocess by name",
            lambda: subprocess.run(["true"], close_fds=False, check=False),
            "subprocess.Popen",
        ),
        ("shell", lambda: subprocess.run("true", shell=True, check=False), "subprocess.Popen"),
        ("os.system", lambda: os.system("true"), "os.system"),
        (
            "os.posix_spawn",
            lambda: os.waitpid(os.posix_spawn("/bin/true", ["true"], os.environ), 0),
            "os.posix_spawn",
        ),
        ("os.spawnv", lambda: os.spawnv(os.P_WAIT, "/bin/true", ["true"]), "os.spawn"),
    ],
)
def test_a_child_process_is_refused(how: str, call: Any, event: str) -> None:
    """A program the guard cannot see into (curl, a shell) could reach anything: refused."""
    before = len(offline.blocked_attempts())
    err = _blocked(call)
    assert err.code == "network_access_blocked"
    assert err.fields["event"] == event
    assert "test_offline.py" in err.fields["origin"]
    assert "command" in err.fields
    assert len(offline.blocked_attempts()) == before + 1  # recorded: it lands in the manifest
    assert _last_attempt().event == event
    assert not isinstance(err, OSError)  # like every refusal


def test_os_exec_is_refused() -> None:
    """os.exec* replaces the process (here a child, so the test runner goes on)."""
    result = _in_guarded_child('os.execv("/bin/true", ["true"])')
    assert (result["outcome"], result["event"]) == ("blocked", "os.exec"), result
    assert result["command"] == "true"
    assert any("os.exec" in r for r in result["recorded"])


def test_our_local_server_may_start_only_inside_its_allowance(tmp_path: Path) -> None:
    """The explicit allowance TritonServer uses: one executable, this thread, this block."""
    true = os.path.realpath(shutil.which("true") or "/bin/true")
    with offline.allow_child_process(true):
        assert subprocess.run([true], check=False).returncode == 0
        refused_elsewhere: list[BaseException] = []

        def other_thread() -> None:
            try:
                subprocess.run([true], check=False)
            except NetworkAccessBlocked as exc:
                refused_elsewhere.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(30)
        assert len(refused_elsewhere) == 1  # another thread is not covered
        _blocked(lambda: subprocess.run([CURL, "--version"], check=False))  # another program
    _blocked(lambda: subprocess.run([true], check=False))  # after the block


def test_the_local_tritonserver_starts_under_the_guard(triton_server: Any) -> None:
    from modelmanager.triton.server import TritonServer

    with (
        TritonServer(triton_server.repository) as server,
        urllib.request.urlopen(f"{server.http_url}/v2/health/ready", timeout=5) as response,
    ):
        assert response.status == 200


def test_the_console_script_and_python_children_may_start() -> None:
    script = Path(sys.executable).parent / "modelmanager"  # "#!<this python>": Python too
    assert subprocess.run([script, "--help"], capture_output=True, check=False).returncode == 0
    done = subprocess.run([sys.executable, "-c", "pass"], check=False)
    assert done.returncode == 0


def test_the_probes_of_common_libraries_still_work() -> None:
    """platform.processor() runs `uname -p`, ctypes.util.find_library `ldconfig -p`, numpy.testing
    `lscpu` (at import): they read this machine only, and pass; any other program does not."""
    import ctypes.util
    import platform

    before = len(offline.blocked_attempts())
    assert isinstance(platform.uname().processor, str)  # computed on access
    assert ctypes.util.find_library("c") is not None
    assert subprocess.run(["lscpu"], capture_output=True, check=False).returncode == 0
    assert len(offline.blocked_attempts()) == before
    _blocked(lambda: subprocess.run(["lscpu", "--json"], capture_output=True, check=False))
    _blocked(lambda: subprocess.run(["uname", "-a"], capture_output=True, check=False))


INHERITING_CHILD = """
import json, socket, sys
from modelmanager import offline  # what a worker that uses the model system imports
{net}
sys.addaudithook(net)
print(json.dumps(attempt(lambda: socket.create_connection(("{outside}", 80), timeout=1))))
"""


@pytest.mark.parametrize("env", ["inherited", "given without the marker"])
def test_a_python_child_inherits_the_guard(env: str, tmp_path: Path) -> None:
    """Its parent is guarded, so it is: the marker in its environment installs the guard."""
    code = INHERITING_CHILD.format(net=SAFETY_NET, outside=OUTSIDE)
    given = None if env == "inherited" else {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=given, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert result["installed"], result
    assert (result["outcome"], result["host"]) == ("blocked", OUTSIDE), result


def _spawned_worker(results: Any) -> None:
    """The target of a `spawn` child: this module imported modelmanager, nothing else did."""
    namespace: dict[str, Any] = {}
    exec(SAFETY_NET, namespace)
    sys.addaudithook(namespace["net"])
    results.put(namespace["attempt"](lambda: socket.create_connection((OUTSIDE, 80), timeout=1)))


def test_a_multiprocessing_spawn_child_inherits_the_guard() -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_spawned_worker, args=(results,))
    child.start()
    try:
        result = results.get(timeout=120)
    finally:
        child.join(30)
    assert result["installed"], result
    assert (result["outcome"], result["host"]) == ("blocked", OUTSIDE), result


@pytest.mark.parametrize(
    ("call", "event"),
    [
        (
            f"socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendmsg([b'x'], [], 0, "
            f"('{OUTSIDE}', 53))",
            "socket.sendmsg",
        ),
        (f"socket.getnameinfo(('{OUTSIDE}', 443), 0)", "socket.getnameinfo"),
        (f"socket.gethostbyaddr('{OUTSIDE}')", "socket.gethostbyaddr"),
    ],
)
def test_sendmsg_and_reverse_dns_to_outside_hosts_are_refused(call: str, event: str) -> None:
    result = _in_guarded_child(call)
    assert (result["outcome"], result["event"], result["host"]) == ("blocked", event, OUTSIDE)
    assert any(event in r and OUTSIDE in r for r in result["recorded"])


def test_loopback_sendmsg_and_reverse_dns_pass() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendmsg([b"x"], [], 0, sink.getsockname())
        assert sink.recv(1) == b"x"
    assert socket.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST)[0] == "127.0.0.1"


def test_a_loopback_proxy_from_the_environment_carries_nothing_out(tmp_path: Path) -> None:
    """https_proxy=http://127.0.0.1:P would take requests' CONNECT outside: cleared offline."""
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        proxy.settimeout(0.2)
        url = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        env = {**os.environ, "https_proxy": url, "HTTP_PROXY": url, "All_Proxy": url}
        env.pop("no_proxy", None)
        env.pop("NO_PROXY", None)
        result = _in_guarded_child(
            "import requests\n"
            "assert not [k for k in os.environ if k.lower().endswith('_proxy')"
            " and k.lower() != 'no_proxy'], os.environ\n"
            "assert os.environ['no_proxy'] == os.environ['NO_PROXY'] == '*'\n"
            "requests.get('https://example.com/w.bin', timeout=5)",
            env=env,
        )
        try:
            heard = proxy.accept()[0].recv(100)
        except TimeoutError:
            heard = b""
    assert heard == b""  # the proxy never heard of example.com
    assert (result["outcome"], result["host"]) == ("blocked", "example.com"), result


def test_setting_a_proxy_while_offline_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _blocked(lambda: monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128"))
    assert (err.fields["event"], err.fields["host"]) == ("os.putenv", "127.0.0.1")
    assert "HTTPS_PROXY" not in os.environ
    monkeypatch.setenv("NO_PROXY", "*")  # clearing or no_proxy is fine
    monkeypatch.delenv("HTTPS_PROXY", raising=False)


TRITON_HOST = "10.11.12.13"


def _remote_triton_mapping() -> dict[str, Any]:
    from tests.conftest import triton_entry

    entry = triton_entry()
    entry["triton"]["grpc_url"] = f"{TRITON_HOST}:8001"
    entry["triton"]["http_url"] = f"http://{TRITON_HOST}:8000"
    return {"components": {"scene_score": {"scorer": entry}}}


@pytest.mark.parametrize(
    ("port", "outcome"), [(8001, "allowed"), (8000, "allowed"), (22, "blocked")]
)
def test_a_remote_triton_host_is_allowed_only_on_its_mapped_ports(port: int, outcome: str) -> None:
    result = _in_guarded_child(
        f"socket.create_connection(('{TRITON_HOST}', {port}), timeout=1)",
        mapping=_remote_triton_mapping(),
    )
    assert result["outcome"] == outcome, result
    if outcome == "blocked":
        assert (result["host"], result["port"]) == (TRITON_HOST, port)


def test_allow_takes_hosts_and_endpoints() -> None:
    offline.allow([("10.20.30.40", 8001), "10.20.30.41"])
    assert offline.guard._guard.allowed("10.20.30.40", 8001)
    assert not offline.guard._guard.allowed("10.20.30.40", 8002)
    assert offline.guard._guard.allowed("10.20.30.40")  # a lookup of it, any port
    assert offline.guard._guard.allowed("10.20.30.41", 5432)  # a host alone: every port
    assert offline.guard._guard.allowed("127.0.0.1", 1)  # loopback: every port
    assert offline.guard._guard.allowed("::1", 2)
    assert offline.endpoint_of("http://triton:8000") == ("triton", 8000)
    assert offline.endpoint_of("https://triton") == ("triton", 443)
    assert offline.endpoint_of("grpc://triton:8001") == ("triton", 8001)
    assert offline.endpoint_of("triton:8001") == ("triton", 8001)
