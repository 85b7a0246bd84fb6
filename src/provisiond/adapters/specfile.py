"""Spec files: YAML documents on disk → validated core models, with ``file:line`` for every issue.

Paths are files or directories; a directory contributes its ``*.yaml`` and ``*.yml`` files
(sorted, not recursive, dotfiles skipped — a Kubernetes ConfigMap volume keeps its real files
under ``..data`` and symlinks them into the top level). A file may hold several documents
separated by ``---``. Each document is dispatched on ``kind``: ``Fleet`` (``core.spec``) or
``Topology`` (``core.topology``, simulator clusters); any other kind is an error.

Every problem becomes a ``SpecIssue`` naming the file, the 1-based line of the offending value
(nested ones too: ruamel's round-trip loader records the position of every key and value) and
the field path. Nothing stops at the first problem: YAML syntax errors, schema errors of every
document and the cross-document checks of ``core.validation`` are all reported together.

Loading is bounded (``core.limits.SpecLimits``, docs/fleet-spec.md "Limits"): a file over the
size limit is refused before it is read; nesting depth and alias repetition are bounded while
parsing (``adapters.boundedyaml``). Too many VMs are refused by ``core.validation`` before any
pool is expanded. Pydantic's errors are worded in ``adapters.specmessages``.

When ``kind: Topology`` documents sit in the same directory as a fleet, ``load_documents``
also checks the fleet's values against what that cluster could ever hold
(``core.hostbounds``).

- ``load_documents(paths)`` — everything ``provisiond validate`` reports; never raises for a bad
  spec (issues are in the result).
- ``load_desired(paths)`` — what the daemon calls: only ``kind: Fleet`` documents (topologies
  are skipped unvalidated), resolved into ``DesiredState``; raises ``SpecError`` with every
  issue, also when no fleet is found at all (the daemon then keeps its last good spec).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from provisiond.adapters.boundedyaml import bounded_yaml, yaml_issue
from provisiond.adapters.specmessages import validation_issues
from provisiond.core.desired import DesiredState
from provisiond.core.errors import SpecError, SpecIssue
from provisiond.core.hostbounds import ClusterBounds, cluster_bounds
from provisiond.core.limits import DEFAULT_LIMITS, SpecLimits
from provisiond.core.resolve import desired_state
from provisiond.core.spec import API_VERSION, Fleet, SourcedFleet
from provisiond.core.spec import Path as FieldPath
from provisiond.core.topology import Topology
from provisiond.core.validation import check

SUFFIXES = (".yaml", ".yml")
KINDS = ("Fleet", "Topology")
PathLike = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class SourcedTopology:
    topology: Topology
    file: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class LoadedDocuments:
    """What a set of spec paths holds: the documents that are valid on their own, and every issue.

    ``issues`` is empty exactly when all documents are valid, including across documents.
    """

    fleets: tuple[SourcedFleet, ...]
    topologies: tuple[SourcedTopology, ...]
    issues: tuple[SpecIssue, ...]

    @property
    def ok(self) -> bool:
        return not self.issues


def load_documents(
    paths: Iterable[PathLike], *, limits: SpecLimits = DEFAULT_LIMITS
) -> LoadedDocuments:
    """Load and check every document under ``paths`` (fleets and topologies)."""
    return _load(paths, topologies=True, limits=limits)


def load_desired(paths: Iterable[PathLike], *, limits: SpecLimits = DEFAULT_LIMITS) -> DesiredState:
    """The desired state declared by the ``kind: Fleet`` documents under ``paths``.

    Raises ``SpecError`` carrying every issue (``file:line: path: message``).
    """
    paths = list(paths)
    loaded = _load(paths, topologies=False, limits=limits)
    if loaded.issues:
        raise SpecError(list(loaded.issues))
    if not loaded.fleets:
        where = ", ".join(str(p) for p in paths) or "(no paths)"
        raise SpecError([SpecIssue(where, None, "", "no Fleet document found")])
    return desired_state(loaded.fleets)


# --- files and directories ----------------------------------------------------------------------


def _files(path: Path) -> list[Path]:
    return sorted(
        p
        for p in path.iterdir()
        if p.suffix in SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


@dataclass
class _Reading:
    """What one load has gathered so far, and how many bytes it has read."""

    limits: SpecLimits
    topologies: bool
    fleets: list[SourcedFleet]
    tops: list[SourcedTopology]
    issues: list[SpecIssue]
    bytes_read: int = 0


def _load(paths: Iterable[PathLike], *, topologies: bool, limits: SpecLimits) -> LoadedDocuments:
    r = _Reading(limits, topologies, [], [], [])
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            before = len(r.fleets)
            for file in _files(path):
                _load_file(file, r)
            if len(r.fleets) == before and not any(_in_dir(i.file, path) for i in r.issues):
                r.issues.append(
                    SpecIssue(
                        str(path), None, "", "no Fleet document in this directory (*.yaml, *.yml)"
                    )
                )
        elif path.exists():
            _load_file(path, r)
        else:
            r.issues.append(SpecIssue(str(path), None, "", "no such file or directory"))
    r.issues.extend(check(r.fleets, limits=limits, cluster_of=_clusters(r.tops)))
    return LoadedDocuments(tuple(r.fleets), tuple(r.tops), tuple(r.issues))


def _clusters(tops: list[SourcedTopology]) -> typing.Callable[[SourcedFleet], ClusterBounds | None]:
    """A fleet's cluster: the topologies in its own directory (the examples' layout)."""
    by_dir: dict[Path, list[SourcedTopology]] = {}
    for top in tops:
        by_dir.setdefault(Path(top.file).parent, []).append(top)
    bounds = {
        d: cluster_bounds([t.topology for t in ts], ", ".join(sorted({t.file for t in ts})))
        for d, ts in by_dir.items()
    }

    def cluster_of(doc: SourcedFleet) -> ClusterBounds | None:
        return bounds.get(Path(doc.file).parent)

    return cluster_of


def _in_dir(file: str, directory: Path) -> bool:
    return Path(file).parent == directory


def _load_file(path: Path, r: _Reading) -> None:
    file, issues, limits = str(path), r.issues, r.limits
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            issues.append(SpecIssue(file, None, "", _too_large(size, limits.max_file_bytes)))
            return
        if r.bytes_read + size > limits.max_total_bytes:
            issues.append(
                SpecIssue(
                    file,
                    None,
                    "",
                    f"not read: the spec files together exceed {_mib(limits.max_total_bytes)} "
                    "(the limit for all spec files together)",
                )
            )
            return
        raw = path.read_bytes()[: limits.max_file_bytes + 1]  # the file may grow meanwhile
        if len(raw) > limits.max_file_bytes:
            issues.append(SpecIssue(file, None, "", _too_large(len(raw), limits.max_file_bytes)))
            return
        r.bytes_read += len(raw)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        issues.append(SpecIssue(file, None, "", f"cannot read: {exc}"))
        return
    try:
        docs = [d for d in bounded_yaml(limits).load_all(text) if d is not None]
    except MarkedYAMLError as exc:
        issues.append(yaml_issue(file, exc, limits))
        return
    except YAMLError as exc:  # pragma: no cover - ruamel raises marked errors for bad input
        issues.append(SpecIssue(file, None, "", f"invalid YAML: {exc}"))
        return
    if not docs:
        issues.append(
            SpecIssue(file, None, "", "the file is empty: expected a Fleet or Topology document")
        )
        return
    for doc in docs:
        _load_document(file, doc, r.fleets, r.tops, issues, topologies=r.topologies)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.4g} MiB"


def _too_large(size: int, limit: int) -> str:
    return (
        f"the file is {_mib(size)}, more than the {_mib(limit)} a spec file may hold; "
        "split the fleet into several files"
    )


def _load_document(
    file: str,
    doc: object,
    fleets: list[SourcedFleet],
    tops: list[SourcedTopology],
    issues: list[SpecIssue],
    *,
    topologies: bool,
) -> None:
    if not isinstance(doc, CommentedMap):
        line = doc.lc.line + 1 if isinstance(doc, CommentedSeq) else None
        issues.append(SpecIssue(file, line, "", "a document must be a mapping with kind: Fleet"))
        return
    locate = _locator(doc)
    kind = doc.get("kind")
    if kind not in KINDS:
        message = (
            f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}"
            if "kind" in doc
            else f"kind is missing: expected one of {', '.join(KINDS)} "
            f"(with apiVersion: {API_VERSION})"
        )
        issues.append(SpecIssue(file, locate(("kind",)), "kind", message))
        return
    model: type[BaseModel] = Fleet if kind == "Fleet" else Topology
    if model is Topology and not topologies:
        return
    try:
        value = model.model_validate(_plain(doc))
    except ValidationError as exc:
        issues.extend(sorted(validation_issues(file, locate, model, exc), key=_by_line))
        return
    if isinstance(value, Fleet):
        fleets.append(SourcedFleet(value, file, locate))
    else:
        assert isinstance(value, Topology)
        tops.append(SourcedTopology(value, file, locate(())))


def _by_line(issue: SpecIssue) -> int:
    return issue.line or 0


def _plain(node: object) -> object:
    """ruamel's round-trip containers → plain dicts, lists and scalars for pydantic."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


# --- lines --------------------------------------------------------------------------------------


def _locator(root: CommentedMap) -> typing.Callable[[FieldPath], int | None]:
    def locate(path: FieldPath) -> int | None:
        return _line_of(root, path)

    return locate


def _line_of(root: CommentedMap, path: Iterable[object]) -> int:
    """The 1-based line of the value at ``path``, or of the deepest part of it that exists.

    A scalar's own line; for a mapping or list value (which starts below its key in block
    style), the line of its key.
    """
    node: Any = root
    line: int = root.lc.line
    for part in path:
        if isinstance(node, CommentedMap) and part in node:
            child = node[part]
            if isinstance(child, CommentedMap | CommentedSeq) or child is None:
                line = node.lc.key(part)[0]
            else:
                line = node.lc.value(part)[0]
            node = child
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0]
            node = node[part]
        else:
            break
    return line + 1
