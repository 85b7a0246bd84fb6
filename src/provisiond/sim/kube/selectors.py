"""Label and field selectors: the query-string syntax and the ``LabelSelector`` object.

Label selectors (apimachinery ``labels/selector.go``): requirements joined by commas (AND);
``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists), ``!k`` (does not
exist), ``k>3``/``k<3`` (integers). ``!=`` and ``notin`` also match objects without the key. A
parse error is a 400. Field selectors take only ``=``, ``==``, ``!=``; each kind accepts a fixed
set of field labels (``resources.Resource.field_labels`` + ``metadata.name``/``namespace``),
anything else is 400 ``field label not supported: <label>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from provisiond.sim.kube.errors import Obj, bad_request
from provisiond.sim.kube.resources import Resource

Match = Callable[[Mapping[str, str]], bool]

_REQ = re.compile(
    r"""^\s*(?P<neg>!)?\s*(?P<key>[^\s!=<>,()]+)\s*
        (?:(?P<op>==|=|!=|>|<|\s+in\s+|\s+notin\s+)\s*(?P<val>\([^)]*\)|[^\s,()]*))?\s*$""",
    re.VERBOSE,
)


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key, "")
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("=", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if not has:
            return False
        try:
            number, bound = int(value), int(self.values[0])
        except ValueError:
            return False
        return number > bound if self.op == ">" else number < bound


def parse_labels(text: str) -> list[Requirement]:
    """Parse a ``labelSelector`` query value (``KubeError`` 400 on bad syntax)."""
    out: list[Requirement] = []
    if not text.strip():
        return out
    for part in _split(text):
        m = _REQ.match(part)
        if m is None:
            raise bad_request(f"unable to parse requirement: found '{part.strip()}'")
        key, op, val = m.group("key"), (m.group("op") or "").strip(), m.group("val")
        if m.group("neg"):
            if op:
                raise bad_request(f"unable to parse requirement: found '{part.strip()}'")
            out.append(Requirement(key, "!"))
            continue
        if not op:
            out.append(Requirement(key, "exists"))
            continue
        if op in ("in", "notin"):
            if val is None or not val.startswith("("):
                raise bad_request(f"found '{val}', expected: '('")
            values = tuple(v.strip() for v in val[1:-1].split(",") if v.strip())
            if not values:
                raise bad_request("for 'in', 'notin' operators, values set can't be empty")
            out.append(Requirement(key, op, values))
            continue
        if op in (">", "<") and not (val or "").lstrip("-").isdigit():
            raise bad_request(f"for 'Gt', 'Lt' operators, the value must be an integer: {val}")
        out.append(Requirement(key, "=" if op == "==" else op, (val or "",)))
    return out


def label_matcher(text: str) -> Match:
    reqs = parse_labels(text)
    return lambda labels: all(r.matches(labels) for r in reqs)


def selector_matcher(selector: Obj | None) -> Match | None:
    """A ``metav1.LabelSelector`` object; None (matches nothing, as for PDBs) when it is
    empty, absent or invalid."""
    if not selector:
        return None
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")))
        if op is None:
            return None
        reqs.append(Requirement(str(expr.get("key")), op, tuple(expr.get("values") or ())))
    if not reqs:
        return None
    return lambda labels: all(r.matches(labels) for r in reqs)


def _lookup(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def field_value(obj: Obj, label: str) -> str:
    """The string a field label compares against (absent → ``""``; bools lower case)."""
    if label == "source":
        return str(_lookup(obj, "source.component") or "")
    if label == "status.podIPs":
        return ",".join(str(p.get("ip", "")) for p in _lookup(obj, label) or [])
    value = _lookup(obj, label)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def field_matcher(resource: Resource, text: str) -> Callable[[Obj], bool]:
    """Parse a ``fieldSelector``; each label must be supported by ``resource``."""
    terms: list[tuple[str, bool, str]] = []
    for part in text.split(",") if text.strip() else []:
        m = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if m is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        label, op, value = m.groups()
        if label == "spec.host" and resource.kind == "Pod":
            label = "spec.nodeName"
        if label not in resource.field_labels and label not in (
            "metadata.name",
            "metadata.namespace",
        ):
            raise bad_request(f"field label not supported: {label}")
        terms.append((label, op != "!=", value))

    def matches(obj: Obj) -> bool:
        return all((field_value(obj, label) == value) is eq for label, eq, value in terms)

    return matches


def check_name(text: str, name: str) -> None:
    """A GET of one name whose ``metadata.name`` field selector names another is a 400."""
    for part in text.split(","):
        m = re.fullmatch(r"\s*metadata\.name\s*==?\s*(.*?)\s*", part)
        if m is not None and m.group(1) != name:
            raise bad_request("fieldSelector metadata.name doesn't match requested name")
