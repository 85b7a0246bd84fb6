"""Every VM option of the PVE 8.4 schema through create and the config writes (issue 21), the
MAC a NIC gets on every write path, the ``boot`` and ``meta`` create fills in — through
proxmoxer over verified HTTPS."""

from __future__ import annotations

import re
from typing import Any

import pytest
from proxmoxer import ResourceException
from proxmoxer.tools import Tasks

from provisiond.sim.pve.params.vmoptions import VM_OPTIONS
from provisiond.sim.pve.testing import proxmox_client

pytestmark = pytest.mark.integration

NODE = "cit-gpu-01"
MAC = re.compile(r"^virtio=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2},bridge=vmbr0$")
# a valid value for every option (numbered ones at index 0); checked against VM_OPTIONS below
SAMPLES: dict[str, str] = {
    "acpi": "1",
    "affinity": "0-3,8",
    "agent": "enabled=1,fstrim_cloned_disks=1",
    "amd-sev": "type=std",
    "arch": "x86_64",
    "args": "-no-reboot",
    "audio0": "device=ich9-intel-hda,driver=spice",
    "autostart": "1",
    "balloon": "1024",
    "bios": "ovmf",
    "boot": "order=scsi0",
    "bootdisk": "scsi0",
    "cdrom": "none",
    "cicustom": "user=local:snippets/user.yaml",
    "cipassword": "secret",
    "citype": "nocloud",
    "ciupgrade": "0",
    "ciuser": "ops",
    "cores": "4",
    "cpu": "host",
    "cpulimit": "2.5",
    "cpuunits": "2048",
    "description": "all options",
    "efidisk0": "local-nvme:1,efitype=4m,pre-enrolled-keys=1",
    "freeze": "0",
    "hookscript": "local:snippets/hook.pl",
    "hostpci0": "mapping=a100-40g,pcie=1",
    "hotplug": "network,disk,usb",
    "hugepages": "any",
    "ide0": "none,media=cdrom",
    "ipconfig0": "ip=dhcp",
    "ivshmem": "size=32",
    "keephugepages": "0",
    "keyboard": "de",
    "kvm": "1",
    "localtime": "1",
    "lock": "backup",
    "machine": "q35",
    "memory": "4096",
    "migrate_downtime": "0.5",
    "migrate_speed": "100",
    "name": "all-options",
    "nameserver": "10.0.0.53",
    "net0": "virtio,bridge=vmbr0",
    "numa": "1",
    "numa0": "cpus=0-3,memory=4096",
    "onboot": "1",
    "ostype": "l26",
    "parallel0": "/dev/parport0",
    "protection": "0",
    "reboot": "1",
    "rng0": "source=/dev/urandom",
    "sata0": "local-nvme:1",
    "scsi0": "local-nvme:2,discard=on,ssd=1",
    "scsihw": "virtio-scsi-single",
    "searchdomain": "lab.example",
    "serial0": "socket",
    "shares": "500",
    "smbios1": "uuid=7b0c9f3e-8a0e-4a5e-9a55-3f1d1c1e2a10",
    "smp": "4",
    "sockets": "1",
    "spice_enhancements": "foldersharing=1",
    "sshkeys": "ssh-ed25519%20AAAA%20ops%40lab",
    "startdate": "now",
    "startup": "order=2,up=30,down=60",
    "tablet": "0",
    "tags": "lab;all",
    "tdf": "0",
    "template": "0",
    "tpmstate0": "local-nvme:1,version=v2.0",
    "unused0": "local-nvme:vm-1035-disk-9",
    "usb0": "host=spice,usb3=1",
    "vcpus": "2",
    "vga": "type=virtio,memory=32",
    "virtio0": "local-nvme:1,iothread=1",
    "virtiofs0": "dirid=share,cache=auto",
    "vmgenid": "1",
    "vmstatestorage": "local-nvme",
    "watchdog": "model=i6300esb,action=reset",
}
# qemu-server's check_vm_modify_config_perm lets only root@pam (never a token) set these
ROOT_ONLY = {"amd-sev", "args", "arch", "hookscript", "ivshmem", "lock", "parallel0"}
ROOT_ONLY |= {"rng0", "virtiofs0", "hugepages", "keephugepages", "cdrom"}
ROOT_ONLY |= {"vmgenid", "unused0", "spice_enhancements"}


def _wait(api: Any, upid: str) -> None:
    status = Tasks.blocking_status(api, upid, timeout=30, polling_interval=0.02)
    assert status is not None
    assert status["exitstatus"] == "OK", status


def test_samples_cover_every_schema_option() -> None:
    names = {re.sub(r"0$", "[n]", k) if f"{k[:-1]}[n]" in VM_OPTIONS else k for k in SAMPLES}
    assert names == set(VM_OPTIONS) - {"node", "vmid"}


def test_every_option_is_accepted_and_stored(pve_sim: Any) -> None:
    sim = pve_sim.sim
    sim.add_user("root@pam", password="rootpw")
    root = proxmox_client(sim, user="root@pam", password="rootpw")
    _wait(root, root.nodes(NODE).qemu.post(vmid=1035, name="bare"))
    q = root.nodes(NODE).qemu(1035)
    for key, value in SAMPLES.items():
        if key != "lock":  # last: a lock refuses every later write
            q.config.put(**{key: value})
    q.config.put(lock="backup")
    cfg = q.config.get()
    for key in SAMPLES:
        assert key in cfg or key == "cdrom", key
    assert cfg["ide2"] == "none,media=cdrom"  # cdrom is ide2's alias (resolve_cdrom_alias)
    assert MAC.match(cfg["net0"])
    assert cfg["tags"] == "all;lab"
    assert re.fullmatch(
        r"local-nvme:vm-1035-disk-\d,efitype=4m,pre-enrolled-keys=1,size=1G", cfg["efidisk0"]
    )
    assert (cfg["tablet"], cfg["startup"], cfg["cpuunits"]) == (0, "order=2,up=30,down=60", 2048)


def test_tokens_cannot_set_root_only_options(pve_sim: Any) -> None:
    api = pve_sim.api
    _wait(api, api.nodes(NODE).qemu.post(vmid=1035, name="bare"))
    q = api.nodes(NODE).qemu(1035)
    for key in sorted(ROOT_ONLY - {"cdrom", "unused0"}):
        with pytest.raises(ResourceException) as exc:
            q.config.put(**{key: SAMPLES[key]})
        assert (exc.value.status_code, exc.value.content) == (
            500,
            f"only root can set '{key}' config",
        ), key
    for key in sorted(set(SAMPLES) - ROOT_ONLY - {"hostpci0", "serial0", "usb0"}):
        q.config.put(**{key: SAMPLES[key]})  # everything else: the administrator token may


_MODELS = (
    "e1000, e1000-82540em, e1000-82544gc, e1000-82545em, e1000e, i82551, i82557b, i82559er, "
    "ne2k_isa, ne2k_pci, pcnet, rtl8139, virtio, vmxnet3"
)
_FLAGS = "pcid, spec-ctrl, ibpb, ssbd, virt-ssbd, amd-ssbd, amd-no-ssb, pdpe1gb, md-clear"
# (option, bad value, PVE's text: pve-common parse_property_string/check_prop, qemu-server formats)
BAD_VALUES = [
    ("startup", "order=x", "invalid format - unable to parse startup options\n"),
    ("hotplug", "network,gpu", "invalid format - invalid hotplug feature 'gpu'\n"),
    (
        "net0",
        "virtio,bridge=vmbr0,speed=10",
        "invalid format - invalid key in comma-separated list property: speed\n",
    ),
    (
        "net0",
        "rtl9999,bridge=vmbr0",
        "invalid format - format error\nnet0.model: value 'rtl9999' does not have a value in "
        f"the enumeration '{_MODELS}'\n",
    ),
    (
        "net0",
        "virtio=01:24:11:00:00:01,bridge=vmbr0",  # the I/G (multicast) bit set
        "invalid format - format error\nnet0.macaddr: invalid format - value does not look "
        "like a valid unicast MAC address\n\n",
    ),
    (
        "net0",
        "virtio=BC:24:11:00:00:GG,bridge=vmbr 0,tag=5000",
        "invalid format - format error\n"
        "net0.bridge: invalid format - invalid bridge ID 'vmbr 0'\n\n"
        "net0.macaddr: invalid format - value does not look like a valid unicast MAC address\n\n"
        "net0.tag: value must have a maximum value of 4094\n",
    ),
    (
        "net0",
        "bridge=vmbr0",
        "invalid format - format error\nnet0.model: property is missing and it is not optional\n",
    ),
    (
        "ipconfig0",
        "ip=10.0.0.5/40,gw=10.0.0.1",
        "invalid format - format error\nipconfig0.ip: invalid format - value does not look "
        "like a valid ipv4 network configuration\n\n",
    ),
    (
        "ipconfig0",
        "ip=dhcp,gw6=fe80::1",
        "invalid format - format error\nipconfig0.ip6: missing property - 'ipconfig0.gw6' "
        "requires this property\n",
    ),
    (
        "cpu",
        "pentium9",
        "invalid format - Built-in cputype 'pentium9' is not defined (missing 'custom-' prefix?)\n",
    ),
    (
        "cpu",
        "host,flags=+avx2",
        f"invalid format - VM-specific CPU flags must be a subset of: {_FLAGS}, hv-tlbflush, "
        "hv-evmcs, aes\n",
    ),
    (
        "cpu",
        "host,phys-bits=99",
        "invalid format - format error\ncpu.phys-bits: invalid format - value must be an "
        "integer between 8 and 64 or 'host'\n\n",
    ),
    (
        "scsi1",
        "nvme-disk.raw,ssd=1",
        "invalid format - format error\nscsi1.file: invalid format - unable to parse volume ID "
        "'nvme-disk.raw'\n\n",
    ),
    ("hookscript", "hook.pl", "invalid format - unable to parse volume ID 'hook.pl'\n"),
    (
        "nameserver",
        "10.0.0.53 bad_name!",
        "invalid format - value does not look like a valid address: bad_name!\n",
    ),
    (
        "boot",
        "order=scsi0;foo0",
        "invalid format - format error\nboot.order: invalid format - invalid boot device "
        "'foo0'\n\n",
    ),
    (
        "vga",
        "type=virtio,memory=2",
        "invalid format - format error\nvga.memory: value must have a minimum value of 4\n",
    ),
    (
        "scsi1",
        "local-nvme:4,ssd=1,ssd=0",
        "invalid format - duplicate key in comma-separated list property: ssd\n",
    ),
    ("cpuunits", "0", "value must have a minimum value of 1"),
    ("keyboard", "xx", None),
]
# good values beyond SAMPLES, stored as given
GOOD_VALUES = {
    "net1": "e1000=BC:24:11:AA:BB:01,bridge=vmbr1,tag=10,firewall=on,rate=12.5,trunks=2;5-7",
    "ipconfig1": "ip=10.0.0.5/24,gw=10.0.0.1,ip6=auto",
    "ipconfig2": "ip6=fd00::5/64,gw6=fd00::1",
    "cpu": "x86-64-v2-AES,flags=+aes;+pcid,hidden=1,phys-bits=host",
    "scsi1": "local-nvme:4,ssd=on,iothread=1,serial=disk%20one",
    "nameserver": "10.0.0.53 fd00::53 dns.lab.example",
    "boot": "order=scsi0;net0;hostpci0",
    "cdrom": "local:iso/debian.iso",
}


def test_bad_values_are_refused_with_the_key_named(pve_sim: Any) -> None:
    q = pve_sim.api.nodes(NODE).qemu(9000)
    for key, value, text in BAD_VALUES:
        with pytest.raises(ResourceException) as exc:
            q.config.put(**{key: value})
        assert exc.value.status_code == 400, key
        assert exc.value.content == "Parameter verification failed.", key
        if text is not None:
            assert exc.value.errors == {key: text}, (key, value)
    with pytest.raises(ResourceException) as exc:  # a named format of another endpoint
        q.migrate.post(target=NODE, migration_network="10.0.0.0/99")
    assert exc.value.errors == {
        "migration_network": "invalid format - value does not look like a valid CIDR network\n"
    }


def test_good_values_are_accepted(pve_sim: Any) -> None:
    q = pve_sim.api.nodes(NODE).qemu(9000)
    q.config.put(**GOOD_VALUES)
    cfg = q.config.get()
    for key, value in GOOD_VALUES.items():
        if key not in ("cdrom", "scsi1"):
            assert cfg[key] == value, key
    assert cfg["ide2"] == "local:iso/debian.iso,media=cdrom"
    # storage:size allocates a volume
    disk = r"local-nvme:vm-9000-disk-\d+,ssd=on,iothread=1,serial=disk%20one,size=4G"
    assert re.fullmatch(disk, cfg["scsi1"])


def test_a_nic_gets_a_mac_on_every_write_path(pve_sim: Any) -> None:
    api = pve_sim.api
    nodes = api.nodes(NODE)
    _wait(api, nodes.qemu.post(vmid=1035, net0="virtio,bridge=vmbr0", scsi0="local-nvme:4"))
    cfg = nodes.qemu(1035).config.get()
    assert MAC.match(cfg["net0"])
    assert cfg["boot"] == "order=scsi0;net0"  # create fills boot and meta as PVE does
    assert re.fullmatch(r"creation-qemu=\d+\.\d+\.\d+,ctime=\d+", cfg["meta"])
    nodes.qemu(1035).config.put(net1="virtio,bridge=vmbr0")
    _wait(api, nodes.qemu(1035).config.post(net2="virtio,bridge=vmbr0"))
    cfg = nodes.qemu(1035).config.get()
    assert MAC.match(cfg["net1"])
    assert MAC.match(cfg["net2"])
    assert len({cfg["net0"], cfg["net1"], cfg["net2"]}) == 3
    nodes.qemu(1035).config.put(net1="e1000=aa:bb:cc:dd:ee:ff,bridge=vmbr1,firewall=1")
    assert (
        nodes.qemu(1035).config.get()["net1"] == "e1000=AA:BB:CC:DD:EE:FF,bridge=vmbr1,firewall=1"
    )
    _wait(api, nodes.qemu(1035).clone.post(newid=1036))
    clone = nodes.qemu(1036).config.get()
    assert MAC.match(clone["net0"])
    assert clone["net0"] != cfg["net0"]
