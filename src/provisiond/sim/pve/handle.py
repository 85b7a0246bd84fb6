"""``SimHandle``: what a test (or the demo) holds to inspect and steer a running simulator.

Every method is safe to call from any thread but the simulator's own: state access runs on the
simulator loop (``call``), so it never races a handler or a task body. Holds are the
deterministic seam crash tests use: hold the next matching request (before the handler runs, or
after it ran but before the answer leaves) or a task at a fraction of its run, then release.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Callable
from typing import Literal, TypeVar

from provisiond.core.topology import Topology
from provisiond.sim.pve import faults as fi
from provisiond.sim.pve.requestlog import RequestRecord
from provisiond.sim.pve.server import RequestHold, SimServer
from provisiond.sim.pve.state import Cluster, Value, VmState
from provisiond.sim.pve.tasks import Hold, TaskHold

T = TypeVar("T")


class SimHandle:
    def __init__(self, server: SimServer) -> None:
        self.server = server

    # -- connection ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ca_path(self) -> str:
        return str(self.server.ca_path)

    @property
    def token(self) -> str:
        """``user@realm!id=secret``."""
        return self.server.token

    # -- state -----------------------------------------------------------------------------
    def call(self, fn: Callable[[Cluster], T], timeout: float = 10.0) -> T:
        """Run ``fn(cluster)`` on the simulator loop and return its result."""

        async def run() -> T:
            return fn(self.server.cluster)

        return asyncio.run_coroutine_threadsafe(run(), self.server.loop).result(timeout)

    def vm(self, vmid: int) -> VmState | None:
        """A copy of the VM's state (None when the VMID does not exist)."""
        return self.call(lambda c: copy.deepcopy(c.vms.get(vmid)))

    def vmids(self) -> list[int]:
        return self.call(lambda c: sorted(c.vms))

    def set_config(self, vmid: int, **values: Value | None) -> None:
        """Write config keys directly (None deletes a key), as an admin editing the file."""

        def apply(c: Cluster) -> None:
            cfg = c.vms[vmid].config
            for key, value in values.items():
                if value is None:
                    cfg.pop(key, None)
                else:
                    cfg[key] = value

        self.call(apply)

    def set_lock(self, vmid: int, lock: str | None) -> None:
        self.set_config(vmid, lock=lock)

    def move_vm(self, vmid: int, node: str) -> None:
        """Move a VM's config to another node (as a migration done behind our back)."""

        def apply(c: Cluster) -> None:
            c.node(node)
            c.vms[vmid].node = node

        self.call(apply)

    def set_power(self, vmid: int, status: Literal["running", "stopped"]) -> None:
        def apply(c: Cluster) -> None:
            vm = c.vms[vmid]
            vm.status = status
            if status == "stopped":
                vm.bound.clear()

        self.call(apply)

    def set_acpi(self, vmid: int, *, responds: bool) -> None:
        """A guest that ignores ACPI makes shutdown time out."""
        self.call(lambda c: setattr(c.vms[vmid], "acpi_responds", responds))

    def tasks(self) -> list[dict[str, object]]:
        return self.call(lambda c: [t.status_dict() for t in c.tasks.all])

    def task_log(self, upid: str) -> list[str]:
        return self.call(lambda c: list(c.tasks.by_upid[upid].log))

    def task_seconds(self, upid: str) -> float:
        """The simulated seconds a task has taken so far (its durations before ``time_scale``):
        what a test asserts instead of racing the wall clock."""
        return self.call(lambda c: c.tasks.by_upid[upid].seconds)

    def running_tasks(self) -> int:
        return self.call(lambda c: len(c.tasks.running()))

    # -- requests --------------------------------------------------------------------------
    def requests(self, method: str, template: str) -> int:
        """Requests served for ``(method, endpoint template)``, e.g. ``("POST", ".../clone")``."""
        return self.call(lambda _c: self.server.seams.counts[(method, template)])

    def request_counts(self) -> dict[tuple[str, str], int]:
        return self.call(lambda _c: dict(self.server.seams.counts))

    def reset_counts(self) -> None:
        """Clear the request counts and the request log."""

        def clear(_c: Cluster) -> None:
            self.server.seams.counts.clear()
            self.server.seams.requests.clear()

        self.call(clear)

    def request_log(
        self, method: str | None = None, template: str | None = None
    ) -> list[RequestRecord]:
        """Every request served (copies), oldest first, optionally one (method, template)."""
        return self.call(
            lambda _c: [
                copy.deepcopy(r)
                for r in self.server.seams.log
                if method in (None, r.method) and template in (None, r.template)
            ]
        )

    def request_summary(self) -> str:
        """Every answered request counted by (method, endpoint template, status), as
        ``sim serve --log-requests`` prints it at exit."""
        return self.call(lambda _c: self.server.seams.requests.summary())

    def count_requests(self, method: str, path: str, **params: object) -> int:
        """Requests for ``method`` and ``path`` (a concrete path such as
        ``/nodes/n1/qemu/9000/clone`` or a template) whose parameters include ``params``
        (compared as PVE sees them: ``True`` is ``1``) — e.g. how often the clone POST for
        ``newid=1035`` was sent."""
        want = {k: str(int(v)) if isinstance(v, bool) else str(v) for k, v in params.items()}
        return sum(
            1
            for r in self.request_log(method)
            if path in (r.path, r.template) and all(r.params.get(k) == v for k, v in want.items())
        )

    def max_repeats(self, method: str, template: str) -> int:
        """The most times one identical request (same path and parameters) was sent for
        ``(method, template)``: 1 means no call was ever retried."""
        seen = Counter(
            (r.path, tuple(sorted(r.params.items()))) for r in self.request_log(method, template)
        )
        return max(seen.values(), default=0)

    # -- faults ----------------------------------------------------------------------------
    def inject(
        self,
        path: str = "*",
        *,
        method: str = "*",
        status: int | None = None,
        message: str | None = None,
        latency: float | tuple[float, float] | None = None,
        hang: bool = False,
        rate: float = 1.0,
        times: int | None = None,
        when: Literal["before", "after"] = "before",
        node: str | None = None,
        vmid: int | None = None,
    ) -> None:
        """Add a request fault (see ``faults.RequestFault``): an error ``status`` (+
        ``message``), ``latency`` seconds (or a ``(low, high)`` range), or a ``hang``;
        ``node``/``vmid`` restrict it to requests with that ``{node}``/``{vmid}`` path variable."""
        rule = fi.RequestFault(
            path=path,
            method=method,
            status=status,
            message=message,
            latency=latency,
            hang=hang,
            rate=rate,
            times=times,
            when=when,
            node=node,
            vmid=vmid,
        )
        self.call(lambda _c: self.server.seams.faults.add_request(rule))

    def fail_tasks(
        self,
        task_type: str = "*",
        exitstatus: str = "unexpected status",
        *,
        vmid: int | None = None,
        rate: float = 1.0,
        times: int | None = None,
        seconds: float = 0.05,
    ) -> None:
        """Make the next matching tasks end with ``exitstatus`` (and no effect)."""
        rule = fi.TaskFault(
            type=task_type,
            exitstatus=exitstatus,
            vmid=vmid,
            rate=rate,
            times=times,
            seconds=seconds,
        )
        self.call(lambda _c: self.server.seams.faults.add_task(rule))

    def load_faults(self, plan: fi.FaultPlan) -> None:
        """Add a plan's request and task rules and reseed the RNG with its ``seed``."""
        self.call(lambda _c: self.server.seams.faults.load(plan))

    def clear_faults(self) -> None:
        """Remove every request and task rule (offline hosts stay offline)."""
        self.call(lambda _c: self.server.seams.faults.clear())

    def release_hangs(self) -> None:
        self.call(lambda _c: self.server.seams.faults.release_hangs())

    def fault_counts(self) -> dict[tuple[str, str, str], int]:
        """Injected request faults per (method, template, kind): ``error 500``, ``latency``,
        ``hang``, ``offline``."""
        return self.call(lambda _c: dict(self.server.seams.faults.injected))

    def task_fault_counts(self) -> dict[str, int]:
        return self.call(lambda _c: dict(self.server.seams.faults.task_injected))

    def host_offline(self, node: str, *, reason: str = fi.OFFLINE_REASON) -> None:
        """The host drops off the network: its proxied requests fail with 595 ``reason``."""
        self.call(
            lambda c: fi.set_host(c, self.server.seams.faults, node, online=False, reason=reason)
        )

    def host_online(self, node: str, *, power_loss: bool = False) -> None:
        """The host is back; ``power_loss``: it rebooted, so its VMs are stopped."""
        self.call(
            lambda c: fi.set_host(
                c, self.server.seams.faults, node, online=True, power_loss=power_loss
            )
        )

    # -- snapshot --------------------------------------------------------------------------
    # -- PVE 9.x HA manager (hamanager.py) ------------------------------------------------------
    def migrations(self) -> list[tuple[int, str, str, str]]:
        """Every migration that ended: (vmid, source, target, ``qmigrate``/``recovery``)."""
        return self.call(lambda c: list(c.migrations))

    def ha_log(self) -> list[str]:
        """The simulated CRM's log lines (PVE's texts)."""
        return self.call(lambda c: list(c.ha_log))

    def imbalance(self) -> float:
        """The simulated CRS's node imbalance now (0.0 on 8.4: no CRS)."""
        manager = self.server.ha_manager
        return self.call(lambda _c: manager.imbalance() if manager.rules else 0.0)

    def ha_node_maintenance(self, node: str, *, enable: bool = True) -> None:
        """``ha-manager crm-command node-maintenance enable|disable <node>`` (no REST endpoint
        in 8.4 nor 9.1): the CRM takes the request, the node's LRM enters (or leaves)
        maintenance mode and the HA manager moves its HA resources off (or back)."""
        manager = self.server.ha_manager
        self.call(lambda _c: manager.node_maintenance(node, enable=enable))

    def snapshot(self) -> Topology:
        """The cluster as it is now, as a Topology (through the API handlers; snapshot.py)."""
        from provisiond.sim.pve.snapshot import snapshot_server  # noqa: PLC0415 - cycle

        return snapshot_server(self.server)

    # -- access (users, tokens, roles, ACLs, tickets; access.py) ------------------------------
    def add_user(self, userid: str, *, password: str | None = None) -> None:
        """Create ``user@realm`` (a ``password`` allows ticket login)."""
        self.call(lambda c: c.access.add_user(userid, password))

    def add_token(
        self, userid: str, token: str, *, privsep: bool = False, secret: str | None = None
    ) -> str:
        """Create the API token ``userid!token`` (and its user); returns
        ``user@realm!token=secret`` for ``testing.proxmox_client(handle, token=…)``."""
        return self.call(
            lambda c: c.access.add_token(userid, token, privsep=privsep, secret=secret)
        )

    def add_role(self, name: str, privileges: list[str]) -> None:
        self.call(lambda c: c.access.add_role(name, privileges))

    def set_acl(
        self,
        path: str,
        roles: str | list[str],
        *,
        users: list[str] | None = None,
        tokens: list[str] | None = None,
        propagate: bool = True,
    ) -> None:
        """Grant ``roles`` on ``path`` (``/``, ``/vms/100``, ``/pool/k3s``, ``/storage/x``,
        ``/mapping/pci/<id>``, ``/nodes/<n>``, ``/sdn/…``) to users and/or tokens (full ids)."""
        names = [roles] if isinstance(roles, str) else list(roles)
        ugids = [*(users or []), *(tokens or [])]
        self.call(lambda c: c.access.set_acl(path, names, ugids, propagate=propagate))

    def permissions(self, authid: str, path: str) -> dict[str, int]:
        """What ``authid`` (user or token id) holds on ``path``: privilege -> propagate."""
        return self.call(lambda c: c.access.for_user(authid).privileges(path))

    def expire_tickets(self) -> None:
        """Every ticket (and CSRF token) issued so far expires now."""
        self.call(lambda c: c.access.tickets.expire())

    def set_ticket_lifetime(self, seconds: float) -> None:
        """Ticket lifetime in wall-clock seconds (default 7200, PVE's 2 h)."""
        self.call(lambda c: setattr(c.access.tickets, "lifetime", seconds))

    def set_auth_delay(self, seconds: float) -> None:
        """The delay before every 401, in simulated seconds (times ``time_scale``; default 3)."""
        self.call(lambda c: setattr(c.access, "auth_delay", seconds))

    # -- holds -----------------------------------------------------------------------------
    def hold_request(
        self, method: str, template: str, *, when: Literal["before", "after"] = "before"
    ) -> Hold:
        """Hold the next matching request before its handler runs, or after it ran."""
        hold = Hold(self.server.loop, f"{method} {template} ({when})")
        self.call(
            lambda _c: self.server.seams.holds.append(RequestHold(method, template, when, hold))
        )
        return hold

    def hold_task(self, task_type: str, *, at: float = 0.5, vmid: int | None = None) -> Hold:
        """Hold the next task of ``task_type`` (for ``vmid``) when it reaches fraction ``at``."""
        if not 0.0 < at <= 1.0:
            raise ValueError("at must be in (0, 1]")
        hold = Hold(self.server.loop, f"task {task_type} at {at:.0%}")
        task_id = None if vmid is None else str(vmid)
        self.call(lambda c: c.tasks.add_hold(TaskHold(task_type, task_id, at, hold)))
        return hold
