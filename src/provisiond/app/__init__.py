"""Wiring: builds the daemon from settings — ports → adapters → runtime. The only module that
knows the concrete adapters; nothing in ``core``, ``adapters`` or ``runtime`` imports it.

Used by the CLI's ``plan`` (the Proxmox parts only), ``apply``, ``run`` and ``demo``. No
singletons: every builder returns fresh objects (the metrics registry included) and holds no
state of its own.

What hears the runtime (``runtime.listeners.Listeners`` fans the executor's and the
reconciler's one listener out, in this order): ``adapters.telemetry.Telemetry`` (metrics and
health), MQTT's ``EventFeed`` when MQTT is on, then the CLI's listener (progress). The Proxmox
client reports each request to telemetry, the writer each task's duration to the metrics. The
manager runs the reconciler, the spec watcher, and — when enabled — the HTTP endpoint
(``/metrics``, ``/healthz``, ``/readyz``) and the MQTT publisher, whose commands reach the
reconciler through ``ReconcilerCommands``.

Leader election (``leader_election.*``, on when Kubernetes is configured; only for ``run`` and
``demo``, which run the manager): the elector (``runtime.leader``) runs beside them; the
``Fence`` it answers guards every mutating Proxmox request; the reconciler plans as a standby
but executes only through ``may_act``; a new leader triggers a cycle at once; the transitions
feed ``leader_election_master_status{name}``, MQTT's ``leadership_changed`` event, status
``role`` and who owns ``P/status`` (each replica reports itself under ``P/instances/<identity>``;
only the leader publishes events — docs/mqtt.md, Replicas), and the MQTT ``reconcile`` command
obeys only the leader. Without election, ``run``
holds ``InstanceLock`` in ``daemon.state_dir``: one daemon per machine.

The package, by concern: ``proxmox`` (connection, client, observer, writer, privileges),
``kube`` (node adapters, node watch), ``election`` (leader election or the instance lock),
``services`` (MQTT publisher, systemd notifier), ``daemon`` (the assembly, reload, manager).
The names the CLI, the tests and the benchmarks use are re-exported here.
"""

from provisiond.app.daemon import (
    Daemon,
    build_daemon,
    executor_config,
    manager,
    planner,
    reload_hook,
)
from provisiond.app.election import (
    Election,
    build_election,
    election_enabled,
    election_identity,
    instance_lock,
    kubernetes_configured,
    state_dir,
)
from provisiond.app.kube import KubeParts, build_kube, node_watch, observe_all
from provisiond.app.proxmox import (
    ProxmoxParts,
    build_proxmox,
    privilege_problems,
    proxmox_connection,
)
from provisiond.app.services import leadership_events, mqtt_publisher, systemd_notifier

__all__ = [
    "Daemon",
    "Election",
    "KubeParts",
    "ProxmoxParts",
    "build_daemon",
    "build_election",
    "build_kube",
    "build_proxmox",
    "election_enabled",
    "election_identity",
    "executor_config",
    "instance_lock",
    "kubernetes_configured",
    "leadership_events",
    "manager",
    "mqtt_publisher",
    "node_watch",
    "observe_all",
    "planner",
    "privilege_problems",
    "proxmox_connection",
    "reload_hook",
    "state_dir",
    "systemd_notifier",
]
