"""Kubernetes node labels and taints: the diff against the spec, touching only managed keys.

The annotation ``provisiond.dev/managed`` records, as JSON ``{"labels": [...], "taints": [...]}``
(taints as ``key:effect``), what provisiond set. A key leaves the node only if the record says
provisiond set it and the spec no longer has it: labels and taints set by others (NFD, the GPU
operator, the kubelet, humans) are never touched. An unreadable record counts as empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from provisiond.core.desired import KubeNodeSpec, Taint
from provisiond.core.observed import MANAGED_ANNOTATION, KubeNode


def taint_id(t: Taint) -> str:
    return f"{t.key}:{t.effect}"


def parse_record(text: str | None) -> tuple[frozenset[str], frozenset[str]] | None:
    """(label keys, taint ids) from the annotation, ``None`` when absent or unreadable."""
    if text is None:
        return None
    try:
        data = json.loads(text)
        labels, taints = data["labels"], data["taints"]
    except (ValueError, TypeError, KeyError):
        return None
    if not all(isinstance(x, str) for x in [*labels, *taints]):
        return None
    return frozenset(labels), frozenset(taints)


def render_record(labels: frozenset[str], taints: frozenset[str]) -> str:
    return json.dumps({"labels": sorted(labels), "taints": sorted(taints)}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class NodeDiff:
    set_labels: dict[str, str]
    remove_labels: tuple[str, ...]
    add_taints: tuple[Taint, ...]
    remove_taints: tuple[Taint, ...]
    record: str  # the annotation value after the change
    record_changed: bool

    @property
    def labels_changed(self) -> bool:
        return bool(self.set_labels or self.remove_labels)

    @property
    def taints_changed(self) -> bool:
        return bool(self.add_taints or self.remove_taints)


def diff_node(spec: KubeNodeSpec, node: KubeNode) -> NodeDiff:
    old = parse_record(node.annotations.get(MANAGED_ANNOTATION))
    old_labels, old_taints = old if old is not None else (frozenset(), frozenset())
    want_labels = dict(spec.labels)
    set_labels = {k: v for k, v in sorted(want_labels.items()) if node.labels.get(k) != v}
    remove_labels = tuple(sorted(k for k in old_labels - want_labels.keys() if k in node.labels))

    want_taints = {taint_id(t): t for t in spec.taints}
    have_taints = {taint_id(t): t for t in node.taints}
    add = tuple(t for i, t in sorted(want_taints.items()) if have_taints.get(i) != t)
    stale = {i for i in old_taints - want_taints.keys() if i in have_taints}
    stale |= {i for i, t in want_taints.items() if i in have_taints and have_taints[i] != t}
    remove = tuple(have_taints[i] for i in sorted(stale))

    new = (frozenset(want_labels), frozenset(want_taints))
    return NodeDiff(
        set_labels=set_labels,
        remove_labels=remove_labels,
        add_taints=add,
        remove_taints=remove,
        record=render_record(*new),
        # no record and nothing to manage: writing an empty record would be busywork
        record_changed=old != new and (old is not None or bool(new[0] or new[1])),
    )
