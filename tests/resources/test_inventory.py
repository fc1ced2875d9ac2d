"""The GPU inventory and ``modelmanager gpus`` (issue 14, R-RES).

This machine has no GPU and no NVIDIA driver, so the tests read GPUs from an injected
inventory (a JSON file) or through a stand-in for ``pynvml`` that mimics the real module's
functions, error classes and return shapes (a test checks those names against the real
``pynvml``). The real ``pynvml`` is still run once, with no stand-in, for what it does on a
machine without a driver: an empty inventory that says why.
"""

from __future__ import annotations

import ctypes
import inspect
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelmanager.cli.app import app
from modelmanager.errors import ConfigurationInvalid, DeviceUnavailable
from modelmanager.resources.inventory import GpuInfo, Inventory, read_inventory
from tests.conftest import EXAMPLES

MIB = 1024 * 1024
EXAMPLE = EXAMPLES / "gpus.json"


# --- Injected inventory ------------------------------------------------------------------


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps(document))
    return path


def gpu_entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "index": 0,
        "name": "NVIDIA A10G",
        "uuid": "GPU-0",
        "total_mib": 23028,
        "free_mib": 22515,
        "used_mib": 513,
        "utilization_pct": 3,
        "processes": [],
    }
    entry.update(overrides)
    return entry


def test_an_inventory_round_trips_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "gpus.json"
    inventory = Inventory(
        gpus=(
            GpuInfo(0, "NVIDIA H100 80GB HBM3", "GPU-a", 81559, 81000, 559, None, ()),
            GpuInfo(1, "NVIDIA H100 80GB HBM3", "GPU-b", 81559, 1559, 80000, 99, ((7, 78000),)),
            GpuInfo(2, "NVIDIA L4", "GPU-c", 23034, 23034, 0, 0, ((8, None), (9, 12))),
        ),
        source=str(path),
        driver_version="550.54.15",
    )
    path.write_text(json.dumps(inventory.to_json_dict()))
    assert read_inventory(path) == inventory


def test_the_example_inventory() -> None:
    inventory = read_inventory(EXAMPLE)
    assert inventory.source == str(EXAMPLE)
    assert inventory.note is None
    assert [gpu.name for gpu in inventory.gpus] == ["NVIDIA A10G", "NVIDIA A10G"]
    busy = inventory.by_index(1)
    assert busy is not None
    assert (busy.total_mib, busy.free_mib, busy.used_mib) == (23028, 11514, 11514)
    assert busy.processes == ((4242, 11000),)
    assert inventory.gpus[0].processes == ()


def test_by_index_of_a_missing_gpu_is_none() -> None:
    assert read_inventory(EXAMPLE).by_index(2) is None


def test_an_inventory_with_no_gpu_says_so(tmp_path: Path) -> None:
    inventory = read_inventory(write(tmp_path, {"gpus": []}))
    assert inventory.gpus == ()
    assert inventory.note == "the injected inventory lists no GPU"


def test_what_gpus_json_printed_reads_back(tmp_path: Path) -> None:
    """``source`` and ``note`` in the file are accepted and not believed: the path is the source."""
    printed = read_inventory(EXAMPLE).to_json_dict()
    assert printed["source"] == str(EXAMPLE)
    assert read_inventory(write(tmp_path, printed)).source == str(tmp_path / "gpus.json")


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({}, "gpus"),
        ({"gpus": {}}, "gpus"),
        ({"gpus": [gpu_entry(total_mib="23028")]}, "gpus.0.total_mib"),
        ({"gpus": [gpu_entry(total_mib=23028.0)]}, "gpus.0.total_mib"),
        ({"gpus": [gpu_entry(index=True)]}, "gpus.0.index"),
        ({"gpus": [gpu_entry(name=7)]}, "gpus.0.name"),
        ({"gpus": [gpu_entry(), gpu_entry(index=1, free_mib=-1)]}, "gpus.1.free_mib"),
        ({"gpus": [gpu_entry(used_mib=-5)]}, "gpus.0.used_mib"),
        ({"gpus": [gpu_entry(total_mib=0)]}, "gpus.0.total_mib"),
        ({"gpus": [gpu_entry(free_mib=23029)]}, "gpus.0.free_mib"),
        ({"gpus": [gpu_entry(used_mib=30000)]}, "gpus.0.used_mib"),
        ({"gpus": [gpu_entry(utilization_pct=101)]}, "gpus.0.utilization_pct"),
        ({"gpus": [gpu_entry(processes=[{"pid": -1}])]}, "gpus.0.processes.0.pid"),
        ({"gpus": [gpu_entry(processes=[[4242, 100]])]}, "gpus.0.processes.0"),
        ({"gpus": [gpu_entry(free_mb=1)]}, "gpus.0.free_mb"),
        ({"gpus": [gpu_entry(uuid=None)]}, "gpus.0.uuid"),
        ({"gpus": [gpu_entry(), gpu_entry()]}, "gpus"),
        ({"gpus": [], "driver_version": 550}, "driver_version"),
    ],
)
def test_a_bad_field_is_configuration_invalid_naming_it(
    tmp_path: Path, document: dict[str, Any], field: str
) -> None:
    path = write(tmp_path, document)
    with pytest.raises(ConfigurationInvalid) as caught:
        read_inventory(path)
    error = caught.value
    assert error.exit_code == 2
    assert error.fields["path"] == str(path)
    assert error.fields["field"] == field
    assert str(path) in error.message
    assert repr(field) in error.message


def test_free_beyond_total_says_by_how_much(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationInvalid, match=r"23029 is more than total_mib \(23028\)"):
        read_inventory(write(tmp_path, {"gpus": [gpu_entry(free_mib=23029)]}))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot be read"),
        ("{not json", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "must be a JSON object, not list"),
        (b"\xff\xfe{}", "cannot be read"),
    ],
)
def test_a_file_that_is_no_inventory_is_configuration_invalid(
    tmp_path: Path, content: str | bytes | None, reason: str
) -> None:
    path = tmp_path / "gpus.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationInvalid, match=reason) as caught:
        read_inventory(path)
    assert caught.value.fields["path"] == str(path)


def test_a_directory_is_no_inventory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationInvalid, match="cannot be read"):
        read_inventory(tmp_path)


# --- NVML, through a stand-in for pynvml --------------------------------------------------


class FakeNvml:
    """A stand-in ``pynvml`` (this machine has no GPU): the real module's names and return
    shapes (memory in bytes; ``usedGpuMemory`` None when the driver does not say), and a
    record of what was called."""

    def __init__(self, gpus: list[dict[str, Any]], driver: str = "550.54.15") -> None:
        self.gpus = gpus
        self.driver = driver
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}

    def module(self) -> types.ModuleType:
        module = types.ModuleType("pynvml")

        class NVMLError(Exception):  # the real one carries the NVML return code
            def __init__(self, value: int = 999, text: str = "Unknown Error") -> None:
                super().__init__(value)
                self.value = value
                self.text = text

            def __str__(self) -> str:
                return self.text

        def subclass(name: str, value: int, text: str) -> type[NVMLError]:
            def init(self: NVMLError) -> None:
                NVMLError.__init__(self, value, text)

            return type(name, (NVMLError,), {"__init__": init})

        module.NVMLError = NVMLError  # type: ignore[attr-defined]
        for name, value, text in [
            ("NVMLError_NotSupported", 3, "Not Supported"),
            ("NVMLError_NoPermission", 4, "Insufficient Permissions"),
            ("NVMLError_DriverNotLoaded", 9, "Driver Not Loaded"),
            ("NVMLError_LibraryNotFound", 12, "NVML Shared Library Not Found"),
            ("NVMLError_GpuIsLost", 15, "GPU is lost"),
        ]:
            setattr(module, name, subclass(name, value, text))
        for name in (
            "nvmlInit",
            "nvmlShutdown",
            "nvmlSystemGetDriverVersion",
            "nvmlDeviceGetCount",
            "nvmlDeviceGetHandleByIndex",
            "nvmlDeviceGetName",
            "nvmlDeviceGetUUID",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetUtilizationRates",
            "nvmlDeviceGetComputeRunningProcesses",
        ):
            setattr(module, name, self._recorded(name, getattr(self, name)))
        self.errors = module
        return module

    def _recorded(self, name: str, function: Any) -> Any:
        def call(*args: Any) -> Any:
            self.calls.append(name)
            if name in self.fail:
                raise self.fail[name]
            return function(*args)

        call.__name__ = name
        call.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
        return call

    def raise_in(self, name: str, error: str) -> None:
        self.fail[name] = getattr(self.errors, error)()

    def nvmlInit(self) -> None:
        return None

    def nvmlShutdown(self) -> None:
        return None

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return self.gpus[index]

    def nvmlDeviceGetName(self, handle: dict[str, Any]) -> str:
        return str(handle["name"])

    def nvmlDeviceGetUUID(self, handle: dict[str, Any]) -> str:
        return str(handle["uuid"])

    def nvmlDeviceGetMemoryInfo(self, handle: dict[str, Any], version: Any = None) -> Any:
        return types.SimpleNamespace(
            total=handle["total"], free=handle["free"], used=handle["total"] - handle["free"]
        )

    def nvmlDeviceGetUtilizationRates(self, handle: dict[str, Any]) -> Any:
        if handle.get("util") is None:
            raise self.errors.NVMLError_NotSupported()
        return types.SimpleNamespace(gpu=handle["util"], memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: dict[str, Any]) -> list[Any]:
        return [
            types.SimpleNamespace(
                pid=pid, usedGpuMemory=used, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF
            )
            for pid, used in handle.get("processes", [])
        ]


H100 = {
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-5e8f2f7a-0000-0000-0000-000000000000",
    "total": 81559 * MIB,
    "free": 40000 * MIB + 123,  # bytes below a MiB are dropped
    "util": 64,
    "processes": [(1234, 30000 * MIB), (1235, None)],
}
MIG_PARENT = {
    "name": "NVIDIA A100-SXM4-40GB",
    "uuid": "GPU-aaaa",
    "total": 40960 * MIB,
    "free": 40960 * MIB,
    "util": None,  # NVML says NotSupported under MIG
}


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    fake = FakeNvml([H100, MIG_PARENT])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module())
    return fake


def test_the_stand_in_has_the_real_pynvml_names_and_signatures() -> None:
    """The stand-in cannot drift from the real module: its names exist there, its functions
    take the same arguments, its errors are the real ones' names."""
    import pynvml  # type: ignore[import-untyped, unused-ignore]

    stand_in = FakeNvml([]).module()
    for name, value in vars(stand_in).items():
        if name.startswith("nvml"):
            real = inspect.signature(getattr(pynvml, name))
            assert list(real.parameters) == list(inspect.signature(value).parameters), name
        elif name.startswith("NVMLError"):
            assert issubclass(getattr(pynvml, name), pynvml.NVMLError), name
    assert [f[0] for f in pynvml.c_nvmlMemory_t._fields_] == ["total", "free", "used"]
    assert "gpu" in [f[0] for f in pynvml.c_nvmlUtilization_t._fields_]
    fields = [f[0] for f in pynvml.c_nvmlProcessInfo_v3_t._fields_]
    assert {"pid", "usedGpuMemory"} <= set(fields)


def test_nvml_gpus_are_read_in_mib(nvml: FakeNvml) -> None:
    inventory = read_inventory()
    assert inventory.source == "nvml"
    assert inventory.driver_version == "550.54.15"
    assert inventory.note is None
    h100, a100 = inventory.gpus
    assert h100 == GpuInfo(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-5e8f2f7a-0000-0000-0000-000000000000",
        total_mib=81559,
        free_mib=40000,
        used_mib=41558,
        utilization_pct=64,
        processes=((1234, 30000), (1235, None)),
    )
    assert a100.utilization_pct is None  # NotSupported is no error
    assert a100.processes == ()
    assert nvml.calls[0] == "nvmlInit"
    assert nvml.calls[-1] == "nvmlShutdown"


def test_nvml_strings_as_bytes_are_decoded(nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    """Older nvidia-ml-py returned bytes."""
    monkeypatch.setattr(sys.modules["pynvml"], "nvmlDeviceGetName", lambda handle: b"Tesla T4")
    monkeypatch.setattr(sys.modules["pynvml"], "nvmlSystemGetDriverVersion", lambda: b"470.1")
    inventory = read_inventory()
    assert inventory.gpus[0].name == "Tesla T4"
    assert inventory.driver_version == "470.1"


def test_processes_that_cannot_be_read_are_none_listed(nvml: FakeNvml) -> None:
    nvml.raise_in("nvmlDeviceGetComputeRunningProcesses", "NVMLError_NoPermission")
    assert [gpu.processes for gpu in read_inventory().gpus] == [(), ()]


@pytest.mark.parametrize("error", ["NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded"])
def test_nvml_that_does_not_start_is_an_empty_inventory(nvml: FakeNvml, error: str) -> None:
    nvml.raise_in("nvmlInit", error)
    inventory = read_inventory()
    assert inventory.gpus == ()
    assert inventory.source == "none"
    reason = str(getattr(nvml.errors, error)())
    assert inventory.note == f"NVML not available ({reason})"
    assert "nvmlShutdown" not in nvml.calls  # nothing was started


def test_nvml_without_a_gpu_is_an_empty_inventory(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module())
    inventory = read_inventory()
    assert inventory == Inventory((), "none", "550.54.15", "NVML found no GPU")
    assert fake.calls[-1] == "nvmlShutdown"


@pytest.mark.parametrize(
    "query", ["nvmlDeviceGetHandleByIndex", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetUUID"]
)
def test_a_gpu_that_cannot_be_read_is_device_unavailable_and_nvml_shut_down(
    nvml: FakeNvml, query: str
) -> None:
    nvml.raise_in(query, "NVMLError_GpuIsLost")
    with pytest.raises(DeviceUnavailable, match="NVML cannot read GPU 0: GPU is lost") as caught:
        read_inventory()
    assert caught.value.fields == {"device": "cuda:0", "nvml_error": "NVMLError_GpuIsLost"}
    assert nvml.calls[-1] == "nvmlShutdown"


def test_a_failing_count_is_device_unavailable_and_nvml_shut_down(nvml: FakeNvml) -> None:
    nvml.raise_in("nvmlDeviceGetCount", "NVMLError_NoPermission")
    with pytest.raises(DeviceUnavailable, match="cannot count"):
        read_inventory()
    assert nvml.calls[-1] == "nvmlShutdown"


def test_a_failing_shutdown_loses_nothing(nvml: FakeNvml) -> None:
    nvml.raise_in("nvmlShutdown", "NVMLError_GpuIsLost")
    assert len(read_inventory().gpus) == 2


def test_without_pynvml_the_inventory_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    inventory = read_inventory()
    assert inventory.gpus == ()
    assert inventory.source == "none"
    assert inventory.note is not None
    assert "pip install 'modelmanager[gpu]'" in inventory.note


# --- NVML, the real library (no stand-in) -------------------------------------------------


def _nvml_library_loads() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def test_the_real_pynvml_on_this_machine() -> None:
    """No stand-in: the real pynvml's own failure path where there is no driver (this
    machine): an empty inventory with the library's reason. Where a driver is installed
    it reads the real GPUs, whose numbers must hold together."""
    first = read_inventory()
    again = read_inventory()  # a failed nvmlInit leaves nothing behind that breaks the next
    assert first == again or first.source == "nvml"  # live GPUs' free memory moves
    if not _nvml_library_loads():
        assert first == Inventory(
            (), "none", None, "NVML not available (NVML Shared Library Not Found)"
        )
        return
    if first.source == "none":
        assert first.note
        return
    for gpu in first.gpus:
        assert 0 <= gpu.free_mib <= gpu.total_mib
        assert gpu.uuid.startswith(("GPU-", "MIG-"))


# --- The command ------------------------------------------------------------------------

runner = CliRunner()


def test_gpus_prints_the_injected_inventory() -> None:
    result = runner.invoke(app, ["gpus", "--inventory", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"2 GPUs from {EXAMPLE} (injected), driver 550.54.15"
    assert lines[1].split() == [
        "index", "name", "total", "MiB", "free", "MiB", "used", "MiB", "util", "%", "processes"
    ]  # fmt: skip
    assert lines[2].split() == ["0", "NVIDIA", "A10G", "23028", "22515", "513", "0", "-"]
    assert lines[3].split() == [
        "1", "NVIDIA", "A10G", "23028", "11514", "11514", "87", "4242", "(11000", "MiB)"
    ]  # fmt: skip


def test_gpus_json_is_the_inventory() -> None:
    result = runner.invoke(app, ["gpus", "--inventory", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == read_inventory(EXAMPLE).to_json_dict()


def test_gpus_without_a_gpu_is_information_exit_0(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([])
    module = fake.module()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    fake.raise_in("nvmlInit", "NVMLError_DriverNotLoaded")
    plain = runner.invoke(app, ["gpus"])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout == "no GPU: NVML not available (Driver Not Loaded)\n"
    as_json = runner.invoke(app, ["gpus", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == {
        "source": "none",
        "driver_version": None,
        "note": "NVML not available (Driver Not Loaded)",
        "gpus": [],
    }


def test_gpus_reads_nvml(nvml: FakeNvml) -> None:
    result = runner.invoke(app, ["gpus"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "2 GPUs from NVML, driver 550.54.15"
    assert "1234 (30000 MiB), 1235 (? MiB)" in lines[2]
    assert lines[3].split()[-2:] == ["-", "-"]  # no utilisation under MIG, no process


def test_gpus_with_a_bad_inventory_is_bad_input_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, {"gpus": [gpu_entry(free_mib=-1)]})
    plain = runner.invoke(app, ["gpus", "--inventory", str(path)])
    assert plain.exit_code == 2
    assert plain.stdout == ""
    assert "[configuration_invalid]" in plain.stderr
    assert "'gpus.0.free_mib'" in plain.stderr
    as_json = runner.invoke(app, ["gpus", "--inventory", str(path), "--json"])
    assert as_json.exit_code == 2
    error = json.loads(as_json.stdout)
    assert error["error_code"] == "configuration_invalid"
    assert (error["path"], error["field"]) == (str(path), "gpus.0.free_mib")


def test_gpus_with_a_missing_inventory_is_bad_input_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["gpus", "--inventory", str(tmp_path / "nope.json"), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["path"] == str(tmp_path / "nope.json")


def test_a_lost_gpu_fails_the_command_exit_1(nvml: FakeNvml) -> None:
    nvml.raise_in("nvmlDeviceGetMemoryInfo", "NVMLError_GpuIsLost")
    result = runner.invoke(app, ["gpus", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error_code"] == "device_unavailable"
