"""Kubernetes node actions (cordon, drain, uncordon, label, taint, the kube steps of a GPU move).

There is no Kubernetes port yet: every such action fails with a ``PermanentError`` saying so.
The planner does not plan them while ``observed.kube is None``; this makes a mismatch loud, not
silent. The Kubernetes node family will replace this module's body, not the executor's dispatch.
"""

from __future__ import annotations

from typing import NoReturn

from provisiond.core.actions import MoveStep
from provisiond.core.errors import PermanentError

KUBE_NOT_CONFIGURED = "Kubernetes is not configured: provisiond cannot {what} (no Kubernetes port)"
NODE_STEPS = (MoveStep.CORDON, MoveStep.DRAIN, MoveStep.WAIT_READY, MoveStep.UNCORDON)


def not_configured(what: str) -> NoReturn:
    raise PermanentError(KUBE_NOT_CONFIGURED.format(what=what))
