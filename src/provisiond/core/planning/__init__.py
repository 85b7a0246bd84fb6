"""The planner's steps, one responsibility per module; ``core.planner.plan`` composes them.

- ``state``: the per-plan ``PlanState`` every step reads and appends to (indexes of the
  observation, the scheduler's ledger, the output being built) and its ``emit``/``block``/``wait``;
- ``matching``: how each desired VM relates to what holds its VMID (owned, adopted, conflict,
  clone under way);
- ``placement``: what each VM weighs on its host and whether it stands where the spec allows;
- ``disruption``: the guards before anything stops a VM (self VM, Kubernetes unobserved,
  disruption budget);
- ``kube``: the Kubernetes node of a VM: cordon/drain, labels, taints, uncordon;
- ``migration``: moving an existing VM (choose a target, live migrate or the offline GPU move);
- ``configure``: config drift and disk growth, in place;
- ``power``: start, shutdown, reboot for pending changes;
- ``existing``: an existing VM: move, configure, grow, pending changes, power, node;
- ``creation``: a missing VM: place, clone, configure, grow, start;
- ``rebalancing``: the opt-in rebalance of a fleet (``core.rebalance`` chooses the moves);
- ``pruning``: destroying owned VMs the spec no longer lists;
- ``ordering``: the plan's action list in a topological order of ``after``.

Pure and deterministic like the rest of ``core``: no I/O, clock or randomness.
"""
