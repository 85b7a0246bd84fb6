"""Retained status against a real Mosquitto: online, detail, offline on clean stop and by will."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

from mosquitto_broker import USERS, Broker
from mqtt_support import PREFIX, RecordingCommands, running, settings, watching
from provisiond.adapters.mqtt import MqttPublisher

STATUS = f"{PREFIX}/status"
DETAIL = f"{PREFIX}/status/detail"


async def test_online_detail_then_offline_on_clean_stop(broker: Broker) -> None:
    cmds = RecordingCommands()
    pub = MqttPublisher(settings(broker), prefix=PREFIX, commands=cmds)
    async with watching(broker) as w:
        async with running(pub):
            await w.wait_for(lambda w: any(m.payload == b"online" for m in w.on(STATUS)))
            await w.wait_for(lambda w: bool(w.on(DETAIL)))
            detail = w.on(DETAIL)[-1].json()
            assert detail["role"] == "leader"
            assert detail["paused"] is False
            assert detail["client_id"] == "provisiond-test"
            assert "version" in detail
            assert pub.connected
            pub.update_status(converged=True, last_reconcile="2026-01-01T00:00:00.000Z")
            await w.wait_for(lambda w: w.on(DETAIL)[-1].json()["converged"] is True)
        # the clean stop published offline itself (a clean DISCONNECT sends no will)
        await w.wait_for(lambda w: w.on(STATUS)[-1].payload == b"offline")
    assert not pub.connected
    # retained: a consumer arriving later sees offline and the last detail
    async with watching(broker) as late:
        await late.wait_for(lambda w: bool(w.on(STATUS)) and bool(w.on(DETAIL)))
        assert late.on(STATUS)[0].retain
        assert late.on(STATUS)[0].payload == b"offline"
        assert late.on(DETAIL)[0].json()["converged"] is True


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from provisiond.adapters.mqtt import MqttPublisher
    from provisiond.adapters.mqtt_settings import MqttSettings

    async def main() -> None:
        s = MqttSettings.model_validate_json(sys.argv[1])
        pub = MqttPublisher(s, prefix=sys.argv[2])
        stop = asyncio.Event()
        task = asyncio.ensure_future(pub.run(stop))
        while not pub.connected:
            await asyncio.sleep(0.01)
        print("connected", flush=True)
        await task

    asyncio.run(main())
    """
)


async def test_kill_9_leaves_offline_by_the_last_will(broker: Broker, tmp_path: Path) -> None:
    s = settings(broker, client_id="provisiond-child")
    password = tmp_path / "mqtt-password"
    password.write_text(USERS["provisiond"])
    # the child reads the password from a file: it never travels in argv
    config = s.model_dump(mode="json", exclude={"password"}) | {"password_file": str(password)}
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    async with watching(broker) as w:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            json.dumps(config),
            PREFIX,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            assert child.stdout is not None
            lines: list[bytes] = []
            while not lines or lines[-1].strip() != b"connected":  # after its log lines
                lines.append(await asyncio.wait_for(child.stdout.readline(), 20))
                assert lines[-1], b"".join(lines)
            assert USERS["provisiond"].encode() not in b"".join(lines)
            await w.wait_for(lambda w: [m.payload for m in w.on(STATUS)] == [b"online"])
            child.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGKILL
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await w.wait_for(lambda w: w.on(STATUS)[-1].payload == b"offline")
    async with watching(broker) as late:
        await late.wait_for(lambda w: bool(w.on(STATUS)))
        assert late.on(STATUS)[0].retain
        assert late.on(STATUS)[0].payload == b"offline"
