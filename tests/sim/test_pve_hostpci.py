"""``hostpciN`` as PVE answers it, with PVE's texts, through real proxmoxer over verified HTTPS.

Facts from qemu-server ``src/PVE/QemuServer/PCI.pm`` (``$hostpci_fmt``, ``parse_hostpci``) and
``src/PVE/API2/Qemu.pm`` (``check_hostpci_perm``, ``update_vm_api``), branch stable-bookworm
(8.4.x), and pve-common ``JSONSchema.pm`` (``parse_property_string``, ``check_prop``):

- the value is the property string ``pve-qm-hostpci``: a parse error is ``invalid format -
  <text>\\n``, a key's error ``invalid format - format error\\nhostpciN.<key>: <text>\\n``;
- for anyone but root@pam (API tokens included) ``host=`` is refused before ``mapping=`` is
  looked at, ``romfile`` is a 400 on the option, and a write checks the value it replaces or
  deletes as well;
- the device checks run at start, inside the task.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from proxmoxer import ResourceException
from proxmoxer.tools import Tasks
from ruamel.yaml import YAML

from provisiond.core.topology import Topology
from provisiond.sim.pve import SimHandle
from provisiond.sim.pve.testing import EXAMPLES, proxmox_client, running_simulator

pytestmark = pytest.mark.integration

NODE = "cit-gpu-01"
FORMAT_ERROR = "invalid format - format error\n"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    """cps-gpu with a password for root@pam: only root@pam itself (not its tokens) may pass
    through a raw host device."""
    data = YAML(typ="safe").load((EXAMPLES / "cps-gpu" / "topology.yaml").read_text())
    data["spec"]["users"] = [
        {"id": "root@pam", "password": "rootpw", "tokens": [{"id": "provisiond"}]}
    ]
    with running_simulator(Topology.model_validate(data), time_scale=0.005) as handle:
        yield handle


@pytest.fixture(scope="module")
def root(sim: SimHandle) -> Any:
    return proxmox_client(sim, user="root@pam", password="rootpw")


@pytest.fixture(scope="module")
def token(sim: SimHandle) -> Any:
    """root@pam's own API token: every privilege, yet not root@pam for ``check_hostpci_perm``."""
    return proxmox_client(sim)


def fails(call: Any, *args: Any, **kw: Any) -> ResourceException:
    with pytest.raises(ResourceException) as exc:
        call(*args, **kw)
    return exc.value


def new_vm(root: Any, vmid: int) -> Any:
    upid = root.nodes(NODE).qemu(9000).clone.post(newid=vmid, name=f"vm{vmid}")
    status = Tasks.blocking_status(root, upid, timeout=30, polling_interval=0.02)
    assert status is not None
    assert status["exitstatus"] == "OK"
    return root.nodes(NODE).qemu(vmid)


def start(root: Any, vmid: int) -> str:
    upid = root.nodes(NODE).qemu(vmid).status.start.post()
    status = Tasks.blocking_status(root, upid, timeout=30, polling_interval=0.02)
    assert status is not None
    return str(status["exitstatus"])


# -- the property string (any caller; root@pam here, so no permission rule interferes) -----

# (value, the text of errors["hostpci3"])
INVALID = [
    # parse_property_string's own die texts
    ("foo=1", "invalid format - invalid key in comma-separated list property: foo\n"),
    (
        "mapping=a100-40g,driver=keep",  # the 'driver' key came with qemu-server 9.x
        "invalid format - invalid key in comma-separated list property: driver\n",
    ),
    (
        "0000:01:00.0,0000:21:00.0",
        "invalid format - duplicate key in comma-separated list property: host\n",
    ),
    ("host=", "invalid format - missing key in comma-separated list property\n"),
    # host: [domain:]bus:dev[.func], ';'-separated, lower-case hex (no /i on PCI.pm's regex)
    ("0000:0A:00.0", FORMAT_ERROR + "hostpci3.host: value does not match the regex pattern\n"),
    ("01:00.0;1:00.0", FORMAT_ERROR + "hostpci3.host: value does not match the regex pattern\n"),
    # booleans
    (
        "mapping=x1,pcie=2",
        FORMAT_ERROR + "hostpci3.pcie: type check ('boolean') failed - got '2'\n",
    ),
    # mapping is a pve-configid: the nested format keeps its own "invalid format - …\n"
    (
        "mapping=1gpu",
        FORMAT_ERROR + "hostpci3.mapping: invalid format - invalid configuration ID '1gpu'\n\n",
    ),
    # hex ids: 0x and four hex digits
    (
        "mapping=x1,vendor-id=10de",
        FORMAT_ERROR + "hostpci3.vendor-id: value does not match the regex pattern\n",
    ),
    (
        "mapping=x1,sub-device-id=0x12345",
        FORMAT_ERROR + "hostpci3.sub-device-id: value does not match the regex pattern\n",
    ),
    # mdev: no '/', '.' or ':'; romfile: no ';'
    (
        "mapping=x1,mdev=nvidia.1",
        FORMAT_ERROR + "hostpci3.mdev: value does not match the regex pattern\n",
    ),
    (
        "mapping=x1,romfile=a;b",
        FORMAT_ERROR + "hostpci3.romfile: value does not match the regex pattern\n",
    ),
    # every failing key at once, sorted by path
    (
        "mapping=x1,x-vga=2,legacy-igd=x,device-id=0x1",
        FORMAT_ERROR
        + "hostpci3.device-id: value does not match the regex pattern\n"
        + "hostpci3.legacy-igd: type check ('boolean') failed - got 'x'\n"
        + "hostpci3.x-vga: type check ('boolean') failed - got '2'\n",
    ),
]


@pytest.mark.parametrize(("value", "error"), INVALID, ids=[v for v, _ in INVALID])
def test_format_errors_carry_pve_texts(root: Any, value: str, error: str) -> None:
    e = fails(root.nodes(NODE).qemu(9000).config.put, hostpci3=value)
    assert (e.status_code, e.content) == (400, "Parameter verification failed.")
    assert e.errors == {"hostpci3": error}


def test_every_key_of_the_format_is_taken_and_stored_as_sent(root: Any) -> None:
    guest = new_vm(root, 1100)
    values = {
        "hostpci0": "0000:01:00.0;0000:21:00.0,pcie=1,x-vga=on,rombar=0,romfile=a100.rom",
        "hostpci1": "host=41:00,legacy-igd=no,mdev=nvidia-1",
        "hostpci2": "mapping=a100-40g,vendor-id=0x10DE,device-id=0x20f1",
        "hostpci3": "mapping=a100-40g,sub-vendor-id=0x10de,sub-device-id=0xABCD",
        "hostpci15": "01:00.0,rombar=yes,pcie=false",
    }
    guest.config.put(**values)
    config = guest.config.get()
    assert {k: config[k] for k in values} == values


# -- who may set what (check_hostpci_perm) -------------------------------------------------


def test_a_token_may_not_name_host_even_with_a_mapping(token: Any) -> None:
    e = fails(token.nodes(NODE).qemu(9000).config.put, hostpci0="0000:01:00.0,mapping=a100-40g")
    assert (e.status_code, e.content) == (
        500,
        "only root can set 'hostpci0' config for non-mapped devices",
    )
    e = fails(token.nodes(NODE).qemu(9000).config.put, hostpci0="pcie=1")
    assert (e.status_code, e.content) == (500, "either 'host' or 'mapping' must be set.")


def test_romfile_is_for_root_at_pam_only(root: Any, token: Any) -> None:
    new_vm(root, 1101)
    e = fails(token.nodes(NODE).qemu(1101).config.put, hostpci0="mapping=a100-40g,romfile=a.rom")
    assert (e.status_code, e.content) == (400, "Parameter verification failed.")
    assert e.errors == {"hostpci0": "only root@pam can set 'romfile' option"}
    root.nodes(NODE).qemu(1101).config.put(hostpci0="mapping=a100-40g,romfile=a.rom")
    assert root.nodes(NODE).qemu(1101).config.get()["hostpci0"] == "mapping=a100-40g,romfile=a.rom"


def test_a_token_can_neither_replace_nor_delete_a_raw_device(root: Any, token: Any) -> None:
    new_vm(root, 1102)
    root.nodes(NODE).qemu(1102).config.put(hostpci0="0000:01:00.0", hostpci1="mapping=a100-40g")
    mine = token.nodes(NODE).qemu(1102)
    raw = "only root can set 'hostpci0' config for non-mapped devices"
    assert fails(mine.config.put, hostpci0="mapping=a100-40g").content == raw
    assert fails(mine.config.put, delete="hostpci0").content == raw
    # a mapped device is the token's to change and to remove
    mine.config.put(hostpci1="mapping=a100-40g,pcie=1")
    mine.config.put(delete="hostpci1")
    config = root.nodes(NODE).qemu(1102).config.get()
    assert (config["hostpci0"], "hostpci1" in config) == ("0000:01:00.0", False)


# -- the device checks at start (parse_hostpci), inside the task ---------------------------


def test_host_and_mapping_rules_at_start(root: Any) -> None:
    guest = new_vm(root, 1103)
    guest.config.put(hostpci0="0000:01:00.0,mapping=a100-40g")  # root@pam: written as is
    assert start(root, 1103) == "Cannot set both 'host' and 'mapping'."
    guest.config.put(hostpci0="pcie=1")
    assert start(root, 1103) == "Either 'host' or 'mapping' must be set."
    guest.config.put(hostpci0="0000:01:00.0;02:00.0")  # the id lspci does not find, as given
    assert start(root, 1103) == "no PCI device found for '02:00.0'"
    guest.config.put(hostpci0="21:00.0;0000:41:00")
    assert start(root, 1103) == "OK"
    assert guest.status.current.get()["status"] == "running"
