"""D10: the modelmanager command: output, --json, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelmanager.cli import app
from tests.conftest import EXAMPLES, RUN_CONTEXT, age

runner = CliRunner()


def run(*args: str | Path) -> Any:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def example(tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the example profile and models (tests may break them)."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    return tmp_path / "examples" / "profile.yaml", tmp_path / "examples" / "models"


def test_resolve_example_profile(example: tuple[Path, Path]) -> None:
    profile, root = example
    result = run("resolve", profile, "--models-root", root)
    assert result.exit_code == 0, result.output
    assert "text_ocr" in result.output
    assert "recognizer" in result.output
    assert "verified (hashed)" in result.output
    assert "model_signature" in result.output


def test_resolve_json_has_mapping_models_used_and_signatures(example: tuple[Path, Path]) -> None:
    profile, root = example
    result = run("resolve", profile, "--models-root", root, "--json", "--component", "text_ocr")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert list(doc["components"]) == ["text_ocr"]
    ocr = doc["components"]["text_ocr"]
    assert [u["role"] for u in ocr["models_used"]] == ["detector", "recognizer"]
    assert ocr["model_signature"].startswith("sha256:")
    assert ocr["roles"]["detector"]["verified"].startswith("verified")


def test_resolve_payload_uses_its_mapping(example: tuple[Path, Path], tmp_path: Path) -> None:
    from modelmanager.mapping.sources import load_document

    profile, root = example
    payload = tmp_path / "payload.json"
    payload.write_text(
        json.dumps({"run_context": RUN_CONTEXT, "model_mapping": load_document(profile)})
    )
    result = run("resolve", payload, "--models-root", root, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["source"] == "payload"


def test_resolve_tampered_weights_exit_1_with_code(example: tuple[Path, Path]) -> None:
    profile, root = example
    (root / "text-detector/2.1.0/model.onnx").write_bytes(b"tampered")
    result = run("resolve", profile, "--models-root", root, "--json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["error_code"] == "weights_digest_mismatch"
    assert (doc["component"], doc["role"]) == ("text_ocr", "detector")


def test_resolve_missing_weights_exit_1(example: tuple[Path, Path]) -> None:
    profile, root = example
    (root / "frame-encoder/1.0.0/model.onnx").unlink()
    result = run("resolve", profile, "--models-root", root)
    assert result.exit_code == 1
    assert "[model_artifact_missing]" in result.output
    assert "hint:" in result.output


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["resolve", "absent.yaml"], "profile_load_failed"),
        (["resolve", "{profile}", "--component", "nope"], "model_mapping_missing"),
        (["resolve", "{profile}"], "configuration_invalid"),
        (["resolve", "{bad}"], "invalid_model_spec"),
    ],
)
def test_bad_input_exits_2(
    example: tuple[Path, Path], tmp_path: Path, args: list[str], code: str
) -> None:
    profile, _ = example
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        profile.read_text().replace('model_version: "2.1.0"', "model_version: latest", 1)
    )
    result = run(*[a.format(profile=profile, bad=bad) for a in args], "--json")
    assert result.exit_code == 2, result.output
    assert json.loads(result.output)["error_code"] == code


def test_digest_command(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    age(f)
    result = run("digest", f, "--json")
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(result.output)
    assert (
        doc["digest"] == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert doc["cached"] is False
    assert json.loads(run("digest", f, "--json").output)[0]["cached"] is True
    assert json.loads(run("digest", f, "--json", "--no-cache").output)[0]["cached"] is False
    text = run("digest", f).output
    assert text.startswith("sha256:ba7816bf")
    assert "3 bytes" in text


def test_digest_missing_file_is_bad_input(tmp_path: Path) -> None:
    result = run("digest", tmp_path / "nope")
    assert result.exit_code == 2
    assert "[configuration_invalid]" in result.output


def _write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_explain_two_keys(tmp_path: Path, ocr_mapping: dict[str, Any], models_root: Path) -> None:
    from modelmanager import ModelManager

    mm = ModelManager(RUN_CONTEXT, ocr_mapping, models_root=models_root)
    a = mm.cache_key_for("text_ocr", producer_version="1.0.0", schema_version="3").to_json_dict()
    ocr_mapping["components"]["text_ocr"]["recognizer"]["precision"] = "fp16"
    mm2 = ModelManager(
        {**RUN_CONTEXT, "config_hash": "cfg-new"}, ocr_mapping, models_root=models_root
    )
    b = mm2.cache_key_for("text_ocr", producer_version="1.0.0", schema_version="3").to_json_dict()
    pa, pb = _write_json(tmp_path / "a.json", a), _write_json(tmp_path / "b.json", b)

    result = run("explain", pa, pb, "--json")
    assert result.exit_code == 0, result.output
    fields = [d["field"] for d in json.loads(result.output)["differences"]]
    assert fields == [
        "cache_key",
        "config_hash",
        "model_signature",
        "models_used[recognizer].precision",
    ]
    text = run("explain", pa, pb).output
    assert 'models_used[recognizer].precision: "fp32" → "fp16"' in text
    assert "the same key" in run("explain", pa, pa).output


def test_explain_two_resolve_outputs(example: tuple[Path, Path], tmp_path: Path) -> None:
    profile, root = example
    a = _write_json(
        tmp_path / "a.json",
        json.loads(run("resolve", profile, "--models-root", root, "--json").output),
    )
    changed = tmp_path / "changed.yaml"
    changed.write_text(profile.read_text().replace("precision: fp32", "precision: fp16", 1))
    b = _write_json(
        tmp_path / "b.json",
        json.loads(run("resolve", changed, "--models-root", root, "--json").output),
    )
    fields = [d["field"] for d in json.loads(run("explain", a, b, "--json").output)["differences"]]
    assert fields == [
        "components.frame_features.model_signature",
        "components.frame_features.models_used[encoder].precision",
    ]


def test_explain_refuses_other_documents(tmp_path: Path) -> None:
    a = _write_json(tmp_path / "a.json", {"hello": 1})
    result = run("explain", a, a)
    assert result.exit_code == 2
    assert "not a key document" in result.output


def test_console_script_is_installed_and_exits_2_on_usage_error() -> None:
    exe = Path(sys.executable).parent / "modelmanager"
    ok = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0
    assert "resolve" in ok.stdout
    bad = subprocess.run([exe, "resolve"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_health_of_the_example_profile(example: tuple[Path, Path]) -> None:
    profile, root = example
    profile.write_text(profile.read_text().replace("127.0.0.1:8001", f"127.0.0.1:{_closed_port()}"))
    ok = run("health", profile, "--models-root", root, "--component", "text_ocr", "--json")
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert doc["healthy"] is True
    assert [(m["role"], m["ok"]) for m in doc["models"]] == [
        ("detector", True),
        ("recognizer", True),
    ]
    # No Triton server listens on that port: the model is unhealthy, at once.
    failed = run("health", profile, "--models-root", root, "--component", "scene_score", "--json")
    assert failed.exit_code == 1
    (model,) = json.loads(failed.output)["models"]
    assert (model["ok"], model["error_code"]) == (False, "triton_unavailable")
    assert model["ms"] < 1000


def test_health_table(example: tuple[Path, Path]) -> None:
    profile, root = example
    (root / "frame-encoder/1.0.0/model.onnx").write_bytes(b"tampered")
    result = run("health", profile, "--models-root", root, "-c", "frame_features")
    assert result.exit_code == 1
    assert "FAIL weights_digest_mismatch" in result.output


def _big_profile(path: Path, example_profile: Path, n: int) -> Path:
    """A profile of ``n`` components, each the example's frame encoder (one weights file)."""
    import yaml

    entry = yaml.safe_load(example_profile.read_text())["components"]["frame_features"]
    components = {f"c{i:05d}": entry for i in range(n)}
    return _write_json(path, {"format_version": 1, "profile": "big", "components": components})


def _peak_bytes(work: Any) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_resolve_json_costs_about_what_the_api_does(
    example: tuple[Path, Path], tmp_path: Path
) -> None:
    """Issue 12: the --json of a large document costs a small multiple of the API's memory
    (rich's JSON highlighting took 18x: 1.4 GiB for a 10k-component resolve)."""
    from modelmanager.manager import ModelManager
    from modelmanager.mapping.sources import resolve_mapping

    profile, root = example
    big = _big_profile(tmp_path / "big.json", profile, 2000)

    def api() -> None:
        mapping, _ = resolve_mapping(profile_path=big)
        with ModelManager(None, mapping, models_root=root) as mm:
            list(mm.verify_all())
            for name in mapping.components:
                mm.models_used_for(name)
                mm.model_signature_for(name)

    results: list[Any] = []

    def cli() -> None:
        results.append(run("resolve", big, "--models-root", root, "--json"))

    api(), cli()  # imports and the digest cache warm, outside the measurement
    cli_peak, api_peak = _peak_bytes(cli), _peak_bytes(api)
    for result in results:
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.stdout)["components"]) == 2000
    assert cli_peak <= 3 * api_peak
