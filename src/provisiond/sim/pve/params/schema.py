"""The shape of the parameter table: one parameter's schema (``P``) and one endpoint's.

A ``P`` holds what PVE's JSON schema says of a parameter and nothing more, so the contract test
can compare it field by field. ``VMID`` and ``NODE`` are the path variables almost every node
and VM endpoint takes, written once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Type = Literal["string", "integer", "boolean", "number", "array"]


@dataclass(frozen=True, slots=True)
class P:
    """One parameter's schema: type, optionality, format, enum and limits."""

    type: Type
    optional: bool = True
    fmt: str | None = None
    propstring: bool = False
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # template, e.g. /nodes/{node}/qemu/{vmid}/config
    params: Mapping[str, P] = field(default_factory=dict)
    returns: tuple[str, ...] = ()  # fields the schema promises (not optional) in each item

    @property
    def path_vars(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.path))


NODE = P("string", optional=False, fmt="pve-node")
VMID = P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999)
OPTIONAL_VMID = P("integer", fmt="pve-vmid", minimum=100, maximum=999999999)
TIMEFRAME = P("string", optional=False, enum=("hour", "day", "week", "month", "year"))
CF = P("string", enum=("AVERAGE", "MAX"))
