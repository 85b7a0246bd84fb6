"""What the Proxmox client raises when it cannot talk to the API at all: one of ACCESS_ERRORS
with a one-line message naming what failed and what to check, never the secret.

The CA file is checked at start (settings); these are the cases that arise later — the file
replaced by something that is not a certificate, or removed — and the endpoint going away.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.core.errors import (
    ACCESS_ERRORS,
    AuthError,
    TLSError,
    TransientError,
    UnreachableError,
)
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_simulator("cps-gpu", time_scale=0.01) as handle:
        yield handle


def _conn(sim: SimHandle, **kw: object) -> ProxmoxConnection:
    tokenid, _, secret = sim.token.rpartition("=")
    base: dict[str, object] = {
        "url": sim.url,
        "identity": tokenid,
        "secret": secret,
        "verify": sim.ca_path,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
    }
    return ProxmoxConnection(**{**base, **kw})  # type: ignore[arg-type]


async def _fails(conn: ProxmoxConnection) -> Exception:
    client = ProxmoxClient(conn)
    try:
        with pytest.raises(ACCESS_ERRORS) as exc:
            await client.get("/cluster/resources")
        return exc.value
    finally:
        client.close()


async def test_a_ca_file_replaced_by_garbage_is_a_tls_error(sim: SimHandle, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    shutil.copy(sim.ca_path, ca)
    client = ProxmoxClient(_conn(sim, verify=str(ca)))
    try:
        assert await client.get("/version")
    finally:
        client.close()
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    err = await _fails(_conn(sim, verify=str(ca)))
    assert isinstance(err, TLSError)
    assert str(err) == f"TLS: ca_bundle {ca} holds no usable certificate — is it a PEM file?"


async def test_a_ca_file_removed_is_a_tls_error(sim: SimHandle, tmp_path: Path) -> None:
    err = await _fails(_conn(sim, verify=str(tmp_path / "gone.pem")))
    assert isinstance(err, TLSError)
    assert str(err) == f"TLS: cannot read ca_bundle {tmp_path / 'gone.pem'} — does the file exist?"


async def test_an_unknown_host_name(sim: SimHandle) -> None:
    err = await _fails(_conn(sim, url="https://pve-does-not-exist.invalid:8006"))
    assert isinstance(err, UnreachableError)
    assert isinstance(err, TransientError)
    assert str(err) == (
        "cannot reach https://pve-does-not-exist.invalid:8006: host name not found"
        " — is the URL right?"
    )


async def test_a_401_is_an_auth_error_without_the_secret(sim: SimHandle) -> None:
    err = await _fails(_conn(sim, secret="wrong-secret-123"))
    assert isinstance(err, AuthError)
    assert "wrong-secret-123" not in str(err)


async def test_a_request_that_hangs_is_abandoned_by_its_caller_at_once(sim: SimHandle) -> None:
    sim.inject("/version", hang=True)
    client = ProxmoxClient(_conn(sim))
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get("/version"), 0.3)
        assert time.monotonic() - started < 1.0
        client.close()  # does not wait for the request thread
        assert time.monotonic() - started < 1.0
    finally:
        sim.release_hangs()
        sim.clear_faults()
