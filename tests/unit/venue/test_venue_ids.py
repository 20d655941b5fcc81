"""Order and trade identifiers: deterministic per seed and epoch, never reissued by one venue or a restarted one."""

from __future__ import annotations

import os
import subprocess
import sys

from sandbox.venue.trading.orders import IdFactory
from sandbox.venue.trading.venue import TradingVenue


def _draw(ids: IdFactory, n: int = 50) -> list[str]:
    return [ids.order_txid() for _ in range(n)] + [ids.trade_txid() for _ in range(n)]


def test_same_seed_and_epoch_same_ids_other_epoch_other_ids() -> None:
    assert _draw(IdFactory(7)) == _draw(IdFactory(7))
    assert _draw(IdFactory(7, epoch=123)) == _draw(IdFactory(7, epoch=123))
    assert not set(_draw(IdFactory(7))) & set(_draw(IdFactory(7, epoch=123)))


def test_a_reset_continues_the_factory_it_replaces(catalog, clock) -> None:
    """After /admin/reset with the same seed the OMS still holds the old txids: none may come again."""
    venue = TradingVenue(catalog, seed=42, clock=clock)
    before = _draw(venue.ids)
    trade_number = venue.ids.trade_id()
    venue.reset()
    after = _draw(venue.ids)
    assert not set(before) & set(after)
    assert venue.ids.trade_id() > trade_number


def test_two_venue_processes_of_one_seed_issue_different_ids() -> None:
    """The venue's process picks a new id epoch at each start (a restart must not collide with the OMS's rows)."""
    code = ("from sandbox.venue.__main__ import main; import sys, unittest.mock as m, uvicorn\n"
            "with m.patch.object(uvicorn, 'run', lambda app, **kw: print(app.state.trading.summary()['id_epoch'], "
            "app.state.trading.ids.order_txid())):\n"
            "    main(['--session', '', '--seed', '5'])\n")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
            for _ in range(2)]
    (epoch1, txid1), (epoch2, txid2) = (r.split() for r in runs)
    assert epoch1 != epoch2 and txid1 != txid2
    pinned = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                             env={**os.environ, "VENUE_ID_EPOCH": "99"}).stdout for _ in range(2)]
    assert pinned[0] == pinned[1] and pinned[0].startswith("99 ")
