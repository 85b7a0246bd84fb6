"""Resolution: validated fleet documents → ``core.desired`` values the planner consumes.

``desired_state(docs)`` checks the documents (``core.validation``) and raises ``SpecError`` with
every issue if any; otherwise it expands and merges each fleet (``core.members``) and converts
sizes to Proxmox's units, MACs to upper case, taints to ``Taint`` values, labels and annotations
to sorted tuples. Resolution never fails on a document that passed the checks.
"""

from __future__ import annotations

from collections.abc import Sequence

from provisiond.core.desired import (
    CloneMode,
    CloudInit,
    DesiredFleet,
    DesiredState,
    DesiredVM,
    DiskSpec,
    DrainPolicy,
    GpuRequest,
    HaBalance,
    IpConfig,
    KubeNodeSpec,
    NicSpec,
    Overcommit,
    Policy,
    PowerState,
    RebalancePolicy,
    SourceRef,
    Spread,
    Taint,
    TemplateRef,
)
from provisiond.core.errors import SpecError
from provisiond.core.kubesyntax import parse_taint
from provisiond.core.members import Member, expand
from provisiond.core.spec import Fleet, PolicySpec, SourcedFleet
from provisiond.core.units import parse_size, size_to_mib
from provisiond.core.validation import check


def desired_state(docs: Sequence[SourcedFleet]) -> DesiredState:
    """The desired state of ``docs``; ``SpecError`` listing every issue if they are invalid."""
    issues = check(docs)
    if issues:
        raise SpecError(issues)
    return DesiredState(fleets=tuple(resolve_fleet(doc) for doc in docs))


def resolve_fleet(doc: SourcedFleet) -> DesiredFleet:
    """One fleet, assumed valid (``core.validation.check`` found nothing)."""
    fleet = doc.fleet
    vms = tuple(_resolve_vm(doc, fleet, m) for m in expand(fleet))
    return DesiredFleet(
        name=fleet.metadata.name,
        policy=resolve_policy(fleet.spec.policy),
        vms=vms,
        source=SourceRef(doc.file, doc.locate(("metadata", "name"))),
        publish_ha_rules=fleet.spec.placement.publish_ha_rules,
    )


def resolve_policy(p: PolicySpec) -> Policy:
    return Policy(
        prune=p.prune,
        allow_empty=p.allow_empty,
        adopt=p.adopt,
        reboot_for_pending=p.reboot_for_pending,
        force_stop_after_shutdown_timeout=p.force_stop_after_shutdown_timeout,
        max_concurrent_actions=p.max_concurrent_actions,
        max_concurrent_per_host=p.max_concurrent_per_host,
        max_disruptions_per_pool=p.max_disruptions_per_pool,
        max_disruptions=p.max_disruptions,
        max_disk_growth=p.max_disk_growth,
        overcommit=Overcommit(cpu=p.overcommit.cpu, memory=p.overcommit.memory),
        rebalance=RebalancePolicy(
            enabled=p.rebalance.enabled,
            memory_threshold=p.rebalance.memory_threshold,
            cpu_threshold=p.rebalance.cpu_threshold,
            ha_managed=HaBalance(p.rebalance.ha_managed),
        ),
        maintenance=tuple(p.maintenance),
        drain=DrainPolicy(
            timeout=float(p.drain.timeout), delete_empty_dir_data=p.drain.delete_empty_dir_data
        ),
    )


def _resolve_vm(doc: SourcedFleet, fleet: Fleet, m: Member) -> DesiredVM:
    s = m.settings
    assert s.cores is not None  # guaranteed by validation
    assert s.memory is not None
    pool = fleet.spec.pools[m.pool_index]
    placement = fleet.spec.placement
    hosts = placement.hosts
    spread = placement.spread
    if pool.placement is not None:
        hosts = pool.placement.hosts if pool.placement.hosts is not None else hosts
        spread = pool.placement.spread or spread
    return DesiredVM(
        fleet=fleet.metadata.name,
        pool=m.pool,
        name=m.name,
        vmid=m.vmid,
        template=TemplateRef(name=s.template, vmid=s.template_vmid),
        cores=s.cores,
        memory_mib=size_to_mib(s.memory),
        index=m.index,
        clone_mode=CloneMode(s.clone_mode or CloneMode.FULL),
        storage=s.storage,
        proxmox_pool=s.pool,
        disks=tuple(
            DiskSpec(slot=d.slot, size_bytes=parse_size(d.size), storage=d.storage)
            for d in s.disks or ()
        ),
        nics=_nics(m),
        cloud_init=_cloud_init(m),
        gpus=GpuRequest(mapping=s.gpus.mapping, count=s.gpus.count) if s.gpus else None,
        power=PowerState(s.power or PowerState.RUNNING),
        host=s.host,
        allowed_hosts=tuple(hosts) if hosts is not None else None,
        spread=Spread(spread or Spread.PREFERRED),
        tags=tuple(s.tags or ()),
        kubernetes=_kubernetes(m),
        allow_large_growth=bool(s.allow_large_growth),
        source=SourceRef(doc.file, doc.locate(m.path)),
    )


def _nics(m: Member) -> tuple[NicSpec, ...]:
    s = m.settings
    if s.nics is not None:
        return tuple(
            NicSpec(
                index=i,
                bridge=n.bridge,
                model=n.model,
                mac=n.mac.upper() if n.mac else None,
                vlan=n.vlan,
                firewall=n.firewall,
            )
            for i, n in enumerate(s.nics)
        )
    if s.bridge is None:
        return ()
    return (
        NicSpec(
            index=0,
            bridge=s.bridge,
            model=s.nic_model or "virtio",
            mac=s.mac.upper() if s.mac else None,
            vlan=s.vlan,
        ),
    )


def _cloud_init(m: Member) -> CloudInit | None:
    s = m.settings
    c = s.cloud_init
    if c is None and s.ip is None:
        return None
    ipconfigs = (IpConfig(index=0, ip=s.ip, gateway=s.gateway),) if s.ip is not None else ()
    if c is None:
        return CloudInit(ipconfigs=ipconfigs)
    return CloudInit(
        user=c.user,
        ssh_keys=tuple(c.ssh_keys or ()),
        nameservers=tuple(c.nameservers or ()),
        search_domain=c.search_domain,
        ipconfigs=ipconfigs,
    )


def _kubernetes(m: Member) -> KubeNodeSpec | None:
    k = m.settings.kubernetes
    if k is None:
        return KubeNodeSpec(node_name=m.name)
    if k.node is False:
        return None
    taints: list[Taint] = []
    for text in k.taints or ():
        taint, _errs = parse_taint(text)
        assert taint is not None  # guaranteed by validation
        taints.append(taint)
    return KubeNodeSpec(
        node_name=k.node_name or m.name,
        labels=tuple(sorted((k.labels or {}).items())),
        taints=tuple(taints),
        annotations=tuple(sorted((k.annotations or {}).items())),
    )
