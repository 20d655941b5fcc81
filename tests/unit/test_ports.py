"""free_port: listening ports picked where outgoing connections never take theirs, never twice at once."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from sandbox.infra import ports
from sandbox.infra.ports import PICK_FROM, free_port

PICK_200 = "import json; from sandbox.infra.ports import free_port; print(json.dumps([free_port() for _ in range(200)]))"


def test_ports_come_from_outside_the_ephemeral_range_and_are_free(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ports, "registry_path", lambda: tmp_path / "ports")
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    picked = [free_port() for _ in range(300)]
    assert len(set(picked)) == len(picked)
    if ports._pick_range() is not None:
        assert all(p >= PICK_FROM and not low <= p <= high for p in picked)
        assert {int(e.split("@")[0]) for e in (tmp_path / "ports").read_text().split()} == set(picked)
    for port in picked[:20]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))


def test_processes_picking_at_once_never_get_the_same_port() -> None:
    procs = [subprocess.Popen([sys.executable, "-c", PICK_200], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    every = [port for result in results for port in result]
    assert len(every) == 800 and len(set(every)) == 800


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_held_port_is_not_handed_out(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ports, "registry_path", lambda: tmp_path / "ports")
    # Two neighbours outside the ephemeral range (where no outgoing connection takes one meanwhile, as a
    # kernel-picked neighbour could on a busy CI machine), both free now; the first is then held.
    span = ports._pick_range() or (PICK_FROM, 65_535)
    taken = next(p for p in range(span[0] + 1000, span[1]) if _bindable(p) and _bindable(p + 1))
    with socket.socket() as held:
        held.bind(("127.0.0.1", taken))
        held.listen()
        monkeypatch.setattr(ports, "_pick_range", lambda: (taken, taken + 1))
        assert free_port() == taken + 1  # the only free one of the two
        assert free_port() not in (taken, taken + 1)  # both spent: the kernel picks


def test_expired_entries_are_forgotten(monkeypatch, tmp_path: Path) -> None:
    registry = tmp_path / "ports"
    monkeypatch.setattr(ports, "registry_path", lambda: registry)
    registry.write_text("30001@0\n30002@9999999999\ngarbage\n")
    monkeypatch.setattr(ports, "_pick_range", lambda: (30001, 30002))
    assert free_port() == 30001  # handed out in 1970: long expired; 30002 is held
    assert sorted(int(e.split("@")[0]) for e in registry.read_text().split()) == [30001, 30002]


def test_without_a_usable_range_the_kernel_picks(monkeypatch) -> None:
    monkeypatch.setattr(ports, "_pick_range", lambda: None)
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
