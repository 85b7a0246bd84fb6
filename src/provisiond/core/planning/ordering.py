"""The plan's action list: a topological order of ``after``, ties broken by (phase, VMID,
emission order), so equal inputs give the same list and each action follows all it waits for.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from provisiond.core.actions import Action


def ordered(actions: Sequence[Action]) -> tuple[Action, ...]:
    index = {a.id: i for i, a in enumerate(actions)}
    waiting_on = {a.id: len(a.after) for a in actions}
    children: dict[str, list[str]] = {}
    for a in actions:
        for dep in a.after:
            children.setdefault(dep, []).append(a.id)
    heap = [(a.phase, a.vmid, index[a.id]) for a in actions if not a.after]
    heapq.heapify(heap)
    result: list[Action] = []
    while heap:
        _, _, i = heapq.heappop(heap)
        a = actions[i]
        result.append(a)
        for child in children.get(a.id, ()):
            waiting_on[child] -= 1
            if waiting_on[child] == 0:
                c = actions[index[child]]
                heapq.heappush(heap, (c.phase, c.vmid, index[child]))
    return tuple(result)
