"""What pydantic found wrong, in the words of a mapping: component, role, field, reason."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from modelmanager.errors import InvalidModelSpec

__all__ = ["invalid_spec_from", "reason_of"]


def reason_of(err: Any) -> str:
    """One pydantic error's reason as our messages say it ("is required", "is empty", …)."""
    if err["type"] == "missing":
        return "is required"
    if err["type"] == "extra_forbidden":
        return "is not a known field"
    ctx = err.get("ctx") or {}
    return str(ctx.get("reason") or str(err["msg"]).removeprefix("Value error, "))


def invalid_spec_from(exc: ValidationError, source: str) -> InvalidModelSpec:
    """Turn pydantic's errors into one InvalidModelSpec naming component/role/field."""
    problems = [_problem(err) for err in exc.errors(include_url=False)]
    first = problems[0]
    lines = [_describe(p) for p in problems]
    message = f"{source}: " + (lines[0] if len(lines) == 1 else "\n  " + "\n  ".join(lines))
    return InvalidModelSpec(
        message,
        source=source,
        component=first["component"],
        role=first["role"],
        field=first["field"],
        problems=problems,
    )


def _problem(err: Any) -> dict[str, Any]:
    ctx = err.get("ctx") or {}
    loc = tuple(ctx.get("loc") or err["loc"])
    component = role = None
    rest: tuple[Any, ...] = loc
    if len(loc) > 1 and loc[0] == "components":
        component = str(loc[1]) if len(loc) > 1 else None
        role = str(loc[2]) if len(loc) > 2 and loc[2] != "[key]" else None
        rest = loc[3:] if role is not None else loc[2:]
        # pydantic names the tagged member in unions/literals; drop its internals.
        rest = tuple(p for p in rest if p != "[key]")
    parts = [str(p) for p in rest]
    if ctx.get("field"):
        parts.append(str(ctx["field"]))
    return {
        "component": component,
        "role": role,
        "field": ".".join(parts) or None,
        "reason": reason_of(err),
    }


def _describe(problem: dict[str, Any]) -> str:
    where = []
    if problem["component"] is not None:
        where.append(f"component {problem['component']!r}")
    if problem["role"] is not None:
        where.append(f"role {problem['role']!r}")
    if problem["field"] is not None:
        where.append(f"field {problem['field']!r}")
    return f"{', '.join(where) or 'mapping'}: {problem['reason']}"
