"""models_used, model_signature, cache key, and why two keys differ (R-SIG-1..5).

Hashed materials (canonical JSON, see :mod:`modelmanager.mapping.canonical`):

    model_signature = sha256 of
        {"kind": "model_signature", "sig_v": 1,
         "models_used": [entries sorted by their own canonical JSON]}

    cache_key = sha256 of
        {"kind": "cache_key", "key_v": 2, "platform_id", "video_id", "input_digest",
         "component", "config_hash", "sampling_policy_version", "producer_version",
         "schema_version", "model_signature"}

``kind`` keeps a signature and a key from ever hashing the same bytes;
``sig_v``/``key_v`` make a change of these rules a new cache (D1). Key format 1
(``"sig_v": 1``, no ``input_digest``) was replaced by 2 when the input video's
bytes entered the key (issue 13): no format-1 key is ever hit again. ``models_used[].device``
is the device kind (``cpu``/``cuda``), so two identical GPUs share entries (D2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelmanager.mapping.canonical import canonical_json, sha256_tagged
from modelmanager.mapping.spec import ModelUsed, ResolvedModelSpec, RunContext

__all__ = [
    "KEY_V",
    "SIG_V",
    "CacheKey",
    "FieldDifference",
    "cache_key",
    "diff_documents",
    "model_signature",
    "models_used",
]

SIG_V = 1
"""The model_signature's format version."""
KEY_V = 2
"""The cache key's format version (1: before input_digest)."""
KEY_FIELDS = (
    "platform_id",
    "video_id",
    "input_digest",
    "component",
    "config_hash",
    "sampling_policy_version",
    "producer_version",
    "schema_version",
    "model_signature",
)


def models_used(specs: Iterable[ResolvedModelSpec]) -> list[ModelUsed]:
    """Canonical ``models_used[]`` of one component's specs, ordered by role.

    The order is for readers; the signature sorts entries itself.
    """
    return sorted((ModelUsed.from_spec(spec) for spec in specs), key=lambda u: u.role)


def model_signature(used: Iterable[ModelUsed | Mapping[str, Any]]) -> str:
    """``sha256:<hex>`` of the canonical models_used; independent of their order."""
    encoded = sorted(
        canonical_json(u.model_dump() if isinstance(u, ModelUsed) else dict(u)) for u in used
    )
    # Each entry is encoded once: these bytes are exactly canonical_json of
    # {"kind": ..., "models_used": [entries sorted by their encoding], "sig_v": ...}
    # (keys in sorted order), which the golden test pins.
    return sha256_tagged(
        b'{"kind":"model_signature","models_used":['
        + b",".join(encoded)
        + b'],"sig_v":'
        + str(SIG_V).encode()
        + b"}"
    )


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A component's idempotency key with the material it was hashed from.

    ``models_used`` is not hashed directly (the signature stands for it) but
    travels along so that :func:`diff_documents` can say which model field
    changed the signature.
    """

    key: str
    material: Mapping[str, Any]
    models_used: Sequence[Mapping[str, Any]]

    def to_json_dict(self) -> dict[str, Any]:
        """The key as written to manifests and read back by ``explain``."""
        return {
            "cache_key": self.key,
            "material": dict(self.material),
            "models_used": [dict(u) for u in self.models_used],
        }


def cache_key(
    run_context: RunContext,
    *,
    component: str,
    producer_version: str,
    schema_version: str,
    used: Sequence[ModelUsed | Mapping[str, Any]],
    signature: str | None = None,
) -> CacheKey:
    """The idempotency / cache key of one component in one run (R-SIG-3).

    ``used`` holds the component's models_used entries, as :class:`ModelUsed` or as
    their ``model_dump()``; ``signature`` is ``model_signature(used)``, passed where it
    is already known.
    """
    material = {
        "kind": "cache_key",
        "key_v": KEY_V,
        "platform_id": run_context.platform_id,
        "video_id": run_context.video_id,
        "input_digest": run_context.input_digest,
        "component": component,
        "config_hash": run_context.config_hash,
        "sampling_policy_version": run_context.sampling_policy_version,
        "producer_version": producer_version,
        "schema_version": schema_version,
        "model_signature": signature if signature is not None else model_signature(used),
    }
    return CacheKey(
        key=sha256_tagged(canonical_json(material)),
        material=material,
        models_used=[u.model_dump() if isinstance(u, ModelUsed) else dict(u) for u in used],
    )


@dataclass(frozen=True, slots=True)
class FieldDifference:
    """One field that differs between two documents.

    ``change`` is ``"changed"``, ``"added"`` (only in b) or ``"removed"`` (only in a);
    the missing side's value is None.
    """

    field: str
    a: Any
    b: Any
    change: str = "changed"

    def __str__(self) -> str:
        left = "(absent)" if self.change == "added" else _show(self.a)
        right = "(absent)" if self.change == "removed" else _show(self.b)
        return f"{self.field}: {left} → {right}"

    def to_json_dict(self) -> dict[str, Any]:
        return {"field": self.field, "a": self.a, "b": self.b, "change": self.change}


def diff_documents(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[FieldDifference]:
    """Exactly which fields differ between two key documents, or two resolve outputs.

    Accepted documents: a :meth:`CacheKey.to_json_dict`, a bare key material,
    a ``{"models_used": [...]}`` signature document, or the ``--json`` output of
    ``modelmanager resolve`` (``{"components": {name: {"models_used": ...}}}``).
    ``models_used`` entries are matched by ``role``, so the answer reads
    ``models_used[detector].model_version``. Hashes derived from fields that
    are themselves listed (``cache_key``, ``model_signature``) are listed too.
    """
    return _diff(_flatten_document(a), _flatten_document(b), prefix="")


def _diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str) -> list[FieldDifference]:
    differences = []
    for field in [*a, *(f for f in b if f not in a)]:
        name = prefix + field
        if field not in b:
            differences.append(FieldDifference(name, a[field], None, "removed"))
        elif field not in a:
            differences.append(FieldDifference(name, None, b[field], "added"))
        elif isinstance(a[field], Mapping) and isinstance(b[field], Mapping):
            differences.extend(_diff(a[field], b[field], prefix=name + "."))
        elif a[field] != b[field]:
            differences.append(FieldDifference(name, a[field], b[field]))
    return differences


def _flatten_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    if "cache_key" in doc:
        flat["cache_key"] = doc["cache_key"]
    material = doc.get("material", doc if doc.get("kind") == "cache_key" else None)
    if isinstance(material, Mapping):
        flat.update((f, material.get(f)) for f in ("key_v", *KEY_FIELDS))
    if isinstance(doc.get("models_used"), list):
        flat.update(_by_role(doc["models_used"], prefix=""))
    components = doc.get("components")
    if isinstance(components, Mapping):
        for name, entry in components.items():
            if not isinstance(entry, Mapping):
                continue
            if "model_signature" in entry:
                flat[f"components.{name}.model_signature"] = entry["model_signature"]
            if isinstance(entry.get("models_used"), list):
                flat.update(_by_role(entry["models_used"], prefix=f"components.{name}."))
    return flat


def _by_role(used: list[Any], prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}models_used[{entry.get('role', i)}]": {
            k: v for k, v in entry.items() if k != "role"
        }
        for i, entry in enumerate(used)
        if isinstance(entry, Mapping)
    }


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
