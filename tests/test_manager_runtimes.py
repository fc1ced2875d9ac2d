"""R-RT-1, R-RT-5: get_runtime, preload, health and close, with an injected runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from modelmanager import ModelManager, WeightsDigestMismatch
from modelmanager.errors import ModelLoadFailed
from modelmanager.mapping.spec import ResolvedModelSpec
from modelmanager.runtimes import Health, Runtime, RuntimeMetadata


class Recorded:
    """A runtime that records what the manager does with it (no backend needed)."""

    opened: ClassVar[list[tuple[str, str, Path | None]]] = []

    def __init__(self, spec: ResolvedModelSpec, path: Path | None, *, fail: bool = False) -> None:
        self.spec, self.path, self.fail, self.closed = spec, path, fail, False

    def open(self) -> None:
        if self.fail:
            raise ModelLoadFailed("cannot load")
        Recorded.opened.append((self.spec.component_name, self.spec.role, self.path))

    def infer(self, inputs: Any) -> dict[str, Any]:
        return dict(inputs)

    __call__ = infer

    def metadata(self) -> RuntimeMetadata:
        return RuntimeMetadata("x", "onnx", "cpu", (), ())

    def health(self) -> Health:
        return Health(True, "fine")

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def _reset() -> None:
    Recorded.opened = []


def _mm(mapping: dict[str, Any], root: Path, **kw: Any) -> ModelManager:
    return ModelManager(
        None, mapping, models_root=root, runtime_factory=lambda s, p: Recorded(s, p, **kw)
    )


def test_runtime_is_opened_once_per_role_with_the_verified_path(
    ocr_mapping: dict[str, Any], models_root: Path
) -> None:
    mm = _mm(ocr_mapping, models_root)
    spec = mm.resolve("text_ocr", "detector")
    first = mm.get_runtime(spec)
    assert mm.get_runtime(spec) is first
    assert isinstance(first, Runtime)
    assert Recorded.opened == [
        ("text_ocr", "detector", models_root / "text-detector/2.1.0/model.onnx")
    ]
    mm.get_runtime(mm.resolve("scene_score", "scorer"))
    assert Recorded.opened[-1] == ("scene_score", "scorer", None)


def test_tampered_weights_never_reach_the_runtime(
    ocr_mapping: dict[str, Any], models_root: Path
) -> None:
    mm = _mm(ocr_mapping, models_root)
    spec = mm.mapping.spec("text_ocr", "detector")
    (models_root / "text-detector/2.1.0/model.onnx").write_bytes(b"swapped")
    with pytest.raises(WeightsDigestMismatch):
        mm.get_runtime(spec)  # type: ignore[arg-type]
    assert Recorded.opened == []


def test_preload_opens_in_process_models_only(
    ocr_mapping: dict[str, Any], models_root: Path
) -> None:
    handles = _mm(ocr_mapping, models_root).preload()
    assert [(h.spec.component_name, h.spec.role) for h in handles] == [
        ("text_ocr", "detector"),
        ("text_ocr", "recognizer"),
    ]


def test_health_reports_each_role_without_raising(
    ocr_mapping: dict[str, Any], models_root: Path
) -> None:
    (models_root / "text-recognizer/2.1.0/model.onnx").unlink()
    reports = _mm(ocr_mapping, models_root).health()
    by_role = {r.spec.role: r for r in reports}
    assert by_role["detector"].ok
    assert by_role["detector"].detail == "fine"
    assert (by_role["recognizer"].ok, by_role["recognizer"].error_code) == (
        False,
        "model_artifact_missing",
    )
    failing = _mm(ocr_mapping, models_root, fail=True).health(["scene_score"])
    assert [(r.ok, r.error_code) for r in failing] == [(False, "model_load_failed")]
    assert "scene_score/scorer" in failing[0].detail


def test_close_closes_every_handle(ocr_mapping: dict[str, Any], models_root: Path) -> None:
    with _mm(ocr_mapping, models_root) as mm:
        handles = mm.preload()
    assert all(h.closed for h in handles)  # type: ignore[attr-defined]
