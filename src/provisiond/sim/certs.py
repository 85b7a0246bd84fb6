"""A throw-away certificate authority and a server certificate for 127.0.0.1 and localhost.

proxmoxer speaks only HTTPS; clients verify the simulator against ``ca.pem`` (written next to
the key and certificate in a directory the caller owns). ``trustme`` makes the CA and the leaf
(EC P-256 keys); the server certificate is valid for a day, the key file is private to its owner.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trustme

if TYPE_CHECKING:
    from pathlib import Path

ORGANIZATION = "provisiond simulator"


@dataclass(frozen=True, slots=True)
class CertFiles:
    ca: Path
    cert: Path
    key: Path
    fingerprint: str  # SHA-256 of the server certificate, colon-separated (ssl_fingerprint)


def generate(directory: Path) -> CertFiles:
    """Write ``ca.pem``, ``server.pem`` and ``server-key.pem`` into ``directory``."""
    now = dt.datetime.now(dt.UTC)
    ca = trustme.CA(organization_name=ORGANIZATION)
    leaf = ca.issue_cert(
        "localhost",
        "127.0.0.1",
        "::1",
        common_name="localhost",
        organization_name=ORGANIZATION,
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=1),
    )
    cert_pem = leaf.cert_chain_pems[0].bytes()
    directory.mkdir(parents=True, exist_ok=True)
    der_digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem.decode())).digest()
    files = CertFiles(
        ca=directory / "ca.pem",
        cert=directory / "server.pem",
        key=directory / "server-key.pem",
        fingerprint=":".join(f"{b:02X}" for b in der_digest),
    )
    ca.cert_pem.write_to_path(files.ca)
    files.cert.write_bytes(cert_pem)
    files.key.touch(mode=0o600)
    files.key.chmod(0o600)  # touch keeps the mode of a file left from an earlier run
    leaf.private_key_pem.write_to_path(files.key)
    return files
