"""The executor's knobs: retries per call, task polling, per-object backoff and repeat limit,
requeue delay.

A module of its own because the scheduler (``executor``) and the task waiter (``tasks``) both
read it and neither should import the other. All values are seconds unless named otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    task_timeout: float = 900.0  # seconds a single Proxmox task may take
    poll_initial: float = 0.5  # first task-status poll delay; grows by poll_factor
    poll_factor: float = 1.5
    poll_max: float = 5.0
    max_attempts: int = 5  # per call, transient errors
    retry_initial: float = 0.5  # jittered exponential backoff between attempts
    retry_max: float = 10.0
    backoff_base: float = 5.0  # per-object backoff after a failed action
    backoff_max: float = 300.0
    repeat_base: float = 1.0  # an action repeated without effect: first wait, doubling
    repeat_max: float = 900.0  # … up to this (controller-runtime's per-item limiter)
    requeue_after: float = 10.0  # when a locked object is worth another look
    log_lines: int = 10  # task log lines attached to a failure
    eviction_retry: float = 5.0  # an eviction blocked by a PDB (429): first retry (kubectl: 5 s)
    eviction_retry_max: float = 30.0  # … doubling up to this, until the drain's timeout
    pod_poll: float = 1.0  # while evicted pods terminate, and while waiting for a node Ready
    ready_timeout: float = 900.0  # a moved VM's node must turn Ready within this

    def scaled(self, time_scale: float) -> ExecutorConfig:
        """Every delay and timeout times ``time_scale``: against a simulator whose tasks run
        ``1/time_scale`` times faster, the executor then makes the same requests per task as
        against real Proxmox (the waits keep their proportion to the task times)."""
        if time_scale >= 1.0:
            return self
        return replace(
            self,
            **{
                f.name: getattr(self, f.name) * time_scale
                for f in fields(self)
                if f.type in ("float", float) and f.name != "poll_factor"  # a ratio, not a time
            },
        )
