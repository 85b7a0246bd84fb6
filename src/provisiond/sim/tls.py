"""``TlsServer``: what both simulators share to serve their API over HTTPS.

A state directory (the caller's, or a temporary one removed at stop), a throw-away CA and a
server certificate for 127.0.0.1, ::1 and localhost written into it (``certs``), an aiohttp
site on ``host:port`` (port 0: the OS chooses, and ``port`` then says which), and a shutdown
that drops open connections instead of waiting for clients to close them. Threads and loops
stay the subclasses' own: the Proxmox simulator runs its own, the Kubernetes one may share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web

from provisiond.sim import certs


class TlsServer:
    def __init__(self, *, host: str, port: int, state_dir: Path | None, prefix: str) -> None:
        self.host = host
        self.port = port
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
            state_dir = Path(self._tmp.name)
        self.state_dir = state_dir
        self.cert_files: certs.CertFiles | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_path(self) -> Path:
        assert self.cert_files is not None, "start() first"
        return self.cert_files.ca

    def _tls_context(self) -> ssl.SSLContext:
        """A fresh CA and server certificate in ``state_dir/tls``; the server's TLS context."""
        self.cert_files = certs.generate(self.state_dir / "tls")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_files.cert, self.cert_files.key)
        return ctx

    async def _listen(self, app: web.Application, ctx: ssl.SSLContext) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ctx)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])  # the port the OS chose

    async def _close(self, transports: Iterable[asyncio.BaseTransport]) -> None:
        """Drop the open connections, then stop serving."""
        for transport in list(transports):
            # TLS close waits for the peer's close_notify; a stopping simulator does not
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()  # closes kept-alive client connections too

    def _remove_state_dir(self) -> None:
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
