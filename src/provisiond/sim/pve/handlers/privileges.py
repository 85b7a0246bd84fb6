"""Which privileges a VM config change needs: qemu-server's ``check_vm_modify_config_perm``,
``check_hostpci_perm`` and ``check_storage_access`` for create and config writes (and
``check_mapping_access`` for a clone). root@pam passes every check; anyone else gets PVE's 403
texts, or a 500 for keys only root may set.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from provisiond.sim.pve.errors import ParamError, PveError
from provisiond.sim.pve.formats import split_propstring
from provisiond.sim.pve.state import DISK_RE, HOSTPCI_RE, NET_RE, Value, VmState

if TYPE_CHECKING:
    from provisiond.sim.pve.handlers import Call


def _check_hostpci_value(
    call: Call, key: str, value: Value, vmid: int, pool: str | None, *, hwtype: bool
) -> None:
    """One ``hostpciN`` value as qs ``check_hostpci_perm`` (``hwtype``) or a clone's
    ``check_mapping_access`` sees it: ``host`` is tested first, so ``host`` with ``mapping`` is
    refused too; ``romfile`` only by the former, after the privileges."""
    props = split_propstring(str(value), "host")
    if props.get("host"):
        raise PveError(f"only root can set '{key}' config for non-mapped devices")
    if not props.get("mapping"):
        raise PveError("either 'host' or 'mapping' must be set.")
    call.perms.check(f"/mapping/pci/{props['mapping']}", ["Mapping.Use"])
    if hwtype:
        call.perms.check_vm(vmid, pool, ["VM.Config.HWType"])
        if "romfile" in props:
            raise ParamError({key: "only root@pam can set 'romfile' option"})


def check_hostpci_perm(
    call: Call,
    changes: dict[str, Value],
    vmid: int,
    pool: str | None = None,
    *,
    hwtype: bool = True,
) -> None:
    """qs ``check_hostpci_perm`` on every ``hostpciN`` of a create
    (``check_vm_create_hostpci_perm``) or of a clone's source (``check_mapping_access``:
    Mapping.Use only, ``hwtype=False``): anyone but root@pam (tokens included) must use
    ``mapping=`` and hold Mapping.Use on ``/mapping/pci/<id>``, VM.Config.HWType on the VM, and
    may not set ``romfile``."""
    if call.is_root:
        return
    for key, value in sorted(changes.items()):
        if HOSTPCI_RE.match(key):
            _check_hostpci_value(call, key, value, vmid, pool, hwtype=hwtype)


def check_hostpci_update(
    call: Call, vm: VmState, changes: dict[str, Value], delete: list[str]
) -> None:
    """A config write's hostpci checks (qs ``update_vm_api``, inside the config lock): a deleted
    ``hostpciN``'s value (current, else pending), then for each set one the current value it
    replaces and the new value, all through ``check_hostpci_perm`` — so a token can neither
    remove nor replace a raw ``host=`` device."""
    if call.is_root:
        return
    for key in delete:
        old = vm.config.get(key, vm.pending.get(key))
        if HOSTPCI_RE.match(key) and old is not None:
            _check_hostpci_value(call, key, old, vm.vmid, None, hwtype=True)
    for key, value in sorted(changes.items()):
        if HOSTPCI_RE.match(key):
            if vm.config.get(key):
                _check_hostpci_value(call, key, vm.config[key], vm.vmid, None, hwtype=True)
            _check_hostpci_value(call, key, value, vm.vmid, None, hwtype=True)


# qs API2/Qemu.pm option groups of ``check_vm_modify_config_perm``
CPU_OPTIONS = frozenset(
    {"cores", "cpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus", "affinity"}
)
MEMORY_OPTIONS = frozenset({"memory", "balloon", "shares"})
HWTYPE_OPTIONS = frozenset(
    {"acpi", "hotplug", "kvm", "machine", "scsihw", "smbios1", "tablet", "vga", "watchdog"}
    | {"audio0"}
)
VMPOWER_OPTIONS = frozenset({"freeze"})
GENERAL_OPTIONS = frozenset(
    {
        "agent",
        "autostart",
        "bios",
        "description",
        "keyboard",
        "localtime",
        "migrate_downtime",
        "migrate_speed",
        "name",
        "onboot",
        "ostype",
        "protection",
        "reboot",
        "startdate",
        "startup",
        "tdf",
        "template",
        "tags",  # assert_tag_permissions: VM.Config.Options (privileged tags not simulated)
    }
)
DISK_OPTIONS = frozenset({"boot", "bootdisk", "vmstatestorage"})
CLOUDINIT_OPTIONS = frozenset(
    {"cicustom", "cipassword", "citype", "ciuser", "ciupgrade", "nameserver", "searchdomain"}
    | {"sshkeys"}
)


def _config_privilege(key: str, value: Value | None) -> tuple[tuple[str, ...], bool]:
    """The privileges (and any-of flag) a config key needs; PveError for root-only keys."""
    if DISK_RE.match(key) or key.startswith("unused"):
        cdrom = value is not None and "media=cdrom" in str(value)
        return ("VM.Config.CDROM" if cdrom else "VM.Config.Disk",), False
    if key.startswith("serial"):
        if value is not None and str(value) != "socket":
            raise PveError(f"only root can modify '{key}' config for real devices")
        return ("VM.Config.HWType",), False
    if re.fullmatch(r"numa\d+", key):
        return ("VM.Config.CPU",), False
    if key.startswith("usb"):
        return ("VM.Config.HWType",), False  # the device itself: check_usb_perm
    groups = (
        (VMPOWER_OPTIONS, "VM.PowerMgmt"),
        (CPU_OPTIONS, "VM.Config.CPU"),
        (MEMORY_OPTIONS, "VM.Config.Memory"),
        (HWTYPE_OPTIONS, "VM.Config.HWType"),
        (GENERAL_OPTIONS, "VM.Config.Options"),
        (DISK_OPTIONS, "VM.Config.Disk"),
    )
    for options, priv in groups:
        if key in options:
            return (priv,), False
    if NET_RE.match(key):
        return ("VM.Config.Network",), False
    if key in CLOUDINIT_OPTIONS or key.startswith("ipconfig"):
        return ("VM.Config.Cloudinit", "VM.Config.Network"), True
    raise PveError(f"only root can set '{key}' config")


def _check_usb(call: Call, key: str, value: str) -> None:
    """qs ``check_usb_perm``: a host device (other than spice) is root's; a mapping needs
    Mapping.Use."""
    props = split_propstring(value, "host")
    host, mapping = props.get("host"), props.get("mapping")
    if host is not None and host.lower() != "spice":
        raise PveError(f"only root can set '{key}' config for real devices")
    if mapping is not None:
        call.perms.check(f"/mapping/usb/{mapping}", ["Mapping.Use"])
    elif host is None:
        raise PveError("either 'host' or 'mapping' must be set.")


def check_config_perms(
    call: Call, vmid: int, pool: str | None, changes: dict[str, Value], removed: list[str]
) -> None:
    """qs ``check_vm_modify_config_perm`` (removed keys first, then the set ones) and
    ``check_storage_access``: a new volume ``<storage>:<GiB>`` needs Datastore.AllocateSpace
    on ``/storage/<storage>``. hostpci keys are ``check_hostpci_perm``'s."""
    if call.is_root:
        return
    items: list[tuple[str, Value | None]] = [(k, None) for k in sorted(removed)]
    items += sorted(changes.items())
    for key, value in items:
        if HOSTPCI_RE.match(key):
            continue
        privs, any_ = _config_privilege(key, value)
        call.perms.check_vm(vmid, pool, privs, any_=any_)
        if key == "startup":  # it changes host behaviour
            call.perms.check("/", ["Sys.Modify"])
        if key.startswith("usb") and value is not None:
            _check_usb(call, key, str(value))
    for key, value in sorted(changes.items()):
        if DISK_RE.match(key):
            file = split_propstring(str(value), "file").get("file", "")
            storage, _, size = file.partition(":")
            if re.fullmatch(r"\d+(\.\d+)?", size):
                call.perms.check(f"/storage/{storage}", ["Datastore.AllocateSpace"])
