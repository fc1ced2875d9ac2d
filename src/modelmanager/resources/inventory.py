"""The machine's GPUs, read through NVML, or an injected inventory (issue 14, R-RES).

NVML is the driver's own management library (``libnvidia-ml``, through the ``pynvml``
module of ``nvidia-ml-py``): it reads memory, utilisation and processes without creating a
CUDA context, which is why nothing here touches ``torch.cuda`` (a context costs hundreds of
MiB on every GPU it sees). NVML is local: no network.

    read_inventory()          NVML: the GPUs of this machine
    read_inventory(path)      an injected inventory: a JSON file of Inventory.to_json_dict()'s
                              shape (tests, CPU machines, a planner run elsewhere)

A machine without NVML, without a driver or without a GPU is no error: it has an empty
inventory (``source`` "none") whose ``note`` says why. Indexes are NVML's (PCI bus order);
a CUDA ordinal matches them only under ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` and without
``CUDA_VISIBLE_DEVICES`` - name a GPU to a child process by its ``uuid`` to be sure.

The injected file::

    {
      "driver_version": "550.54.15",
      "gpus": [
        {"index": 0, "name": "NVIDIA A10G", "uuid": "GPU-...", "total_mib": 23028,
         "free_mib": 11514, "used_mib": 11514, "utilization_pct": 40,
         "processes": [{"pid": 4242, "used_mib": 11000}]}
      ]
    }

``source`` and ``note`` may be present (what ``--json`` printed) and are not read back:
the source of an injected inventory is its path.

Example::

    >>> from pathlib import Path
    >>> from modelmanager.resources.inventory import read_inventory
    >>> inventory = read_inventory(Path("examples/gpus.json"))
    >>> [gpu.free_mib for gpu in inventory.gpus]
    [22515, 11514]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmanager.errors import DeviceUnavailable

__all__ = ["GpuInfo", "Inventory", "read_inventory"]

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024
_INSTALL_HINT = "pip install 'modelmanager[gpu]'"


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML (or an injected inventory) reports it; memory in MiB.

    ``utilization_pct`` is None where the device does not report it (MIG, some vGPUs);
    ``processes`` holds ``(pid, used_mib)`` of its compute processes, ``used_mib`` None
    where the driver does not say (no permission, WDDM).
    """

    index: int
    name: str
    uuid: str
    total_mib: int
    free_mib: int
    used_mib: int
    utilization_pct: int | None = None
    processes: tuple[tuple[int, int | None], ...] = ()

    def to_json_dict(self) -> dict[str, Any]:
        """The GPU as ``--json`` prints it (and an injected file holds it)."""
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "total_mib": self.total_mib,
            "free_mib": self.free_mib,
            "used_mib": self.used_mib,
            "utilization_pct": self.utilization_pct,
            "processes": [{"pid": pid, "used_mib": used} for pid, used in self.processes],
        }


@dataclass(frozen=True)
class Inventory:
    """The GPUs of a machine, where they were read from, and why there are none if so.

    ``source`` is "nvml", the injected file's path, or "none" (no GPU could be read:
    ``note`` says why).
    """

    gpus: tuple[GpuInfo, ...]
    source: str
    driver_version: str | None = None
    note: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The inventory as ``modelmanager gpus --json`` prints it."""
        return {
            "source": self.source,
            "driver_version": self.driver_version,
            "note": self.note,
            "gpus": [gpu.to_json_dict() for gpu in self.gpus],
        }

    def by_index(self, index: int) -> GpuInfo | None:
        """The GPU of NVML index ``index``, or None where the inventory has none: the
        caller says what a missing device means (a planner: too little GPU memory)."""
        return next((gpu for gpu in self.gpus if gpu.index == index), None)


def read_inventory(path: Path | None = None) -> Inventory:
    """The GPUs of this machine through NVML, or those of an injected inventory file.

    Args:
        path: a JSON file of :meth:`Inventory.to_json_dict`'s shape; None reads NVML.

    Returns:
        The inventory; an empty one (source "none", with a ``note``) where NVML, its
        driver or a GPU is missing: a CPU machine is not an error.

    Raises:
        ConfigurationInvalid: the injected file is missing, not JSON, or a field does not
            fit (the error names the path and the field).
        DeviceUnavailable: NVML started but a GPU it counted could not be read.
    """
    if path is not None:
        from modelmanager.resources._inventory_file import read_injected

        return read_injected(path)
    return _read_nvml()


# --- NVML ---------------------------------------------------------------------------------


def _read_nvml() -> Inventory:
    try:
        import pynvml  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        logger.debug("pynvml is not importable: %s", exc)
        return _empty(f"NVML not available (pynvml is not installed: {_INSTALL_HINT})")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # no library, no driver, no permission
        logger.debug("nvmlInit failed: %r", exc)
        return _empty(f"NVML not available ({exc})")
    try:
        driver = _optional(pynvml, pynvml.nvmlSystemGetDriverVersion)
        driver_version = None if driver is None else _text(driver)
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        except pynvml.NVMLError as exc:
            raise DeviceUnavailable(
                f"NVML cannot count the GPUs: {exc}", nvml_error=type(exc).__name__
            ) from exc
        if count == 0:
            return _empty("NVML found no GPU", driver_version=driver_version)
        gpus = tuple(_read_gpu(pynvml, index) for index in range(count))
        return Inventory(gpus=gpus, source="nvml", driver_version=driver_version)
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as exc:  # the inventory is read; nothing to undo
            logger.debug("nvmlShutdown failed: %r", exc)


def _read_gpu(pynvml: Any, index: int) -> GpuInfo:
    """One device's facts; a failure of a fact every GPU has is the device's failure."""
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = _text(pynvml.nvmlDeviceGetName(handle))
        uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    except pynvml.NVMLError as exc:  # GpuIsLost, NoPermission, ...
        raise DeviceUnavailable(
            f"NVML cannot read GPU {index}: {exc}",
            device=f"cuda:{index}",
            nvml_error=type(exc).__name__,
        ) from exc
    rates = _optional(pynvml, pynvml.nvmlDeviceGetUtilizationRates, handle)
    processes = _optional(pynvml, pynvml.nvmlDeviceGetComputeRunningProcesses, handle) or []
    return GpuInfo(
        index=index,
        name=name,
        uuid=uuid,
        total_mib=int(memory.total) // _MIB,
        free_mib=int(memory.free) // _MIB,
        used_mib=int(memory.used) // _MIB,
        utilization_pct=None if rates is None else int(rates.gpu),
        processes=tuple(
            (
                int(process.pid),
                None if process.usedGpuMemory is None else int(process.usedGpuMemory) // _MIB,
            )
            for process in processes
        ),
    )


def _optional(pynvml: Any, query: Any, *args: Any) -> Any:
    """``query(*args)``, or None where the device does not support it or refuses it:
    utilisation under MIG, processes without permission, never a reason to lose the GPU."""
    try:
        return query(*args)
    except pynvml.NVMLError as exc:
        logger.debug("%s failed: %r", getattr(query, "__name__", query), exc)
        return None


def _text(value: Any) -> str:
    """NVML's strings: str since nvidia-ml-py 11.515, bytes before."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _empty(note: str, *, driver_version: str | None = None) -> Inventory:
    return Inventory(gpus=(), source="none", driver_version=driver_version, note=note)
