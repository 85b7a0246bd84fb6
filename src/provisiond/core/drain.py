"""What a drain does with the pods it finds on a node: pure, so every rule is a table test.

The rules are ``kubectl drain --ignore-daemonsets``'s (kubernetes/SEMANTICS.md §8):
- DaemonSet-owned pods stay (their controller would put them back at once), and so do mirror
  pods (the kubelet's static pods: the API cannot remove them);
- a pod already terminating is not evicted again: the drain waits for it to go;
- a pod with an ``emptyDir`` volume loses that data when evicted: it is evicted only when the
  fleet's ``drain.deleteEmptyDirData`` says so; otherwise the drain refuses it (the node stays
  cordoned and the refusal is reported), like kubectl without ``--delete-emptydir-data``;
- everything else — finished pods included — is evicted through the Eviction API.

A drain is done when ``DrainView.done``: nothing left to evict and nothing terminating.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from provisiond.core.observed import KubePod


@dataclass(frozen=True, slots=True)
class DrainView:
    """The pods of one node, sorted by what the drain does with them."""

    evict: tuple[KubePod, ...] = ()
    terminating: tuple[KubePod, ...] = ()
    refused: tuple[KubePod, ...] = ()  # emptyDir pods the policy does not let go
    kept: tuple[KubePod, ...] = ()  # DaemonSet and mirror pods

    @property
    def done(self) -> bool:
        return not (self.evict or self.terminating or self.refused)


def sort_pods(pods: Iterable[KubePod], *, delete_empty_dir_data: bool) -> DrainView:
    evict: list[KubePod] = []
    terminating: list[KubePod] = []
    refused: list[KubePod] = []
    kept: list[KubePod] = []
    for pod in pods:
        if pod.mirror or (pod.daemonset and not pod.finished):
            kept.append(pod)
        elif pod.terminating:
            terminating.append(pod)
        elif pod.empty_dir and not pod.finished and not delete_empty_dir_data:
            refused.append(pod)
        else:
            evict.append(pod)
    return DrainView(tuple(evict), tuple(terminating), tuple(refused), tuple(kept))
