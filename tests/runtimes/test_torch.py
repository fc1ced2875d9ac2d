"""R-RT-4: torch weights load without executing pickled code; torch stays optional."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from modelmanager import DeviceUnavailable, ModelInferFailed, ModelLoadFailed, ModelManager
from modelmanager.errors import TorchMissing
from modelmanager.weights.digest import hash_file
from tests.conftest import age, onnx_entry


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


def _manager(root: Path, rel: str, **overrides: Any) -> ModelManager:
    entry = onnx_entry(
        engine="torch",
        model_name="net",
        weights_digest=hash_file(root / rel) if (root / rel).is_file() else _dir_digest(root / rel),
        artifacts={"weights_path": rel},
    )
    entry.update(overrides)
    return ModelManager(None, {"components": {"c": {"net": entry}}}, models_root=root)


def _dir_digest(path: Path) -> str:
    from modelmanager.weights.digest import Digester

    return Digester().digest(path).digest


def _open(mm: ModelManager) -> Any:
    return mm.get_runtime(mm.resolve("c", "net"))


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Net]:
    torch.manual_seed(0)
    net = Net()
    (tmp_path / "m").mkdir()
    return tmp_path / "m", net


def test_state_dict_file_loads_and_binds(trained: tuple[Path, Net]) -> None:
    root, net = trained
    torch.save(net.state_dict(), root / "net.pt")
    handle = _open(_manager(root, "net.pt"))
    module = handle.bind(Net())
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    out = handle({"x": x})["output"]
    np.testing.assert_allclose(out, net(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)
    assert not module.training


def test_safetensors_file_and_directory_model(trained: tuple[Path, Net]) -> None:
    root, net = trained
    save_file(net.state_dict(), str(root / "net.safetensors"))
    assert set(_open(_manager(root, "net.safetensors")).state_dict()) == {
        "linear.weight",
        "linear.bias",
    }
    repo = root / "repo"
    repo.mkdir()
    save_file({"linear.weight": net.linear.weight.detach()}, str(repo / "a.safetensors"))
    save_file({"linear.bias": net.linear.bias.detach()}, str(repo / "b.safetensors"))
    (repo / "config.json").write_text("{}")
    assert set(_open(_manager(root, "repo")).state_dict()) == {"linear.weight", "linear.bias"}


class _Payload:
    """Unpickling this would run code: write a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize("container", ["torch.save zip", "legacy pickle"])
def test_pickled_code_is_refused_and_never_runs(
    trained: tuple[Path, Net], tmp_path: Path, container: str
) -> None:
    root, _ = trained
    marker = tmp_path / "marker"
    payload = {"linear.weight": _Payload(marker)}
    if container == "torch.save zip":
        torch.save(payload, root / "evil.pt")
    else:
        with (root / "evil.pt").open("wb") as f:
            pickle.dump(payload, f, protocol=2)  # torch.load's own protocol
    with pytest.raises(ModelLoadFailed, match="pickled objects beyond tensors") as info:
        _open(_manager(root, "evil.pt"))
    assert info.value.fields["path"].endswith("evil.pt")
    assert not marker.exists()


def test_weights_that_do_not_fit_the_module(trained: tuple[Path, Net]) -> None:
    root, _ = trained
    torch.save({"other.weight": torch.zeros(1)}, root / "bad.pt")
    handle = _open(_manager(root, "bad.pt"))
    with pytest.raises(ModelLoadFailed, match="do not fit"):
        handle.bind(Net())


def test_not_a_state_dict(trained: tuple[Path, Net]) -> None:
    root, _ = trained
    torch.save(torch.zeros(3), root / "tensor.pt")
    with pytest.raises(ModelLoadFailed, match="expected a state dict"):
        _open(_manager(root, "tensor.pt"))


def test_directory_without_safetensors(trained: tuple[Path, Net]) -> None:
    root, _ = trained
    (root / "empty").mkdir()
    (root / "empty" / "README").write_text("x")
    with pytest.raises(ModelLoadFailed, match=r"no \*.safetensors"):
        _open(_manager(root, "empty"))


def test_infer_before_bind(trained: tuple[Path, Net]) -> None:
    root, net = trained
    torch.save(net.state_dict(), root / "net.pt")
    with pytest.raises(ModelInferFailed, match="bind a module"):
        _open(_manager(root, "net.pt"))({"x": np.ones((1, 4), np.float32)})


def test_cuda_without_a_gpu_is_refused(trained: tuple[Path, Net]) -> None:
    root, net = trained
    torch.save(net.state_dict(), root / "net.pt")
    assert not torch.cuda.is_available()  # this machine has no GPU: the refusal is real
    with pytest.raises(DeviceUnavailable, match="no CUDA device"):
        _open(_manager(root, "net.pt", device_policy="cuda:0"))


def test_torch_missing(trained: tuple[Path, Net], monkeypatch: pytest.MonkeyPatch) -> None:
    root, net = trained
    torch.save(net.state_dict(), root / "net.pt")
    age(root / "net.pt")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(TorchMissing, match=r"modelmanager\[torch\]"):
        _open(_manager(root, "net.pt"))
