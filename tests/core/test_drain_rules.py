"""``core.drain``: which pods a drain evicts, waits for, refuses or leaves (kubectl's rules)."""

from __future__ import annotations

import pytest

from provisiond.core.drain import DrainView, sort_pods
from provisiond.core.observed import Eviction, KubePod

WEB = KubePod("default", "web", "wk1")
DS = KubePod("kube-system", "proxy", "wk1", daemonset=True)
DS_DONE = KubePod("kube-system", "proxy-old", "wk1", daemonset=True, phase="Succeeded")
MIRROR = KubePod("kube-system", "apiserver", "wk1", mirror=True)
SCRATCH = KubePod("ml", "cache", "wk1", empty_dir=True)
SCRATCH_DONE = KubePod("ml", "job", "wk1", empty_dir=True, phase="Failed")
GOING = KubePod("default", "old", "wk1", terminating=True)


@pytest.mark.parametrize(
    ("pods", "delete_empty_dir", "view"),
    [
        ((), False, DrainView()),
        ((WEB, DS, MIRROR), False, DrainView(evict=(WEB,), kept=(DS, MIRROR))),
        ((DS_DONE,), False, DrainView(evict=(DS_DONE,))),  # a finished DaemonSet pod goes
        ((SCRATCH, SCRATCH_DONE), False, DrainView(evict=(SCRATCH_DONE,), refused=(SCRATCH,))),
        ((SCRATCH,), True, DrainView(evict=(SCRATCH,))),
        ((GOING, WEB), False, DrainView(evict=(WEB,), terminating=(GOING,))),
    ],
)
def test_sort_pods(pods: tuple[KubePod, ...], delete_empty_dir: bool, view: DrainView) -> None:
    assert sort_pods(pods, delete_empty_dir_data=delete_empty_dir) == view


@pytest.mark.parametrize(
    ("view", "done"),
    [
        (DrainView(kept=(DS, MIRROR)), True),
        (DrainView(evict=(WEB,)), False),
        (DrainView(terminating=(GOING,)), False),
        (DrainView(refused=(SCRATCH,)), False),
    ],
)
def test_done_when_only_kept_pods_are_left(view: DrainView, done: bool) -> None:
    assert view.done is done


def test_pod_names_and_eviction_answers() -> None:
    assert str(WEB) == "default/web"
    assert not WEB.finished
    assert SCRATCH_DONE.finished
    assert [e.value for e in Eviction] == ["evicted", "blocked", "gone"]
