"""universe-service over HTTP: a real subprocess on embedded PostgreSQL, syncing from the venue simulator.

The venue is ``python -m sandbox.venue`` (its public REST API) serving an
AssetPairs file on a loopback port; tokens come from the real auth-service.
Covers the start-up sync, lookups by every spelling, fee tiers, idempotent
syncs with added / updated / delisted reports, the venue being down or
answering nonsense (503 / 502, data untouched), the background retry after a
start with the venue down, approvals with their audit trail, roles and revoked
tokens, two replicas keeping their caches coherent, and (with ``../shared``) a
field-by-field sync of real 2026 AssetPairs data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sandbox.infra.ports import free_port
from sandbox.infra.wait import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "fixtures" / "kraken" / "assetpairs.json"
SYMBOLS = ["ADA/EUR", "ETH/USD", "ETH/XBT", "SOL/USD", "XBT/USD", "XRP/USD"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------------------------------- venue


@dataclass
class Venue:
    """``python -m sandbox.venue`` serving one AssetPairs file on a fixed loopback port."""

    port: int
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, assetpairs: Path) -> Venue:
        """Start serving ``assetpairs`` (stops a running instance first); waits for /healthz."""
        self.stop()
        fd, name = tempfile.mkstemp(prefix="venue-", suffix=".log", dir=self.log_dir)
        os.close(fd)
        self.log_path = Path(name)
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sandbox.venue", "--assetpairs", str(assetpairs), "--port", str(self.port), "--session", ""],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        proc = self.process

        def ready() -> bool | str:
            if proc.poll() is not None:
                raise RuntimeError(f"venue exited with {proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError as exc:
                return str(exc)

        try:
            wait_until(ready, timeout=60, interval=0.05, what="venue /healthz")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL after 10 s)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture
def venue(service_log_dir: Path) -> Iterator[Venue]:
    """A venue on a free port, not started yet (``venue.start(path)``); stopped at teardown."""
    v = Venue(free_port(), service_log_dir)
    try:
        yield v
    finally:
        v.stop()


def write_pairs(path: Path, mutate: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """A copy of the project fixture, changed by ``mutate(result)``; numbers kept as raw tokens."""
    from sandbox.venue.public_rest import dumps_exact

    doc = json.loads(FIXTURE.read_bytes(), parse_float=Decimal)
    if mutate is not None:
        mutate(doc["result"])
    path.write_bytes(dumps_exact(doc))
    return path


# ----------------------------------------------------------------------------------------- service


class Api:
    """A thin client of one universe-service replica."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.http = httpx.Client(base_url=url, timeout=15)

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers=bearer(token or self.token))

    def post(self, path: str, token: str | None = None, body: Any = None) -> httpx.Response:
        return self.http.post(path, json=body, headers=bearer(token or self.token))

    def instrument(self, symbol: str, token: str | None = None) -> dict[str, Any]:
        resp = self.get(f"/v1/instruments/{quote(symbol)}", token)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def symbols(self, **params: Any) -> list[str]:
        resp = self.get("/v1/instruments", **params)
        assert resp.status_code == 200, resp.text
        return [i["symbol"] for i in resp.json()["items"]]

    def sync(self, token: str | None = None) -> httpx.Response:
        return self.post("/v1/sync", token)

    def audit(self, symbol: str, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
        resp = self.get(f"/v1/instruments/{quote(symbol)}/audit", token, **params)
        assert resp.status_code == 200, resp.text
        return resp.json()["items"]

    def runs(self) -> list[dict[str, Any]]:
        resp = self.get("/v1/sync/runs")
        assert resp.status_code == 200, resp.text
        return resp.json()["items"]

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


def quote(symbol: str) -> str:
    from urllib.parse import quote as q

    return q(symbol, safe="")


@pytest.fixture
def universe_db(postgres: Any) -> str:
    """A fresh database; its DSN."""
    name = f"universe_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    return postgres.dsn(name)


def universe_env(dsn: str, venue_url: str, **extra: str) -> dict[str, str]:
    return {
        "UNIVERSE_DATABASE_URL": dsn,
        "UNIVERSE_VENUE_URL": venue_url,
        "UNIVERSE_CACHE_POLL_S": "0.5",
        "UNIVERSE_SYNC_RETRY_MAX_S": "1",
        "UNIVERSE_SYNC_TIMEOUT_S": "3",
        **extra,
    }


@pytest.fixture
def synced(start_service: Any, venue: Venue, universe_db: str, admin_token: str) -> Api:
    """universe-service started against the project fixture (the start-up sync done)."""
    venue.start(FIXTURE)
    svc = start_service("universe", universe_env(universe_db, venue.url))
    return Api(svc.url, admin_token)


# ------------------------------------------------------------------------------------------- tests


def test_startup_sync_serves_every_field(synced: Api, make_user: Any) -> None:
    _, _, viewer = make_user("viewer")
    resp = synced.get("/v1/instruments", viewer)
    assert resp.status_code == 200
    page = resp.json()
    assert [i["symbol"] for i in page["items"]] == SYMBOLS and page["total"] == 6
    xbt = synced.instrument("XBT/USD", viewer)
    assert {k: xbt[k] for k in ("symbol", "altname", "pair_key", "base", "quote", "venue_base", "venue_quote")} == {
        "symbol": "XBT/USD", "altname": "XBTUSD", "pair_key": "XXBTZUSD", "base": "XBT", "quote": "USD",
        "venue_base": "XXBT", "venue_quote": "ZUSD",
    }
    assert (xbt["ordermin"], xbt["costmin"], xbt["tick_size"]) == ("0.0001", "0.5", "0.1")
    assert (xbt["pair_decimals"], xbt["lot_decimals"], xbt["cost_decimals"], xbt["lot_multiplier"]) == (1, 8, 5, 1)
    assert xbt["status"] == "online" and xbt["listed"] is True and xbt["tradable"] is False
    assert xbt["approval"] == {"state": "pending", "reason": None, "by": None, "at": None}
    assert xbt["fees"]["fee_volume_currency"] == "ZUSD"
    assert xbt["fees"]["taker"][3] == {"volume": "250000", "percent": "0.20"}  # raw token kept
    assert xbt["fees"]["maker"][-1] == {"volume": "10000000", "percent": "0.00"}
    assert len(xbt["fees"]["taker"]) == len(xbt["fees"]["maker"]) == 9
    assert synced.instrument("ADA/EUR")["status"] == "cancel_only"
    run = synced.runs()[0]
    assert (run["trigger"], run["outcome"], run["added"], run["total"]) == ("startup", "ok", 6, 6)
    assert synced.metric("universe_syncs_total", trigger="startup", outcome="ok") == 1
    assert synced.metric("universe_instruments", approval="pending") == 6


def test_lookup_by_every_spelling(synced: Api) -> None:
    for path in (
        "/v1/instruments/XBT%2FUSD",  # wsname, URL-encoded
        "/v1/instruments/XBT/USD",  # wsname as is
        "/v1/instruments/XBTUSD",  # altname
        "/v1/instruments/xbtusd",
        "/v1/instruments/XXBTZUSD",  # Kraken pair key
        "/v1/instruments/BTC%2FUSD",  # common alias
        "/v1/instruments/BTC-USD",
    ):
        resp = synced.get(path)
        assert resp.status_code == 200, (path, resp.text)
        assert resp.json()["pair_key"] == "XXBTZUSD"
        # the next lookups of a path take the kit's hot route: the same answer, headers included
        again = synced.get(path)
        assert (again.status_code, again.content) == (resp.status_code, resp.content)
        assert _headers(again) == _headers(resp)
    assert synced.get("/v1/instruments/XBT%2FUSD/fees").json()["pair_key"] == "XXBTZUSD"
    assert synced.get("/v1/instruments/XBT/USD/fees").json()["pair_key"] == "XXBTZUSD"


def _headers(resp: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in resp.headers.items() if k not in ("x-request-id", "date")]


def test_unknown_symbols_are_404(synced: Api) -> None:
    for path in ("/v1/instruments/DOGE%2FUSD", "/v1/instruments/XBT%2FUSD%2Fx", "/v1/instruments/" + "A" * 300,
                 "/v1/instruments/NOPE/fees", "/v1/instruments/NOPE/audit"):
        for _ in range(2):  # FastAPI's answer, then the hot route's
            resp = synced.get(path)
            assert resp.status_code == 404, (path, resp.text)
            assert resp.json()["error"] == "instrument_not_found"


def test_fee_tiers_for_fees_service(synced: Api, service_token: Any) -> None:
    token = service_token("fees-service")
    resp = synced.get("/v1/instruments/ETH%2FXBT/fees", token)
    assert resp.status_code == 200, resp.text
    fees = resp.json()
    assert (fees["symbol"], fees["pair_key"]) == ("ETH/XBT", "XETHXXBT")
    assert (fees["quote"], fees["cost_decimals"], fees["pair_decimals"]) == ("XBT", 10, 5)
    assert fees["taker"][0] == {"volume": "0", "percent": "0.26"} and len(fees["taker"]) == 9
    assert fees["maker"][-1] == {"volume": "10000000", "percent": "0.00"}
    parsed = json.loads(resp.content, parse_float=Decimal)
    assert Decimal(parsed["maker"][1]["percent"]) == Decimal("0.14")


def test_list_filters(synced: Api) -> None:
    assert synced.symbols(quote="USD") == ["ETH/USD", "SOL/USD", "XBT/USD", "XRP/USD"]
    assert synced.symbols(quote="ZEUR") == ["ADA/EUR"]
    assert synced.symbols(base="ETH") == ["ETH/USD", "ETH/XBT"]
    assert synced.symbols(status="post_only") == ["XRP/USD"]
    assert synced.symbols(limit=2, offset=1) == ["ETH/USD", "ETH/XBT"]
    assert synced.symbols(tradable="true") == []
    for bad in ({"limit": 0}, {"limit": 10**6}, {"approval": "maybe"}, {"listed": "perhaps"}, {"offset": -1}):
        resp = synced.get("/v1/instruments", **bad)
        assert resp.status_code == 422 and resp.json()["error"] == "validation_error", bad


def test_sync_is_idempotent_and_reports_changes(synced: Api, venue: Venue, tmp_path: Path) -> None:
    again = synced.sync()
    assert again.status_code == 200, again.text
    report = again.json()
    assert (report["added"], report["updated"], report["unchanged"], report["delisted"]) == (0, 0, 6, 0)
    assert report["trigger"] == "api" and report["actor"] == "admin" and report["outcome"] == "ok"

    def change(result: dict[str, Any]) -> None:
        result["XXBTZUSD"]["ordermin"] = "0.00005"
        result["XXBTZUSD"]["fees"][0] = [0, Decimal("0.25")]
        result["XETHZUSD"]["costmin"] = "0.50"  # the same value re-spelled: unchanged
        del result["XXRPZUSD"]
        result["DOTUSD"] = dict(result["SOLUSD"], altname="DOTUSD", wsname="DOT/USD", base="DOT", ordermin="0.6")
        result["SOLUSD"]["tick_size"] = "-1"  # invalid: skipped, neither updated nor delisted

    venue.start(write_pairs(tmp_path / "changed.json", change))
    report = synced.sync().json()
    assert (report["added"], report["updated"], report["unchanged"], report["delisted"]) == (1, 1, 3, 1)
    assert report["total"] == 6
    reason = "tick_size='-1' must be a finite, non-negative number"
    assert report["skipped"] == [{"pair_key": "SOLUSD", "reason": reason}]

    xbt = synced.instrument("XBT/USD")
    assert xbt["ordermin"] == "0.00005" and xbt["fees"]["taker"][0]["percent"] == "0.25"
    assert synced.instrument("ETH/USD")["costmin"] == "0.5"
    dot = synced.instrument("DOTUSD")
    assert dot["symbol"] == "DOT/USD" and dot["approval"]["state"] == "pending"
    xrp = synced.instrument("XRP/USD")
    assert xrp["listed"] is False and xrp["tradable"] is False
    assert synced.symbols(listed="true") == ["ADA/EUR", "DOT/USD", "ETH/USD", "ETH/XBT", "SOL/USD", "XBT/USD"]
    assert synced.symbols(listed="false") == ["XRP/USD"]

    updated = synced.audit("XBT/USD")[0]
    assert updated["action"] == "updated" and updated["actor"] == "sync:admin"
    assert updated["changes"]["ordermin"] == {"from": "0.0001", "to": "0.00005"}
    assert updated["changes"]["fees_taker"]["from"][0] == ["0", "0.26"]
    assert [e["action"] for e in synced.audit("XRP/USD")] == ["delisted", "listed"]

    venue.start(FIXTURE)  # XRP comes back, DOT goes
    report = synced.sync().json()
    # XBT changed back and XRP relisted; SOL was skipped last time, so its stored copy never changed
    assert (report["added"], report["updated"], report["unchanged"], report["delisted"]) == (0, 2, 4, 1)
    assert synced.instrument("XRP/USD")["listed"] is True
    assert synced.audit("XRP/USD")[0]["action"] == "relisted"
    assert synced.runs()[0]["updated"] == 2


def test_venue_down_is_503_and_changes_nothing(synced: Api, venue: Venue, universe_db: str) -> None:
    before = synced.get("/v1/instruments").json()
    venue.stop()
    resp = synced.sync()
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["error"] == "venue_unavailable" and "unreachable" in body["message"]
    assert body["detail"]["outcome"] == "failed"
    assert resp.headers["retry-after"] == "5"
    assert synced.get("/v1/instruments").json() == before
    run = synced.runs()[0]
    assert run["outcome"] == "failed" and "unreachable" in run["error"] and run["added"] == 0
    with psycopg.connect(universe_db) as conn:
        assert conn.execute("SELECT count(*) FROM instruments WHERE listed").fetchone()[0] == 6
    assert synced.metric("universe_syncs_total", trigger="api", outcome="failed") == 1


def test_venue_answering_nonsense_is_502_and_changes_nothing(synced: Api, venue: Venue, tmp_path: Path) -> None:
    before = synced.get("/v1/instruments").json()
    junk = tmp_path / "junk.json"
    junk.write_text('{"error": [], "result": {"XXBTZUSD": {"altname": "XBTUSD"}}}')
    venue.start(junk)
    resp = synced.sync()
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"] == "venue_bad_response" and "no usable pairs" in resp.json()["message"]
    assert synced.get("/v1/instruments").json() == before


def test_start_with_the_venue_down_then_retry(
    start_service: Any, venue: Venue, universe_db: str, admin_token: str
) -> None:
    svc = start_service("universe", universe_env(universe_db, venue.url))
    api = Api(svc.url, admin_token)
    assert api.http.get("/healthz").status_code == 200  # serves what it has; the venue is not a readiness gate
    assert api.symbols() == []
    runs = api.runs()  # newest first; background retries may already have run (and failed) too
    assert [r["outcome"] for r in runs] == ["failed"] * len(runs)
    assert [r["trigger"] for r in runs][-1] == "startup"
    venue.start(FIXTURE)
    wait_until(lambda: api.symbols() == SYMBOLS, timeout=15, interval=0.2, what="background sync after start-up")
    assert any(r["trigger"] == "retry" and r["outcome"] == "ok" for r in api.runs())


def test_decisions_roles_and_audit(synced: Api, make_user: Any) -> None:
    risk_name, _, risk = make_user("risk-officer")
    _, _, trader = make_user("trader")
    _, _, viewer = make_user("viewer")

    assert synced.http.get("/v1/instruments").status_code == 401
    assert synced.http.get("/v1/instruments").headers["www-authenticate"] == "Bearer"
    assert synced.post("/v1/instruments/XBTUSD/approve", viewer, {"reason": "looks fine"}).status_code == 403
    assert synced.post("/v1/instruments/XBTUSD/exclude", trader, {"reason": "looks bad"}).status_code == 403
    assert synced.sync(trader).status_code == 403
    assert synced.sync(risk).status_code == 403
    assert synced.get("/v1/instruments/XBTUSD/audit", trader).status_code == 403
    assert synced.get("/v1/sync/runs", trader).status_code == 403

    for body in (None, {}, {"reason": ""}, {"reason": "ok"}, {"reason": "x" * 501}, {"reason": "a\x00b c"},
                 {"reason": "fine reason", "extra": 1}, {"reason": 5}, [1]):
        resp = synced.post("/v1/instruments/XBTUSD/approve", risk, body)
        assert resp.status_code == 422 and resp.json()["error"] == "validation_error", body
    assert synced.post("/v1/instruments/NOPE/approve", risk, {"reason": "fine reason"}).status_code == 404

    resp = synced.post("/v1/instruments/XBT%2FUSD/approve", risk, {"reason": "deep book, low spread"})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["approval"]["state"] == "approved" and doc["approval"]["by"] == risk_name
    assert doc["approval"]["reason"] == "deep book, low spread" and doc["tradable"] is True
    assert synced.instrument("XBT/USD", viewer)["tradable"] is True  # cache refreshed at once
    assert synced.symbols(tradable="true") == ["XBT/USD"]
    # ADA/EUR approved but cancel_only at the venue: not tradable
    ada = synced.post("/v1/instruments/ADAEUR/approve", None, {"reason": "admin may decide too"}).json()
    assert ada["approval"]["state"] == "approved" and ada["tradable"] is False

    resp = synced.post("/v1/instruments/xbtusd/exclude", risk, {"reason": "  venue incident 2026-07-07  "})
    assert resp.status_code == 200 and resp.json()["approval"]["state"] == "excluded"
    assert resp.json()["approval"]["reason"] == "venue incident 2026-07-07"

    trail = synced.audit("XBT/USD", viewer)
    assert [e["action"] for e in trail] == ["excluded", "approved", "listed"]
    excluded, approved, listed = trail
    assert excluded["actor"] == risk_name
    assert (excluded["approval_before"], excluded["approval_after"]) == ("approved", "excluded")
    assert (approved["approval_before"], approved["approval_after"]) == ("pending", "approved")
    assert approved["reason"] == "deep book, low spread"
    assert listed["actor"] == "sync:startup" and listed["changes"]["ordermin"] == "0.0001"
    page = synced.audit("XBT/USD", limit=2)
    assert len(page) == 2
    rest = synced.get("/v1/instruments/XBT%2FUSD/audit", limit=2, before=page[-1]["id"]).json()
    assert [e["action"] for e in rest["items"]] == ["listed"] and rest["next_before"] is None
    assert synced.metric("universe_decisions_total", decision="approved") == 2


def test_approving_a_delisted_instrument_is_409(synced: Api, venue: Venue, tmp_path: Path) -> None:
    venue.start(write_pairs(tmp_path / "no_sol.json", lambda r: r.pop("SOLUSD")))
    assert synced.sync().json()["delisted"] == 1
    resp = synced.post("/v1/instruments/SOL%2FUSD/approve", None, {"reason": "bring it back"})
    assert resp.status_code == 409 and resp.json()["error"] == "instrument_delisted"
    assert synced.post("/v1/instruments/SOL%2FUSD/exclude", None, {"reason": "gone anyway"}).status_code == 200


def test_audit_trail_is_append_only(synced: Api, universe_db: str) -> None:
    with psycopg.connect(universe_db) as conn:
        for stmt in ("UPDATE instrument_audit SET actor = 'mallory'", "DELETE FROM instrument_audit",
                     "TRUNCATE instrument_audit CASCADE"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
            conn.rollback()
    assert len(synced.audit("ETH/USD")) == 1


def test_revoked_token_is_rejected(synced: Api, make_user: Any, auth_service: Any, service_token: Any) -> None:
    _, _, viewer = make_user("viewer")
    assert synced.get("/v1/instruments/XBTUSD", viewer).status_code == 200
    assert httpx.post(f"{auth_service.url}/v1/logout", headers=bearer(viewer), timeout=10).status_code == 204
    resp = synced.get("/v1/instruments/XBTUSD", viewer)
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    svc = service_token("fees-service")
    assert synced.get("/v1/instruments/XBTUSD/fees", svc).status_code == 200
    assert httpx.post(f"{auth_service.url}/v1/logout", headers=bearer(svc), timeout=10).status_code == 204
    assert synced.get("/v1/instruments/XBTUSD/fees", svc).status_code == 401
    forged = viewer[:-4] + ("AAAA" if not viewer.endswith("AAAA") else "BBBB")
    assert synced.get("/v1/instruments", forged).status_code == 401


def test_two_replicas_sync_once_and_stay_coherent(
    start_service: Any, venue: Venue, universe_db: str, admin_token: str, tmp_path: Path
) -> None:
    venue.start(FIXTURE)
    env = universe_env(universe_db, venue.url, UNIVERSE_CACHE_POLL_S="30")  # coherence via NOTIFY, not the poll
    a = Api(start_service("universe", env).url, admin_token)
    b = Api(start_service("universe", env).url, admin_token)
    runs = a.runs()
    assert sorted(r["added"] for r in runs if r["trigger"] == "startup") == [0, 6]
    assert a.symbols() == b.symbols() == SYMBOLS

    assert a.post("/v1/instruments/ETHUSD/approve", None, {"reason": "approved on replica A"}).status_code == 200
    wait_until(
        lambda: b.instrument("ETH/USD")["approval"]["state"] == "approved",
        timeout=5, interval=0.05, what="replica B sees the approval",
    )
    venue.start(write_pairs(tmp_path / "v2.json", lambda r: r["XETHZUSD"].update(ordermin="0.004")))
    assert b.sync().json()["updated"] == 1
    wait_until(lambda: a.instrument("ETH/USD")["ordermin"] == "0.004", timeout=5, interval=0.05,
               what="replica A sees B's sync")
    assert a.instrument("ETH/USD")["approval"]["state"] == "approved"  # a sync never touches decisions


def test_revision_poll_catches_changes_without_notify(
    start_service: Any, venue: Venue, universe_db: str, admin_token: str
) -> None:
    venue.start(FIXTURE)
    api = Api(start_service("universe", universe_env(universe_db, venue.url)).url, admin_token)
    # A change written straight to the database (no NOTIFY): the 0.5 s revision poll picks it up.
    with psycopg.connect(universe_db, autocommit=True) as conn:
        conn.execute("UPDATE instruments SET status = 'limit_only' WHERE pair_key = 'SOLUSD'")
        conn.execute("UPDATE universe_revision SET revision = revision + 1")
    wait_until(lambda: api.instrument("SOL/USD")["status"] == "limit_only", timeout=5, interval=0.1,
               what="poll-driven reload")
    assert api.metric("universe_cache_reloads_total", reason="poll") >= 1


def test_health_and_metrics_need_no_token(synced: Api) -> None:
    health = synced.http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["checks"]["instrument_cache"] == "ok" and health.json()["checks"]["database"] == "ok"
    text = synced.http.get("/metrics").text
    for name in ("universe_syncs_total", "universe_sync_instruments_total", "universe_cache_reloads_total",
                 "universe_instruments", "http_requests_total"):
        assert name in text
    assert synced.http.get("/openapi.json").json()["info"]["title"] == "universe-service"


@pytest.mark.shared
def test_sync_real_2026_assetpairs_field_by_field(
    shared_dir: Path, start_service: Any, venue: Venue, universe_db: str, admin_token: str
) -> None:
    path = shared_dir / "kraken-conformance" / "flashbook_kraken_rest_assetpairs_5pairs.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    raw = json.loads(path.read_bytes(), parse_float=Decimal)["result"]
    venue.start(path)  # served as-is from ../shared, never copied into the project
    api = Api(start_service("universe", universe_env(universe_db, venue.url)).url, admin_token)
    assert api.symbols() == ["ETH/USD", "SOL/USD", "XBT/USD", "XDG/USD", "XRP/USD"]
    for key, entry in raw.items():
        got = api.instrument(entry["wsname"])
        assert got["pair_key"] == key and got["altname"] == entry["altname"]
        assert (got["venue_base"], got["venue_quote"]) == (entry["base"], entry["quote"])
        for name in ("ordermin", "costmin", "tick_size"):
            assert got[name] == entry[name], (key, name)  # exact strings: "0.0000001", "0.00005"
        for name in ("pair_decimals", "lot_decimals", "cost_decimals", "lot_multiplier", "status"):
            assert got[name] == entry[name], (key, name)
        assert got["fees"]["fee_volume_currency"] == entry["fee_volume_currency"]
        fees = api.get(f"/v1/instruments/{key}/fees").json()
        for side, kraken in (("taker", "fees"), ("maker", "fees_maker")):
            assert len(fees[side]) == 12
            assert [[Decimal(t["volume"]), Decimal(t["percent"])] for t in fees[side]] == entry[kraken]
            assert [t["percent"] for t in fees[side]] == [format(p, "f") for _, p in entry[kraken]]
    assert api.instrument("XDG/USD")["tick_size"] == "0.0000001"
    assert api.instrument("DOGE/USD")["pair_key"] == "XDGUSD"
    assert api.sync().json()["unchanged"] == 5
