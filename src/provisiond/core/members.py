"""The VMs a fleet declares: pools expanded into members, settings merged defaults < pool < VM.

Merge rules (documented in docs/fleet-spec.md):
- a setting set at a more specific level replaces the less specific one; lists replace;
- ``cloudInit``, ``kubernetes`` and ``placement`` merge field by field, and inside
  ``kubernetes`` the ``labels`` and ``annotations`` dicts merge key by key;
- ``template`` and ``templateVmid`` are one setting: the most specific level that names a
  template decides, whichever way it names it.

A pool with ``vms`` yields one member per entry; a pool with ``count`` yields members
``1..count`` named ``namePattern.format(index=i)`` with VMID ``vmidRange.start + i - 1``.
Expansion is total: a pool that is structurally wrong (checked by ``core.validation``) yields
the members that can be derived and no more, so validation can go on reporting other problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisiond.core.spec import (
    CloudInitSpec,
    Fleet,
    KubernetesSpec,
    Path,
    Pool,
    VmSettings,
)

_FIELDWISE = {"cloud_init": CloudInitSpec, "kubernetes": KubernetesSpec}
_KEYWISE = ("labels", "annotations")
_TEMPLATE_FIELDS = ("template", "template_vmid")


@dataclass(frozen=True, slots=True)
class Level:
    """One level of settings (defaults, a pool or a VM entry) and where it sits in the document."""

    path: Path
    settings: VmSettings


@dataclass(frozen=True, slots=True)
class Member:
    """One VM of a fleet, before resolution: its identity, merged settings and their origins."""

    pool_index: int
    pool: str
    name: str
    vmid: int
    index: int  # 1-based position in the pool
    path: Path  # the VM entry, or the pool for members generated from ``count``
    generated: bool
    settings: VmSettings
    levels: tuple[Level, ...]  # least specific first

    def origin(self, field: str) -> Path:
        """The path of the value that won the merge for ``field`` (a VmSettings field name)."""
        for level in reversed(self.levels):
            if getattr(level.settings, field) is not None:
                return (*level.path, _alias(field))
        return self.path


def _alias(field: str) -> str:
    info = VmSettings.model_fields[field]
    return info.alias or field


def _merge_sub(lower: Any, upper: Any, model: type[Any]) -> Any:
    if lower is None or upper is None:
        return upper if upper is not None else lower
    values: dict[str, Any] = {}
    for name in model.model_fields:
        low, up = getattr(lower, name), getattr(upper, name)
        if name in _KEYWISE and low is not None and up is not None:
            values[name] = {**low, **up}
        else:
            values[name] = up if up is not None else low
    return model.model_construct(**values)


def merge(*levels: VmSettings) -> VmSettings:
    """The effective settings of ``levels`` (least specific first)."""
    values: dict[str, Any] = {}
    for settings in levels:
        names_template = any(getattr(settings, f) is not None for f in _TEMPLATE_FIELDS)
        for name in VmSettings.model_fields:
            value = getattr(settings, name)
            if name in _TEMPLATE_FIELDS:
                if names_template:
                    values[name] = value
            elif name in _FIELDWISE:
                values[name] = _merge_sub(values.get(name), value, _FIELDWISE[name])
            elif value is not None:
                values[name] = value
    return VmSettings.model_construct(**values)


def pool_name_at(pool: Pool, index: int) -> str | None:
    """The name of member ``index`` of a ``count`` pool, or ``None`` if the pattern is unusable."""
    if pool.name_pattern is None:
        return None
    try:
        return pool.name_pattern.format(index=index)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):
        return None


def expand(fleet: Fleet) -> tuple[Member, ...]:
    """Every member of every pool of ``fleet``, in document order."""
    defaults = Level(("spec", "defaults"), fleet.spec.defaults)
    out: list[Member] = []
    for p, pool in enumerate(fleet.spec.pools):
        pool_path: Path = ("spec", "pools", p)
        pool_level = Level(pool_path, pool)
        if pool.vms is not None:
            for v, entry in enumerate(pool.vms):
                levels = (defaults, pool_level, Level((*pool_path, "vms", v), entry))
                out.append(
                    Member(
                        pool_index=p,
                        pool=pool.name,
                        name=entry.name,
                        vmid=entry.vmid,
                        index=v + 1,
                        path=levels[-1].path,
                        generated=False,
                        settings=merge(*(lv.settings for lv in levels)),
                        levels=levels,
                    )
                )
        elif pool.count is not None and pool.vmid_range is not None:
            settings = merge(defaults.settings, pool)
            for i in range(1, pool.count + 1):
                name = pool_name_at(pool, i)
                if name is None:
                    break
                out.append(
                    Member(
                        pool_index=p,
                        pool=pool.name,
                        name=name,
                        vmid=pool.vmid_range.start + i - 1,
                        index=i,
                        path=pool_path,
                        generated=True,
                        settings=settings,
                        levels=(defaults, pool_level),
                    )
                )
    return tuple(out)
