"""Running components so that every result is cached, reproducible and explainable.

Per component (R-SIG-3/4, R-ART-1/2, D4, D5)::

    cache_key_for(component)
      │
      ├─ lookup(key) → artifact valid (size, sha256, schema)? ── yes → reuse: no model opened
      │                                     └─ no → forget it, recompute (a warning says why)
      ▼
    try_acquire(lease on key) ── held by another worker → wait: reuse what it publishes,
      │                          or take over once its lease expires (it died); bounded wait
      ▼
    lookup again (it may have finished meanwhile) → open runtimes → component.process()
      → NPZ with meta, published atomically → component row → release lease

The sha256 of a cached artifact is taken from the per-host digest cache when the
file's stat fingerprint is the one recorded as it was published (or last hashed),
as for weights: a cache hit costs a stat, a lookup and a read of the artifact's
meta, not a re-hash (``verify_artifacts="full"`` re-hashes every hit).

Whatever happens, the run's ``manifest.json`` records each component's status,
timings, device, batch size, models_used/model_signature, cache key and hit,
and error/error_code (R-FAIL-4); the run index gets one row per component.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelmanager import offline
from modelmanager.errors import (
    ComponentFailed,
    InsufficientGpuMemory,
    LeaseLost,
    LeaseWaitTimeout,
    ModelManagerError,
    VideoDeleted,
)
from modelmanager.index import ComponentRunRow, Lease, RunStore
from modelmanager.index.store import FinalRunStatus
from modelmanager.manager import ModelManager
from modelmanager.mapping.signature import CacheKey
from modelmanager.mapping.spec import ResolvedModelSpec, RunContext
from modelmanager.run.contract import Component, ComponentOutput, ComponentRequest
from modelmanager.run.leases import lease_heartbeat, run_heartbeat
from modelmanager.store.artifacts import ArtifactMeta, ArtifactRecord, write_artifact
from modelmanager.store.check import ArtifactVerify, check_artifact
from modelmanager.store.fields import utc_timestamp
from modelmanager.store.layout import artifact_relpath, manifest_relpath, resolve_relpath
from modelmanager.store.manifest import ComponentEntry, Manifest, RunSection, write_manifest

if TYPE_CHECKING:
    from modelmanager.resources.planner import Placement

__all__ = ["RunResult", "Runner"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished run: its manifest and where it was written."""

    manifest: Manifest
    manifest_path: Path

    @property
    def ok(self) -> bool:
        return self.manifest.run.status == "ok"


ABANDONED_AFTER_TTLS = 3
"""A run whose heartbeat (renewed every third of the lease TTL) is older than this many
lease TTLs is one whose worker died: it is marked ``abandoned``."""


class Runner:
    """Runs components for one manager (one run context and mapping).

    Args:
        manager: resolves specs, signatures and keys, and opens runtimes.
        store: the run index (cache lookups, component rows, leases).
        artifact_root: where NPZ artifacts and manifests are written (D5).
        mapping_source: where the mapping came from, for the manifest.
        lease_ttl_s: a worker's claim on a key lasts this long unless renewed.
        lease_wait_s: how long to wait for another worker computing the same key.
        verify_artifacts: how a cache hit checks its artifact's sha256: ``stat``
            (default) trusts the manager's digest cache when the file's stat
            fingerprint is unchanged since it was published or last hashed (any
            rewrite changes it); ``full`` re-hashes the whole file on every hit.
        placements: each component's planned device and batch, with the reason
            (:mod:`modelmanager.resources.planner`), recorded in its manifest entry;
            default: its own ``max_batch``. An out-of-memory error halves it and retries.
    """

    def __init__(
        self,
        manager: ModelManager,
        store: RunStore,
        artifact_root: str | os.PathLike[str],
        *,
        mapping_source: str = "payload",
        lease_ttl_s: float = 60.0,
        lease_wait_s: float = 600.0,
        poll_s: float = 0.05,
        verify_artifacts: ArtifactVerify = "stat",
        placements: Mapping[str, Placement] | None = None,
    ) -> None:
        if manager.run_context is None:
            raise ValueError("a Runner needs a manager made with a run context")
        if verify_artifacts not in ("stat", "full"):
            raise ValueError(f"verify_artifacts is 'stat' or 'full', not {verify_artifacts!r}")
        self.manager = manager
        self.run_context: RunContext = manager.run_context
        self.store = store
        self.artifact_root = Path(artifact_root)
        self.mapping_source = mapping_source
        self.lease_ttl_s = lease_ttl_s
        self.lease_wait_s = lease_wait_s
        self.poll_s = poll_s
        self.verify_artifacts: ArtifactVerify = verify_artifacts
        self.placements: Mapping[str, Placement] = placements or {}
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._on_wait: Callable[[Component, str], None] | None = None
        self._input_changed: str | None = None

    def run(
        self,
        components: Sequence[Component],
        inputs: Mapping[str, Any],
        *,
        on_component: Callable[[Component, ComponentEntry | None], None] | None = None,
        on_wait: Callable[[Component, str], None] | None = None,
    ) -> RunResult:
        """Run every component in order; a failing one is recorded, the others still run.

        ``on_component(component, None)`` is called as a component starts and
        ``on_component(component, entry)`` as it ends (progress display);
        ``on_wait(component, owner)`` as it starts waiting for another worker (``owner``:
        host:pid:id) that holds the lease on its key.
        """
        self._on_wait = on_wait
        ctx = self.run_context
        started = utc_timestamp()
        # Runs whose worker died are noticed here (and by gc, orphans, delete-video).
        self.store.abandon_dead_runs(
            stale_after_s=ABANDONED_AFTER_TTLS * self.lease_ttl_s, at_most_every_s=self.lease_ttl_s
        )
        earlier = self.store.start_run(ctx, mapping_source=self.mapping_source, worker=self.owner)
        self._input_changed = (
            None
            if earlier is None
            else f"the input of {ctx.platform_id}/{ctx.video_id} changed: an earlier run read "
            f"{earlier}, this one {ctx.input_digest}; nothing computed from the old bytes is used"
        )
        if self._input_changed:
            logger.warning("%s", self._input_changed)
        entries: list[ComponentEntry] = []
        status: FinalRunStatus = "failed"  # unless the loop below gets to its end
        try:
            with run_heartbeat(self.store, ctx.run_id, self.lease_ttl_s / 3):
                for component in components:
                    if on_component is not None:
                        on_component(component, None)
                    entries.append(self._run_one(component, inputs))
                    if on_component is not None:
                        on_component(component, entries[-1])
                    if entries[-1].error_code == VideoDeleted.code:
                        break  # the video is deleted: nothing more of it may be published
            status = "ok" if all(e.status != "failed" for e in entries) else "failed"
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into one by the command
            status = "interrupted"
            raise
        finally:
            # Whatever happened, the run ends recorded: its manifest, then its status.
            manifest, path = self._finish(started, status, entries)
        return RunResult(manifest, path)

    def _finish(
        self, started: str, status: FinalRunStatus, entries: Sequence[ComponentEntry]
    ) -> tuple[Manifest, Path]:
        """Write the manifest and record the run's final status (the index row points at the
        manifest only once it exists). Raised here: the first failure, after both tries."""
        ctx = self.run_context
        manifest = Manifest(
            manifest_version=1,
            run=RunSection.from_context(
                ctx,
                mapping_source=self.mapping_source,
                resolved_model_mapping=self.manager.mapping,
                status=status,
                started_at=started,
                finished_at=utc_timestamp(),
            ),
            components=tuple(entries),
        )
        relpath: str | None = manifest_relpath(ctx.platform_id, ctx.video_id, ctx.run_id)
        path = self.artifact_root / str(relpath)
        failure: BaseException | None = None
        # A deletion of the video won (issue 12): no manifest of it is left behind.
        deleted = any(e.error_code == VideoDeleted.code for e in entries)
        if not deleted:
            try:
                path = write_manifest(self.artifact_root, str(relpath), manifest)
            except Exception as exc:  # recorded below as the run's outcome, then raised
                failure, relpath = exc, None
                status = "failed" if status == "ok" else status
        try:
            self.store.finish_run(
                ctx.run_id,
                status=status,
                manifest_path=None if deleted else relpath,
                video=(ctx.platform_id, ctx.video_id),
            )
        except VideoDeleted:
            deleted = True
        except Exception as exc:
            if deleted or self._deleted():
                deleted = True  # the deletion removed the run's row too
            else:
                failure = failure or exc
        if deleted:
            self._unlink(path)
            logger.warning(
                "run %s: video %s/%s was deleted while it ran; nothing of it was published",
                ctx.run_id,
                ctx.platform_id,
                ctx.video_id,
            )
            return manifest, path
        if failure is not None:
            raise failure
        return manifest, path

    def _deleted(self) -> bool:
        """Whether a deletion of the run's video forbids it to publish (issue 12)."""
        ctx = self.run_context
        try:
            return self.store.deletion_refuses(ctx.run_id, ctx.platform_id, ctx.video_id)
        except ModelManagerError:
            return False

    def _run_one(self, component: Component, inputs: Mapping[str, Any]) -> ComponentEntry:
        attempt = _Attempt(component, started_at=utc_timestamp(), clock=time.perf_counter())
        if self._input_changed:
            attempt.warnings.append(self._input_changed)
        refusals_before = len(offline.blocked_attempts())
        # The key's lease, once taken, is held until the component row is recorded: a
        # waiter that takes it next must find the artifact in the index, not compute again.
        with ExitStack() as lease_held:
            try:
                key = self.manager.cache_key_for(
                    component.name,
                    producer_version=component.producer_version,
                    schema_version=component.schema_version,
                )
                attempt.key = key
                record = self._reusable(key, component, attempt)
                if record is not None:
                    attempt.cache_hit = True
                else:
                    record = self._compute_once(key, component, inputs, attempt, lease_held)
                attempt.artifact = record
            except ModelManagerError as exc:
                attempt.error = exc
            except Exception as exc:  # a library's wrapping of a refusal, or the component's bug
                attempt.error = offline.refusal_in(exc)
                if attempt.error is None:
                    logger.exception("component %s failed", component.name)
                    attempt.error = ComponentFailed(
                        f"{component.name}: {type(exc).__name__}: {exc}", component=component.name
                    )
            # Refusals a library caught and went on from are still recorded (R-NET-2).
            attempt.warnings.extend(str(a) for a in offline.blocked_attempts()[refusals_before:])
            entry = attempt.entry(self.manager)
            # A computed artifact is published only under the lease it was computed under.
            fence = (
                attempt.lease if attempt.artifact is not None and not attempt.cache_hit else None
            )
            try:
                try:
                    self.store.record_component(self._row(entry), lease=fence)
                except LeaseLost as lost:
                    self._discard(attempt.artifact)
                    attempt.artifact, attempt.error = None, lost
                    entry = attempt.entry(self.manager)
                    self.store.record_component(self._row(entry))
            except VideoDeleted as deleted:
                # The video was deleted under this run (issue 12): the deletion wins, so
                # the artifact computed here goes and no row of the video is recorded.
                if fence is not None:
                    self._discard(attempt.artifact)
                attempt.artifact, attempt.error = None, deleted
                entry = attempt.entry(self.manager)
        return entry

    def _discard(self, record: ArtifactRecord | None) -> None:
        """Remove an artifact this worker wrote but may not publish (nothing refers to it)."""
        if record is not None:
            self._unlink(resolve_relpath(self.artifact_root, record.relpath))

    def _unlink(self, path: Path) -> None:
        """Remove ``path`` and the directories above it that this leaves empty (not the root)."""
        with contextlib.suppress(OSError):
            os.unlink(path)
        root = self.artifact_root.resolve()
        current = path.parent
        while current.resolve() != root and root in current.resolve().parents:
            try:
                current.rmdir()
            except OSError:  # not empty, or gone
                return
            current = current.parent

    def _reusable(
        self, key: CacheKey, component: Component, attempt: _Attempt
    ) -> ArtifactRecord | None:
        """The cached artifact of ``key`` if it is still valid; an invalid one is forgotten."""
        cached = self.store.lookup(key.key)
        if cached is None:
            return None
        record = ArtifactRecord(cached.artifact_path, cached.artifact_size, cached.artifact_sha256)
        check = check_artifact(
            self.artifact_root,
            record,
            schema_version=component.schema_version,
            digest_cache=self.manager.digester.cache,
            verify=self.verify_artifacts,
        )
        if check.ok:
            return record
        warning = f"cached artifact {record.relpath} is invalid ({check.problem}: {check.detail}); recomputed"
        logger.warning("%s: %s", component.name, warning)
        attempt.warnings.append(warning)
        self.store.forget(key.key, record.relpath)
        return None

    def _compute_once(
        self,
        key: CacheKey,
        component: Component,
        inputs: Mapping[str, Any],
        attempt: _Attempt,
        lease_held: ExitStack,
    ) -> ArtifactRecord:
        """Compute under the key's lease, or reuse what the lease holder publishes.

        The lease stays held (and renewed) in ``lease_held`` after this returns.
        """
        started = time.monotonic()
        deadline = started + self.lease_wait_s
        waited_for: str | None = None
        while True:
            lease = self.store.try_acquire(key.key, self.owner, self.lease_ttl_s)
            if lease is not None:
                break
            if waited_for is None:
                waited_for = self._waiting(component, key)
            time.sleep(self.poll_s)
            record = self._reusable(key, component, attempt)
            if record is not None:
                attempt.cache_hit = True
                return record
            if time.monotonic() > deadline:
                holder = self.store.holder(key.key)
                owner = holder[0] if holder else waited_for
                raise LeaseWaitTimeout(
                    f"{component.name}: waited {self.lease_wait_s:.0f} s for {owner} "
                    "computing the same key",
                    component=component.name,
                    cache_key=key.key,
                    holder=owner,
                )
        if waited_for is not None:
            attempt.warnings.append(
                f"waited {time.monotonic() - started:.1f} s for {waited_for} computing the same key"
            )
        attempt.lease = lease
        lease_held.callback(self.store.release, lease)
        lease_held.enter_context(lease_heartbeat(self.store, lease, self.lease_ttl_s))
        record = self._reusable(key, component, attempt)  # finished while we waited?
        if record is not None:
            attempt.cache_hit = True
            return record
        return self._compute(key, component, inputs, attempt)

    def _process_backing_off(
        self,
        component: Component,
        inputs: Mapping[str, Any],
        specs: Mapping[str, ResolvedModelSpec],
        attempt: _Attempt,
    ) -> ComponentOutput:
        """``component.process`` at the planned batch; on an out-of-memory error, again at
        half of it in fresh sessions, down to one (R-RES-2: a smaller batch, never another
        model). Each retry is counted (``oom_retries``) and told in a warning.

        Raises:
            InsufficientGpuMemory: out of memory at a batch of one.
        """
        mm, ctx = self.manager, self.run_context
        planned = self.placements.get(component.name)
        if planned is not None:
            attempt.batch_reason = planned.reason
        batch = planned.batch_size if planned else getattr(component, "max_batch", None)
        runtimes = {role: mm.get_runtime(spec) for role, spec in specs.items()}
        while True:
            started = time.perf_counter()
            request = ComponentRequest(ctx, inputs, runtimes, specs, batch_size=batch)
            try:
                return component.process(request)
            except Exception as exc:
                from modelmanager.resources.oom import is_oom  # ~2 ms: only when one fails

                oom = is_oom(exc)
                if oom is None:
                    raise
                lost_s = time.perf_counter() - started
                if batch is None or batch <= 1:
                    raise InsufficientGpuMemory(
                        f"{component.name}: out of memory at a batch of 1 "
                        f"({oom.signature.library}: {oom.exception})",
                        component=component.name,
                        batch_size=batch or 1,
                        oom_retries=attempt.oom_retries,
                    ) from exc
                smaller = max(1, batch // 2)
                attempt.oom_retries += 1
                attempt.warnings.append(
                    f"out of memory at batch {batch} ({oom.signature.library}: "
                    f"{_first_line(oom.exception)}); {lost_s:.2f} s lost; retried at {smaller} "
                    "in fresh sessions"
                )
                logger.warning("%s: %s", component.name, attempt.warnings[-1])
                runtimes = {role: mm.reopen_runtime(spec) for role, spec in specs.items()}
                batch = smaller

    def _waiting(self, component: Component, key: CacheKey) -> str:
        """Who holds ``key`` (host:pid:id, or "another worker" if it was just released),
        told to ``on_wait`` and the log as the wait starts."""
        holder = self.store.holder(key.key)
        owner = holder[0] if holder else "another worker"
        logger.info("%s: waiting for %s computing the same key", component.name, owner)
        if self._on_wait is not None:
            self._on_wait(component, owner)
        return owner

    def _compute(
        self,
        key: CacheKey,
        component: Component,
        inputs: Mapping[str, Any],
        attempt: _Attempt,
    ) -> ArtifactRecord:
        mm, ctx = self.manager, self.run_context
        specs = {role: mm.resolve(component.name, role) for role in component.roles}
        output = self._process_backing_off(component, inputs, specs, attempt)
        attempt.batch_size = output.batch_size
        attempt.warnings.extend(output.warnings)
        first = next(iter(specs.values()), None)
        cuda_version, cudnn_version = _cuda_versions()
        meta = ArtifactMeta(
            component=component.name,
            run_id=ctx.run_id,
            cache_key=key.key,
            input_digest=ctx.input_digest,
            models_used=tuple(mm.models_used_for(component.name)),
            model_signature=mm.model_signature_for(component.name),
            producer_version=component.producer_version,
            schema_version=component.schema_version,
            batch_size=output.batch_size,
            seed=output.seed,
            engine=first.engine if first else None,
            precision=first.precision if first else None,
            device=first.device if first else None,
            library_versions=_library_versions(),
            cuda_version=cuda_version,
            cudnn_version=cudnn_version,
            created_at=utc_timestamp(),
        )
        relpath = artifact_relpath(ctx.platform_id, ctx.video_id, component.name, ctx.run_id)
        return write_artifact(
            self.artifact_root,
            relpath,
            output.arrays,
            meta,
            digest_cache=self.manager.digester.cache,
        )

    def _row(self, entry: ComponentEntry) -> ComponentRunRow:
        ctx = self.run_context
        artifact = entry.artifact
        return ComponentRunRow(
            run_id=ctx.run_id,
            platform_id=ctx.platform_id,
            video_id=ctx.video_id,
            component=entry.component,
            cache_key=entry.cache_key,
            model_signature=entry.model_signature,
            producer_version=entry.producer_version,
            schema_version=entry.schema_version,
            status=entry.status,
            cache_hit=entry.cache_hit,
            error_code=entry.error_code,
            latency_ms=entry.duration_ms,
            device=entry.device_used,
            batch_size=entry.batch_size,
            oom_retries=entry.oom_retries,
            artifact_path=artifact.relpath if artifact else None,
            artifact_size=artifact.size if artifact else None,
            artifact_sha256=artifact.sha256 if artifact else None,
            started_at=_parse(entry.started_at),
            finished_at=_parse(entry.finished_at),
        )


@dataclass(slots=True)
class _Attempt:
    """What is learnt about one component while it runs, turned into its manifest entry."""

    component: Component
    started_at: str
    clock: float
    key: CacheKey | None = None
    lease: Lease | None = None
    cache_hit: bool = False
    artifact: ArtifactRecord | None = None
    batch_size: int | None = None
    batch_reason: str | None = None
    oom_retries: int = 0
    warnings: list[str] = field(default_factory=list)
    error: ModelManagerError | None = None

    def entry(self, mm: ModelManager) -> ComponentEntry:
        c = self.component
        used: tuple[Any, ...] = ()
        signature = device = ""
        try:
            used = tuple(mm.models_used_for(c.name))
            signature = mm.model_signature_for(c.name)
            specs = list(mm.mapping.components.get(c.name, {}).values())
            device = specs[0].device if specs else ""
        except ModelManagerError:
            pass  # not in the mapping: the error says so
        failed = self.error is not None
        return ComponentEntry(
            component=c.name,
            status="failed" if failed else ("cached" if self.cache_hit else "ok"),
            started_at=self.started_at,
            finished_at=utc_timestamp(),
            duration_ms=round((time.perf_counter() - self.clock) * 1000, 3),
            producer_version=c.producer_version,
            schema_version=c.schema_version,
            device_used=device or None,
            batch_size=self.batch_size,
            batch_reason=self.batch_reason,
            models_used=used,
            model_signature=signature,
            cache_key=self.key.key if self.key else "",
            cache_key_material=self.key.to_json_dict() if self.key else {},
            cache_hit=self.cache_hit,
            artifact=self.artifact,
            error=self.error.message if self.error else None,
            error_code=self.error.code if self.error else None,
            error_fields=self.error.to_dict() if self.error else {},
            warnings=tuple(self.warnings),
            oom_retries=self.oom_retries,
        )


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _library_versions() -> dict[str, str]:
    versions = {"numpy": np.__version__, "python": sys.version.split()[0]}
    for name in ("onnxruntime", "torch", "tritonclient"):
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None)
        if version:
            versions[name] = str(version)
    return versions


def _cuda_versions() -> tuple[str | None, str | None]:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None, None
    cudnn = torch.backends.cudnn.version()
    return torch.version.cuda, None if cudnn is None else str(cudnn)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 160 else line[:157] + "..."
