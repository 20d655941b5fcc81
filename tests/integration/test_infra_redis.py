"""Embedded redis: SET/GET, AOF configuration and persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from sandbox.infra.ports import free_port
from sandbox.infra.redis import EmbeddedRedis

pytestmark = pytest.mark.integration


def test_set_get_round_trip(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("dir")["dir"] == str(redis_server.data_dir)
    finally:
        client.close()


def test_listens_on_loopback_only(redis_server: EmbeddedRedis, listening_addresses) -> None:
    assert listening_addresses(redis_server.port) == {"127.0.0.1"}


def test_aof_data_survives_stop_and_start(server_dir: Path, start_server, assert_nothing_left) -> None:
    server = start_server(EmbeddedRedis(server_dir, free_port()))
    client = redis.Redis.from_url(server.url)
    client.set("session:1", "alive")
    client.close()
    pid, ports = server.pid, server.ports
    server.stop()
    assert_nothing_left(server, pid, ports)
    assert server.aof_path.stat().st_size > 0

    server.start()
    client = redis.Redis.from_url(server.url)
    try:
        assert client.get("session:1") == b"alive"
    finally:
        client.close()
