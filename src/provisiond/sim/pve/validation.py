"""Parameter verification as pve-common's ``JSONSchema::validate`` does it.

Checks run per parameter in PVE's order — missing, type, format, pattern, length, limits, enum —
and every failing parameter is reported at once: 400 ``Parameter verification failed.`` with
``errors: {param: text}``. Texts are PVE's (SEMANTICS §1); a format error carries the format's
own ``die`` text with its newline, as PVE's does.

A property string (an option's dict format, or a named one in ``NAMED_PROPFORMATS``) is parsed
as pve-common's ``parse_property_string`` does — aliases, the default key, booleans as
``on``/``yes``/``true`` — and each key's value is checked the same way under the path
``<param>.<key>``; the key errors come back as ``invalid format - format error\n<path>:
<text>\n`` (sorted by path, where Perl's hash order is random), then the format's validator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from provisiond.sim.pve import formats, netformats
from provisiond.sim.pve.errors import ParamError
from provisiond.sim.pve.formats import split_list
from provisiond.sim.pve.params.propformats import NAMED_PROPFORMATS, VM_PROPFORMATS, PropFormat
from provisiond.sim.pve.params.qemu import NUMBERED
from provisiond.sim.pve.params.schema import Endpoint, P

Value = str | int

_INT_RE = re.compile(r"^-?\d+$")
_NUM_RE = re.compile(r"^-?\d+(\.\d+)?$")
_NUMBERED_RE = re.compile(r"^([a-z]+)(\d+)$")
TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)


def _check(regex: str, message: str) -> Callable[[str], None]:
    compiled = re.compile(regex)

    def check(value: str) -> None:
        if not compiled.match(value):
            raise ValueError(message.format(value=value))

    return check


def _tag_list(value: str) -> None:
    for tag in split_list(value):
        if not TAG_RE.match(tag):
            raise ValueError("invalid characters in tag")


def _configid_list(value: str) -> None:
    for item in split_list(value):
        if not re.match(r"^[a-z][a-z0-9_\-]+$", item, re.IGNORECASE):
            raise ValueError(f"invalid configuration ID '{item}'")


def _ha_list(regex: str, message: str) -> Callable[[str], None]:
    """PVE's ``-list`` formats: each element of a comma/space list checked on its own."""
    item = _check(regex, message)

    def check(value: str) -> None:
        for part in split_list(value):
            item(part)

    return check


FORMATS: dict[str, Callable[[str], None]] = {
    "pve-vmid": _check(r"^[1-9][0-9]{2,8}$", "value does not look like a valid VM ID"),
    "pve-node": _check(
        r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$", "value does not look like a valid node name"
    ),
    "pve-configid": _check(r"^[a-z][a-z0-9_\-]+$", "invalid configuration ID '{value}'"),
    "pve-storage-id": _check(
        r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", "storage ID '{value}' contains illegal characters"
    ),
    "dns-name": _check(
        r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?)*$",
        "value does not look like a valid DNS name",
    ),
    "urlencoded": _check(r"^[-%a-zA-Z0-9_.!~*'()]*$", "invalid urlencoded string: {value}"),
    "pve-tag-list": _tag_list,
    "pve-configid-list": _configid_list,
    "pve-ha-node-list": _ha_list(  # PVE::HA::Tools::pve_verify_ha_node
        r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)(:\d+)?$",
        "value does not look like a valid ha node",
    ),
    "pve-ha-resource-id-list": _ha_list(  # PVE::HA::Tools::pve_verify_ha_resource_id
        r"^[a-z]+:\S+$", "value does not look like a valid ha resource id"
    ),
    "pve-startup-order": formats.startup_order,
    "pve-hotplug-features": formats.hotplug_features,
    "pve-cpuset": formats.cpuset,
    "pve-poolid": formats.poolid,
    "pve-vmid-list": formats.vmid_list,
    "pve-storage-id-list": formats.storage_id_list,
    "pve-phys-bits": formats.phys_bits,
    "mac-addr": netformats.mac_addr,
    "ipv4": netformats.ipv4,
    "ipv6": netformats.ipv6,
    "CIDR": netformats.cidr,
    "pve-ipv4-config": netformats.ipv4_config,
    "pve-ipv6-config": netformats.ipv6_config,
    "address": netformats.address,
    "disk-size": netformats.disk_size,
    "pve-bridge-id": netformats.bridge_id,
    "pve-volume-id": netformats.volume_id,
    "pve-volume-id-or-qm-path": netformats.volume_id_or_qm_path,
    "pve-volume-id-or-absolute-path": netformats.volume_id_or_absolute_path,
    "storage-pair": netformats.storage_pair,
    "pve-qm-bootdev": netformats.boot_device,
    "pve-qm-bootdisk": netformats.boot_disk,
}
# checks qemu-server attaches to a property-string format, run on the parsed keys
_VALIDATORS: dict[str, Callable[[dict[str, str]], None]] = {"vm-cpu": formats.vm_cpu}
_BOOLEANS = {"1": "1", "on": "1", "yes": "1", "true": "1", "0": "0", "off": "0", "no": "0"}
_BOOLEANS["false"] = "0"


def _spec_for(endpoint: Endpoint, name: str) -> P | None:
    spec = endpoint.params.get(name)
    if spec is not None:
        return spec
    m = _NUMBERED_RE.match(name)
    if m and int(m.group(2)) < NUMBERED.get(m.group(1), 0):
        return endpoint.params.get(f"{m.group(1)}[n]")
    return None


def check_format(fmt: str, raw: str, path: str) -> str | None:
    """pve-common ``check_format``: the error text of ``raw`` in the named format ``fmt`` (a
    ``-list`` checks each item); None when it passes or the format is not simulated."""
    propformat = NAMED_PROPFORMATS.get(fmt)
    if propformat is not None:
        return check_propstring(propformat, raw, path)
    base, _, kind = fmt.rpartition("-")
    try:
        if fmt in FORMATS:
            FORMATS[fmt](raw)
        elif kind == "list" and base in FORMATS:
            for item in split_list(raw):
                FORMATS[base](item)
    except ValueError as exc:
        return f"invalid format - {exc}\n"
    return None


def _parse_propstring(fmt: PropFormat, raw: str) -> dict[str, str]:
    """pve-common ``parse_property_string``'s parse; its ``die`` texts as ``ValueError``."""
    out: dict[str, str] = {}
    bare = False
    for part in raw.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            if fmt.default_key is None:
                raise ValueError("value without key, but schema does not define a default key")
            if bare or out.get(fmt.default_key):
                raise ValueError(
                    f"duplicate key in comma-separated list property: {fmt.default_key}"
                )
            bare = True
            out[fmt.default_key] = part
            continue
        if not key or not value:
            raise ValueError("missing key in comma-separated list property")
        if key in out:
            raise ValueError(f"duplicate key in comma-separated list property: {key}")
        alias = fmt.aliases.get(key)
        if alias is not None:
            if fmt.key_alias is not None:
                if fmt.key_alias in out:
                    raise ValueError(f"key alias '{fmt.key_alias}' is already defined")
                out[fmt.key_alias] = key
            key = alias
        spec = fmt.keys.get(key)
        if spec is None:
            raise ValueError(f"invalid key in comma-separated list property: {key}")
        out[key] = _BOOLEANS.get(value.lower(), value) if spec.type == "boolean" else value
    return out


def check_propstring(fmt: PropFormat, raw: str, path: str) -> str | None:
    """The error text of the property string ``raw`` of parameter ``path``, or None."""
    try:
        parsed = _parse_propstring(fmt, raw)
    except ValueError as exc:
        return f"invalid format - {exc}\n"
    errors: dict[str, str] = {}
    for key, spec in fmt.keys.items():
        where = f"{path}.{key}"
        if key not in parsed:
            if not spec.optional:
                errors[where] = "property is missing and it is not optional"
            continue
        _, error = _check_value(spec, parsed[key], where)
        if error is not None:
            errors[where] = error
    for key, needed in fmt.requires.items():
        if key in parsed and needed not in parsed:
            errors[f"{path}.{needed}"] = f"missing property - '{path}.{key}' requires this property"
    if errors:
        lines = "".join(f"{where}: {text}\n" for where, text in sorted(errors.items()))
        return f"invalid format - format error\n{lines}"
    if fmt.validator is not None:
        try:
            _VALIDATORS[fmt.validator](parsed)
        except ValueError as exc:
            return f"invalid format - {exc}\n"
    return None


def _propformat_of(name: str) -> PropFormat | None:
    m = _NUMBERED_RE.match(name)
    numbered = f"{m.group(1)}[n]" if m else None
    if numbered is not None and numbered in VM_PROPFORMATS:
        return VM_PROPFORMATS[numbered]
    return VM_PROPFORMATS.get(name)


def _check_value(spec: P, raw: str, path: str) -> tuple[Value | None, str | None]:
    """Returns (converted value, error text)."""
    value: Value = raw
    number: float | None = None
    if spec.type == "integer":
        if not _INT_RE.match(raw):
            return None, f"type check ('integer') failed - got '{raw}'"
        value = int(raw)
        number = value
    elif spec.type == "number":
        if not _NUM_RE.match(raw):
            return None, f"type check ('number') failed - got '{raw}'"
        number = float(raw)
    elif spec.type == "boolean":
        if raw not in ("0", "1"):
            return None, f"type check ('boolean') failed - got '{raw}'"
        value = int(raw)
    if spec.propstring:
        propformat = _propformat_of(path)
        error = None if propformat is None else check_propstring(propformat, raw, path)
        if error is not None:
            return None, error
    elif spec.fmt is not None:
        error = check_format(spec.fmt, raw, path)
        if error is not None:
            return None, error
    # Perl's "(?^:…)" (default flags) is Python's "(?:…)"
    if spec.pattern is not None and not re.fullmatch(spec.pattern.replace("(?^:", "(?:"), raw):
        return None, "value does not match the regex pattern"
    if spec.max_length is not None and len(raw) > spec.max_length:
        return None, f"value may only be {spec.max_length} characters long"
    if number is not None:
        if spec.maximum is not None and number > spec.maximum:
            return None, f"value must have a maximum value of {spec.maximum}"
        if spec.minimum is not None and number < spec.minimum:
            return None, f"value must have a minimum value of {spec.minimum}"
    if spec.enum is not None and raw not in spec.enum:
        return (
            None,
            f"value '{raw}' does not have a value in the enumeration '{', '.join(spec.enum)}'",
        )
    return value, None


def validate(endpoint: Endpoint, params: Mapping[str, str]) -> dict[str, Value]:
    """Check ``params`` (path variables included) and return them typed; else ``ParamError``."""
    errors: dict[str, str] = {}
    out: dict[str, Value] = {}
    for name, raw in params.items():
        spec = _spec_for(endpoint, name)
        if spec is None:
            errors[name] = (
                "property is not defined in schema and the schema does not allow additional "
                "properties"
            )
            continue
        value, error = _check_value(spec, raw, name)
        if error is not None:
            errors[name] = error
        else:
            assert value is not None
            out[name] = value
    for name, spec in endpoint.params.items():
        if not spec.optional and name not in params and "[n]" not in name:
            errors[name] = "property is missing and it is not optional"
    if errors:
        raise ParamError(errors)
    return out
