"""free_port: listening ports picked where outgoing connections never take theirs."""

from __future__ import annotations

import socket
from collections import deque
from pathlib import Path

from sandbox.infra import ports
from sandbox.infra.ports import PICK_FROM, free_port


def test_ports_come_from_outside_the_ephemeral_range_and_are_free() -> None:
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    picked = [free_port() for _ in range(300)]
    assert len(set(picked)) == len(picked)  # not handed out twice in a row
    if ports._pick_range() is not None:
        assert all(p >= PICK_FROM and not low <= p <= high for p in picked)
    for port in picked[:20]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))


def test_a_held_port_is_not_handed_out(monkeypatch) -> None:
    monkeypatch.setattr(ports, "_handed_out", deque(maxlen=16))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        monkeypatch.setattr(ports, "_pick_range", lambda: (taken, taken + 1))
        assert free_port() == taken + 1  # the only free one of the two
        assert free_port() not in (taken, taken + 1)  # both spent: the kernel picks


def test_without_a_usable_range_the_kernel_picks(monkeypatch) -> None:
    monkeypatch.setattr(ports, "_pick_range", lambda: None)
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
