"""The fleet spec (``kind: Fleet``) as pydantic models: the shape of a document and its formats.

These models check what one value can tell on its own: types, unknown fields (always an error),
formats (sizes, MACs, CIDRs, names) and ranges. What needs several values — merging defaults <
pool < VM, uniqueness across fleets, template exclusivity, strict-spread feasibility, Kubernetes
label syntax with the exact path of the offending key — lives in ``core.validation``; turning a
valid fleet into ``core.desired`` values lives in ``core.resolve``.

Invariants:
- every model is frozen and rejects unknown fields; YAML keys are camelCase (aliases), and only
  the camelCase spelling is accepted;
- ``None`` on a VM-level setting means "not set here": the less specific level applies;
- integers and booleans are strict (``cores: "4"`` and ``prune: "yes"`` are errors);
- a GPU is only ever a PCI resource mapping: a raw PCI address is refused with the reason.

Pure: no I/O; the YAML loader (``adapters.specfile``) feeds plain dicts into ``Fleet``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)
from pydantic.alias_generators import to_camel

from provisiond.core.desired import Policy
from provisiond.core.limits import check_disk_size, check_memory
from provisiond.core.units import SIZE_PATTERN, parse_size

API_VERSION = "provisiond.dev/v1alpha1"
KIND = "Fleet"
VMID_MIN = 100  # Proxmox refuses lower VMIDs
VMID_MAX = 999_999_999

FLEET_NAME_RE = re.compile(r"^[a-z0-9_][a-z0-9_.+-]*$")  # Proxmox tag syntax (becomes pd-<name>)
TAG_RE = FLEET_NAME_RE
DNS_NAME_RE = re.compile(  # Proxmox "dns-name": VM names
    r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$"
)
POOL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HOST_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$")
STORAGE_ID_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9._-]*[a-zA-Z0-9]$")  # pve-storage-id
POOL_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")  # pve-poolid (top level)
BRIDGE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
CONFIG_ID_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{1,39}$")  # pve-configid: mapping ids
MAC_RE = re.compile(r"^[0-9a-fA-F][02468aceACE](:[0-9a-fA-F]{2}){5}$")  # pve-mac-addr: unicast
DISK_SLOT_RE = re.compile(r"^(scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|sata[0-5]|ide[0-3])$")
PCI_ADDRESS_RE = re.compile(
    r"^(host=)?([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(\.[0-7])?([;,].*)?$"
)

RAW_PCI_MESSAGE = (
    "a raw PCI address ({value!r}) cannot be used for GPUs: Proxmox lets only root@pam "
    "logged in with a password set raw hostpci devices (API tokens are refused, even root's), "
    "and raw devices block migration. Create a PCI resource mapping (Datacenter > Resource "
    "Mappings) for the devices and write gpus: {{mapping: <mapping-id>, count: <n>}}"
)

_DEFAULT_POLICY = Policy()


def _pattern(regex: re.Pattern[str], message: str) -> Any:
    """A before-validator: a string must match ``regex``; ``message`` may use ``{value!r}``."""

    def check(value: object) -> object:
        if isinstance(value, str) and not regex.match(value):
            raise ValueError(message.format(value=value))
        return value

    return BeforeValidator(check)


def _check_size(value: object) -> object:
    if isinstance(value, str):
        parse_size(value)
    return value


def _check_ip(value: object) -> object:
    if isinstance(value, str) and value != "dhcp":
        if "/" not in value:
            raise ValueError(
                f"{value!r} needs a prefix length: write an IPv4 CIDR like '10.21.0.35/16' "
                "or 'dhcp'"
            )
        _parse_ipv4(ipaddress.IPv4Interface, value, "an IPv4 CIDR like '10.21.0.35/16'", why=True)
    return value


def _check_address(value: object) -> object:
    if isinstance(value, str):
        _parse_ipv4(ipaddress.IPv4Address, value, "an IPv4 address like '10.21.1.17'")
    return value


def _parse_ipv4(
    parse: Callable[[str], object], value: str, what: str, *, why: bool = False
) -> None:
    """``parse(value)``, its ``ValueError`` said as "is not <what>" (with the parser's reason)."""
    try:
        parse(value)
    except ValueError as exc:
        reason = f" ({exc})" if why else ""
        raise ValueError(f"{value!r} is not {what}{reason}") from exc


def _check_mapping(value: object) -> object:
    if isinstance(value, str):
        if PCI_ADDRESS_RE.match(value):
            raise ValueError(RAW_PCI_MESSAGE.format(value=value))
        if not CONFIG_ID_RE.match(value):
            raise ValueError(
                f"invalid mapping id {value!r}: a PCI resource mapping id starts with a letter, "
                "then letters, digits, '-' or '_' (2-40 characters)"
            )
    return value


def _refuse_raw_gpus(value: object) -> object:
    if isinstance(value, str) and PCI_ADDRESS_RE.match(value):
        raise ValueError(RAW_PCI_MESSAGE.format(value=value))
    if isinstance(value, dict) and "host" in value:
        raise ValueError(RAW_PCI_MESSAGE.format(value=value["host"]))
    return value


def _within(bound: Callable[[str], None]) -> Callable[[object], object]:
    """A before-validator body: a well-formed size must also lie within ``bound``."""

    def check(value: object) -> object:
        if isinstance(value, str):
            try:
                parse_size(value)
            except ValueError:
                return value  # the format error is reported once, by ``Size``
            bound(value)
        return value

    return check


def _schema(pattern: str, description: str) -> Any:
    return Field(json_schema_extra={"pattern": pattern, "description": description})


Size = Annotated[
    StrictStr,
    BeforeValidator(_check_size),
    _schema(SIZE_PATTERN, "a size with a binary unit: KiB, MiB, GiB or TiB (e.g. '16GiB')"),
]
MemorySize = Annotated[Size, BeforeValidator(_within(check_memory))]  # 16MiB-4TiB
DiskSize = Annotated[Size, BeforeValidator(_within(check_disk_size))]  # at most 1PiB
Vmid = Annotated[StrictInt, Field(ge=VMID_MIN, le=VMID_MAX)]
VmName = Annotated[
    StrictStr,
    _pattern(DNS_NAME_RE, "invalid VM name {value!r}: letters, digits and '-' (a DNS name)"),
    Field(max_length=63),
]
HostName = Annotated[
    StrictStr,
    _pattern(HOST_NAME_RE, "invalid host name {value!r}: letters, digits and '-'"),
]
StorageId = Annotated[
    StrictStr,
    _pattern(STORAGE_ID_RE, "invalid storage id {value!r}: letters, digits, '-', '_', '.'"),
]
Mac = Annotated[
    StrictStr,
    _pattern(
        MAC_RE,
        "invalid MAC address {value!r}: six hex pairs separated by ':' "
        "(e.g. '00:16:3e:63:79:26'), unicast (the second hex digit is even)",
    ),
]
Tag = Annotated[
    StrictStr,
    _pattern(TAG_RE, "invalid tag {value!r}: Proxmox tags allow a-z, 0-9, '_', '.', '+', '-'"),
]
IpCidr = Annotated[
    StrictStr,
    BeforeValidator(_check_ip),
    _schema(r"^(dhcp|[0-9.]+/[0-9]+)$", "an IPv4 CIDR (10.21.0.35/16) or 'dhcp'"),
]
IpAddress = Annotated[
    StrictStr, BeforeValidator(_check_address), _schema(r"^[0-9.]+$", "an IPv4 address")
]
MappingId = Annotated[
    StrictStr,
    BeforeValidator(_check_mapping),
    _schema(CONFIG_ID_RE.pattern, "the id of a Proxmox PCI resource mapping"),
]
Ratio = Annotated[StrictFloat, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel)


class Disk(_Model):
    """A disk the VM must have, at least ``size`` (disks grow, never shrink)."""

    slot: Annotated[
        StrictStr,
        _pattern(
            DISK_SLOT_RE,
            "invalid disk slot {value!r}: scsi0-30, virtio0-15, sata0-5, ide0-3",
        ),
    ]
    size: DiskSize
    storage: StorageId | None = None


class Nic(_Model):
    """A network interface; its index in ``nics`` is the N of ``netN``."""

    bridge: Annotated[StrictStr, _pattern(BRIDGE_RE, "invalid bridge name {value!r}")]
    vlan: Annotated[StrictInt, Field(ge=1, le=4094)] | None = None
    mac: Mac | None = None
    model: Literal["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"] = "virtio"
    firewall: StrictBool | None = None


class CloudInitSpec(_Model):
    user: StrictStr | None = None
    ssh_keys: tuple[StrictStr, ...] | None = None
    nameservers: tuple[IpAddress, ...] | None = None
    search_domain: StrictStr | None = None


class Gpus(_Model):
    """``count`` devices of a PCI resource mapping, as ``hostpci0..count-1: mapping=<id>``."""

    mapping: MappingId
    count: Annotated[StrictInt, Field(ge=1, le=16)] = 1


GpusField = Annotated[Gpus, BeforeValidator(_refuse_raw_gpus)]


class KubernetesSpec(_Model):
    """The Kubernetes node in the VM: what provisiond labels, taints and annotates."""

    node: StrictBool | None = Field(default=None, description="is the VM a Kubernetes node")
    node_name: StrictStr | None = None
    labels: dict[StrictStr, StrictStr] | None = None
    taints: tuple[StrictStr, ...] | None = Field(
        default=None, description="'key=value:Effect' or 'key:Effect'"
    )
    annotations: dict[StrictStr, StrictStr] | None = None


class Placement(_Model):
    hosts: tuple[HostName, ...] | None = Field(default=None, description="allowed hosts")
    spread: Literal["preferred", "strict"] | None = None


class FleetPlacement(Placement):
    """``spec.placement``: a pool's placement, plus what only the fleet level says."""

    publish_ha_rules: StrictBool = Field(
        default=False,
        description="PVE 9.x: write the strict spread and host pinning of HA-managed VMs as "
        "PVE HA rules provisiond owns (ids pd-<fleet>-…, comment provisiond:<fleet>), so HA "
        "recovery respects them while provisiond is down",
    )


class VmSettings(_Model):
    """Settings usable in ``spec.defaults``, in a pool and in a VM (merged in that order)."""

    template: StrictStr | None = Field(default=None, description="template name")
    template_vmid: Vmid | None = None
    storage: StorageId | None = None
    pool: Annotated[StrictStr, _pattern(POOL_ID_RE, "invalid Proxmox pool id {value!r}")] | None = (
        None
    )
    clone_mode: Literal["full", "linked"] | None = None
    cores: Annotated[StrictInt, Field(ge=1, le=1024)] | None = None
    memory: MemorySize | None = None
    disks: tuple[Disk, ...] | None = None
    bridge: Annotated[StrictStr, _pattern(BRIDGE_RE, "invalid bridge name {value!r}")] | None = None
    vlan: Annotated[StrictInt, Field(ge=1, le=4094)] | None = None
    mac: Mac | None = None
    nic_model: Literal["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"] | None = None
    nics: tuple[Nic, ...] | None = Field(default=None, max_length=32)
    ip: IpCidr | None = None
    gateway: IpAddress | None = None
    cloud_init: CloudInitSpec | None = None
    gpus: GpusField | None = None
    power: Literal["running", "stopped"] | None = None
    host: HostName | None = Field(default=None, description="pin the VM to this host")
    tags: tuple[Tag, ...] | None = None
    kubernetes: KubernetesSpec | None = None
    allow_large_growth: StrictBool | None = Field(
        default=None,
        description="grow disks even past the storage's free space or policy.maxDiskGrowth",
    )


class VmEntry(VmSettings):
    name: VmName
    vmid: Vmid


class VmidRange(_Model):
    start: Vmid
    end: Vmid


class Pool(VmSettings):
    name: Annotated[
        StrictStr,
        _pattern(POOL_NAME_RE, "invalid pool name {value!r}: lower-case letters, digits and '-'"),
        Field(max_length=63),
    ]
    vms: tuple[VmEntry, ...] | None = None
    count: Annotated[StrictInt, Field(ge=0)] | None = None
    name_pattern: StrictStr | None = Field(
        default=None, description="VM names, with {index} (1-based), e.g. 'node{index:02d}'"
    )
    vmid_range: VmidRange | None = None
    placement: Placement | None = None


class Overcommit(_Model):
    cpu: Ratio = _DEFAULT_POLICY.overcommit.cpu
    memory: Ratio = _DEFAULT_POLICY.overcommit.memory


class Rebalance(_Model):
    enabled: StrictBool = _DEFAULT_POLICY.rebalance.enabled
    memory_threshold: Ratio = _DEFAULT_POLICY.rebalance.memory_threshold
    cpu_threshold: Ratio = _DEFAULT_POLICY.rebalance.cpu_threshold
    # auto: leave HA-managed VMs to the Proxmox CRS when its auto-rebalance is (or may be) on
    ha_managed: Literal["auto", "always", "never"] = _DEFAULT_POLICY.rebalance.ha_managed.value


class DrainSpec(_Model):
    timeout: Annotated[
        StrictInt,
        Field(
            ge=1,
            le=86_400,
            description="seconds a drain keeps retrying evictions blocked by PodDisruptionBudgets",
        ),
    ] = int(_DEFAULT_POLICY.drain.timeout)
    delete_empty_dir_data: StrictBool = Field(
        default=_DEFAULT_POLICY.drain.delete_empty_dir_data,
        description="evict pods with emptyDir volumes (their data is lost); off: refuse them",
    )


class PolicySpec(_Model):
    prune: StrictBool = _DEFAULT_POLICY.prune
    allow_empty: StrictBool = _DEFAULT_POLICY.allow_empty
    adopt: StrictBool = _DEFAULT_POLICY.adopt
    reboot_for_pending: StrictBool = _DEFAULT_POLICY.reboot_for_pending
    force_stop_after_shutdown_timeout: StrictBool = (
        _DEFAULT_POLICY.force_stop_after_shutdown_timeout
    )
    max_concurrent_actions: Annotated[StrictInt, Field(ge=1)] = (
        _DEFAULT_POLICY.max_concurrent_actions
    )
    max_concurrent_per_host: Annotated[StrictInt, Field(ge=1)] = (
        _DEFAULT_POLICY.max_concurrent_per_host
    )
    max_disk_growth: Annotated[StrictFloat, Field(ge=1)] = _DEFAULT_POLICY.max_disk_growth
    max_disruptions_per_pool: Annotated[StrictInt, Field(ge=0)] = (
        _DEFAULT_POLICY.max_disruptions_per_pool
    )
    max_disruptions: Annotated[StrictInt, Field(ge=0)] = _DEFAULT_POLICY.max_disruptions
    overcommit: Overcommit = Overcommit()
    rebalance: Rebalance = Rebalance()
    maintenance: tuple[HostName, ...] = Field(default=(), description="hosts to evacuate")
    drain: DrainSpec = DrainSpec()


class Metadata(_Model):
    name: Annotated[
        StrictStr,
        _pattern(
            FLEET_NAME_RE,
            "invalid fleet name {value!r}: it becomes the Proxmox tag 'pd-<name>', and tags allow "
            "only lower-case letters, digits, '_', '.', '+' and '-'",
        ),
        Field(max_length=60),
    ]


class FleetSpec(_Model):
    defaults: VmSettings = VmSettings()
    placement: FleetPlacement = FleetPlacement()
    pools: tuple[Pool, ...] = ()
    policy: PolicySpec = PolicySpec()


class Fleet(_Model):
    """A ``kind: Fleet`` document."""

    model_config = ConfigDict(title="provisiond Fleet")

    api_version: Literal["provisiond.dev/v1alpha1"]
    kind: Literal["Fleet"]
    metadata: Metadata
    spec: FleetSpec


PathPart = str | int
Path = tuple[PathPart, ...]
Locator = Callable[[Path], "int | None"]


def _nowhere(_path: Path) -> int | None:
    return None


@dataclass(frozen=True, slots=True)
class SourcedFleet:
    """A validated ``Fleet`` with where it came from: ``locate(path)`` is the line of a value."""

    fleet: Fleet
    file: str = "<memory>"
    locate: Locator = _nowhere


def format_path(path: Path) -> str:
    """``("spec", "pools", 1, "vmid")`` → ``spec.pools[1].vmid``; odd keys are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a fleet document (``provisiond schema``, docs/fleet.schema.json)."""
    schema = Fleet.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://provisiond.dev/schemas/v1alpha1/fleet.schema.json"
    return schema
