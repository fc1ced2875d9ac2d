"""Issue 6: `modelmanager run` over the sample with the real prepared models; a second run is all hits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelmanager.cli import app
from modelmanager.tools.prepare import write_profile
from tests.conftest import REPO

runner = CliRunner()
TALK = [str(REPO / "examples/videos/talk.mp4"), "--video-id", "talk"]
"""The one-video arguments of `run`: a real video and its id."""


def manifest_of(stdout: str, video: int = 0) -> dict[str, Any]:
    """The manifest of one video's run in `run --json`'s document."""
    document = json.loads(stdout)
    manifest: dict[str, Any] = document["runs"][video]["manifest"]
    return manifest


@pytest.fixture(scope="module")
def prepared(
    real_models: tuple[Path, list[Any]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The session's real models and a profile written from them."""
    root, models = real_models
    profile = tmp_path_factory.mktemp("profile") / "profile.yaml"
    write_profile(models, profile)
    return root, profile


def test_run_twice_second_is_all_cache_hits(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    args = ["run", str(profile), *TALK, "--models-root", str(root)]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    manifest = manifest_of(first.stdout)
    assert [(c["component"], c["status"]) for c in manifest["components"]] == [
        ("audio_vad", "ok"),
        ("text_ocr", "ok"),
        ("frame_safety", "ok"),
    ]

    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a fully cached run decoded the video")

    monkeypatch.setattr("modelmanager.media.decode.decode_video", no_decoding)
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert second.output.count("│ cached │ yes") == 3
    assert "manifest" in second.output


def test_run_with_a_missing_video_is_bad_input(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(
        app, ["run", str(profile), str(tmp_path / "nope"), "--models-root", str(root), "--json"]
    )
    assert result.exit_code == 2
    assert json.loads(result.output)["error_code"] == "configuration_invalid"


def test_run_against_a_local_triton(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    args = ["run", str(profile), *TALK, "--models-root", str(root)]
    result = runner.invoke(app, [*args, "--runtime", "triton", "--json"])
    assert result.exit_code == 0, result.output
    manifest = manifest_of(result.stdout)
    assert [(c["component"], c["status"]) for c in manifest["components"]] == [
        ("audio_vad", "ok"),
        ("text_ocr", "ok"),
        ("frame_safety", "ok"),
    ]
    runtimes = {u["runtime"] for c in manifest["components"] for u in c["models_used"]}
    assert runtimes == {"triton"}


def test_run_against_triton_needs_a_models_root(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(app, ["run", str(profile), *TALK, "--runtime", "triton", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.output)["error_code"] == "configuration_invalid"


def test_a_cached_run_imports_no_runtime_and_full_verification_rehashes(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    args = ["run", str(profile), *TALK, "--models-root", str(root)]
    assert runner.invoke(app, [*args, "--json"]).exit_code == 0  # computes
    # A fresh process, as `modelmanager run` is: which modules did the cached run load?
    probe = (
        "import json, sys\n"
        "from modelmanager.cli import main\n"
        "sys.argv = ['modelmanager', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "heavy = ['onnxruntime', 'tritonclient', 'modelmanager.triton', 'modelmanager.runtimes.onnx',"
        " 'alembic', 'scipy', 'torch', 'onnx']\n"
        "from modelmanager.weights.digest import hashing_totals\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'loaded': loaded, 'hashed': hashing_totals().files}),"
        " file=sys.stderr)\n"
    )
    for verify in ("stat", "full"):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args, "--json", "--verify-artifacts", verify],
            capture_output=True,
            text=True,
            check=False,
        )
        report = json.loads(done.stderr.strip().splitlines()[-1])
        hashed = 0 if verify == "stat" else 3  # the three artifacts, re-hashed
        assert report == {"code": 0, "loaded": [], "hashed": hashed}, done.stderr
        manifest = manifest_of(done.stdout)
        assert [c["status"] for c in manifest["components"]] == ["cached"] * 3


def test_verify_artifacts_takes_stat_or_full(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    args = ["run", str(profile), *TALK, "--models-root", str(root)]
    result = runner.invoke(app, [*args, "--verify-artifacts", "sha"])
    assert result.exit_code == 2
    help_text = runner.invoke(app, ["run", "--help"], terminal_width=200).output
    assert "--verify-artifacts" in help_text
    assert "re-hashes" in help_text


def _profile_with(
    source: Path, target: Path, renames: dict[str, str], keep: set[str] | None = None
) -> Path:
    """A copy of the profile ``source`` with components renamed (and only ``keep``, if given)."""
    import yaml

    from modelmanager.mapping.sources import load_document

    document = load_document(source)
    document["components"] = {
        renames.get(name, name): roles
        for name, roles in document["components"].items()
        if keep is None or name in keep
    }
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def test_a_misspelled_profile_component_is_bad_input_before_any_run(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    typo = _profile_with(profile, tmp_path / "typo.yaml", {"text_ocr": "text_ocrr"})
    args = ["run", str(typo), *TALK, "--models-root", str(root)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)
    assert error["error_code"] == "invalid_model_spec"
    assert (error["component"], error["suggestion"]) == ("text_ocrr", "text_ocr")
    assert "did you mean 'text_ocr'?" in error["error"]
    text = runner.invoke(app, args)
    assert text.exit_code == 2
    assert "text_ocrr" in text.stderr
    assert "hint: Rename 'text_ocrr' to 'text_ocr'" in text.stderr
    listed = runner.invoke(app, ["runs", "list", "--json"])
    # No run was started: not even the run index was created.
    assert json.loads(listed.stdout)["error_code"] == "database_error"


def test_a_profile_with_every_component_misspelled_runs_nothing(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    renames = {"audio_vad": "audio-vad", "text_ocr": "textocr", "frame_safety": "frame_saftey"}
    typos = _profile_with(profile, tmp_path / "typos.yaml", renames)
    result = runner.invoke(
        app,
        ["run", str(typos), *TALK, "--models-root", str(root), "--json"],
    )
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)
    assert error["error_code"] == "invalid_model_spec"
    assert error["components"] == ["audio-vad", "textocr", "frame_saftey"]
    for typo, known in renames.items():
        assert f"{known!r} (did you mean {typo!r}?)" in error["error"]


def test_the_example_profile_names_components_no_pipeline_component_consumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    copy = tmp_path / "profile.yaml"
    copy.write_text((REPO / "examples/profile.yaml").read_text())
    result = runner.invoke(app, ["run", str(copy), *TALK, "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)
    assert error["error_code"] == "invalid_model_spec"
    assert "frame_features" in error["components"]
    assert "text_ocr" not in error["components"]


def test_a_pipeline_component_the_profile_lacks_is_bad_input_unless_left_out(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: a pipeline component the profile has no mapping for fails the run before it
    starts, naming it; --component runs only some components, on purpose."""
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    only_vad = _profile_with(profile, tmp_path / "vad.yaml", {}, keep={"audio_vad"})
    args = ["run", str(only_vad), *TALK, "--models-root", str(root)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)
    assert error["error_code"] == "model_mapping_missing"
    assert error["components"] == ["frame_safety", "text_ocr"]
    assert "has no mapping for pipeline components 'frame_safety', 'text_ocr'" in error["error"]
    text = runner.invoke(app, args)
    assert "hint: Add frame_safety, text_ocr to the profile, or run only some" in text.stderr
    chosen = runner.invoke(app, [*args, "--component", "audio_vad", "--json"])
    assert chosen.exit_code == 0, chosen.output
    assert [c["component"] for c in manifest_of(chosen.stdout)["components"]] == ["audio_vad"]
    lacking = runner.invoke(app, [*args, "-c", "audio_vad", "-c", "text_ocr", "--json"])
    assert lacking.exit_code == 2, lacking.output
    assert json.loads(lacking.stdout)["components"] == ["text_ocr"]


def test_run_only_some_components_of_a_full_profile(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    args = ["run", str(profile), *TALK, "--models-root", str(root)]
    result = runner.invoke(app, [*args, "-c", "frame_safety", "-c", "audio_vad", "--json"])
    assert result.exit_code == 0, result.output
    ran = [c["component"] for c in manifest_of(result.stdout)["components"]]
    assert ran == ["audio_vad", "frame_safety"]  # the profile's order
    typo = runner.invoke(app, [*args, "-c", "audio_vadd", "--json"])
    assert typo.exit_code == 2, typo.output
    error = json.loads(typo.stdout)
    assert (error["error_code"], error["suggestion"]) == ("configuration_invalid", "audio_vad")


VIDEOS = REPO / "examples" / "videos"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "no video to run"),
        (["nope.mp4", "--video-id", "v"], "no such video file"),
        ([str(VIDEOS / "talk.mp4")], "--video-id is needed"),
        ([str(VIDEOS / "talk.mp4"), str(VIDEOS / "silent.mp4")], "need a video list"),
        ([str(VIDEOS / "talk.mp4"), "--video-id", "../up"], "is not a safe name"),
        ([str(VIDEOS / "talk.mp4"), "--video-id", "v", "--platform-id", "a/b"], "safe name"),
        ([str(VIDEOS / "talk.mp4"), "--video-id", "x" * 129], "is not a safe name"),
        (["--videos", str(VIDEOS / "videos.json"), "--run-id", "r1"], "--run-id names one run"),
        (["--videos", str(VIDEOS / "videos.json"), str(VIDEOS / "talk.mp4")], "not both"),
    ],
    ids=["none", "missing", "no-id", "two-no-list", "dotdot", "slash", "long", "run-id", "both"],
)
def test_bad_video_arguments_are_bad_input_before_anything_runs(
    prepared: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    needle: str,
) -> None:
    """Issue 13: ids come from flags or a list, never file names; they are safe names."""
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(app, ["run", str(profile), *args, "--models-root", str(root), "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)
    assert error["error_code"] == "configuration_invalid"
    assert needle in error["error"]
    text = runner.invoke(app, ["run", str(profile), *args, "--models-root", str(root)])
    assert "hint: " in text.stderr
    assert not (tmp_path / "data").exists()  # nothing ran, not even the index was made


@pytest.mark.parametrize("content", [b"not a video at all\n", b""], ids=["text", "empty"])
def test_a_file_that_is_no_video_is_video_invalid(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(content)
    args = ["run", str(profile), str(fake), "--video-id", "fake", "--models-root", str(root)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)
    assert (error["error_code"], error["path"]) == ("video_invalid", str(fake))
    assert "Traceback" not in runner.invoke(app, args).output


def _video_list(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(items))
    return path


def test_many_videos_run_in_one_process_and_one_bad_video_stops_no_other(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: a truncated video fails its own run (video_invalid, exit 2); a video
    without audio fails audio_vad (input_missing) and runs the others; the rest run."""
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    data = (VIDEOS / "street.webm").read_bytes()
    (tmp_path / "cut.webm").write_bytes(data[: len(data) * 2 // 3])
    listed = _video_list(
        tmp_path / "videos.json",
        [
            {"file": str(VIDEOS / "talk.mp4"), "video_id": "talk"},
            {"file": "cut.webm", "video_id": "cut", "platform_id": "web"},
            {"file": str(VIDEOS / "silent.mp4"), "video_id": "silent"},
        ],
    )
    args = ["run", str(profile), "--videos", str(listed), "--models-root", str(root)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is False
    talk, cut, silent = document["runs"]
    assert (talk["ok"], talk["video_id"]) == (True, "talk")
    assert talk["input_digest"] == talk["manifest"]["run"]["input_digest"]
    # Decoded only when a component computes: its run is recorded, each component failed.
    assert cut["error"] is None
    assert {c["error_code"] for c in cut["manifest"]["components"]} == {"video_invalid"}
    assert "truncated" in cut["manifest"]["components"][0]["error"]
    assert cut["manifest"]["run"]["status"] == "failed"
    statuses = {c["component"]: c["status"] for c in silent["manifest"]["components"]}
    assert statuses == {"audio_vad": "failed", "text_ocr": "ok", "frame_safety": "ok"}
    (vad,) = [c for c in silent["manifest"]["components"] if c["component"] == "audio_vad"]
    assert vad["error_code"] == "input_missing"


def test_other_bytes_under_the_same_ids_recompute_and_a_renamed_file_hits(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: a copy of the video with its bytes changed, under the same ids, recomputes
    every component and warns naming both digests; the same bytes under another file name
    are a cache hit."""
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    import av
    import numpy as np

    original = tmp_path / "talk.mp4"
    original.write_bytes((VIDEOS / "talk.mp4").read_bytes())
    changed = tmp_path / "changed.mp4"
    with av.open(str(original)) as source, av.open(str(changed), "w") as sink:
        stream = sink.add_stream("libx264", rate=25)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for frame in source.decode(video=0):
            black = av.VideoFrame.from_ndarray(np.zeros((96, 160, 3), np.uint8), format="rgb24")
            black.pts, black.time_base = frame.pts, frame.time_base
            sink.mux(stream.encode(black))
        sink.mux(stream.encode(None))
    base = ["run", str(profile), "--video-id", "talk", "--models-root", str(root), "--json"]

    def run(video: Path) -> dict[str, Any]:
        result = runner.invoke(app, [*base[:2], str(video), *base[2:]])
        assert result.exit_code in (0, 1), result.output
        return manifest_of(result.stdout)

    first = run(original)
    blank = run(changed)
    assert all(c["status"] != "cached" for c in blank["components"])
    digests = (first["run"]["input_digest"], blank["run"]["input_digest"])
    assert digests[0] != digests[1]
    for entry in blank["components"]:
        assert any(digests[0] in w and digests[1] in w for w in entry["warnings"]), entry
    renamed = tmp_path / "renamed.mp4"
    original.rename(renamed)
    again = run(renamed)
    # The newest run of the ids read other bytes: the original's are hit again, and warned.
    assert [c["status"] for c in again["components"]] == ["cached"] * 3
    explained = runner.invoke(
        app, ["explain", first["run"]["run_id"], blank["run"]["run_id"], "--json"]
    )
    assert explained.exit_code == 0, explained.output
    for name, found in json.loads(explained.stdout).items():
        fields = [d["field"] for d in found["differences"] if d["field"] != "cache_key"]
        assert fields == ["input_digest"], name


def test_a_duplicate_run_id_hints_at_another_run_id(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    only_vad = _profile_with(profile, tmp_path / "vad.yaml", {}, keep={"audio_vad"})
    args = ["run", str(only_vad), *TALK, "--models-root", str(root)]
    args += ["-c", "audio_vad"]
    first = runner.invoke(app, [*args, "--run-id", "run-twice"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, [*args, "--run-id", "run-twice"])
    assert again.exit_code == 1, again.output
    assert "[database_error]" in again.stderr
    assert "choose another --run-id" in again.stderr
    assert "MODELMANAGER_DATABASE_URL" not in again.stderr
    document = json.loads(runner.invoke(app, [*args, "--run-id", "run-twice", "--json"]).stdout)
    error = document["runs"][0]["error"]
    assert (error["error_code"], error["run_id"]) == ("database_error", "run-twice")


def test_a_run_waiting_for_a_key_names_the_worker_that_holds_it(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from modelmanager.index import RunStore

    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    holder = "gpu-7:4242:abcd1234"
    monkeypatch.setattr(RunStore, "try_acquire", lambda *args: None)
    monkeypatch.setattr(RunStore, "holder", lambda *args: (holder, datetime.now(UTC)))
    only_vad = _profile_with(profile, tmp_path / "vad.yaml", {}, keep={"audio_vad"})
    args = [str(only_vad), *TALK, "--models-root", str(root)]
    result = runner.invoke(app, ["--lease-wait-s", "0.2", "run", *args, "-c", "audio_vad"])
    assert result.exit_code == 1, result.output
    assert f"audio_vad: waiting for {holder} computing the same key" in result.stderr
    assert "lease_wait_timeout" in result.stdout
    assert f"waited 0 s for {holder}" in result.stdout


def _processes() -> dict[int, tuple[str, int, int]]:
    """pid -> (comm, ppid, pgrp) of every live process (procfs)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode(errors="replace")
            fields = stat.rsplit(b")", 1)[1].split()
            if fields[0] not in (b"Z", b"X"):
                found[int(entry.name)] = (comm, int(fields[1]), int(fields[2]))
    return found


# The run's first component blocks once it starts (the server is up and serving by then).
_BLOCKING_RUN = """
import sys, time
from modelmanager.components import REGISTRY
def blocked(self, request):
    print("computing", file=sys.stderr, flush=True)
    time.sleep(120)
REGISTRY["audio_vad"].process = blocked
from modelmanager.cli import main
main()
"""


def test_sigterm_during_a_triton_run_stops_the_server_and_its_stubs(
    prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    """Issue 12: SIGTERM during `run --runtime triton` ends the run `interrupted`, with its
    manifest, and leaves no tritonserver or Python backend stub behind (it leaked ~550 MB)."""
    import os
    import signal
    import time

    root, profile = prepared
    env = {**os.environ, "MODELMANAGER_DATA_DIR": str(tmp_path / "data")}
    args = [str(profile), *TALK, "--models-root", str(root)]
    command = [sys.executable, "-c", _BLOCKING_RUN, "run", *args, "--runtime", "triton"]
    worker = subprocess.Popen(
        [*command, "--run-id", "drill", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        assert worker.stderr.readline().strip() == "computing", "the run never started"
        servers = [
            pid
            for pid, (comm, ppid, _) in _processes().items()
            if ppid == worker.pid and comm == "tritonserver"
        ]
        assert len(servers) == 1
        group = [pid for pid, (_, _, pgrp) in _processes().items() if pgrp == servers[0]]
        assert len(group) > 1  # the server and its Python backend stubs
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 1
    assert json.loads(out)["error_code"] == "run_interrupted"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(group) & set(_processes()):
        time.sleep(0.05)
    assert not set(group) & set(_processes()), "a tritonserver process outlived the run"
    shown = runner.invoke(app, ["runs", "show", "drill", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    run = json.loads(shown.stdout)
    assert run["status"] == "interrupted"
    assert run["manifest_path"]


def test_the_run_command_takes_the_lease_settings(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: MODELMANAGER_LEASE_TTL_S/_WAIT_S were documented but the runner used 60/600."""
    from modelmanager.run.runner import Runner

    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MODELMANAGER_LEASE_TTL_S", "7.5")
    seen: list[tuple[float, float]] = []

    def spy(self: Runner, *args: Any, **kwargs: Any) -> Any:
        seen.append((self.lease_ttl_s, self.lease_wait_s))
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "run", spy)
    args = ["run", str(profile), *TALK, "--models-root", str(root)]
    runner.invoke(app, ["--lease-wait-s", "42", *args])
    assert seen == [(7.5, 42.0)]


def test_run_from_a_database_profile_and_from_a_run_payload(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 (R-MAP-1): run takes a database profile's name, and a run payload whose
    embedded mapping wins; the payload's run context gives config_hash and versions."""
    import yaml

    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    loaded = runner.invoke(app, ["profiles", "load", str(profile), "--name", "demo"])
    assert loaded.exit_code == 0, loaded.output
    tail = [*TALK, "--models-root", str(root), "-c", "audio_vad", "--json"]
    from_db = runner.invoke(app, ["run", "demo", *tail])
    assert from_db.exit_code == 0, from_db.output
    assert manifest_of(from_db.stdout)["run"]["mapping_source"] == "database:demo"
    payload = tmp_path / "payload.json"
    context = {"config_hash": "cfg-7", "dataprocessor_version": "9.9.9", "user_id": "u-1"}
    mapping = yaml.safe_load(profile.read_text())
    payload.write_text(json.dumps({"run_context": context, "model_mapping": mapping}))
    from_payload = runner.invoke(app, ["run", str(payload), *tail])
    assert from_payload.exit_code == 0, from_payload.output
    run = manifest_of(from_payload.stdout)["run"]
    assert run["mapping_source"] == "payload"
    assert {k: run[k] for k in context} == context
    missing = runner.invoke(app, ["run", "no-such-profile", *tail])
    assert missing.exit_code == 2, missing.output
    assert json.loads(missing.stdout)["error_code"] == "model_mapping_missing"


def test_a_changed_sampling_policy_recomputes_and_the_same_one_rewritten_does_not(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 (R-SIG-3): the profile's sampling policy is in every key by its key_version:
    a changed parameter recomputes (even under the same label); the same policy written
    otherwise (key order, 1 for 1.0) hits the cache."""
    import yaml

    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    document = yaml.safe_load(profile.read_text())

    def run_with(sampling: dict[str, Any]) -> dict[str, Any]:
        path = tmp_path / "sampled.yaml"
        path.write_text(yaml.safe_dump({**document, "sampling": sampling}, sort_keys=False))
        args = ["run", str(path), *TALK, "--models-root", str(root), "-c", "text_ocr", "--json"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return manifest_of(result.stdout)

    first = run_with({"version": "1", "fps": 1.0, "max_frames": 64})
    assert [c["status"] for c in first["components"]] == ["ok"]
    same = run_with({"max_frames": 64, "fps": 1, "version": 1})
    assert [c["status"] for c in same["components"]] == ["cached"]
    faster = run_with({"version": "1", "fps": 2, "max_frames": 64})
    assert [c["status"] for c in faster["components"]] == ["ok"]
    versions = [m["run"]["sampling_policy_version"] for m in (first, same, faster)]
    assert versions[0] == versions[1] != versions[2]
    assert all(v.startswith("1+") for v in versions)
    assert faster["run"]["resolved_model_mapping"]["sampling"]["fps"] == 2


def test_a_gpu_profile_is_planned_before_the_run_and_the_manifest_says_why(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 (R-RES-1, R-SCHED, R-MAP-4): a `cuda` entry gets its GPU and batch from the
    plan before the manager is made; the manifest records device, batch and reason. This
    machine has no GPU: the inventory is injected, and the run itself then fails the GPU
    components with device_unavailable (no CUDA provider here; nothing falls back to CPU).
    On a machine without any GPU the plan refuses at once."""
    import yaml

    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    document = yaml.safe_load(profile.read_text())
    for entry in document["components"]["text_ocr"].values():
        entry["device_policy"] = "cuda"
        entry["memory"] = {"fixed_mib": 400, "per_item_mib": 100}
    gpu_profile = tmp_path / "gpu.yaml"
    gpu_profile.write_text(yaml.safe_dump(document))
    args = ["run", str(gpu_profile), *TALK, "--models-root", str(root), "-c", "text_ocr"]
    inventory = str(REPO / "examples" / "gpus.json")
    result = runner.invoke(app, ["--gpu-inventory", inventory, *args, "--json"])
    assert result.exit_code == 1, result.output
    (entry,) = manifest_of(result.stdout)["components"]
    assert entry["device_used"] == "cuda:0"
    assert entry["error_code"] == "device_unavailable"
    assert entry["batch_reason"].startswith("cuda:0 (NVIDIA A10G) has 22003 MiB usable")
    assert "batch 8, capped by the component's 8" in entry["batch_reason"]
    empty = tmp_path / "none.json"
    empty.write_text('{"source": "nvml", "gpus": []}')
    refused = runner.invoke(app, ["--gpu-inventory", str(empty), *args, "--json"])
    assert refused.exit_code == 1, refused.output
    assert json.loads(refused.stdout)["error_code"] == "insufficient_gpu_memory"


def test_a_cpu_run_records_the_batch_it_ran_with_and_why(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    args = ["run", str(profile), *TALK, "--models-root", str(root), "-c", "frame_safety"]
    (entry,) = manifest_of(runner.invoke(app, [*args, "--json"]).stdout)["components"]
    assert (entry["batch_size"], entry["batch_reason"]) == (8, "cpu: the component's own batch (8)")
