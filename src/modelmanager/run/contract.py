"""The component contract: what a DataProcessor component imports, and all it imports.

A component is a plain object with a ``name``, versions and the ``roles`` it
needs; :meth:`Component.process` receives a :class:`ComponentRequest` (the run
context, the inputs, an opened runtime handle and the resolved spec per role)
and returns a :class:`ComponentOutput` (named arrays and how it ran). The
:class:`~modelmanager.run.runner.Runner` does everything else: cache lookup,
leases, opening models, writing the NPZ and the manifest. Components never
import the runner, the manager or the stores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from numpy.typing import NDArray

from modelmanager.mapping.spec import ResolvedModelSpec, RunContext
from modelmanager.runtimes.base import Runtime

__all__ = [
    "Component",
    "ComponentOutput",
    "ComponentRequest",
    "ResolvedModelSpec",
    "RunContext",
    "Runtime",
]


@dataclass(frozen=True, slots=True)
class ComponentRequest:
    """What a component gets: the run, its inputs, an opened handle per role, and the
    batch size to run its models with (None: its own; the plan, or a retry after an
    out-of-memory error, chooses a smaller one: R-RES-1/2)."""

    run_context: RunContext
    inputs: Mapping[str, Any]
    runtimes: Mapping[str, Runtime]
    specs: Mapping[str, ResolvedModelSpec]
    batch_size: int | None = None


@dataclass(slots=True)
class ComponentOutput:
    """What a component returns: named arrays for its NPZ, and how it ran."""

    arrays: Mapping[str, NDArray[Any]]
    batch_size: int | None = None
    seed: int | None = None
    warnings: list[str] = field(default_factory=list)


class Component(Protocol):
    """One processing step of the DataProcessor (visual, audio, text, …).

    Optional: ``max_batch`` (int), the largest batch it runs its models with; the
    planner (:mod:`modelmanager.resources.planner`) chooses at most that, 1 without it.
    """

    name: str
    producer_version: str
    schema_version: str
    roles: Sequence[str]

    def process(self, request: ComponentRequest) -> ComponentOutput:
        """Compute the component's arrays with the handles in ``request.runtimes``."""
