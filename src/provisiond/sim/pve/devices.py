"""What qemu-server fills into a VM's device options on every write path (create, clone's
config, PUT/POST config — SEMANTICS Addendum 2): a NIC's MAC address, and at create the
default boot order and the ``meta`` line.

Invariant: a ``netN`` value the simulator stores always reads ``<model>=<MAC>,…``; a MAC is
never empty (``parse_net`` draws one from the datacenter ``mac_prefix``, ``BC:24:11``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from provisiond.sim.pve.formats import split_propstring
from provisiond.sim.pve.params.propformats import NIC_MODELS

QEMU_VERSION = "9.2.0"
NET_MODELS = frozenset(NIC_MODELS)  # the models a netN value may name (one list: propformats)
_DRIVE = re.compile(r"^(ide|sata|scsi|virtio)(\d+)$")


def with_mac(value: str, new_mac: Callable[[], str]) -> str:
    """qemu-server ``parse_net`` + ``print_net``: ``<model>=<MAC>`` first, the rest kept."""
    props = split_propstring(value, "model")
    model = props.pop("model", None)
    mac = props.pop("macaddr", None)
    for key in list(props):
        if key in NET_MODELS:  # "virtio=AA:…" names the model and carries the MAC
            model, mac = key, props.pop(key) or mac
    if model is None:
        return value  # no model: left for PVE's own error on start, as it stands
    mac = (mac or new_mac()).upper()
    return ",".join([f"{model}={mac}", *(f"{k}={v}" for k, v in props.items())])


def _drive_order(key: str) -> tuple[int, int]:
    m = _DRIVE.match(key)
    assert m is not None
    return (("ide", "sata", "scsi", "virtio").index(m.group(1)), int(m.group(2)))


def default_boot(config: Mapping[str, object]) -> str | None:
    """qemu-server ``get_default_bootdevices``: the first disk, the first CD-ROM, the first
    NIC, as ``order=a;b;c``; None when the VM has none of them."""
    drives = sorted((k for k in config if _DRIVE.match(k)), key=_drive_order)
    disks = [k for k in drives if "media=cdrom" not in str(config[k])]
    cdroms = [k for k in drives if "media=cdrom" in str(config[k])]
    nets = sorted((k for k in config if re.fullmatch(r"net\d+", k)), key=lambda k: int(k[3:]))
    order = [*disks[:1], *cdroms[:1], *nets[:1]]
    return "order=" + ";".join(order) if order else None


def meta_info() -> str:
    """qemu-server ``new_meta_info_string``."""
    return f"creation-qemu={QEMU_VERSION},ctime={int(time.time())}"
