"""PVE's pending bookkeeping on config writes (SEMANTICS Addendum 2), through proxmoxer over
verified HTTPS: a set cancels the key's pending delete, ``cleanup_pending`` after every write,
a delete on a stopped VM applies at once."""

from __future__ import annotations

from typing import Any

import pytest
from proxmoxer import ResourceException
from proxmoxer.tools import Tasks

pytestmark = pytest.mark.integration

NODE = "cit-gpu-01"
GPU0 = "mapping=a100-40g,pcie=1"
GPU1 = "mapping=a100-40g,pcie=1,x-vga=1"


def _vm(api: Any, vmid: int = 1035) -> Any:
    return api.nodes(NODE).qemu(vmid)


def _wait(api: Any, upid: str) -> None:
    status = Tasks.blocking_status(api, upid, timeout=30, polling_interval=0.02)
    assert status is not None
    assert status["exitstatus"] == "OK", status


def _pending(api: Any) -> dict[str, dict[str, object]]:
    """The keys with a pending change (value or delete) only."""
    return {p["key"]: p for p in _vm(api).pending.get() if "pending" in p or p.get("delete") == 1}


def _running_gpu_vm(api: Any) -> None:
    _wait(api, _vm(api, 9000).clone.post(newid=1035, name="gpu"))
    _vm(api).config.put(hostpci0=GPU0, hostpci1=GPU1)  # stopped: applied at once
    _wait(api, _vm(api).status.start.post())
    assert _pending(api) == {}


def test_a_set_cancels_the_pending_delete_of_its_key(pve_sim: Any) -> None:
    api = pve_sim.api
    _running_gpu_vm(api)
    _vm(api).config.put(delete="hostpci1")  # by hand, on a running VM: cannot be unplugged
    assert _pending(api) == {"hostpci1": {"key": "hostpci1", "value": GPU1, "delete": 1}}
    assert "hostpci1" not in _vm(api).config.get()
    _vm(api).config.put(hostpci1=GPU1)  # the reconciler's repair: the current value again
    assert _pending(api) == {}
    assert _vm(api).config.get()["hostpci1"] == GPU1
    # the same through the asynchronous POST
    _vm(api).config.put(delete="hostpci1")
    _wait(api, _vm(api).config.post(hostpci1=GPU1))
    assert _pending(api) == {}


def test_a_write_restoring_the_current_value_leaves_nothing_pending(pve_sim: Any) -> None:
    api = pve_sim.api
    _running_gpu_vm(api)
    current = _vm(api).config.get(current=1)
    _vm(api).config.put(cores=8, hostpci0=GPU1)
    assert set(_pending(api)) == {"cores", "hostpci0"}
    _vm(api).config.put(cores=current["cores"])
    assert set(_pending(api)) == {"hostpci0"}
    _vm(api).config.put(hostpci0=GPU0)
    assert _pending(api) == {}
    digest = _vm(api).config.get()["digest"]
    _vm(api).config.put(cores=current["cores"], digest=digest)  # unchanged: nothing pending
    assert _pending(api) == {}


def test_pending_deletes_and_reverts(pve_sim: Any) -> None:
    api = pve_sim.api
    _running_gpu_vm(api)
    # a key only pending: deleting it drops the pending value, no pending delete stays behind
    _vm(api).config.put(hostpci2=GPU0)
    _vm(api).config.put(delete="hostpci2")
    assert _pending(api) == {}
    # revert: a pending value and a pending delete both go
    _vm(api).config.put(cores=8)
    _vm(api).config.put(delete="hostpci1")
    _vm(api).config.put(revert="cores,hostpci1")
    assert _pending(api) == {}
    # a write to a stopped VM applies whatever was pending, an earlier delete included
    _vm(api).config.put(delete="hostpci1")
    _wait(api, _vm(api).status.stop.post())
    _vm(api).config.put(description="stopped")
    assert _pending(api) == {}
    assert "hostpci1" not in _vm(api).config.get(current=1)
    # a stopped VM applies a delete at once
    _vm(api).config.put(delete="hostpci0")
    assert "hostpci0" not in _vm(api).config.get(current=1)
    assert _pending(api) == {}


def test_conflicting_set_delete_and_revert_are_refused(pve_sim: Any) -> None:
    api = pve_sim.api
    cases = [
        ({"cores": 2, "delete": "cores"}, "delete", "you can't use '-cores' and -delete cores'"),
        ({"cores": 2, "revert": "cores"}, "delete", "you can't use '-cores' and -revert cores'"),
        (
            {"delete": "cores", "revert": "cores"},
            "revert",
            "you can't use '-delete cores' and -revert cores'",
        ),
    ]
    for params, key, text in cases:
        with pytest.raises(ResourceException) as exc:
            _vm(api, 9000).config.put(**params)
        assert exc.value.status_code == 400
        assert exc.value.errors == {key: f"{text} at the same time"}
