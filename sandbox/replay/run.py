"""Replaying a session through the running platform: venue -> ingest -> Kafka, then verifying.

The plain API behind ``aether-sandbox replay`` (tests and benchmarks use it too):

1. :func:`locate` finds the venue, the ingest and Kafka through the runtime's status;
2. :func:`replay` checks the fixture (bad input: :class:`~sandbox.errors.InvalidInput`
   naming file and line), tells the venue to load it (``POST /admin/replay``,
   started manually), points the ingest at its symbols and channels under a
   new run id (``POST /subscriptions``), starts the replay, waits until the
   venue has played it and the ingest has received every frame it was sent and
   the broker acknowledged every record, consumes the run's records back from
   Kafka and joins the per-record latencies;
3. the :class:`~sandbox.replay.verify.ReplayReport` it returns says what was lost,
   reordered or failed verification.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import CheckFailed, EnvironmentProblem, InvalidInput
from sandbox.replay.verify import ReplayReport, TopicCount, consume_run, end_to_end, expected_counts

#: Channels the ingest normalises (``spread`` exists in v1 only).
INGEST_CHANNELS = ("book", "trade", "ticker", "ohlc", "spread")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "kraken_replays"
SUFFIXES = ("", ".ndjson.gz", ".ndjson", ".jsonl.gz", ".jsonl")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Endpoints:
    """Where the running platform's pieces answer."""

    venue_url: str
    ingest_url: str
    kafka_bootstrap: str
    #: Reads a run back where the host cannot reach the broker's advertised address (the docker runtime's
    #: offline broker): ``consume_run``'s signature without the bootstrap. ``None``: consume from the host.
    kafka_counter: Callable[..., dict[str, TopicCount]] | None = None


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay and how."""

    session: str
    #: times real time; ``None`` = as fast as the platform takes it
    speed: float | None = 1.0
    #: leave the venue looping the session (timestamps rebased) after the verified pass
    loop: bool = False
    symbols: tuple[str, ...] = ()
    #: seconds allowed on top of the session's paced duration
    timeout_s: float = 120.0


class ServiceError(EnvironmentProblem):
    """A platform component answered with an error or not at all."""


def locate(sandbox: str = "default", runtime: str = "auto") -> Endpoints:
    """The running venue, ingest and Kafka of sandbox ``sandbox``, from the runtime's status."""
    from sandbox.runtimes.factory import RuntimeChoice, choose
    from sandbox.spec.loader import default_spec

    rt, _ = choose(default_spec(), RuntimeChoice(runtime), sandbox)
    status = rt.status()
    ports: dict[str, int] = {}
    problems = []
    for name in ("kraken-venue", "kraken-ws-ingest", "kafka"):
        c = next((c for c in status.components if c.name == name), None)
        if c is None or c.state != "running" or c.port is None:
            problems.append(f"{name}: {c.state if c else 'not in this sandbox'}{' (' + c.detail + ')' if c and c.detail else ''}")
        else:
            ports[name] = c.port
    if problems:
        raise EnvironmentProblem(
            f"sandbox '{sandbox}' is not running what a replay needs: " + "; ".join(problems),
            hint="run `aether-sandbox up kraken-ws-ingest` (it brings up kafka and the venue too)",
        )
    return Endpoints(
        f"http://127.0.0.1:{ports['kraken-venue']}",
        f"http://127.0.0.1:{ports['kraken-ws-ingest']}",
        f"127.0.0.1:{ports['kafka']}",
        getattr(rt, "kafka_counter", lambda: None)(),
    )


# -- HTTP -------------------------------------------------------------------------------------


def call(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Any:
    """One JSON request to a platform component; :class:`ServiceError` when it fails."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read())
        except ValueError:
            detail = {}
        error = ServiceError(f"{method} {url} answered {exc.code}: {detail.get('error') or exc.reason}")
        error.status = exc.code  # type: ignore[attr-defined]
        error.problems = detail.get("problems") or []  # type: ignore[attr-defined]
        raise error from exc
    except OSError as exc:
        raise ServiceError(f"{method} {url}: {exc}", hint="is the sandbox up? `aether-sandbox status`") from exc


# -- the session ------------------------------------------------------------------------------


def resolve_session(session: str, fixtures: Path = FIXTURES) -> Path:
    """The fixture file of ``session``: a shipped name, or a path."""
    candidates = [Path(session)] + [fixtures / f"{session}{s}" for s in SUFFIXES]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    names = sorted({p.name.split(".")[0] for p in fixtures.glob("*.ndjson*")}) if fixtures.is_dir() else []
    raise InvalidInput(
        f"no session {session!r}",
        hint=f"shipped sessions: {', '.join(names)}" if names else "give the path of a fixture file",
    )


def check_fixture(path: Path) -> Any:
    """The fixture's manifest, after a structural check naming ``file:line`` for every problem.

    Checksums are not checked here: a session whose recorded checksums are
    wrong is replayed, and the ingest's recovery is what the report shows.
    """
    from sandbox.replay.fixture import read_session
    from sandbox.replay.validate import validate_file

    report = validate_file(path, checksums=False)
    if not report.ok:
        raise InvalidInput(
            f"{path} is not a valid replay session ({len(report.problems)} problem(s))",
            problems=report.problems,
            hint="fix the lines listed, or re-import the capture (`sandbox.replay.importers`)",
        )
    return read_session(path).manifest


# -- the replay -------------------------------------------------------------------------------


def prepare(request: ReplayRequest) -> tuple[Path, Any]:
    """Check the request and its fixture before anything runs: ``(path, manifest)``, or :class:`InvalidInput`."""
    if request.speed is not None and request.speed <= 0:
        raise InvalidInput("--speed must be positive")
    path = resolve_session(request.session)
    manifest = check_fixture(path)
    if unknown := sorted(set(request.symbols) - set(manifest.symbols)):
        raise InvalidInput(f"{', '.join(unknown)} not in {path.name}", hint=f"it has {', '.join(manifest.symbols)}")
    return path, manifest


def replay(
    endpoints: Endpoints, request: ReplayRequest, *, progress: Progress | None = None,
    prepared: tuple[Path, Any] | None = None,
) -> ReplayReport:
    """Replay ``request.session`` through the platform at ``endpoints`` and verify it (see the module doc).

    ``prepared`` is :func:`prepare`'s answer when the caller checked the fixture already.
    """
    say = progress or (lambda _: None)
    path, manifest = prepared or prepare(request)
    symbols = list(request.symbols) or list(manifest.symbols)
    channels = [c for c in manifest.channels if c in INGEST_CHANNELS]
    depth = manifest.book_depth or 10
    run = f"replay-{uuid.uuid4().hex[:10]}"
    expected = expected_counts(manifest.symbol_counts, channels, symbols)

    say(f"venue: loading {path.name} ({manifest.api}, {manifest.frames} frames)")
    # A shipped session goes by name: a venue in a container has its own copy of the fixtures, not this path.
    session = path.name.split(".")[0] if path.parent == FIXTURES.resolve() else str(path)
    body = {"session": session, "symbols": symbols, "loop": False, "start": "manual"}
    body.update({"max": True} if request.speed is None else {"speed": request.speed})
    loaded = _venue(endpoints, "POST", "/admin/replay", body)
    say(f"ingest: subscribing {len(channels)} channel(s) x {len(symbols)} symbol(s) at depth {depth}, run {run}")
    sub = call("POST", f"{endpoints.ingest_url}/subscriptions", {
        "api": manifest.api, "channels": channels, "symbols": symbols, "depth": depth, "run": run,
        "fresh": True, "wait_s": 30,
    }, timeout=60)
    if not sub.get("subscribed"):
        raise ServiceError(f"the ingest did not subscribe: {sub.get('subscriptions')}", hint="see `aether-sandbox logs kraken-ws-ingest`")

    say("venue: playing")
    _venue(endpoints, "POST", "/admin/replay/start", None)
    paced = manifest.duration_s / request.speed if request.speed else 0.0
    _wait_played(endpoints, deadline=time.monotonic() + paced + request.timeout_s)
    stats = _wait_received(endpoints, deadline=time.monotonic() + request.timeout_s)
    status = _venue(endpoints, "GET", "/admin/replay", None)
    say(f"kafka: consuming {len(stats['run']['topics'])} topic(s)")
    if endpoints.kafka_counter is not None:
        counts = endpoints.kafka_counter(stats["run"]["topics"], run, expected=expected, timeout=request.timeout_s)
    else:
        counts = consume_run(endpoints.kafka_bootstrap, stats["run"]["topics"], run, expected=expected,
                             timeout=request.timeout_s)
    report = _report(path, manifest, run, request, symbols, channels, depth, loaded, status, stats, counts)
    report.latency = _latency(endpoints, stats, status)
    unstamped = [c for c in status.get("connections", ()) if c.get("stamped") is not None and c["stamped"] != c["frames_sent"]]
    if unstamped or report.latency.get("unjoined"):
        report.notes.append(
            f"end-to-end latency covers {report.latency.get('joined', 0)} records; {report.latency.get('unjoined', 0)} could "
            "not be joined to a venue send time" + (" (the venue did not stamp every frame it sent)" if unstamped else "")
        )
    if report.latency.get("first_send_ns") and report.latency.get("last_ack_ns"):
        span = (report.latency["last_ack_ns"] - report.latency["first_send_ns"]) / 1e9
        report.end_to_end_rate = round(report.records_consumed / span, 1) if span > 0 else None
    if request.loop:
        say("venue: looping the session from now on")
        body = {**body, "loop": True, "start": "subscribe"}
        _venue(endpoints, "POST", "/admin/replay", body)
        report.notes.append("the venue keeps looping the session (timestamps rebased); the verified pass is the first")
    return report


def _venue(endpoints: Endpoints, method: str, path: str, body: Any) -> Any:
    try:
        return call(method, f"{endpoints.venue_url}{path}", body, timeout=120)
    except ServiceError as exc:
        problems = getattr(exc, "problems", [])
        if getattr(exc, "status", None) == 422 and problems:
            raise InvalidInput(str(exc), problems=problems) from exc
        if getattr(exc, "status", None) == 404 and path.startswith("/admin"):
            raise ServiceError(
                f"the venue has no replay control ({exc})", hint="this venue build lacks sandbox.venue.control"
            ) from exc
        raise


def _wait_played(endpoints: Endpoints, deadline: float) -> dict[str, Any]:
    while True:
        status = _venue(endpoints, "GET", "/admin/replay", None)
        if status.get("state") == "finished":
            return status
        if time.monotonic() > deadline:
            raise CheckFailed(
                f"the venue had not finished the replay in time ({status.get('stats', {}).get('frames_played')} frames played)",
                hint="raise --timeout, or replay faster with --speed/--max",
            )
        time.sleep(0.1)


def _wait_received(endpoints: Endpoints, deadline: float) -> dict[str, Any]:
    """Wait until the ingest took every frame the venue sent it and the broker acknowledged every record.

    The venue's view is read first: once its queue for the ingest's connection
    is empty, every frame it will send is counted in ``frames_sent``, and the
    ingest (read after) must have received at least that many.
    """
    while True:
        status = _venue(endpoints, "GET", "/admin/replay", None)
        stats = call("GET", f"{endpoints.ingest_url}/stats")
        conn = stats.get("connection") or {}
        mine = next((c for c in status.get("connections", ()) if c.get("conn") == conn.get("conn_id")), None)
        caught_up = mine is not None and not mine.get("queued") and conn.get("frames", 0) >= mine["frames_sent"]
        if caught_up or time.monotonic() > deadline:
            flushed = call("POST", f"{endpoints.ingest_url}/flush", {"timeout_s": 30}, timeout=60)
            if not caught_up:
                flushed.setdefault("notes", []).append(
                    f"the ingest had received {conn.get('frames')} of the "
                    f"{mine['frames_sent'] if mine else '?'} frames sent on its connection when the wait timed out"
                )
            return flushed
        time.sleep(0.05)


def _report(path: Path, manifest: Any, run: str, request: ReplayRequest, symbols: list[str], channels: list[str],
            depth: int, loaded: dict[str, Any], status: dict[str, Any], stats: dict[str, Any], counts: dict) -> ReplayReport:
    r = stats["run"]
    vstats = status.get("stats") or {}
    connections = {v for v in (r.get("connections") or {}).values() if v is not None}
    report = ReplayReport(
        session=path.name, api=manifest.api, run=run, speed=request.speed, symbols=symbols, channels=channels, depth=depth,
        frames_played=int(vstats.get("frames_played") or 0),
        frames_sent=sum(c["frames_sent"] for c in status.get("connections", ()) if c.get("conn") in connections),
        # On one connection, compare like with like: everything the venue sent on it, everything the ingest took.
        frames_received=(stats.get("connection") or {}).get("frames", r["frames"]) if len(connections) == 1 else r["frames"],
        data_frames_received=r["data_frames"], topics=counts,
        checksums_verified=r["checksums_verified"], checksums_failed=r["checksums_failed"], crossed=r["crossed"],
        gaps=r["gaps"], missing=r["missing"], out_of_order=r["out_of_order"], dropped=r["dropped"],
        resubscribes=r["resubscribes"], resyncs_completed=r["resyncs_completed"], reconnects=r["reconnects"],
        invalid_frames=r["invalid_frames"], publish_errors=sum(t.get("errors", 0) for t in r["topics"].values()),
        venue_checksum_mismatches=int(vstats.get("checksum_mismatches") or 0),
        ingest_latency=r.get("latency_ms") or {}, session_duration_s=float(manifest.duration_s or 0.0),
    )
    book_records = sum(t.expected or 0 for name, t in counts.items() if ".book." in name)
    book_symbols = len({s for s in symbols if s in (manifest.symbol_counts.get("book") or {})})
    report.checksums_expected = book_records - (book_symbols if manifest.api == "v1" else 0) if "book" in channels else 0
    started, finished = vstats.get("started_at"), vstats.get("finished_at")
    if started and finished and finished > started:
        report.replay_duration_s = round(finished - started, 3)
        report.achieved_rate = round(report.frames_played / (finished - started), 1)
    if request.speed is not None and manifest.duration_s:
        report.requested_rate = round(len_frames(loaded) / manifest.duration_s * request.speed, 1)
    report.notes += stats.get("notes", [])
    return report


def len_frames(loaded: dict[str, Any]) -> int:
    """Market-data frames of the loaded session (what the venue plays)."""
    return int((loaded.get("replay") or {}).get("frames") or 0)


def _latency(endpoints: Endpoints, stats: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    acks = {}
    for topic in stats["run"]["topics"]:
        acks[topic] = call("GET", f"{endpoints.ingest_url}/acks?topic={urllib.request.quote(topic)}", timeout=60)
    conn_ids = {v for a in acks.values() for v in (a.get("connections") or {}).values() if v is not None}
    sends = {}
    for conn in conn_ids:
        try:
            sends[conn] = call("GET", f"{endpoints.venue_url}/admin/replay/sends?conn={conn}", timeout=60)["send_ns"]
        except ServiceError:
            continue
    return end_to_end(acks, sends)


def verdict(report: ReplayReport) -> None:
    """Raise :class:`CheckFailed` listing what went wrong, unless the replay verified."""
    failures = report.failures()
    if failures:
        raise CheckFailed(
            f"replay of {report.session} did not verify: " + "; ".join(failures[:5]) + (" ..." if len(failures) > 5 else ""),
            hint="the report above has the details; `aether-sandbox logs kraken-ws-ingest` has the ingest's side",
        )


__all__ = ["Endpoints", "ReplayRequest", "ServiceError", "call", "check_fixture", "locate", "prepare",
           "replay", "resolve_session", "verdict"]
