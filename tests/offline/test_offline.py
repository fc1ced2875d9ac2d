"""R-NET-1/2: the manager is always offline. Real libraries, real sockets (no network needed:
a refused call never leaves the process; an unrefused one would fail differently)."""

from __future__ import annotations

import os
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
