"""The lock and ``skiplock`` checks every VM endpoint shares.

A config lock refuses a request early (``check_lock``: the API's HTTP 500) or inside the task
(``task_lock``: the task fails with the same text); ``skiplock`` is a root@pam-only option.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from provisiond.sim.pve.errors import ParamError, PveError, TaskError

if TYPE_CHECKING:
    from provisiond.sim.pve.handlers import Call
    from provisiond.sim.pve.state import VmState


def check_lock(vm: VmState) -> None:
    if vm.lock is not None:
        raise PveError(f"VM is locked ({vm.lock})")


def task_lock(vm: VmState) -> None:
    if vm.lock is not None:
        raise TaskError(f"VM is locked ({vm.lock})")


def refuse_skiplock(call: Call) -> None:
    if call.flag("skiplock") and not call.is_root:
        raise ParamError({"skiplock": "Only root may use this option."})
