"""Mutating Proxmox VE calls: implements ``core.ports.ProxmoxWriter``.

Thin by design: one method per API call, parameters named as PVE names them (ENDPOINTS.md),
every async call returning the task to wait for. Deciding *whether* to call (adoption, the
re-read before disruptive calls, retries) is the executor's job. After every write the VM's
cached config is invalidated so the next observation reads it fresh; after an HA rule write
(PVE 9.x: synchronous, no task) the cached rules are (``invalidate_rules``).

Config writes and resizes carry the ``digest`` of the config the executor just read; PVE's
``checksum mismatch`` answer becomes ``StaleDigestError`` (requeue, never a blind retry).

Task listing (``running_tasks``): ``GET /nodes/{n}/tasks?source=active`` lists the tasks
running on a node (SEMANTICS §4: ``source=active`` includes exactly the running tasks, with
``status: RUNNING``); a task not in it has stopped, and its exit status is then read once from
``…/tasks/{upid}/status``. One listing serves every task waited for on that node.

Task durations (``on_task(task_type, seconds)``, ``provisiond_proxmox_task_duration_seconds``):
measured on this process's monotonic clock from the answer that returned the UPID to the first
status read that finds the task stopped — so polling adds up to one poll interval, and a clock
skew between this host and the Proxmox node does not matter (the task status has no
``endtime``). Tasks this process did not start (adopted after a restart) are not timed: their
start is unknown. The type comes from the UPID (``qmclone``, ``qmigrate``, …): a bounded label.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from provisiond.adapters.proxmox import ProxmoxClient
from provisiond.core.errors import PermanentError, TransientError
from provisiond.core.hacluster import NODE_AFFINITY, HaRule
from provisiond.core.ports import MigratePrecondition, StaleDigestError, TaskRef, TaskStatus

_VM = "/nodes/{node}/qemu/{vmid}"
_TIMED_MAX = 10_000  # tasks being timed; a wait abandoned at stop must not grow it for ever


def _task(node: str, upid: Any, what: str) -> TaskRef:
    if not isinstance(upid, str) or not upid.startswith("UPID:"):
        raise PermanentError(f"{what}: expected a task UPID, got {upid!r}")
    # The UPID names the node that runs the task (a clone runs on the template's node).
    parts = upid.split(":")
    return TaskRef(node=parts[1] if len(parts) > 2 and parts[1] else node, upid=upid)


def _rule_params(rule: HaRule) -> dict[str, Any]:
    """A rule's options as ``/cluster/ha/rules`` takes them (only its type's own keys)."""
    params: dict[str, Any] = {
        "type": rule.type,
        "resources": ",".join(f"vm:{v}" for v in sorted(rule.vmids)),
        "comment": rule.comment,
        "disable": rule.disabled,
    }
    if rule.type == NODE_AFFINITY:
        params["nodes"] = ",".join(f"{n}:{p}" if p else n for n, p in rule.nodes)
        params["strict"] = rule.strict
    else:
        params["affinity"] = rule.affinity
    return params


def _stale(exc: TransientError) -> TransientError:
    """PVE's digest mismatch as ``StaleDigestError``; any other transient error unchanged.
    VM configs say ``checksum mismatch``, the HA rules file ``detected modified
    configuration``."""
    if "checksum mismatch" in str(exc) or "detected modified configuration" in str(exc):
        return StaleDigestError(str(exc))
    return exc


class ProxmoxActions:
    def __init__(
        self,
        client: ProxmoxClient,
        *,
        invalidate: Callable[[int], None] = lambda _vmid: None,
        invalidate_rules: Callable[[], None] = lambda: None,
        on_task: Callable[[str, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._invalidate = invalidate
        self._invalidate_rules = invalidate_rules
        self._on_task = on_task
        self._clock = clock
        self._timed: dict[str, tuple[str, float]] = {}  # UPID -> (task type, started)

    def _task(self, node: str, upid: Any, what: str) -> TaskRef:
        ref = _task(node, upid, what)
        if self._on_task is not None:
            if len(self._timed) >= _TIMED_MAX:
                del self._timed[next(iter(self._timed))]
            parts = ref.upid.split(":")
            self._timed[ref.upid] = (parts[5] if len(parts) > 6 else "unknown", self._clock())
        return ref

    async def _vm_post(
        self, action: str, host: str, vmid: int, params: Mapping[str, Any] | None = None
    ) -> TaskRef:
        upid = await self._client.post(f"{_VM}/{action}", params, node=host, vmid=vmid)
        self._invalidate(vmid)
        return self._task(host, upid, f"POST {_VM}/{action}")

    async def clone(
        self,
        *,
        template_host: str,
        template_vmid: int,
        newid: int,
        name: str,
        description: str,
        target: str | None,
        full: bool,
        storage: str | None,
        pool: str | None,
    ) -> TaskRef:
        params = {
            "newid": newid,
            "name": name,
            "description": description,
            "target": target if target and target != template_host else None,
            "full": full,
            "storage": storage if full else None,  # linked clones refuse ``storage``
            "pool": pool,
        }
        upid = await self._client.post(
            f"{_VM}/clone", params, node=template_host, vmid=template_vmid
        )
        self._invalidate(newid)
        return self._task(template_host, upid, f"POST {_VM}/clone")

    async def configure(
        self,
        *,
        host: str,
        vmid: int,
        values: Mapping[str, str],
        delete: tuple[str, ...],
        digest: str | None = None,
    ) -> None:
        params: dict[str, Any] = dict(values)
        if delete:
            params["delete"] = ",".join(delete)
        params["digest"] = digest
        try:
            await self._client.put(f"{_VM}/config", params, node=host, vmid=vmid)
        except TransientError as exc:
            raise _stale(exc) from exc
        finally:
            self._invalidate(vmid)

    async def resize(
        self, *, host: str, vmid: int, disk: str, size_bytes: int, digest: str | None = None
    ) -> TaskRef:
        params = {"disk": disk, "size": str(size_bytes), "digest": digest}
        try:
            upid = await self._client.put(f"{_VM}/resize", params, node=host, vmid=vmid)
        except TransientError as exc:
            raise _stale(exc) from exc
        finally:
            self._invalidate(vmid)
        return self._task(host, upid, f"PUT {_VM}/resize")

    async def start(self, *, host: str, vmid: int) -> TaskRef:
        return await self._vm_post("status/start", host, vmid)

    async def shutdown(
        self, *, host: str, vmid: int, shutdown_timeout: int, force_stop: bool
    ) -> TaskRef:
        return await self._vm_post(
            "status/shutdown", host, vmid, {"timeout": shutdown_timeout, "forceStop": force_stop}
        )

    async def stop(self, *, host: str, vmid: int) -> TaskRef:
        return await self._vm_post("status/stop", host, vmid)

    async def reboot(self, *, host: str, vmid: int) -> TaskRef:
        return await self._vm_post("status/reboot", host, vmid)

    async def migrate(
        self, *, host: str, vmid: int, target: str, online: bool, with_local_disks: bool
    ) -> TaskRef:
        return await self._vm_post(
            "migrate",
            host,
            vmid,
            {
                "target": target,
                "online": online,
                "with-local-disks": True if with_local_disks else None,
            },
        )

    async def migrate_precondition(
        self, *, host: str, vmid: int, target: str
    ) -> MigratePrecondition:
        data = await self._client.get(f"{_VM}/migrate", {"target": target}, node=host, vmid=vmid)
        data = data or {}
        not_allowed = {
            str(node): tuple(
                f"{key}: {', '.join(str(x) for x in values)}"
                for key, values in sorted((why or {}).items())
            )
            for node, why in sorted((data.get("not_allowed_nodes") or {}).items())
        }
        return MigratePrecondition(
            running=str(data.get("running", 0)) in ("1", "True", "true"),
            allowed_nodes=tuple(str(n) for n in data.get("allowed_nodes") or ()),
            not_allowed=not_allowed,
            local_disks=tuple(
                str(d.get("drivename") or d.get("volid", "")) for d in data.get("local_disks") or ()
            ),
            local_resources=tuple(str(r) for r in data.get("local_resources") or ()),
            mapped_resources=tuple(str(r) for r in data.get("mapped-resources") or ()),
        )

    async def destroy(self, *, host: str, vmid: int) -> TaskRef:
        upid = await self._client.delete(
            _VM, {"purge": True, "destroy-unreferenced-disks": True}, node=host, vmid=vmid
        )
        self._invalidate(vmid)
        return self._task(host, upid, f"DELETE {_VM}")

    async def ha_rule_create(self, rule: HaRule) -> None:
        try:
            await self._client.post("/cluster/ha/rules", {"rule": rule.rule, **_rule_params(rule)})
        finally:
            self._invalidate_rules()

    async def ha_rule_update(self, rule: HaRule, *, digest: str | None = None) -> None:
        params = {**_rule_params(rule), "digest": digest}
        try:
            await self._client.put("/cluster/ha/rules/{rule}", params, rule=rule.rule)
        except TransientError as exc:
            raise _stale(exc) from exc
        finally:
            self._invalidate_rules()

    async def ha_rule_delete(self, rule: str) -> None:
        try:
            await self._client.delete("/cluster/ha/rules/{rule}", rule=rule)
        finally:
            self._invalidate_rules()

    async def task_status(self, task: TaskRef) -> TaskStatus:
        data = await self._client.get(
            "/nodes/{node}/tasks/{upid}/status", node=task.node, upid=task.upid
        )
        running = str(data.get("status")) == "running"
        exitstatus = data.get("exitstatus")
        timed = None if running else self._timed.pop(task.upid, None)
        if timed is not None and self._on_task is not None:
            self._on_task(timed[0], self._clock() - timed[1])
        return TaskStatus(running=running, exitstatus=None if running else str(exitstatus))

    async def running_tasks(self, node: str) -> frozenset[str]:
        data = await self._client.get("/nodes/{node}/tasks", {"source": "active"}, node=node)
        return frozenset(
            str(t["upid"])
            for t in data or []
            if str(t.get("status", "RUNNING")).upper() == "RUNNING" and not t.get("endtime")
        )

    async def task_log_tail(self, task: TaskRef, lines: int = 10) -> tuple[str, ...]:
        data = await self._client.get(
            "/nodes/{node}/tasks/{upid}/log",
            {"start": 0, "limit": 5000},
            node=task.node,
            upid=task.upid,
        )
        text = [str(line.get("t", "")) for line in data or []]
        return tuple(text[-lines:])
