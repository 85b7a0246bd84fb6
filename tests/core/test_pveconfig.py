"""Proxmox config property strings, Kubernetes node records, ownership: small pure tables."""

from __future__ import annotations

import pytest

from provisiond.core.desired import IpConfig, KubeNodeSpec, Taint
from provisiond.core.nodes import diff_node, parse_record, render_record
from provisiond.core.observed import (
    MANAGED_ANNOTATION,
    Disk,
    HostPci,
    KubeNode,
    Nic,
    ObservedVM,
    VMConfig,
    VMStatus,
)
from provisiond.core.ownership import owner, paused
from provisiond.core.pveconfig import (
    GIB,
    parse_config,
    parse_size,
    percent_decode,
    render_new_disk,
    render_nic,
)


def test_parse_config_reads_every_owned_key() -> None:
    cfg = parse_config(
        {
            "cores": "48",
            "memory": "current=131072",
            "scsi0": "local-nvme:vm-1038-disk-0,size=500G",
            "scsi1": "nfs-scratch:1038/vm-1038-disk-1.qcow2,size=1T,ssd=1",
            "ide2": "local:cloudinit,media=cdrom",
            "sata0": "none",
            "net0": "virtio=00:16:3e:63:79:29,bridge=vmbr0,tag=633,firewall=1",
            "net1": "e1000,bridge=vmbr1",
            "hostpci0": "mapping=a100-40g,pcie=1",
            "hostpci1": "0000:01:00.0,pcie=1",
            "hostpci2": "host=0000:02:00.0",
            "ipconfig0": "ip=10.21.0.38/16,gw=10.21.1.17",
            "nameserver": "193.171.87.249 193.171.87.250",
            "searchdomain": "lab",
            "ciuser": "ubuntu",
            "sshkeys": "ssh-ed25519%20AAA%20me%40host%0A",
            "tags": "provisiond;PD-cps-gpu,pd-cps-gpu",
            "description": "provisiond:cps-gpu/k3s-wk-gpu1",
            "boot": "order=scsi0",
        }
    )
    assert (cfg.cores, cfg.memory_mib) == (48, 131072)
    assert cfg.disks == {
        "scsi0": Disk("scsi0", "local-nvme", 500 * GIB),
        "scsi1": Disk("scsi1", "nfs-scratch", 1024 * GIB),
    }
    assert cfg.nets[0] == Nic(0, "virtio", "00:16:3E:63:79:29", "vmbr0", 633, True)
    assert cfg.nets[1] == Nic(1, "e1000", None, "vmbr1")
    assert cfg.hostpci == {
        0: HostPci(0, mapping="a100-40g"),
        1: HostPci(1, raw="0000:01:00.0"),
        2: HostPci(2, raw="0000:02:00.0"),
    }
    assert cfg.ipconfigs[0] == IpConfig(0, "10.21.0.38/16", "10.21.1.17")
    assert cfg.sshkeys == "ssh-ed25519 AAA me@host\n"
    assert cfg.tags == ("pd-cps-gpu", "provisiond")
    assert cfg.gpu_claims() == {"a100-40g": 1}


def test_parse_config_defaults() -> None:
    cfg = parse_config({})
    assert (cfg.cores, cfg.memory_mib, cfg.sshkeys, cfg.tags) == (1, 512, None, ())


@pytest.mark.parametrize(("text", "n"), [("100G", 100 * GIB), ("512M", 512 << 20), ("4096", 4096)])
def test_parse_size(text: str, n: int) -> None:
    assert parse_size(text) == n


def test_render() -> None:
    assert render_nic(Nic(0, "virtio", None)) == "virtio"
    assert (
        render_nic(Nic(0, "virtio", "AA", "vmbr0", 5, False))
        == "virtio=AA,bridge=vmbr0,tag=5,firewall=0"
    )
    assert render_new_disk("nfs", GIB + 1) == "nfs:2"
    assert percent_decode("100%") == "100%"


def test_node_record_round_trip_and_junk() -> None:
    text = render_record(frozenset({"b", "a"}), frozenset({"k:NoSchedule"}))
    assert text == '{"labels":["a","b"],"taints":["k:NoSchedule"]}'
    assert parse_record(text) == (frozenset({"a", "b"}), frozenset({"k:NoSchedule"}))
    for junk in (None, "{", "[]", '{"labels": [1], "taints": []}', '{"labels": []}'):
        assert parse_record(junk) is None


def test_node_diff_without_anything_to_manage_is_empty() -> None:
    diff = diff_node(KubeNodeSpec("n"), KubeNode("n", labels={"x": "1"}))
    assert not (diff.labels_changed)
    assert not (diff.taints_changed)
    assert not (diff.record_changed)
    stale = KubeNode(
        "n", annotations={MANAGED_ANNOTATION: render_record(frozenset({"x"}), frozenset())}
    )
    diff = diff_node(KubeNodeSpec("n"), stale)
    assert diff.remove_labels == ()
    assert diff.record_changed


def test_node_diff_keeps_matching_taints() -> None:
    t = Taint("k", None, "NoSchedule")
    diff = diff_node(KubeNodeSpec("n", taints=(t,)), KubeNode("n", taints=(t,)))
    assert not diff.taints_changed


def _vm(tags: tuple[str, ...] = (), description: str = "", config: bool = True) -> ObservedVM:
    cfg = VMConfig(description=description, hostpci={0: HostPci(0, raw="01:00.0")})
    return ObservedVM(
        100, "x", "h", VMStatus.RUNNING, 1, 512, tags=tags, config=cfg if config else None
    )


@pytest.mark.parametrize(
    ("tags", "description", "fleet"),
    [
        (("pd-a", "provisiond"), "", "a"),
        (("pd-a",), "", None),  # both tags are needed
        (("pd-paused", "provisiond"), "", None),
        (("provisiond",), "made by provisiond:b/vm1 on Monday", "b"),
        ((), "provisiond:", None),
    ],
)
def test_owner(tags: tuple[str, ...], description: str, fleet: str | None) -> None:
    assert owner(_vm(tags, description)) == fleet


def test_observed_vm_helpers() -> None:
    assert paused(_vm(("pd-paused",)))
    vm = _vm(config=False)
    assert (vm.description, vm.gpu_claims(), vm.raw_pci()) == ("", {}, ())
    assert _vm().raw_pci() == ("hostpci0",)


def test_source_ref_names_file_and_line() -> None:
    from provisiond.core.desired import SourceRef

    assert str(SourceRef("fleet.yaml", 42)) == "fleet.yaml:42"
    assert str(SourceRef()) == "<memory>"


@pytest.mark.parametrize(
    ("smbios1", "uuid"),
    [
        (None, None),
        ("uuid=0D2B3C4E-AAAA-BBBB-CCCC-000000000001", "0d2b3c4e-aaaa-bbbb-cccc-000000000001"),
        ("manufacturer=UUVNVQ==,uuid=abc,base64=1", "abc"),
        ("manufacturer=x", None),
    ],
)
def test_smbios_uuid_is_observed_lower_case(smbios1: str | None, uuid: str | None) -> None:
    raw = {} if smbios1 is None else {"smbios1": smbios1}
    assert parse_config(raw).smbios_uuid == uuid
