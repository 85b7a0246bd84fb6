"""Proxmox error classification: status and message decide retryability (table test)."""

from __future__ import annotations

import pytest

from provisiond.core.errors import (
    AuthError,
    LockedError,
    PermanentError,
    TransientError,
    UnclassifiedError,
)
from provisiond.core.pve_errors import Fault, classify, error_for


@pytest.mark.parametrize(
    ("status", "message", "fault"),
    [
        (500, "VM is locked (backup)", Fault.LOCKED),
        (500, "VM is locked (clone)", Fault.LOCKED),
        (500, "VM is locked (snapshot-delete)", Fault.LOCKED),
        (
            500,
            "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout",
            Fault.TRANSIENT,
        ),
        (500, "checksum mismatch (file change by other user?)", Fault.TRANSIENT),
        (500, "hostname lookup 'pve3' failed - failed to get address info", Fault.TRANSIENT),
        (595, "Connection refused", Fault.TRANSIENT),
        (596, "Broken pipe", Fault.TRANSIENT),
        (503, "Service Unavailable", Fault.TRANSIENT),
        (429, "Too Many Requests", Fault.TRANSIENT),
        (409, "Conflict", Fault.TRANSIENT),
        (500, "connection timed out", Fault.TRANSIENT),
        (401, "Authentication failed!", Fault.AUTH),
        (401, "No ticket", Fault.AUTH),
        (403, "Permission check failed (/vms/100, VM.Clone)", Fault.AUTH),
        (403, "Forbidden", Fault.AUTH),
        # the status decides before any message row: never retried for its wording
        (403, "Permission check failed - try again later", Fault.AUTH),
        (403, "connection refused by policy", Fault.AUTH),
        (401, "VM is locked (backup)", Fault.AUTH),
        (500, "Permission check failed (/vms/100, VM.Config.Disk)", Fault.AUTH),
        (500, "only root can set 'hostpci0' config for non-mapped devices", Fault.PERMANENT),
        (400, "Only root may use this option.", Fault.PERMANENT),
        (400, "Parameter verification failed.", Fault.PERMANENT),
        (
            500,
            "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist",
            Fault.PERMANENT,
        ),
        (500, "unable to create VM 1035: config file already exists", Fault.PERMANENT),
        (500, "can't clone VM to node 'pve2' (VM uses local storage)", Fault.PERMANENT),
        (
            500,
            "Linked clone feature is not supported for 'local:100/x.raw' (scsi0)",
            Fault.PERMANENT,
        ),
        (501, "Method 'GET /nodes/x/bogus' not implemented", Fault.PERMANENT),
        (400, "something odd", Fault.PERMANENT),
        (500, "something odd", Fault.UNCLASSIFIED),
    ],
)
def test_classify(status: int, message: str, fault: Fault) -> None:
    assert classify(status, message) is fault


@pytest.mark.parametrize(
    ("status", "message", "exc_type"),
    [
        (500, "VM is locked (backup)", LockedError),
        (503, "Service Unavailable", TransientError),
        (403, "Permission check failed (/, Sys.Audit)", AuthError),
        (400, "Parameter verification failed.", PermanentError),
        (500, "mystery", UnclassifiedError),
    ],
)
def test_error_for_maps_onto_the_tree(status: int, message: str, exc_type: type) -> None:
    err = error_for(status, message, context="POST /nodes/{node}/qemu/{vmid}/clone")
    assert type(err) is exc_type
    assert str(err) == f"POST /nodes/{{node}}/qemu/{{vmid}}/clone: {status} {message}"


def test_locked_error_carries_the_lock_and_is_transient() -> None:
    err = error_for(500, "VM is locked (backup)")
    assert isinstance(err, LockedError)
    assert isinstance(err, TransientError)
    assert err.lock == "backup"
    assert str(err) == "500 VM is locked (backup)"


def test_unclassified_is_retried_at_most_twice() -> None:
    assert UnclassifiedError.max_retries == 2
