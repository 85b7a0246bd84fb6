"""The formats of property-string values (pve-common ``parse_property_string``): per key its
type, format, enum, pattern and limits, the key that takes a bare value, and the aliases.

``VM_PROPFORMATS`` holds the property-string VM options whose format the PVE 8.4 schema spells
out (a dict there; ``tests/sim/test_pve_contract.py`` compares them key by key).
``NAMED_PROPFORMATS`` holds the named formats qemu-server registers as property strings, which
the schema only names (``pve-qm-ipconfig``, ``pve-vm-cpu-conf``, …; facts from qemu-server's
``QemuServer.pm``, ``Network.pm``, ``CPUConfig.pm``, ``RNG.pm``, ``Drive.pm``, ``PCI.pm``). A
``validator`` names the check qemu-server attaches to a format (``validation.py`` runs it after
the keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from provisiond.sim.pve.params.schema import P


@dataclass(frozen=True, slots=True)
class PropFormat:
    keys: Mapping[str, P]
    default_key: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)  # alias -> the key it stands for
    key_alias: str | None = None  # the key that takes an alias' own name (net: model)
    requires: Mapping[str, str] = field(default_factory=dict)  # key -> the key it needs
    validator: str | None = None


_B = P("boolean")
_INT = P("integer")
_NUM = P("number")
_LEN = P("integer", minimum=1)
_FORMAT = P("string", enum=("raw", "qcow", "qed", "qcow2", "vmdk", "cloop"))
_FILE = P("string", optional=False, fmt="pve-volume-id-or-qm-path")
_IMPORT = P("string", fmt="pve-volume-id-or-absolute-path")
_SIZE = P("string", fmt="disk-size")
_WWN = P("string", pattern="(?^:^(0x)[0-9a-fA-F]{16})")
_VLANS = P("string", pattern="(?^:\\d+(?:-\\d+)?(?:;\\d+(?:-\\d+)?)*)")
_DRIVE: dict[str, P] = {
    "aio": P("string", enum=("native", "threads", "io_uring")),
    "backup": _B,
    **dict.fromkeys(("bps", "bps_rd", "bps_wr", "cyls", "heads", "iops", "iops_max"), _INT),
    **dict.fromkeys(("iops_rd", "iops_rd_max", "iops_wr", "iops_wr_max", "secs"), _INT),
    **{f"{k}_max_length": _LEN for k in ("bps", "bps_rd", "bps_wr", "iops", "iops_rd")},
    "iops_wr_max_length": _LEN,
    "cache": P("string", enum=("none", "writethrough", "writeback", "unsafe", "directsync")),
    "detect_zeroes": _B,
    "discard": P("string", enum=("ignore", "on")),
    "file": _FILE,
    "format": _FORMAT,
    "import-from": _IMPORT,
    **dict.fromkeys(("mbps", "mbps_max", "mbps_rd", "mbps_rd_max", "mbps_wr", "mbps_wr_max"), _NUM),
    "media": P("string", enum=("cdrom", "disk")),
    "replicate": _B,
    "rerror": P("string", enum=("ignore", "report", "stop")),
    "serial": P("string", fmt="urlencoded", max_length=60),
    "shared": _B,
    "size": _SIZE,
    "snapshot": _B,
    "trans": P("string", enum=("none", "lba", "auto")),
    "werror": P("string", enum=("enospc", "ignore", "report", "stop")),
}
_DRIVE_ALIASES = {
    "volume": "file",
    **{f"{k}_length": f"{k}_max_length" for k in ("bps_rd", "bps_wr", "iops_rd", "iops_wr")},
}


def _drive(**extra: P) -> PropFormat:
    return PropFormat({**_DRIVE, **extra}, "file", _DRIVE_ALIASES)


_IDE = _drive(model=P("string", fmt="urlencoded", max_length=120), ssd=_B, wwn=_WWN)
NIC_MODELS = (
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
)
_USB_HOST = (
    "(?^:(?:(?:(?^:(0x)?([0-9A-Fa-f]{4}):(0x)?([0-9A-Fa-f]{4})))|(?:(?^:(\\d+)\\-(\\d+(\\.\\d+)*)))"
    "|[Ss][Pp][Ii][Cc][Ee]))"
)
_MACHINE = (
    "(pc|pc(-i440fx)?-\\d+(\\.\\d+)+(\\+pve\\d+)?(\\.pxe)?|q35|pc-q35-\\d+(\\.\\d+)+(\\+pve\\d+)?"
    "(\\.pxe)?|virt(?:-\\d+(\\.\\d+)+)?(\\+pve\\d+)?)"
)
_VGA = [
    "cirrus",
    "qxl",
    "qxl2",
    "qxl3",
    "qxl4",
    "none",
    "serial0",
    "serial1",
    "serial2",
    "serial3",
    "std",
    "virtio",
    "virtio-gl",
    "vmware",
]

VM_PROPFORMATS: dict[str, PropFormat] = {
    "agent": PropFormat(
        {
            "enabled": P("boolean", optional=False),
            "freeze-fs-on-backup": _B,
            "fstrim_cloned_disks": _B,
            "type": P("string", enum=("virtio", "isa")),
        },
        "enabled",
    ),
    "audio0": PropFormat(
        {
            "device": P("string", optional=False, enum=("ich9-intel-hda", "intel-hda", "AC97")),
            "driver": P("string", enum=("spice", "none")),
        }
    ),
    "efidisk0": PropFormat(
        {
            "efitype": P("string", enum=("2m", "4m")),
            "file": _FILE,
            "format": _FORMAT,
            "import-from": _IMPORT,
            "ms-cert": P("string", enum=("2011", "2023", "2023w", "2023k")),
            "pre-enrolled-keys": _B,
            "size": _SIZE,
        },
        "file",
        {"volume": "file"},
    ),
    "ide[n]": _IDE,
    "ivshmem": PropFormat(
        {
            "name": P("string", pattern="[a-zA-Z0-9\\-]+"),
            "size": P("integer", optional=False, minimum=1),
        }
    ),
    "machine": PropFormat(
        {
            "enable-s3": _B,
            "enable-s4": _B,
            "type": P("string", max_length=40, pattern=_MACHINE),
            "viommu": P("string", enum=("intel", "virtio")),
        },
        "type",
    ),
    "memory": PropFormat({"current": P("integer", optional=False, minimum=16)}, "current"),
    "net[n]": PropFormat(
        {
            "bridge": P("string", fmt="pve-bridge-id"),
            "firewall": _B,
            "link_down": _B,
            "macaddr": P("string", fmt="mac-addr"),
            "model": P("string", optional=False, enum=NIC_MODELS),
            "mtu": P("integer", minimum=1, maximum=65520),
            "queues": P("integer", minimum=0, maximum=64),
            "rate": P("number", minimum=0),
            "tag": P("integer", minimum=1, maximum=4094),
            "trunks": _VLANS,
        },
        "model",
        dict.fromkeys(NIC_MODELS, "macaddr"),
        key_alias="model",
    ),
    "numa[n]": PropFormat(
        {
            "cpus": P("string", optional=False, pattern=_VLANS.pattern),
            "hostnodes": _VLANS,
            "memory": _NUM,
            "policy": P("string", enum=("preferred", "bind", "interleave")),
        }
    ),
    "sata[n]": _drive(ssd=_B, wwn=_WWN),
    "scsi[n]": _drive(
        iothread=_B,
        product=P("string", pattern="[A-Za-z0-9\\-_\\s]{,16}"),
        queues=P("integer", minimum=2),
        ro=_B,
        scsiblock=_B,
        ssd=_B,
        vendor=P("string", pattern="[A-Za-z0-9\\-_\\s]{,8}"),
        wwn=_WWN,
    ),
    "spice_enhancements": PropFormat(
        {"foldersharing": _B, "videostreaming": P("string", enum=("off", "all", "filter"))}
    ),
    "tpmstate0": PropFormat(
        {
            "file": _FILE,
            "import-from": _IMPORT,
            "size": _SIZE,
            "version": P("string", enum=("v1.2", "v2.0")),
        },
        "file",
        {"volume": "file"},
    ),
    "unused[n]": PropFormat(
        {"file": P("string", optional=False, fmt="pve-volume-id")}, "file", {"volume": "file"}
    ),
    "usb[n]": PropFormat(
        {
            "host": P("string", pattern=_USB_HOST),
            "mapping": P("string", fmt="pve-configid"),
            "usb3": _B,
        },
        "host",
    ),
    "vga": PropFormat(
        {
            "clipboard": P("string", enum=("vnc",)),
            "memory": P("integer", minimum=4, maximum=512),
            "type": P("string", enum=tuple(_VGA)),
        },
        "type",
    ),
    "virtio[n]": _drive(iothread=_B, ro=_B),
    "virtiofs[n]": PropFormat(
        {
            "cache": P("string", enum=("auto", "always", "metadata", "never")),
            "direct-io": _B,
            "dirid": P("string", optional=False, fmt="pve-configid"),
            "expose-acl": _B,
            "expose-xattr": _B,
        },
        "dirid",
    ),
}

# PCI.pm ``$PCIRE``: no /i flag, so upper-case hex digits do not match
_PCIID = "(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\\.[a-f0-9])?"
_HEXID = P("string", pattern="(?^:^0x[0-9a-fA-F]{4}$)")
# qemu-server 8.4 (stable-bookworm) ``$hostpci_fmt``; 9.x adds ``driver`` (vfio|keep)
_HOSTPCI = PropFormat(
    {
        "host": P("string", pattern=f"(?^:(?^:{_PCIID})(;(?^:{_PCIID}))*)"),
        "mapping": P("string", fmt="pve-configid"),
        "rombar": _B,
        "romfile": P("string", pattern="[^,;]+"),
        "pcie": _B,
        "x-vga": _B,
        "legacy-igd": _B,
        "mdev": P("string", pattern="[^/\\.:]+"),
        **dict.fromkeys(("vendor-id", "device-id", "sub-vendor-id", "sub-device-id"), _HEXID),
    },
    "host",
)
_B64 = P("string", pattern="[A-Za-z0-9+\\/]+={0,2}")
_VOLUME = P("string", fmt="pve-volume-id")
NAMED_PROPFORMATS: dict[str, PropFormat] = {
    "pve-qm-ide": _IDE,  # cdrom
    "pve-qm-hostpci": _HOSTPCI,
    "pve-qm-ipconfig": PropFormat(
        {
            "ip": P("string", fmt="pve-ipv4-config"),
            "gw": P("string", fmt="ipv4"),
            "ip6": P("string", fmt="pve-ipv6-config"),
            "gw6": P("string", fmt="ipv6"),
        },
        requires={"gw": "ip", "gw6": "ip6"},
    ),
    "pve-vm-cpu-conf": PropFormat(
        {
            "cputype": P("string"),
            "reported-model": P("string"),  # enum of the CPU models; refused for a VM anyway
            "hidden": _B,
            "hv-vendor-id": P("string", pattern="[a-zA-Z0-9]{1,12}"),
            "flags": P(
                "string",
                pattern="([+-])([a-zA-Z0-9\\-_\\.]+)(;([+-])([a-zA-Z0-9\\-_\\.]+))*",
            ),
            "phys-bits": P("string", fmt="pve-phys-bits"),
        },
        "cputype",
        validator="vm-cpu",
    ),
    "pve-qm-watchdog": PropFormat(
        {
            "model": P("string", enum=("i6300esb", "ib700")),
            "action": P("string", enum=("reset", "shutdown", "poweroff", "pause", "debug", "none")),
        },
        "model",
    ),
    "pve-qm-cicustom": PropFormat(dict.fromkeys(("meta", "network", "user", "vendor"), _VOLUME)),
    "pve-qm-smbios1": PropFormat(
        {
            "uuid": P("string", pattern="[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}"),
            **dict.fromkeys(
                ("version", "serial", "manufacturer", "product", "sku", "family"), _B64
            ),
            "base64": _B,
        }
    ),
    "pve-qm-rng": PropFormat(
        {
            "source": P(
                "string", optional=False, enum=("/dev/urandom", "/dev/random", "/dev/hwrng")
            ),
            "max_bytes": _INT,
            "period": _INT,
        },
        "source",
    ),
    "pve-qm-boot": PropFormat(
        {
            "legacy": P("string", pattern="[acdn]{1,4}"),
            "order": P("string", fmt="pve-qm-bootdev-list"),
        },
        "legacy",
    ),
    "pve-qemu-sev-fmt": PropFormat(
        {
            "type": P("string", optional=False, enum=("std", "es", "snp"), max_length=3),
            **dict.fromkeys(("no-debug", "no-key-sharing", "allow-smt", "kernel-hashes"), _B),
        },
        "type",
    ),
}
