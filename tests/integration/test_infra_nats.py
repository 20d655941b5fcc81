"""Embedded NATS: pub/sub, JetStream streams, monitoring, persistence of streams."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import nats
import pytest

from sandbox.infra.nats import EmbeddedNats
from sandbox.infra.ports import free_port

pytestmark = pytest.mark.integration


def test_publish_subscribe(nats_server: EmbeddedNats) -> None:
    async def scenario() -> bytes:
        client = await nats.connect(nats_server.url, connect_timeout=5, allow_reconnect=False)
        try:
            sub = await client.subscribe("control.kill_switch")
            await client.publish("control.kill_switch", b"engage")
            msg = await sub.next_msg(timeout=5)
            return msg.data
        finally:
            await client.close()

    assert asyncio.run(scenario()) == b"engage"


def test_jetstream_stream_create_publish_and_count(nats_server: EmbeddedNats) -> None:
    async def scenario() -> int:
        client = await nats.connect(nats_server.url, connect_timeout=5, allow_reconnect=False)
        try:
            js = client.jetstream()
            await js.add_stream(name="CONTROL", subjects=["ctl.>"])
            for i in range(25):
                ack = await js.publish("ctl.config", f"change-{i}".encode())
                assert ack.stream == "CONTROL"
            info = await js.stream_info("CONTROL")
            return info.state.messages
        finally:
            await client.close()

    assert asyncio.run(scenario()) == 25
    assert (nats_server.store_dir / "jetstream").is_dir()


def test_monitoring_and_loopback_only(nats_server: EmbeddedNats, listening_addresses) -> None:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    with direct.open(f"{nats_server.monitor_url}/varz", timeout=5) as response:
        varz = json.load(response)
    assert varz["jetstream"]["config"]["store_dir"].startswith(str(nats_server.store_dir))
    assert listening_addresses(nats_server.port) == {"127.0.0.1"}
    assert listening_addresses(nats_server.monitor_port) == {"127.0.0.1"}


def test_jetstream_file_stream_survives_restart(server_dir: Path, start_server, assert_nothing_left) -> None:
    server = start_server(EmbeddedNats(server_dir, free_port(), free_port()))

    async def publish() -> None:
        client = await nats.connect(server.url, connect_timeout=5, allow_reconnect=False)
        js = client.jetstream()
        await js.add_stream(name="FILLS", subjects=["fills"])
        for i in range(3):
            await js.publish("fills", str(i).encode())
        await client.close()

    async def count() -> int:
        client = await nats.connect(server.url, connect_timeout=5, allow_reconnect=False)
        info = await client.jetstream().stream_info("FILLS")
        await client.close()
        return info.state.messages

    asyncio.run(publish())
    pid, ports = server.pid, server.ports
    server.stop()
    assert_nothing_left(server, pid, ports)
    server.start()
    assert asyncio.run(count()) == 3
