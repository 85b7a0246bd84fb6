"""How the executor carries out each kind of action: one module per action family.

Why a package per family rather than one executor module: each family has its own adoption
rules (what "already done" or "under way" looks like in Proxmox) and its own effect check, and
the next families (Kubernetes node actions) land here without touching the scheduler. The
families share only what is in ``context`` (fresh reads, the ownership check before disruptive
calls) and ``tasks`` (waiting for a Proxmox task); ``executor.py`` schedules and dispatches.

- ``config``: the executor's knobs (``ExecutorConfig``);
- ``tasks``: waiting for a task by its UPID — polling with backoff, timeout, log tail on failure;
- ``context``: what one ``execute`` gives every action — ports, the retrying call, the task
  waiter, the run's ownership facts — and the control-flow signals (adopted, replan);
- ``clone`` (create/adopt), ``configure`` (configure/resize), ``power`` (start, shutdown,
  reboot), ``migrate`` (migrate and the GPU move), ``destroy``, ``kube`` (not configured yet),
  ``harules`` (the PVE 9.x HA rules provisiond publishes: synchronous calls, no task).
"""
