"""The VM options of create (``POST /nodes/{node}/qemu``) and the config writes
(``PUT``/``POST …/config``): every option the PVE 8.4 schema lists for them, with its type,
format, enum and limits (``tests/sim/test_pve_contract.py`` compares them one by one).

Named formats are checked where ``validation.FORMATS`` knows them; property strings
(``propstring=True``) are checked key by key against ``PROPSTRING_KEYS``. Numbered options are
written as the schema writes them (``net[n]``); ``params.qemu.NUMBERED`` holds their limits.
"""

from __future__ import annotations

from provisiond.sim.pve.params.schema import NODE, VMID, P

VM_OPTIONS: dict[str, P] = {
    "vmid": VMID,
    "node": NODE,
    "acpi": P("boolean"),
    "affinity": P("string", fmt="pve-cpuset"),
    "agent": P("string", propstring=True),
    "amd-sev": P("string", fmt="pve-qemu-sev-fmt"),
    "arch": P("string", enum=("x86_64", "aarch64")),
    "args": P("string"),
    "audio0": P("string", propstring=True),
    "autostart": P("boolean"),
    "balloon": P("integer", minimum=0),
    "bios": P("string", enum=("seabios", "ovmf")),
    "boot": P("string", fmt="pve-qm-boot"),
    "bootdisk": P("string", fmt="pve-qm-bootdisk", pattern="(ide|sata|scsi|virtio)\\d+"),
    "cdrom": P("string", fmt="pve-qm-ide"),
    "cicustom": P("string", fmt="pve-qm-cicustom"),
    "cipassword": P("string"),
    "citype": P("string", enum=("configdrive2", "nocloud", "opennebula")),
    "ciupgrade": P("boolean"),
    "ciuser": P("string"),
    "cores": P("integer", minimum=1),
    "cpu": P("string", fmt="pve-vm-cpu-conf"),
    "cpulimit": P("number", minimum=0, maximum=128),
    "cpuunits": P("integer", minimum=1, maximum=262144),
    "description": P("string", max_length=8192),
    "efidisk0": P("string", propstring=True),
    "freeze": P("boolean"),
    "hookscript": P("string", fmt="pve-volume-id"),
    "hostpci[n]": P("string", fmt="pve-qm-hostpci"),
    "hotplug": P("string", fmt="pve-hotplug-features"),
    "hugepages": P("string", enum=("any", "2", "1024")),
    "ide[n]": P("string", propstring=True),
    "ipconfig[n]": P("string", fmt="pve-qm-ipconfig"),
    "ivshmem": P("string", propstring=True),
    "keephugepages": P("boolean"),
    "keyboard": P(
        "string",
        enum=(
            "de",
            "de-ch",
            "da",
            "en-gb",
            "en-us",
            "es",
            "fi",
            "fr",
            "fr-be",
            "fr-ca",
            "fr-ch",
            "hu",
            "is",
            "it",
            "ja",
            "lt",
            "mk",
            "nl",
            "no",
            "pl",
            "pt",
            "pt-br",
            "sv",
            "sl",
            "tr",
        ),
    ),
    "kvm": P("boolean"),
    "localtime": P("boolean"),
    "lock": P(
        "string",
        enum=(
            "backup",
            "clone",
            "create",
            "migrate",
            "rollback",
            "snapshot",
            "snapshot-delete",
            "suspending",
            "suspended",
        ),
    ),
    "machine": P("string", propstring=True),
    "memory": P("string", propstring=True),
    "migrate_downtime": P("number", minimum=0),
    "migrate_speed": P("integer", minimum=0),
    "name": P("string", fmt="dns-name"),
    "nameserver": P("string", fmt="address-list"),
    "net[n]": P("string", propstring=True),
    "numa": P("boolean"),
    "numa[n]": P("string", propstring=True),
    "onboot": P("boolean"),
    "ostype": P(
        "string",
        enum=(
            "other",
            "wxp",
            "w2k",
            "w2k3",
            "w2k8",
            "wvista",
            "win7",
            "win8",
            "win10",
            "win11",
            "l24",
            "l26",
            "solaris",
        ),
    ),
    "parallel[n]": P("string", pattern="/dev/parport\\d+|/dev/usb/lp\\d+"),
    "protection": P("boolean"),
    "reboot": P("boolean"),
    "rng0": P("string", fmt="pve-qm-rng"),
    "sata[n]": P("string", propstring=True),
    "scsi[n]": P("string", propstring=True),
    "scsihw": P(
        "string",
        enum=("lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"),
    ),
    "searchdomain": P("string"),
    "serial[n]": P("string", pattern="(/dev/.+|socket)"),
    "shares": P("integer", minimum=0, maximum=50000),
    "smbios1": P("string", fmt="pve-qm-smbios1", max_length=512),
    "smp": P("integer", minimum=1),
    "sockets": P("integer", minimum=1),
    "spice_enhancements": P("string", propstring=True),
    "sshkeys": P("string", fmt="urlencoded"),
    "startdate": P(
        "string", pattern="(now|\\d{4}-\\d{1,2}-\\d{1,2}(T\\d{1,2}:\\d{1,2}:\\d{1,2})?)"
    ),
    "startup": P("string", fmt="pve-startup-order"),
    "tablet": P("boolean"),
    "tags": P("string", fmt="pve-tag-list"),
    "tdf": P("boolean"),
    "template": P("boolean"),
    "tpmstate0": P("string", propstring=True),
    "unused[n]": P("string", propstring=True),
    "usb[n]": P("string", propstring=True),
    "vcpus": P("integer", minimum=1),
    "vga": P("string", propstring=True),
    "virtio[n]": P("string", propstring=True),
    "virtiofs[n]": P("string", propstring=True),
    "vmgenid": P("string", pattern="(?:[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])"),
    "vmstatestorage": P("string", fmt="pve-storage-id"),
    "watchdog": P("string", fmt="pve-qm-watchdog"),
}

# property-string options: (default key, every key the format defines, aliases included)
_DRIVE = (
    "aio backup bps bps_max_length bps_rd bps_rd_length bps_rd_max_length bps_wr "
    "bps_wr_length bps_wr_max_length cache cyls detect_zeroes discard file format heads "
    "import-from iops iops_max iops_max_length iops_rd iops_rd_length iops_rd_max "
    "iops_rd_max_length iops_wr iops_wr_length iops_wr_max iops_wr_max_length mbps "
    "mbps_max mbps_rd mbps_rd_max mbps_wr mbps_wr_max media replicate rerror secs serial "
    "shared size snapshot trans volume werror"
)
PROPSTRING_KEYS: dict[str, tuple[str | None, str]] = {
    "agent": ("enabled", "enabled freeze-fs-on-backup fstrim_cloned_disks type"),
    "audio0": (None, "device driver"),
    "efidisk0": ("file", "efitype file format import-from ms-cert pre-enrolled-keys size volume"),
    "ide[n]": ("file", _DRIVE + " model ssd wwn"),
    "ivshmem": (None, "name size"),
    "machine": ("type", "enable-s3 enable-s4 type viommu"),
    "memory": ("current", "current"),
    "net[n]": (
        "model",
        (
            "bridge e1000 e1000-82540em e1000-82544gc e1000-82545em e1000e firewall i82551 "
            "i82557b i82559er link_down macaddr model mtu ne2k_isa ne2k_pci pcnet queues rate "
            "rtl8139 tag trunks virtio vmxnet3"
        ),
    ),
    "numa[n]": (None, "cpus hostnodes memory policy"),
    "sata[n]": ("file", _DRIVE + " ssd wwn"),
    "scsi[n]": ("file", _DRIVE + " iothread product queues ro scsiblock ssd vendor wwn"),
    "spice_enhancements": (None, "foldersharing videostreaming"),
    "tpmstate0": ("file", "file import-from size version volume"),
    "unused[n]": ("file", "file volume"),
    "usb[n]": ("host", "host mapping usb3"),
    "vga": ("type", "clipboard memory type"),
    "virtio[n]": ("file", _DRIVE + " iothread ro"),
    "virtiofs[n]": ("dirid", "cache direct-io dirid expose-acl expose-xattr"),
}
