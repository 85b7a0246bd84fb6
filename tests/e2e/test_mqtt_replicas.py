"""Two (then three) real ``provisiond run`` processes with leader election (the Kubernetes
simulator's Lease) and MQTT (a real Mosquitto), converging cps-gpu on the Proxmox simulator:
``P/status`` says whether an acting leader exists, each replica reports itself on
``P/instances/<identity>/status`` (docs/mqtt.md, "Replicas").

- kill -9 of the standby: its instance goes ``offline`` (its will); ``P/status`` stays ``online``;
- kill -9 of the leader: its instance and ``P/status`` go ``offline`` (both wills); after the
  failover ``P/status`` is ``online`` again and the detail names the new leader;
- SIGTERM of the leader beside a live standby: the Lease is released, the standby takes over
  and claims ``P/status`` before the old leader would say ``offline`` — no flap; the old
  leader's instance says ``offline`` and then removes its retained topics, while the killed
  replicas' wills (``offline``) stay retained;
- events: the replicas run read-only, so the drift lasts and every replica observes it; only
  the leader publishes it (each VM once), and a new leader announces it once more.

A single daemon without election keeps the exact single-instance behaviour
(tests/e2e/test_daemon_mqtt.py: the will after kill -9, ``offline`` after SIGTERM).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import EXECUTOR, Proc, example, run_daemon

from mosquitto_broker import USERS, Broker
from mqtt_support import PREFIX, Watcher, retained, settings, watching
from provisiond.sim.kube import KubeSim
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.e2e

LEASE, RENEW, RETRY = 3.0, 2.0, 0.5  # as tests/e2e/test_leader_election.py
STATUS = f"{PREFIX}/status"
DETAIL = f"{PREFIX}/status/detail"


@dataclass
class World:
    pve: SimHandle
    kube: KubeSim
    broker: Broker
    tmp: Path


@pytest.fixture
def world(tmp_path: Path, broker: Broker) -> Iterator[World]:
    with running_simulator("cps-gpu", time_scale=0.01) as pve, KubeSim() as kube:
        kube.start()
        yield World(pve, kube, broker, tmp_path)


@dataclass
class Replica:
    name: str
    proc: Proc

    def topic(self) -> str:
        return f"{PREFIX}/instances/{self.name}/status"

    def events(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.proc.events() if e.get("event") == event]

    async def wait(self, pred: Any, within: float = 30.0) -> dict[str, Any]:
        """``Proc.wait_for`` off the event loop, so the watcher keeps receiving meanwhile."""
        return await asyncio.to_thread(self.proc.wait_for, pred, within)


def replica(world: World, name: str) -> Replica:
    """A daemon with its own Proxmox token, leader election and MQTT (no client id set: the
    default, ``provisiond-<identity>``, differs per replica)."""
    full = world.pve.add_token("root@pam", name)
    tokenid, _, secret = full.rpartition("=")
    (world.tmp / f"{name}.secret").write_text(secret)
    password = world.tmp / "mqtt-password"
    password.write_text(USERS["provisiond"])
    mqtt = settings(world.broker, client_id=None).model_dump(mode="json", exclude={"password"})
    cfg = world.tmp / f"{name}.json"
    cfg.write_text(
        json.dumps(
            {
                "proxmox": {
                    "url": world.pve.url,
                    "token_id": tokenid,
                    "token_secret_file": str(world.tmp / f"{name}.secret"),
                    "ca_bundle": world.pve.ca_path,
                },
                "spec": {"paths": [str(example("cps-gpu"))]},
                # read-only: the drift (cps-gpu's VMs are all missing) lasts the whole test, so
                # every replica surely observes it — what would make it publish duplicates
                "daemon": {
                    "interval": 30.0,
                    "read_only": True,
                    "state_dir": str(world.tmp / "state"),
                },
                "executor": EXECUTOR,
                "log": {"format": "json", "level": "info"},
                "metrics": {"bind": "127.0.0.1:0"},
                "kubernetes": {
                    "kubeconfig": str(world.kube.write_kubeconfig(world.tmp / "kubeconfig"))
                },
                "leader_election": {
                    "lease_duration": LEASE,
                    "renew_deadline": RENEW,
                    "retry_period": RETRY,
                    "release_timeout": 2.0,
                },
                "mqtt": mqtt | {"password_file": str(password)},
            }
        )
    )
    return Replica(name, run_daemon(world.tmp, cfg, name=name, env={"POD_NAME": name}))


def payloads(w: Watcher, topic: str) -> list[bytes]:
    return [m.payload for m in w.on(topic)]


def drift_found(w: Watcher) -> list[int]:
    return [e["object"]["vmid"] for e in w.events() if e["kind"] == "drift_found"]


def claimant(w: Watcher) -> str | None:
    """The identity in the latest ``P/status/detail``: the replica that claims to lead."""
    return w.on(DETAIL)[-1].json().get("identity") if w.on(DETAIL) else None


async def leader_of(w: Watcher, *replicas: Replica) -> tuple[Replica, Replica]:
    await w.wait_for(lambda w: payloads(w, STATUS)[-1:] == [b"online"], within=30)
    await w.wait_for(lambda w: claimant(w) in {r.name for r in replicas}, within=30)
    (leader,) = [r for r in replicas if r.name == claimant(w)]
    (standby,) = [r for r in replicas if r is not leader]
    assert leader.events("leader_acquired")
    assert not standby.events("leader_acquired")
    return leader, standby


def stop_all(*replicas: Replica) -> None:
    for r in replicas:
        if r.proc.popen.poll() is None:
            r.proc.kill9()


async def test_status_follows_the_acting_leader_through_kill_9_and_sigterm(world: World) -> None:
    a, b = replica(world, "replica-a"), replica(world, "replica-b")
    others: list[Replica] = []
    async with watching(world.broker) as w:
        try:
            leader, standby = await leader_of(w, a, b)
            # Both observe the drift (as standby, then as leader); neither acts (read-only).
            await standby.wait(lambda e: e.get("event") == "reconcile_finished")
            await leader.wait(
                lambda e: e.get("event") == "plan_ready" and e["role"] == "leader", 60
            )
            await w.wait_for(lambda w: w.on(DETAIL)[-1].json().get("cycle") is not None)
            assert w.on(DETAIL)[-1].json()["role"] == "leader"
            for r in (a, b):
                await w.wait_for(lambda w, r=r: payloads(w, r.topic())[-1:] == [b"online"])
            await w.wait_for(lambda w: bool(w.on(standby.topic() + "/detail")))
            standby_detail = w.on(standby.topic() + "/detail")[-1].json()
            assert (standby_detail["role"], standby_detail["identity"]) == ("standby", standby.name)
            # Only the leader's events: every drifted VM was announced once, not once per replica
            # (drift is reported as the cycle that found it finishes).
            await w.wait_for(lambda w: len(drift_found(w)) >= 8)  # cps-gpu: eight VMs
            await asyncio.sleep(1.0)
            found = drift_found(w)
            assert len(found) == len(set(found)) == 8, found
            changed = [e for e in w.events() if e["kind"] == "leadership_changed"]
            assert [(e["result"], e["details"]) for e in changed] == [
                ("leader", {"identity": leader.name})
            ]

            # kill -9 of the standby: its will, on its own topic; the cluster stays online.
            mark = len(payloads(w, STATUS))
            standby.proc.kill9()
            await w.wait_for(lambda w: payloads(w, standby.topic())[-1:] == [b"offline"])
            await asyncio.sleep(1.0)
            assert payloads(w, STATUS)[mark:] == []
            assert payloads(w, STATUS)[-1] == b"online"
            assert claimant(w) == leader.name

            # kill -9 of the leader: both its wills; the new leader claims after the failover.
            c = replica(world, "replica-c")
            others.append(c)
            await w.wait_for(lambda w: payloads(w, c.topic())[-1:] == [b"online"], within=30)
            await c.wait(lambda e: e.get("event") == "leader_standby")
            mark = len(payloads(w, STATUS))
            leader.proc.kill9()
            await w.wait_for(lambda w: payloads(w, leader.topic())[-1:] == [b"offline"])
            await w.wait_for(lambda w: payloads(w, STATUS)[mark:][:1] == [b"offline"])
            await w.wait_for(
                lambda w: payloads(w, STATUS)[-1:] == [b"online"] and claimant(w) == c.name,
                within=LEASE + 2 * RETRY + 10,
            )
            assert c.events("leader_acquired")
            assert w.on(DETAIL)[-1].json()["role"] == "leader"
            # The new leader announces the drift it sees once more (the old one may have died
            # before reporting it): each VM twice in all, never three times.
            await w.wait_for(lambda w: len(drift_found(w)) >= 16)
            await asyncio.sleep(1.0)
            assert sorted(drift_found(w)) == sorted(found * 2)

            # SIGTERM of the leader beside a live standby: handed over, never offline.
            d = replica(world, "replica-d")
            others.append(d)
            await w.wait_for(lambda w: payloads(w, d.topic())[-1:] == [b"online"], within=30)
            await d.wait(lambda e: e.get("event") == "leader_standby")
            mark = len(payloads(w, STATUS))
            took = await asyncio.to_thread(c.proc.terminate, 30)
            assert c.proc.popen.returncode == 0, c.proc.tail()
            assert took < 30
            assert c.events("mqtt_cluster_status_handed_over")[0]["to"] == d.name
            await w.wait_for(lambda w: claimant(w) == d.name)
            # c's instance: offline for the live subscribers, then removed (detail, status)
            await w.wait_for(lambda w: payloads(w, c.topic())[-2:] == [b"offline", b""])
            assert payloads(w, c.topic() + "/detail")[-1] == b""
            assert b"offline" not in payloads(w, STATUS)[mark:]
            assert payloads(w, STATUS)[-1] == b"online"
            # c's last word as leader went out before its own offline
            last = [e for e in w.events() if e["kind"] == "leadership_changed"][-2:]
            assert {(e["result"], e["details"]["identity"]) for e in last} == {
                ("standby", c.name),
                ("leader", d.name),
            }
            # A consumer arriving now: the killed replicas' wills stay (lost replicas, alert
            # on them), the live one is online, and nothing of c, which stopped cleanly.
            late = await retained(world.broker, f"{PREFIX}/instances/+/status")
            assert all(m.retain for m in late)
            assert {(m.topic, m.payload) for m in late} == {
                (a.topic(), b"offline"),
                (b.topic(), b"offline"),
                (d.topic(), b"online"),
            }
        finally:
            stop_all(a, b, *others)
    for r in (a, b, *others):
        assert USERS["provisiond"] not in r.proc.log.read_text()
