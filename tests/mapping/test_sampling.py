"""Issue 13: the sampling policy is versioned into every key: a changed parameter recomputes
even with the same label; an unchanged policy keeps every key."""

from __future__ import annotations

import pytest

from modelmanager.errors import InvalidModelSpec
from modelmanager.mapping.sampling import AUDIO_RATE
from modelmanager.media import DEFAULT_POLICY, SamplingPolicy, parse_policy


def test_the_key_version_is_the_label_and_a_digest_of_the_parameters() -> None:
    policy = SamplingPolicy(version="2", fps=1, max_frames=64)
    label, digest = policy.key_version.split("+")
    assert label == "2"
    assert len(digest) == 12
    assert int(digest, 16) >= 0


def test_the_same_policy_written_differently_keeps_its_key_version() -> None:
    a = parse_policy({"version": "1", "fps": 1, "max_frames": 64})
    b = parse_policy({"max_frames": 64, "fps": 1.0, "version": 1})
    assert a.key_version == b.key_version == DEFAULT_POLICY.key_version


@pytest.mark.parametrize(
    "change", [{"fps": 2}, {"max_frames": 65}, {"width": 160, "height": 96}, {"version": "2"}]
)
def test_any_change_changes_the_key_version(change: dict[str, object]) -> None:
    assert parse_policy({"version": "1", **change}).key_version != DEFAULT_POLICY.key_version


def test_the_parameters_say_the_audio_rate() -> None:
    assert DEFAULT_POLICY.parameters["audio_rate"] == AUDIO_RATE


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"fps": 0}, "sampling.fps"),
        ({"max_frames": 0}, "sampling.max_frames"),
        ({"width": 160}, "sampling"),
        ({"fps": "fast"}, "sampling.fps"),
        ({"frames_per_second": 1}, "sampling.frames_per_second"),
        ({"version": 1.5}, "sampling.version"),
    ],
)
def test_a_bad_policy_names_its_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidModelSpec) as caught:
        parse_policy(data, source="profile.yaml")
    assert caught.value.fields["field"] == field
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith("[invalid_model_spec] profile.yaml: sampling")


def test_a_profile_carries_its_policy_and_a_bad_one_names_the_field() -> None:
    from modelmanager.mapping.spec import parse_mapping

    mapping = parse_mapping({"components": {}, "sampling": {"version": 2, "fps": 0.5}})
    assert mapping.sampling == SamplingPolicy(version="2", fps=0.5)
    assert parse_mapping({"components": {}}).sampling is None
    with pytest.raises(InvalidModelSpec) as caught:
        parse_mapping({"components": {}, "sampling": {"fps": -1}}, source="p.yaml")
    assert caught.value.fields["field"] == "sampling.fps"
