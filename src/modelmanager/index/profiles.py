"""Profiles (R-MAP-2): named mapping documents stored in the run index."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from modelmanager.errors import InvalidModelSpec
from modelmanager.index._base import PROFILES, StoreBase
from modelmanager.mapping.spec import parse_mapping

__all__ = ["ProfileMixin"]

logger = logging.getLogger(__name__)


def _check_profile_name(name: str) -> None:
    if not isinstance(name, str) or not name or name != name.strip() or len(name) > 255:
        raise InvalidModelSpec(
            f"profile name {name!r} must be 1-255 characters without surrounding spaces",
            source=f"database:{name}",
            field="profile",
        )


class ProfileMixin(StoreBase):
    """:class:`~modelmanager.index.RunStore`'s profiles: save, load, list."""

    def save_profile(self, name: str, document: Mapping[str, Any]) -> None:
        """Store (or replace) profile ``name``; the document's ``profile`` becomes ``name``.

        Raises:
            InvalidModelSpec: the document breaks a rule, or is not JSON data;
                nothing is written.
            DatabaseError: the write failed.
        """
        _check_profile_name(name)
        source = f"database:{name}"
        stored = {**document, "profile": name}
        mapping = parse_mapping(stored, source=source)
        try:
            encoded = json.dumps(stored, sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise InvalidModelSpec(
                f"{source}: the profile is not JSON data ({error})", source=source
            ) from error
        values = {
            "name": name,
            "document": encoded,
            "format_version": mapping.format_version,
            "updated_at": datetime.now(UTC),
        }
        stmt = self._upsert(
            values,
            table=PROFILES,
            key="name",
            update_columns=("document", "format_version", "updated_at"),
        )
        with self._write("saving profile", profile=name) as conn:
            conn.execute(stmt)
        logger.info("stored profile %r in %s", name, self.url)

    def load_profile(self, name: str) -> dict[str, Any] | None:
        """The mapping document of profile ``name``, or None (a :class:`ProfileStore`)."""
        with self._read("loading profile", profile=name) as conn:
            encoded = conn.execute(
                select(PROFILES.c.document).where(PROFILES.c.name == name)
            ).scalar_one_or_none()
        if encoded is None:
            return None
        document: dict[str, Any] = json.loads(encoded)
        return document

    def list_profiles(self) -> list[str]:
        """The stored profiles' names, sorted."""
        with self._read("listing profiles") as conn:
            return list(conn.execute(select(PROFILES.c.name).order_by(PROFILES.c.name)).scalars())
