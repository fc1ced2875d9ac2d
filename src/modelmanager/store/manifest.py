"""manifest.json: the record of one run (R-ART-2, R-MAP-3, R-FAIL-4, R-SIG-5).

Where it lives: ``<root>/<platform_id>/<video_id>/runs/<run_id>/manifest.json``
(:func:`~modelmanager.store.artifacts.manifest_relpath`). What it holds::

    {
      "manifest_version": 2,
      "run": {                                  RunSection
        "run_id", "platform_id", "video_id", "config_hash",
        "sampling_policy_version", "dataprocessor_version", "user_id",
        "input_digest",                         sha256 of the input video, or null
        "mapping_source",                       payload | profile path | db:<profile>
        "resolved_model_mapping": {...},        the whole ResolvedMapping (R-MAP-3)
        "status": "running" | "ok" | "failed" | "interrupted",
        "started_at", "finished_at"             ISO-8601 UTC; finished_at null while running
      },
      "components": [                           ComponentEntry, in run order
        {
          "component", "status": "ok" | "cached" | "failed",
          "started_at", "finished_at", "duration_ms",
          "producer_version", "schema_version", "device_used", "batch_size",
          "models_used": [...], "model_signature",  "" if it failed before resolving
          "cache_key", "cache_key_material",    CacheKey.to_json_dict(): what `explain` diffs
          "cache_hit",
          "artifact": {"relpath", "size", "sha256"} | null,
          "error", "error_code", "error_fields", "warnings", "oom_retries",
          "batch_reason"                        why the plan chose its device and batch
        }
      ]
    }

The file is pretty JSON (indent 2, sorted keys, trailing newline), written
atomically like artifacts. Its JSON Schema is generated from these models
(:func:`manifest_json_schema`) and committed as ``schemas/manifest.schema.json``
(:data:`MANIFEST_SCHEMA_PATH`); a test keeps the two equal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelmanager.errors import ArtifactInvalid
from modelmanager.mapping.spec import ModelUsed, Name, ResolvedMapping, RunContext
from modelmanager.store.artifacts import ArtifactRecord
from modelmanager.store.atomic import atomic_write
from modelmanager.store.fields import Sha256Tagged, UtcTimestamp
from modelmanager.store.layout import resolve_relpath

__all__ = [
    "MANIFEST_SCHEMA_PATH",
    "MANIFEST_VERSION",
    "ComponentEntry",
    "ComponentStatus",
    "Manifest",
    "RunSection",
    "RunStatus",
    "manifest_json_schema",
    "read_manifest",
    "render_json",
    "write_manifest",
]

MANIFEST_VERSION: Final = 2
"""Written by this version. 2 added ``run.input_digest`` (issue 13); a version-1 manifest
(no such field) still reads, with ``input_digest`` null."""
MANIFEST_SCHEMA_PATH = Path(__file__).parent / "schemas" / "manifest.schema.json"
"""The committed JSON Schema of manifest.json (kept equal to :func:`manifest_json_schema`)."""

ComponentStatus = Literal["ok", "cached", "failed"]
RunStatus = Literal["ok", "failed", "running", "interrupted"]

_JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

NonEmpty = Annotated[str, Field(strict=True, min_length=1)]
Sha256OrEmpty = Annotated[str, Field(strict=True, pattern=r"^(sha256:[0-9a-f]{64})?$")]
"""``sha256:<hex>``, or ``""`` where a failed component never got that far."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentEntry(_Record):
    """What one component did in a run: outcome, timing, models, key, artifact, error.

    ``model_signature`` and ``cache_key`` are ``""`` and ``cache_key_material``
    is ``{}`` only for a failed component that never got that far (e.g. its
    mapping entry was missing); an ``ok`` or ``cached`` entry has all three.
    ``cache_key_material`` is :meth:`CacheKey.to_json_dict`, which
    :func:`~modelmanager.mapping.signature.diff_documents` compares between runs (R-SIG-5).
    ``error_code`` is the stable code of the failure (R-FAIL-4) and
    ``error_fields`` its structured details (component, role, path, ...).
    """

    component: Name
    status: ComponentStatus
    started_at: UtcTimestamp
    finished_at: UtcTimestamp
    duration_ms: Annotated[float, Field(ge=0)]
    producer_version: NonEmpty
    schema_version: NonEmpty
    device_used: str | None
    batch_size: Annotated[int, Field(ge=1)] | None
    models_used: tuple[ModelUsed, ...]
    model_signature: Sha256OrEmpty
    cache_key: Sha256OrEmpty
    cache_key_material: dict[str, Any]
    cache_hit: bool
    artifact: ArtifactRecord | None
    error: str | None
    error_code: str | None
    error_fields: dict[str, Any] = Field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    batch_reason: str | None = None
    oom_retries: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _consistent(self) -> ComponentEntry:
        if self.status == "failed":
            if not self.error_code:
                raise ValueError("a failed component needs an error_code (R-FAIL-4)")
        else:
            if self.error is not None or self.error_code is not None:
                raise ValueError(f"a component with status {self.status!r} has no error")
            missing = [
                name
                for name in ("model_signature", "cache_key", "cache_key_material")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"a component with status {self.status!r} needs {missing}")
            if self.cache_hit != (self.status == "cached"):
                raise ValueError(
                    f"status {self.status!r} contradicts cache_hit={self.cache_hit} "
                    "('cached' is exactly a cache hit)"
                )
        if self.cache_key or self.cache_key_material:
            recorded = self.cache_key_material.get("cache_key")
            if recorded != self.cache_key:
                raise ValueError(
                    f"cache_key_material.cache_key {recorded!r} is not cache_key {self.cache_key!r}"
                )
        return self


class RunSection(_Record):
    """The run's context and the resolved mapping it ran with (R-MAP-3).

    Reproducing the run needs nothing else: not the current profile, not the
    database (R-MAP-3). ``finished_at`` is null exactly while ``status`` is
    ``running``.
    """

    run_id: Name
    platform_id: Name
    video_id: Name
    config_hash: NonEmpty
    sampling_policy_version: NonEmpty
    dataprocessor_version: NonEmpty
    user_id: str | None = None
    input_digest: Sha256Tagged | None = None
    mapping_source: NonEmpty
    resolved_model_mapping: ResolvedMapping
    status: RunStatus
    started_at: UtcTimestamp
    finished_at: UtcTimestamp | None

    @model_validator(mode="after")
    def _finished_iff_done(self) -> RunSection:
        if (self.status == "running") != (self.finished_at is None):
            raise ValueError(
                f"status {self.status!r} with finished_at={self.finished_at!r}: "
                "finished_at is null exactly while running"
            )
        return self

    @classmethod
    def from_context(
        cls,
        run_context: RunContext,
        *,
        resolved_model_mapping: ResolvedMapping,
        mapping_source: str,
        started_at: str,
        status: RunStatus = "running",
        finished_at: str | None = None,
    ) -> RunSection:
        """The section of a run that starts now with ``run_context``.

        Raises:
            pydantic.ValidationError: a field breaks its rule.
        """
        return cls(
            **run_context.model_dump(),
            mapping_source=mapping_source,
            resolved_model_mapping=resolved_model_mapping,
            status=status,
            started_at=started_at,
            finished_at=finished_at,
        )

    @property
    def run_context(self) -> RunContext:
        """The run context the section was written from."""
        return RunContext(
            platform_id=self.platform_id,
            video_id=self.video_id,
            run_id=self.run_id,
            config_hash=self.config_hash,
            sampling_policy_version=self.sampling_policy_version,
            dataprocessor_version=self.dataprocessor_version,
            user_id=self.user_id,
            input_digest=self.input_digest,
        )


class Manifest(_Record):
    """One run's manifest.json: the run section and its components in run order."""

    manifest_version: Literal[1, 2] = MANIFEST_VERSION
    run: RunSection
    components: tuple[ComponentEntry, ...] = ()

    @model_validator(mode="after")
    def _unique_components(self) -> Manifest:
        seen: set[str] = set()
        for entry in self.components:
            if entry.component in seen:
                raise ValueError(f"component {entry.component!r} appears twice")
            seen.add(entry.component)
        return self

    def component(self, name: str) -> ComponentEntry | None:
        """The entry of component ``name``, or None."""
        return next((e for e in self.components if e.component == name), None)

    def to_json_text(self) -> str:
        """The exact text :func:`write_manifest` writes."""
        return render_json(self.model_dump(mode="json"))


def render_json(value: Any) -> str:
    """Pretty, stable JSON: indent 2, sorted keys, UTF-8 characters as themselves, final newline."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_manifest(root: str | os.PathLike[str], relpath: str, manifest: Manifest) -> Path:
    """Write ``manifest`` to ``root/relpath`` atomically (temp file, fsync, rename, dir fsync).

    Args:
        root: the artifact root.
        relpath: usually :func:`~modelmanager.store.artifacts.manifest_relpath`.
        manifest: the run's manifest; rewrite it whole as the run goes on.

    Returns:
        The written path.

    Raises:
        ValueError: ``relpath`` is not a relative POSIX path inside ``root``.
        OSError: the file cannot be written.
    """
    path = resolve_relpath(root, relpath)
    data = manifest.to_json_text().encode("utf-8")

    def write(stream: IO[bytes]) -> None:
        stream.write(data)

    atomic_write(path, write)
    return path


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The typed manifest in ``path``.

    Raises:
        ArtifactInvalid: the file is missing (``problem="missing"``), is not
            UTF-8 JSON (``"unreadable"``), or does not validate (``"format"``,
            with the first error's ``field`` and ``reason``); always with ``path``.
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ArtifactInvalid(
            f"{where}: the manifest does not exist", problem="missing", path=where
        ) from None
    except OSError as exc:
        raise ArtifactInvalid(
            f"{where}: cannot read the manifest: {exc}", problem="unreadable", path=where
        ) from exc
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactInvalid(
            f"{where}: not UTF-8 JSON: {exc}", problem="unreadable", path=where
        ) from None
    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        field = ".".join(str(p) for p in first["loc"]) or "manifest"
        reason = str(first["msg"]).removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ArtifactInvalid(
            f"{where}: field {field!r}: {reason}{more}",
            problem="format",
            path=where,
            field=field,
            reason=reason,
        ) from None


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of manifest.json, generated from :class:`Manifest`.

    Class docstrings are left out of it: they document code, and rewording one
    must not change the schema that other programs validate against.
    """
    schema = _without_descriptions(Manifest.model_json_schema(mode="validation"))
    return {
        "$schema": _JSON_SCHEMA_DIALECT,
        **schema,
        "description": "manifest.json of one modelmanager run (R-ART-2); "
        f"manifest_version {MANIFEST_VERSION}",
    }


def _without_descriptions(node: Any) -> Any:
    # No field is named "description", so a str under that key is always a docstring.
    if isinstance(node, dict):
        return {
            k: _without_descriptions(v)
            for k, v in node.items()
            if not (k == "description" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node
