"""The ModelManager facade: what every component asks (R-RT-1).

>>> mm = ModelManager(run_context, mapping, models_root="models")  # doctest: +SKIP
>>> spec = mm.resolve("text_ocr", "detector")       # located and digest-verified
>>> mm.model_signature_for("text_ocr")
'sha256:…'
>>> mm.cache_key_for("text_ocr", producer_version="1.2.0", schema_version="3").key
'sha256:…'

A cache key is given only for weights that check now (R-FAIL-1): ``cache_key_for``
first checks every local weights file of the component against the mapping
(:meth:`ModelManager.verify_component`: a stat and a digest-cache lookup per
file while it is unchanged), so a run that would reuse cached results of weights
that changed or went missing fails that component instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelmanager import offline
from modelmanager.config import Settings, require_models_root
from modelmanager.errors import (
    ConfigurationInvalid,
    InvalidRunContext,
    ModelArtifactMissing,
    ModelManagerError,
    ModelMappingMissing,
    StorageUnavailable,
)
from modelmanager.mapping.signature import CacheKey, cache_key, model_signature
from modelmanager.mapping.spec import (
    ModelUsed,
    ResolvedMapping,
    ResolvedModelSpec,
    RunContext,
    parse_mapping,
)
from modelmanager.runtimes import Runtime, RuntimeFactory, default_runtime
from modelmanager.weights.digest import (
    CachedRow,
    Digest,
    DigestCache,
    Digester,
    HashProgress,
    fingerprint,
)
from modelmanager.weights.locate import (
    about,
    annotate,
    artifact_field,
    inside_root,
    is_inside,
    real_path,
    real_path_and_stat,
)

__all__ = ["HealthReport", "ModelManager"]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The health of one (component, role): ``error_code`` set where opening failed."""

    spec: ResolvedModelSpec
    ok: bool
    detail: str
    error_code: str | None
    ms: float = 0.0

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "component": self.spec.component_name,
            "role": self.spec.role,
            "runtime": self.spec.runtime,
            "ok": self.ok,
            "detail": self.detail,
            "error_code": self.error_code,
            "ms": self.ms,
        }


class ModelManager:
    """Resolves, verifies and accounts for the models of one run.

    Args:
        run_context: the run's context (platform_id, video_id, run_id, ...);
            may be None where no cache key is asked for (``modelmanager resolve``).
        resolved_mapping: the mapping, validated or raw (then validated here).
        models_root: root of local artifact paths; default ``Settings().models_root``.
        digester: computes and caches digests; default one on the per-host
            cache under ``Settings().cache_dir``, opened on first use.
        settings: read from the environment when not given.
        runtime_factory: makes the handle of a spec; default
            :func:`modelmanager.runtimes.default_runtime`. Tests of the
            manager's own logic inject one.

    Raises:
        InvalidModelSpec: a raw mapping breaks a rule.
        InvalidRunContext: a raw run context lacks a field or holds a bad value.
    """

    def __init__(
        self,
        run_context: RunContext | Mapping[str, Any] | None,
        resolved_mapping: ResolvedMapping | Mapping[str, Any],
        *,
        models_root: str | os.PathLike[str] | None = None,
        digester: Digester | None = None,
        settings: Settings | None = None,
        runtime_factory: RuntimeFactory | None = None,
    ) -> None:
        self.run_context = _run_context(run_context)
        self.mapping = (
            resolved_mapping
            if isinstance(resolved_mapping, ResolvedMapping)
            else parse_mapping(resolved_mapping)
        )
        self._settings = settings
        _stay_offline()  # always offline while the manager is in use (R-NET-1)
        offline.allow(  # the mapping's Triton endpoints: their host:port only (R-NET-2)
            endpoint
            for roles in self.mapping.components.values()
            for spec in roles.values()
            if spec.triton is not None
            for url in (spec.triton.http_url, spec.triton.grpc_url)
            if url is not None and (endpoint := offline.endpoint_of(url)) is not None
        )
        root = models_root if models_root is not None else self.settings.models_root
        self.models_root = None if root is None else Path(root).absolute()
        self._digester = digester
        self._runtime_factory = runtime_factory or default_runtime
        self._runtimes: dict[tuple[str, str], Runtime] = {}
        self._owns_runtimes = True  # see for_run
        self._real_root: str | None = None
        self._cache_rows: dict[str, CachedRow] | None = None
        self._weights_paths: dict[str, str] = {}
        self._verified: dict[tuple[str, str], Digest] = {}
        # (path, stat fingerprint) of a verified file, as the digest cache vouched for it
        self._verified_stats: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = {}
        self._used_fields: dict[str, list[dict[str, Any]]] = {}
        self._models_used: dict[str, list[ModelUsed]] = {}
        self._signatures: dict[str, str] = {}

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    @property
    def digester(self) -> Digester:
        if self._digester is None:
            self._digester = Digester(
                DigestCache.in_dir(self.settings.cache_dir), workers=self.settings.digest_workers
            )
        return self._digester

    def resolve(self, component: str, role: str) -> ResolvedModelSpec:
        """The spec of (component, role), its local weights located and verified.

        Verification happens once per manager (:meth:`verify_component` checks
        again); Triton entries are not verified (their repository may live on
        another host, R-DIG-2).

        Raises:
            ModelMappingMissing: the mapping has no such component or role.
            ModelArtifactMissing: the local file or directory does not exist, or cannot
                be opened as the model (a path component that is a file, a symlink loop).
            StorageUnavailable: the disk refused to read it (permission, I/O error).
            InvalidModelSpec: the artifact path leaves models_root through a symlink, or
                the weights break a rule of R-DIG (an ONNX file with external data, ...).
            WeightsDigestMismatch: the weights hash to another digest (R-DIG-3).
        """
        spec = self._spec(component, role)
        if spec.local_artifact is not None and (component, role) not in self._verified:
            self._check_weights(spec)
        return spec

    def verify_component(self, component: str) -> None:
        """Check the local weights of every role of ``component`` against the mapping, now.

        Unlike :meth:`resolve`, this checks again each time: while a file is unchanged
        that costs a stat and a digest-cache lookup, no byte read; a changed file is
        hashed. :meth:`cache_key_for` calls it, so no key (and no cached result) is
        given for weights that are missing or changed (R-FAIL-1).

        Raises:
            ModelMappingMissing: the mapping has no such component.
            ModelManagerError: what :meth:`resolve` raises for a role's weights.
        """
        for spec in self._roles(component).values():
            if spec.local_artifact is not None:
                self._check_weights(spec)

    def artifact_path(self, spec: ResolvedModelSpec) -> Path:
        """Absolute path of the spec's local weights (file or directory model).

        Raises:
            ModelMappingMissing: the spec is a Triton entry, with no local weights.
            ConfigurationInvalid: models_root is not set.
        """
        if spec.local_artifact is None:
            raise ModelMappingMissing(
                f"{spec.component_name}/{spec.role} runs on Triton and has no local weights",
                component=spec.component_name,
                role=spec.role,
            )
        return self._root() / spec.local_artifact

    def verify_all(
        self, components: Sequence[str] | None = None, *, progress: HashProgress | None = None
    ) -> list[tuple[ResolvedModelSpec, Digest]]:
        """Locate and verify the local artifacts of ``components`` (default: all), in parallel.

        Returns (spec, digest) for each local spec, in mapping order. Raises the
        first failure in mapping order (see :meth:`resolve`); never a bare OSError.
        """
        for component in components or ():
            self._roles(component)  # unknown → model_mapping_missing
        local = [
            s
            for s in self.mapping.iter_specs()
            if s.local_artifact is not None
            and (components is None or s.component_name in components)
        ]
        self._verify(
            [s for s in local if (s.component_name, s.role) not in self._verified], progress
        )
        return [(s, self._verified[(s.component_name, s.role)]) for s in local]

    def get_runtime(self, spec: ResolvedModelSpec) -> Runtime:
        """The opened handle of ``spec``, one per (component, role) for the manager's life.

        Local weights are verified first; the handle then checks the model
        against the spec as it opens. Nothing falls back to another model,
        version or device (R-FAIL-1).

        Raises:
            ModelManagerError: whatever :meth:`resolve` or the backend's ``open`` raises.

        >>> handle = mm.get_runtime(mm.resolve("text_ocr", "detector"))  # doctest: +SKIP
        >>> handle({"x": frames})["prob"]  # doctest: +SKIP
        """
        key = (spec.component_name, spec.role)
        handle = self._runtimes.get(key)
        if handle is not None:
            return handle
        spec = self.resolve(*key)
        local = None if spec.local_artifact is None else self.artifact_path(spec)
        handle = self._runtime_factory(spec, local)
        with about(spec):
            try:
                handle.open()
            except ModelManagerError:
                raise
            except OSError as exc:  # a backend reading the weights itself
                path = exc.filename or local or spec.local_artifact
                raise StorageUnavailable.from_os_error(exc, "opening the model", path) from exc
        self._runtimes[key] = handle
        return handle

    def reopen_runtime(self, spec: ResolvedModelSpec) -> Runtime:
        """``spec``'s handle closed and opened anew: a fresh session, after an out-of-memory
        error, whose arena does not give back what it took (R-RES-2).

        Raises:
            ModelManagerError: what :meth:`get_runtime` raises.
        """
        handle = self._runtimes.pop((spec.component_name, spec.role), None)
        if handle is not None:
            handle.close()
        return self.get_runtime(spec)

    def preload(self, components: Sequence[str] | None = None) -> list[Runtime]:
        """Open the in-process handles of ``components`` (default: all) now (R-RT-5).

        Loading Tier-0 models before the first video keeps session creation off
        the first request. Triton handles open when first asked for.
        """
        return [
            self.get_runtime(spec)
            for spec in self._specs(components)
            if spec.runtime == "inprocess"
        ]

    def health(self, components: Sequence[str] | None = None) -> list[HealthReport]:
        """Open (if needed) and check the handle of every spec; never raises for a spec's failure."""
        reports = []
        for spec in self._specs(components):
            started = time.perf_counter()
            try:
                health = self.get_runtime(spec).health()
                report = HealthReport(spec, health.ok, health.detail, None)
            except ModelManagerError as exc:
                report = HealthReport(spec, False, exc.message, exc.code)
            reports.append(replace(report, ms=round((time.perf_counter() - started) * 1000, 3)))
        return reports

    def for_run(self, run_context: RunContext | Mapping[str, Any]) -> ModelManager:
        """A manager for another run over the same mapping that uses this one's open
        runtimes, digester and settings: a worker running many videos opens each model
        once. Its weights are checked again (a stat per file on a digest-cache hit).
        Closing it closes nothing of this one; close this one when the runs are done.

        Raises:
            InvalidRunContext: ``run_context`` breaks a rule.
        """
        other = ModelManager(
            run_context,
            self.mapping,
            models_root=self.models_root,
            digester=self.digester,
            settings=self.settings,
            runtime_factory=self._runtime_factory,
        )
        other._runtimes = self._runtimes
        other._owns_runtimes = False
        return other

    def close(self) -> None:
        """Close every handle the manager opened (none, for a manager of :meth:`for_run`)."""
        if not self._owns_runtimes:
            return
        handles = list(self._runtimes.values())
        self._runtimes.clear()
        for handle in handles:
            handle.close()

    def __enter__(self) -> ModelManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _specs(self, components: Sequence[str] | None) -> list[ResolvedModelSpec]:
        for component in components or ():
            self._roles(component)  # unknown → model_mapping_missing
        return [
            s
            for s in self.mapping.iter_specs()
            if components is None or s.component_name in components
        ]

    def models_used_for(self, component: str) -> list[ModelUsed]:
        """Canonical ``models_used[]`` of ``component`` (R-SIG-1); empty if it calls no model."""
        used = self._models_used.get(component)
        if used is None:
            used = [ModelUsed.model_construct(**f) for f in self._used_fields_of(component)]
            self._models_used[component] = used
        return list(used)

    def model_signature_for(self, component: str) -> str:
        """``model_signature`` of ``component`` (R-SIG-2)."""
        signature = self._signatures.get(component)
        if signature is None:
            signature = model_signature(self._used_fields_of(component))
            self._signatures[component] = signature
        return signature

    def cache_key_for(
        self, component: str, *, producer_version: str, schema_version: str
    ) -> CacheKey:
        """The idempotency / cache key of ``component`` in this run (R-SIG-3).

        The component's local weights are checked first (:meth:`verify_component`), so
        a key is never given for weights that are missing or changed.

        Raises:
            ConfigurationInvalid: the manager was made without a run context.
            ModelManagerError: what :meth:`verify_component` raises.
        """
        if self.run_context is None:
            raise ConfigurationInvalid(
                "a cache key needs the run context; this manager was made without one",
                component=component,
            )
        self.verify_component(component)
        return cache_key(
            self.run_context,
            component=component,
            producer_version=producer_version,
            schema_version=schema_version,
            used=self._used_fields_of(component),
            signature=self.model_signature_for(component),
        )

    def _used_fields_of(self, component: str) -> list[dict[str, Any]]:
        """``[u.model_dump() for u in models_used(...)]`` of ``component``, made once: what
        signatures and keys hash, without a pydantic model per entry. Never handed out."""
        fields = self._used_fields.get(component)
        if fields is None:
            fields = [ModelUsed.fields_of(s) for s in self._roles(component).values()]
            fields.sort(key=lambda f: f["role"])  # the order of models_used()
            self._used_fields[component] = fields
        return fields

    def _roles(self, component: str) -> dict[str, ResolvedModelSpec]:
        roles = self.mapping.components.get(component)
        if roles is None:
            known = ", ".join(sorted(self.mapping.components)) or "none"
            raise ModelMappingMissing(
                f"component {component!r} is not in the mapping (components: {known})",
                component=component,
                profile=self.mapping.profile,
            )
        return roles

    def _spec(self, component: str, role: str) -> ResolvedModelSpec:
        roles = self._roles(component)
        spec = roles.get(role)
        if spec is None:
            known = ", ".join(sorted(roles)) or "none"
            raise ModelMappingMissing(
                f"component {component!r} has no role {role!r} in the mapping (roles: {known})",
                component=component,
                role=role,
                profile=self.mapping.profile,
            )
        return spec

    def _root(self) -> Path:
        return require_models_root(self.models_root)

    def _cached_digest(
        self, spec: ResolvedModelSpec, relpath: str
    ) -> tuple[Digest, os.stat_result] | None:
        """The weights' digest from the digest cache, for a regular file inside models_root
        whose stat is unchanged, with that stat; None where :meth:`_verify` must decide (a
        miss, a directory model, a path that leaves models_root, anything unusual)."""
        digester = self.digester
        if digester.cache is None or self.models_root is None:
            return None
        if self._cache_rows is None:
            # One query for every local file of the mapping instead of one per role;
            # each under the key digest_many uses: the absolute, normalized path.
            root = os.fspath(self.models_root)
            self._weights_paths = {
                s.local_artifact: os.path.normpath(os.path.join(root, s.local_artifact))
                for roles in self.mapping.components.values()
                for s in roles.values()
                if s.local_artifact is not None
            }
            self._cache_rows = digester.cache.lookup_many(list(self._weights_paths.values()))
            self._real_root = self._real_root or real_path(root)
        path = self._weights_paths[relpath]
        found = real_path_and_stat(path)
        if found is None or self._real_root is None or not is_inside(found[0], self._real_root):
            return None  # _verify decides, and raises naming the field
        digest = digester.cached(path, found[1], self._cache_rows, onnx=spec.engine != "torch")
        return None if digest is None else (digest, found[1])

    def _check_weights(self, spec: ResolvedModelSpec) -> None:
        """Verify the spec's weights now: from the digest cache while the file's stat is
        unchanged, else by :meth:`_verify`. A failure also drops any earlier trust."""
        key = (spec.component_name, spec.role)
        assert spec.local_artifact is not None
        seen = self._verified_stats.pop(key, None)
        if seen is not None and key in self._verified:
            # Checked before in this manager: the very same file, unchanged, is one stat.
            try:
                unchanged = fingerprint(os.stat(seen[0])) == seen[1]
            except OSError:
                unchanged = False
            if unchanged:
                self._verified_stats[key] = seen
                return
        found = self._cached_digest(spec, spec.local_artifact)
        if found is not None and found[0].digest == spec.weights_digest:
            self._verified[key] = found[0]
            self._verified_stats[key] = (found[0].path, fingerprint(found[1]))
            return
        self._verified.pop(key, None)
        self._verify([spec])  # the general path: hashes what it must, raises what it finds

    def _locate(self, spec: ResolvedModelSpec) -> Path:
        """The artifact's path, refused if its real location leaves models_root."""
        path = self.artifact_path(spec)
        if self._real_root is None:
            self._real_root = real_path(self._root())
        assert spec.local_artifact is not None
        return inside_root(
            path, self._real_root, relpath=spec.local_artifact, field=artifact_field(spec)
        )

    def _verify(
        self, specs: Sequence[ResolvedModelSpec], progress: HashProgress | None = None
    ) -> None:
        if not specs:
            return
        paths = []
        for spec in specs:
            with about(spec):
                paths.append(self._locate(spec))
        onnx_models = [p for s, p in zip(specs, paths, strict=True) if s.engine != "torch"]
        try:
            digests = self.digester.digest_many(paths, progress=progress, onnx_models=onnx_models)
        except ModelManagerError as exc:
            if isinstance(exc, ModelArtifactMissing):
                self._say_if_root_is_missing(exc)
            annotate(exc, _owner(exc, specs, paths))
            raise
        for spec, digest in zip(specs, digests, strict=True):
            with about(spec):
                digest.check(spec.weights_digest)
            self._verified[(spec.component_name, spec.role)] = digest
        if self._cache_rows is not None and self.digester.cache is not None:
            # Rows stored just now: the next check of these files is a fast one again.
            self._cache_rows.update(self.digester.cache.lookup_many([d.path for d in digests]))

    def _say_if_root_is_missing(self, exc: ModelArtifactMissing) -> None:
        """Name models_root in ``exc`` where it is models_root itself that is missing."""
        root = self.models_root
        if root is not None and not root.is_dir() and "models_root" not in exc.message:
            exc.message += f" (models_root {root} does not exist)"
            exc.args = (exc.message,)


def _stay_offline() -> None:
    """``offline.install()``, skipped when it would change nothing (it sets several
    environment variables every time, the largest cost of a new manager)."""
    if offline.installed() and all(
        os.environ.get(name) == value for name, value in offline.OFFLINE_ENV.items()
    ):
        return
    offline.install()


def _run_context(value: RunContext | Mapping[str, Any] | None) -> RunContext | None:
    if value is None or isinstance(value, RunContext):
        return value
    try:
        return RunContext.model_validate(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        reason = "is required" if first["type"] == "missing" else first["msg"]
        raise InvalidRunContext(f"run context: field {field!r} {reason}", field=field) from None


def _owner(
    exc: ModelManagerError, specs: Sequence[ResolvedModelSpec], paths: Sequence[Path]
) -> ResolvedModelSpec:
    """The spec whose artifact is (or, for a directory model, holds) the error's path."""
    path = str(exc.fields.get("path", ""))
    for spec, artifact in zip(specs, paths, strict=True):
        root = os.path.abspath(artifact)
        if path == root or path.startswith(root + os.sep):
            return spec
    return specs[0]
