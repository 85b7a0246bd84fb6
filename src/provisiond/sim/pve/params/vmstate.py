"""Parameters of the VM endpoints beyond config and lifecycle: snapshots (``handlers/
snapshots.py``), suspend/resume/reset (``handlers/power.py``), the VM's directory index and its
``rrddata`` (``handlers/info.py``)."""

from __future__ import annotations

from provisiond.sim.pve.params.schema import CF, NODE, TIMEFRAME, VMID, Endpoint, P

_Q = "/nodes/{node}/qemu/{vmid}"
_VM = {"node": NODE, "vmid": VMID}
SNAPNAME = P("string", optional=False, fmt="pve-configid", max_length=40)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", _Q, _VM, returns=("subdir",)),
    Endpoint("GET", f"{_Q}/rrddata", {**_VM, "cf": CF, "timeframe": TIMEFRAME}),
    Endpoint("GET", f"{_Q}/snapshot", _VM, returns=("description", "name")),
    Endpoint(
        "POST",
        f"{_Q}/snapshot",
        {**_VM, "description": P("string"), "snapname": SNAPNAME, "vmstate": P("boolean")},
    ),
    Endpoint("GET", f"{_Q}/snapshot/{{snapname}}", {**_VM, "snapname": SNAPNAME}),
    Endpoint(
        "DELETE",
        f"{_Q}/snapshot/{{snapname}}",
        {**_VM, "force": P("boolean"), "snapname": SNAPNAME},
    ),
    Endpoint("GET", f"{_Q}/snapshot/{{snapname}}/config", {**_VM, "snapname": SNAPNAME}),
    Endpoint(
        "PUT",
        f"{_Q}/snapshot/{{snapname}}/config",
        {**_VM, "description": P("string"), "snapname": SNAPNAME},
    ),
    Endpoint(
        "POST",
        f"{_Q}/snapshot/{{snapname}}/rollback",
        {**_VM, "snapname": SNAPNAME, "start": P("boolean")},
    ),
    Endpoint(
        "POST",
        f"{_Q}/status/suspend",
        {
            **_VM,
            "skiplock": P("boolean"),
            "statestorage": P("string", fmt="pve-storage-id"),
            "todisk": P("boolean"),
        },
    ),
    Endpoint(
        "POST",
        f"{_Q}/status/resume",
        {**_VM, "nocheck": P("boolean"), "skiplock": P("boolean")},
    ),
    Endpoint("POST", f"{_Q}/status/reset", {**_VM, "skiplock": P("boolean")}),
)
