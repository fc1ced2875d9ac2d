"""An injected GPU inventory file (the JSON ``modelmanager gpus --json`` prints), checked
field by field. Imported only when a file is given: its pydantic models cost ~6 ms."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from modelmanager.errors import ConfigurationInvalid
from modelmanager.resources.inventory import GpuInfo, Inventory

__all__ = ["read_injected"]


class _ProcessEntry(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    pid: int = Field(ge=0)
    used_mib: int | None = Field(default=None, ge=0)


class _GpuEntry(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    index: int = Field(ge=0)
    name: str = Field(min_length=1)
    uuid: str = Field(min_length=1)
    total_mib: int = Field(gt=0)
    free_mib: int = Field(ge=0)
    used_mib: int = Field(ge=0)
    utilization_pct: int | None = Field(default=None, ge=0, le=100)
    processes: list[_ProcessEntry] = Field(default_factory=list)

    @field_validator("free_mib", "used_mib")
    @classmethod
    def _within_total(cls, value: int, info: ValidationInfo) -> int:
        total = info.data.get("total_mib")  # absent when total_mib itself failed
        if total is not None and value > total:
            raise ValueError(f"{value} is more than total_mib ({total})")
        return value


class _InventoryFile(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    gpus: list[_GpuEntry]
    driver_version: str | None = None
    source: str | None = None  # what --json printed; the path wins
    note: str | None = None

    @field_validator("gpus")
    @classmethod
    def _distinct_indexes(cls, gpus: list[_GpuEntry]) -> list[_GpuEntry]:
        indexes = [gpu.index for gpu in gpus]
        repeated = sorted({index for index in indexes if indexes.count(index) > 1})
        if repeated:
            raise ValueError(f"index {', '.join(map(str, repeated))} appears more than once")
        return gpus


_INJECTED_HINT = (
    "An injected inventory is a JSON object of `modelmanager gpus --json`'s shape "
    "(examples/gpus.json); fix the named field."
)


def read_injected(path: Path) -> Inventory:
    """The inventory in the file at ``path``.

    Raises:
        ConfigurationInvalid: unreadable, not JSON, or a field that does not fit.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationInvalid(
            f"GPU inventory {path}: cannot be read: {exc}", path=str(path)
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationInvalid(
            f"GPU inventory {path}: not JSON: {exc}", path=str(path), hint=_INJECTED_HINT
        ) from exc
    if not isinstance(data, dict):
        raise ConfigurationInvalid(
            f"GPU inventory {path}: must be a JSON object, not {type(data).__name__}",
            path=str(path),
            hint=_INJECTED_HINT,
        )
    try:
        document = _InventoryFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"])
        reason = "is required" if first["type"] == "missing" else first["msg"]
        raise ConfigurationInvalid(
            f"GPU inventory {path}: field {field!r}: {reason}",
            path=str(path),
            field=field,
            hint=_INJECTED_HINT,
        ) from None
    gpus = tuple(
        GpuInfo(
            index=gpu.index,
            name=gpu.name,
            uuid=gpu.uuid,
            total_mib=gpu.total_mib,
            free_mib=gpu.free_mib,
            used_mib=gpu.used_mib,
            utilization_pct=gpu.utilization_pct,
            processes=tuple((process.pid, process.used_mib) for process in gpu.processes),
        )
        for gpu in sorted(document.gpus, key=lambda gpu: gpu.index)
    )
    return Inventory(
        gpus=gpus,
        source=str(path),
        driver_version=document.driver_version,
        note=None if gpus else "the injected inventory lists no GPU",
    )
