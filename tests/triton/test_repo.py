"""Triton model repository from a mapping: layout, config.pbtxt, model.py, refusals, atomicity.

The repository is checked here without a server (config parsed with Triton's own
protobuf schema); tests/triton/test_server.py serves it for real.
"""

from __future__ import annotations

import ast
import json
import os
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import typer
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2
from typer.testing import CliRunner

from modelmanager.errors import (
    ConfigurationInvalid,
    InvalidModelSpec,
    ModelArtifactMissing,
    ModelMappingMissing,
    WeightsDigestMismatch,
)
from modelmanager.mapping.spec import TensorSpec, parse_mapping
from modelmanager.triton.model_py import render_model_py
from modelmanager.triton.repo import RepositoryModel, build_repository, render_config
from modelmanager.weights.digest import hash_file
from tests.conftest import onnx_entry
from tests.triton_fixtures import PREPROCESS_PRESET, mlp_mapping, write_mlp_models

EXPECTED_CONFIG = """\
name: "mlp"
backend: "python"
max_batch_size: 64
input [
  {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 8 ]
  }
]
output [
  {
    name: "y"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }
]
instance_group [ { kind: KIND_CPU, count: 1 } ]
dynamic_batching { }
version_policy: { specific: { versions: [ 1, 2 ] } }
parameters {
  key: "preprocess_preset"
  value { string_value: "mlp-pre@1" }
}
"""


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_mlp_models(root)
    return root


@pytest.fixture
def raw(models_root: Path) -> dict[str, Any]:
    return mlp_mapping(models_root)


def build(raw: dict[str, Any], models_root: Path, out: Path, **kw: Any) -> list[RepositoryModel]:
    return build_repository(parse_mapping(raw), models_root, out, **kw)


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def parse_config(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def leftovers(parent: Path, out: Path) -> list[str]:
    """Temporary directories a build left next to ``out``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}."))


# -- what is written ------------------------------------------------------------------------


def test_layout_and_returned_models(raw: dict[str, Any], models_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    models = build(raw, models_root, out)
    assert models == [RepositoryModel("mlp", (1, 2), out / "mlp")]
    files = tree(out)
    assert sorted(files) == [
        "mlp/1/model.onnx",
        "mlp/1/model.py",
        "mlp/2/model.onnx",
        "mlp/2/model.py",
        "mlp/config.pbtxt",
    ]
    for version in (1, 2):
        source = models_root / f"mlp/{version}/model.onnx"
        assert files[f"mlp/{version}/model.onnx"] == source.read_bytes()
    assert files["mlp/1/model.onnx"] != files["mlp/2/model.onnx"]
    assert leftovers(tmp_path, out) == []
    assert os.stat(out).st_mode & 0o777 == 0o755  # readable by a server run as another user


def test_config_pbtxt(raw: dict[str, Any], models_root: Path, tmp_path: Path) -> None:
    build(raw, models_root, tmp_path / "repo")
    text = (tmp_path / "repo/mlp/config.pbtxt").read_text()
    assert text == EXPECTED_CONFIG
    config = parse_config(text)  # Triton's own schema accepts it
    assert config.name == "mlp"
    assert config.backend == "python"
    assert config.max_batch_size == 64
    assert list(config.version_policy.specific.versions) == [1, 2]
    assert [(t.name, list(t.dims)) for t in config.input] == [("x", [8])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("y", [4])]
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert config.HasField("dynamic_batching")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert config.parameters["preprocess_preset"].string_value == PREPROCESS_PRESET


def test_only_the_pinned_versions_are_listed(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    del raw["components"]["scorer"]["v1"]
    models = build(raw, models_root, tmp_path / "repo")
    assert models[0].versions == (2,)
    config = parse_config((tmp_path / "repo/mlp/config.pbtxt").read_text())
    assert list(config.version_policy.specific.versions) == [2]
    assert not (tmp_path / "repo/mlp/1").exists()


def test_unbatched_tensors_keep_full_dims() -> None:
    text = render_config(
        "m",
        inputs=[
            TensorSpec(name="a", dtype="INT64", shape=(-1, 3)),
            TensorSpec(name="b", dtype="BYTES", shape=(2, -1)),
        ],
        outputs=[TensorSpec(name="c", dtype="FP16", shape=(-1,))],
        versions=[3],
    )
    config = parse_config(text)
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")
    assert [list(t.dims) for t in config.input] == [[-1, 3], [2, -1]]
    assert [list(t.dims) for t in config.output] == [[-1]]
    assert [t.data_type for t in (*config.input, *config.output)] == [
        model_config_pb2.TYPE_INT64,
        model_config_pb2.TYPE_STRING,
        model_config_pb2.TYPE_FP16,
    ]
    assert "preprocess_preset" not in config.parameters


def test_strings_are_escaped_in_config() -> None:
    awkward = 'pre "quoted" \\ back\nslash é@1'
    text = render_config(
        "m",
        inputs=[TensorSpec(name='in"put', dtype="FP32", shape=(-1, 2))],
        outputs=[TensorSpec(name="out", dtype="FP32", shape=(-1, 2))],
        versions=[1],
        preprocess_preset=awkward,
    )
    config = parse_config(text)
    assert config.parameters["preprocess_preset"].string_value == awkward
    assert config.input[0].name == 'in"put'


def test_model_py_compiles_and_puts_site_packages_first(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    build(raw, models_root, tmp_path / "repo")
    source = (tmp_path / "repo/mlp/1/model.py").read_text()
    module = compile(source, "model.py", "exec", flags=ast.PyCF_ONLY_AST)
    assert isinstance(module, ast.Module)
    compile(source, "model.py", "exec")
    assert repr(sysconfig.get_paths()["purelib"]) in source
    # sys.path is changed before the first import of a third-party module.
    first_loop = next(i for i, node in enumerate(module.body) if isinstance(node, ast.For))
    first_numpy = next(
        i
        for i, node in enumerate(module.body)
        if isinstance(node, ast.Import) and node.names[0].name == "numpy"
    )
    assert first_loop < first_numpy
    classes = [n.name for n in module.body if isinstance(n, ast.ClassDef)]
    assert classes == ["TritonPythonModel"]


def test_model_py_embeds_paths_as_literals() -> None:
    odd = '/tmp/it\'s "odd"\\ {braces}'
    source = render_model_py([odd, "/second"])
    module = ast.parse(source)
    loop = next(node for node in module.body if isinstance(node, ast.For))
    assert ast.literal_eval(loop.iter.args[0]) == [odd, "/second"]  # type: ignore[attr-defined]


def test_same_version_pinned_twice_is_written_once(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    raw["components"]["other"] = {"scorer": raw["components"]["scorer"]["v1"]}
    models = build(raw, models_root, tmp_path / "repo")
    assert models[0].versions == (1, 2)


def test_inprocess_entries_are_ignored(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    raw["components"]["local"] = {"enc": onnx_entry(artifacts={"onnx_path": "absent.onnx"})}
    assert [m.name for m in build(raw, models_root, tmp_path / "repo")] == ["mlp"]


# -- refusals --------------------------------------------------------------------------------


def test_digest_mismatch_refused(raw: dict[str, Any], models_root: Path, tmp_path: Path) -> None:
    raw["components"]["scorer"]["v2"]["weights_digest"] = "sha256:" + "e" * 64
    out = tmp_path / "repo"
    with pytest.raises(WeightsDigestMismatch) as info:
        build(raw, models_root, out)
    fields = info.value.fields
    assert (fields["component"], fields["role"], fields["field"]) == (
        "scorer",
        "v2",
        "artifacts.onnx_path",
    )
    assert fields["path"] == str(models_root / "mlp/2/model.onnx")
    assert fields["expected"] == "sha256:" + "e" * 64
    assert fields["actual"] == hash_file(models_root / "mlp/2/model.onnx")
    assert not out.exists()
    assert leftovers(tmp_path, out) == []


def test_missing_onnx_file_refused(raw: dict[str, Any], models_root: Path, tmp_path: Path) -> None:
    (models_root / "mlp/1/model.onnx").unlink()
    with pytest.raises(ModelArtifactMissing) as info:
        build(raw, models_root, tmp_path / "repo")
    assert info.value.fields["role"] == "v1"
    assert info.value.fields["field"] == "artifacts.onnx_path"


def test_missing_onnx_path_refused_with_the_field(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    del raw["components"]["scorer"]["v1"]["artifacts"]
    with pytest.raises(InvalidModelSpec) as info:
        build(raw, models_root, tmp_path / "repo")
    fields = info.value.fields
    assert (fields["component"], fields["role"], fields["field"]) == (
        "scorer",
        "v1",
        "artifacts.onnx_path",
    )
    assert "Triton repository is built from the ONNX file" in str(info.value)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("triton.inputs", {"inputs": [{"name": "x", "dtype": "FP32", "shape": [-1, 9]}]}),
        ("triton.outputs", {"outputs": [{"name": "z", "dtype": "FP32", "shape": [-1, 4]}]}),
        ("triton.preprocess_preset", {"preprocess_preset": "mlp-pre@2"}),
    ],
)
def test_versions_of_one_model_must_agree(
    raw: dict[str, Any], models_root: Path, tmp_path: Path, field: str, change: dict[str, Any]
) -> None:
    raw["components"]["scorer"]["v2"]["triton"].update(change)
    with pytest.raises(InvalidModelSpec) as info:
        build(raw, models_root, tmp_path / "repo")
    fields = info.value.fields
    assert (fields["component"], fields["role"], fields["field"]) == ("scorer", "v2", field)
    assert not (tmp_path / "repo").exists()


def test_one_version_with_two_digests_refused(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    other = json.loads(json.dumps(raw["components"]["scorer"]["v1"]))
    other["weights_digest"] = raw["components"]["scorer"]["v2"]["weights_digest"]
    other["artifacts"]["onnx_path"] = "mlp/2/model.onnx"
    raw["components"]["zz_other"] = {"scorer": other}
    with pytest.raises(InvalidModelSpec) as info:
        build(raw, models_root, tmp_path / "repo")
    fields = info.value.fields
    assert (fields["component"], fields["role"], fields["field"]) == (
        "zz_other",
        "scorer",
        "weights_digest",
    )
    assert "version 1" in str(info.value)


def test_model_name_that_is_no_directory_refused(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    raw["components"]["scorer"]["v1"]["triton"]["model_name"] = "../escape"
    with pytest.raises(InvalidModelSpec) as info:
        build(raw, models_root, tmp_path / "repo")
    assert info.value.fields["field"] == "triton.model_name"


def test_symlink_out_of_models_root_refused(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.onnx"
    (models_root / "mlp/1/model.onnx").rename(outside)
    (models_root / "mlp/1/model.onnx").symlink_to(outside)
    with pytest.raises(InvalidModelSpec) as info:
        build(raw, models_root, tmp_path / "repo")
    assert info.value.fields["field"] == "artifacts.onnx_path"
    assert "outside models_root" in str(info.value)


def test_no_triton_entry_refused(models_root: Path, tmp_path: Path) -> None:
    raw = {"components": {"local": {"enc": onnx_entry()}}}
    with pytest.raises(ModelMappingMissing):
        build(raw, models_root, tmp_path / "repo")


# -- writing atomically ----------------------------------------------------------------------


def test_empty_out_directory_is_used(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    out.mkdir()
    build(raw, models_root, out)
    assert (out / "mlp/config.pbtxt").is_file()


def test_out_that_is_a_file_refused(raw: dict[str, Any], models_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    out.write_text("not a directory")
    with pytest.raises(ConfigurationInvalid) as info:
        build(raw, models_root, out, force=True)
    assert info.value.fields["path"] == str(out)


def test_non_empty_out_refused_without_force(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigurationInvalid) as info:
        build(raw, models_root, out)
    assert info.value.fields["path"] == str(out)
    assert tree(out) == {"keep.txt": b"mine"}
    assert leftovers(tmp_path, out) == []


def test_force_replaces_a_previous_repository(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    build(raw, models_root, out)
    (out / "stale.txt").write_text("from before")
    inode = os.stat(out).st_ino
    del raw["components"]["scorer"]["v1"]
    build(raw, models_root, out, force=True)
    assert sorted(tree(out)) == ["mlp/2/model.onnx", "mlp/2/model.py", "mlp/config.pbtxt"]
    assert os.stat(out).st_ino != inode  # a new directory renamed in, not rewritten in place
    assert leftovers(tmp_path, out) == []


def test_failed_build_leaves_the_previous_repository_intact(
    raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    build(raw, models_root, out)
    before = tree(out)
    # The second version's file is now other bytes than the mapping pins.
    (models_root / "mlp/2/model.onnx").write_bytes(b"not the pinned model")
    with pytest.raises(WeightsDigestMismatch):
        build(raw, models_root, out, force=True)
    assert tree(out) == before
    assert leftovers(tmp_path, out) == []


# -- modelmanager triton build-repo ----------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    """The sub-app mounted as cli.py mounts it: ``modelmanager triton ...``."""
    from modelmanager.cli.triton import triton_app

    app = typer.Typer()
    app.add_typer(triton_app, name="triton")
    return app


@pytest.fixture
def profile(raw: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(raw))
    return path


def test_cli_build_repo(cli: typer.Typer, profile: Path, models_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-repo"
    args = ["triton", "build-repo", str(profile), str(out), "--models-root", str(models_root)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert "mlp  versions 1, 2" in result.output
    assert (out / "mlp/config.pbtxt").read_text() == EXPECTED_CONFIG

    again = CliRunner().invoke(cli, [*args, "--json"])
    assert again.exit_code == 2
    assert json.loads(again.stdout)["error_code"] == "configuration_invalid"

    forced = CliRunner().invoke(cli, [*args, "--force", "--json"])
    assert forced.exit_code == 0, forced.output
    document = json.loads(forced.stdout)
    assert document["repository"] == str(out)
    assert document["models"] == [{"name": "mlp", "versions": [1, 2], "path": str(out / "mlp")}]


def test_cli_build_repo_takes_models_root_from_env(
    cli: typer.Typer,
    profile: Path,
    models_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELMANAGER_MODELS_ROOT", str(models_root))
    result = CliRunner().invoke(cli, ["triton", "build-repo", str(profile), str(tmp_path / "r")])
    assert result.exit_code == 0, result.output


def test_cli_build_repo_needs_models_root(cli: typer.Typer, profile: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["triton", "build-repo", str(profile), str(tmp_path / "r"), "--json"]
    )
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["error_code"] == "configuration_invalid"
    assert document["setting"] == "models_root"


def test_cli_build_repo_reports_a_mismatch(
    cli: typer.Typer, raw: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    raw["components"]["scorer"]["v1"]["weights_digest"] = "sha256:" + "a" * 64
    profile = tmp_path / "bad.json"
    profile.write_text(json.dumps(raw))
    result = CliRunner().invoke(
        cli,
        [
            "triton",
            "build-repo",
            str(profile),
            str(tmp_path / "r"),
            "--models-root",
            str(models_root),
        ],
    )
    assert result.exit_code == 1
    assert "weights_digest_mismatch" in result.output
    assert not (tmp_path / "r").exists()


def test_scalars_and_model_metadata_in_the_config() -> None:
    """A scalar input is declared [1] (Triton has no rank 0); the ONNX metadata, with its
    newlines and non-ASCII text, comes back intact as string parameters."""
    characters = "a\nb\n疗\n\"'\\"
    text = render_config(
        "vad",
        inputs=[
            TensorSpec(name="input", dtype="FP32", shape=(-1, -1)),
            TensorSpec(name="sr", dtype="INT64", shape=()),
        ],
        outputs=[TensorSpec(name="output", dtype="FP32", shape=(-1, 1))],
        versions=[1],
        model_metadata={"character": characters, "note": "x"},
    )
    config = parse_config(text)
    assert config.max_batch_size == 0
    assert [(t.name, list(t.dims)) for t in config.input] == [("input", [-1, -1]), ("sr", [1])]
    assert config.parameters["model_metadata.character"].string_value == characters
    assert config.parameters["model_metadata.note"].string_value == "x"
