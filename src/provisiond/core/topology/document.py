"""The ``kind: Topology`` document: its parts, lookups by name, and its validation.

``Topology.model_validate`` checks every part and then every reference between parts
(``checks.problems``), raising one ``ValueError`` listing all problems.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import model_validator

from provisiond.core.topology.checks import problems
from provisiond.core.topology.fields import Model
from provisiond.core.topology.models import (
    VM,
    Guest,
    Host,
    Metadata,
    PciMapping,
    Storage,
    TopologySpec,
)


class Topology(Model):
    """A ``kind: Topology`` document. Validate with ``Topology.model_validate(data)``."""

    api_version: Literal["provisiond.dev/v1alpha1"]
    kind: Literal["Topology"]
    metadata: Metadata
    spec: TopologySpec

    # -- lookups ---------------------------------------------------------------------------
    def host(self, name: str) -> Host | None:
        return next((h for h in self.spec.hosts if h.name == name), None)

    def storage(self, name: str) -> Storage | None:
        return next((s for s in self.spec.storages if s.name == name), None)

    def mapping(self, mapping_id: str) -> PciMapping | None:
        return next((m for m in self.spec.pci_mappings if m.id == mapping_id), None)

    def storages_of(self, host: str) -> tuple[Storage, ...]:
        """The storages reachable from ``host``."""
        return tuple(s for s in self.spec.storages if not s.hosts or host in s.hosts)

    def guests(self) -> tuple[Guest, ...]:
        return (*self.spec.templates, *self.spec.vms)

    def vms_on(self, host: str) -> tuple[VM, ...]:
        return tuple(vm for vm in self.spec.vms if vm.host == host)

    @model_validator(mode="after")
    def _references(self) -> Self:
        errors = problems(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self
