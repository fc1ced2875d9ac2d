"""Field rules shared by the records written to disk (artifact meta, manifest)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from modelmanager.mapping.canonical import check_sha256_tagged

__all__ = ["Sha256Tagged", "UtcTimestamp", "utc_timestamp"]


def _utc_iso(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    offset = parsed.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        raise ValueError(f"{value!r} is not in UTC (end it with 'Z' or '+00:00')")
    return value


UtcTimestamp = Annotated[str, Field(strict=True), AfterValidator(_utc_iso)]
"""An ISO-8601 timestamp in UTC, as :func:`utc_timestamp` writes it."""

Sha256Tagged = Annotated[
    str, Field(strict=True, pattern=r"^sha256:[0-9a-f]{64}$"), AfterValidator(check_sha256_tagged)
]
"""``sha256:<64 lowercase hex>``."""


def utc_timestamp(when: datetime | None = None) -> str:
    """``when`` (default: now) as ISO-8601 UTC with microseconds, e.g. ``2025-01-02T03:04:05.000006Z``.

    Args:
        when: an aware datetime; naive ones are refused (their zone is unknown).

    Raises:
        ValueError: ``when`` is naive.
    """
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None:
        raise ValueError("a naive datetime has no time zone; pass an aware one")
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
