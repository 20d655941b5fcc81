"""Benchmark: end-to-end replay at --max (fixture -> venue -> ingest -> records counted in Kafka), stage by stage.

Budget enforcement is LIFTED here: no cgroup, no CPU quota, no memory limit
(the question is how fast the path can go, not whether it fits its budget;
benchmarks/ingest_budget.py answers that).  Everything runs on loopback, on
one Tansu broker, in one run:

1. raw produce rate: confluent-kafka alone, records of the replay's average
   size over as many topics as the replay uses (the broker's ceiling here);
2. venue alone: the venue's WebSocket replay at --max to a client that only
   receives (picows, as the ingest; and websockets' asyncio client, for the
   ratio): frames/s and the client's CPU per frame;
3. ingest processing alone: parse + book + checksum + normalise per frame,
   in-process, no network, no Kafka; with the parse done by msgspec (the
   ingest's) and by the standard library's json (the ratio);
4. the venue's market state: book frames applied as they play (eager, a
   paced replay) against deferred until a book is read (lazy, --max);
5. end to end: `aether-sandbox replay --max` through the real processes, the
   records counted back by consuming them; frames/s from the first frame the
   venue sent to the last record the broker acknowledged, with the CPU each
   process spent per frame, once per producer ``linger.ms`` asked for.

The session defaults to the 24-symbol depth-100 benchmark preset generated
for 600 s of market (about 124,000 frames) into a temporary directory, so the
rate is a sustained one, not a burst.  Usage:

    python benchmarks/replay_max.py [--duration 600] [--session NAME_OR_PATH] [--linger-ms 5 50 200] [--produce 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.ports import free_port
from sandbox.infra.procstats import process_tree
from sandbox.infra.process import PythonModuleServer
from sandbox.ingest.harness import _base_env, replay_platform
from sandbox.replay import run as replay_run
from sandbox.replay.fixture import read_session
from sandbox.replay.run import ReplayRequest, call, prepare, replay

TARGET = 50_000
PRESET = "bench-v2-book100-24sym"


def make_session(args: argparse.Namespace, tmp: Path) -> str:
    """The session to replay: a given one, or the preset generated for ``--duration`` seconds."""
    if args.session:
        return args.session
    from sandbox.replay.generator import PRESETS, generate_file

    path = tmp / f"{PRESET}-{args.duration:g}s.ndjson.gz"
    generate_file(dataclasses.replace(PRESETS[PRESET], duration_s=args.duration), path, name=path.name.split(".")[0])
    return str(path)


def raw_produce_rate(bootstrap: str, topics: list[str], size: int, count: int, linger_ms: int) -> float:
    """Messages/s for ``count`` records of ``size`` bytes round-robin over ``topics``, flush included."""
    from confluent_kafka import Producer

    payload = b"x" * size
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms, "enable.idempotence": True,
                         "acks": "all", "on_delivery": lambda err, msg: None})
    producer.produce(topics[0], payload)
    producer.flush()
    started = time.perf_counter()
    n = len(topics)
    for i in range(count):
        while True:
            try:
                producer.produce(topics[i % n], payload, b"k")
                break
            except BufferError:
                producer.poll(0.005)
        if i % 512 == 0:
            producer.poll(0)
    producer.flush(60)
    return count / (time.perf_counter() - started)


def _subscribe_all(manifest: Any) -> list[str]:
    out = []
    for channel in manifest.channels:
        if manifest.api == "v2":
            params: dict[str, Any] = {"channel": channel, "symbol": manifest.symbols}
            if channel == "book":
                params["depth"] = manifest.book_depth
            if channel == "trade":
                params["snapshot"] = False
            out.append(json.dumps({"method": "subscribe", "params": params}))
        else:
            sub = {"name": channel, **({"depth": manifest.book_depth} if channel == "book" else {})}
            out.append(json.dumps({"event": "subscribe", "pair": manifest.symbols, "subscription": sub}))
    return out


def _is_data(text: str) -> bool:
    return not ("heartbeat" in text[:32] or text.startswith('{"method"') or '"event":"subscriptionStatus"' in text
                or text.startswith('{"channel":"status"'))


async def _count_websockets(url: str, manifest: Any, start: Any) -> tuple[int, float, float]:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None, max_queue=1024, max_size=2**24) as ws:
        for request in _subscribe_all(manifest):
            await ws.send(request)
        await asyncio.sleep(0.5)
        start()
        n, first, cpu0, last = 0, None, 0.0, time.perf_counter()
        while time.perf_counter() - last < 2.0:
            try:
                text = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            if not _is_data(text):
                continue
            n += 1
            last = time.perf_counter()
            if first is None:
                first, cpu0 = last, time.thread_time()
        cpu = time.thread_time() - cpu0
        return n, (last - first) if first else 0.0, cpu


async def _count_picows(url: str, manifest: Any, start: Any) -> tuple[int, float, float]:
    from sandbox.ingest import wsclient

    state = {"n": 0, "first": None, "last": 0.0, "cpu0": 0.0}

    def on_message(text: Any, _: int) -> None:
        if not _is_data(text):
            return
        state["n"] += 1
        state["last"] = now = time.perf_counter()
        if state["first"] is None:
            state["first"], state["cpu0"] = now, time.thread_time()

    ws = await wsclient.connect(url, on_message)
    try:
        for request in _subscribe_all(manifest):
            await ws.send(request)
        await asyncio.sleep(0.5)
        start()
        state["last"] = time.perf_counter()
        while time.perf_counter() - state["last"] < 2.0:
            await asyncio.sleep(0.2)
        cpu = time.thread_time() - state["cpu0"]
    finally:
        await ws.close()
    first = state["first"]
    return state["n"], (state["last"] - first) if first else 0.0, cpu


def venue_alone(root: Path, session: Path, manifest: Any, client: str) -> dict[str, float]:
    """The venue replaying at --max to one client that only receives: frames/s and the client's CPU per frame."""
    import uvloop

    port, ws_port = free_port(), free_port()
    venue = PythonModuleServer(root / f"venue-alone-{client}", "kraken-venue", "sandbox.venue.control", port,
                          _base_env() | {"AETHER_PORT": str(port), "AETHER_WS_PORT": str(ws_port)})
    url = f"ws://127.0.0.1:{ws_port}{'/v2' if manifest.api == 'v2' else '/'}"
    with venue:
        call("POST", f"{venue.url}/admin/replay", {"session": str(session), "max": True, "start": "manual"}, timeout=300)
        cpu0 = _cpu([venue.pid])
        counter = _count_picows if client == "picows" else _count_websockets
        n, span, client_cpu = uvloop.run(counter(url, manifest, lambda: call("POST", f"{venue.url}/admin/replay/start")))
        venue_cpu = _cpu([venue.pid]) - cpu0
    return {"frames": n, "rate": n / span if span else 0.0, "client_us": client_cpu / max(n, 1) * 1e6,
            "venue_us": venue_cpu / max(n, 1) * 1e6}


def ingest_alone(frames: list[str], api: str, depth: int, parser: str) -> float:
    """Frames/s of the ingest's per-frame work on one core (thread CPU time), Kafka and network left out."""
    from sandbox.ingest import feed as feed_module
    from sandbox.ingest.feed import Feed
    from sandbox.ingest.normalise import Normaliser
    from sandbox.ingest.settings import IngestSettings
    from sandbox.ingest.stats import RunStats, Stats

    class NullPublisher:
        def produce(self, *args: object) -> None:
            pass

    kept = feed_module.parse_frame
    if parser == "json":
        feed_module.parse_frame = json.JSONDecoder(parse_float=str).decode
    try:
        best = float("inf")
        for _ in range(3):
            feed = Feed(IngestSettings(api_version=api, depth=depth), NullPublisher(), Stats(run=RunStats("bench")),  # type: ignore[arg-type]
                        Normaliser(api=api))
            started = time.thread_time()
            for frame in frames:
                feed.handle(frame, 0)
            best = min(best, time.thread_time() - started)
    finally:
        feed_module.parse_frame = kept
    return len(frames) / best


def market_state(session: Path) -> dict[str, float]:
    """CPU per frame of the venue's market state: applied as frames play (eager) or deferred (lazy, never read)."""
    from sandbox.replay.player import MarketState, ReplaySession

    loaded = ReplaySession.load(session)
    out = {}
    for label, lazy in (("eager", False), ("lazy", True)):
        state = MarketState(loaded.api, loaded.depths, lazy=lazy)
        started = time.thread_time()
        for frame in loaded.frames:
            state.apply(frame)
        out[label] = (time.thread_time() - started) / len(loaded.frames) * 1e6
    return out


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def end_to_end(root: Path, kafka: EmbeddedKafka, request: ReplayRequest, prepared: tuple[Path, Any], linger_ms: int) -> dict[str, Any]:
    """One verified `replay --max` through venue, ingest and Kafka, with each process's CPU during the play."""
    session, manifest = prepared
    with replay_platform(root / f"platform-linger{linger_ms}", kafka.bootstrap,
                         ingest_env={"INGEST_LINGER_MS": str(linger_ms)}) as platform:
        pids = {"venue": [platform.venue.pid], "ingest": [platform.ingest.pid],
                "kafka": [p.pid for p in process_tree(kafka.pid)] if kafka.pid else []}
        # CPU while playing: sampled around the play itself (the venue loads the session first, outside it)
        marks: dict[str, Any] = {}
        original_wait = replay_run._wait_received

        def timed_wait(endpoints: Any, deadline: float) -> dict[str, Any]:
            stats = original_wait(endpoints, deadline)
            marks["after"] = {k: _cpu(v) for k, v in pids.items()}
            marks["frames"] = stats["run"]["frames"]
            return stats

        original_venue = replay_run._venue

        def venue_call(endpoints: Any, method: str, path: str, body: Any) -> Any:
            if path == "/admin/replay/start":
                marks["before"] = {k: _cpu(v) for k, v in pids.items()}
                marks["load"] = os.getloadavg()[0]
            return original_venue(endpoints, method, path, body)

        replay_run._wait_received, replay_run._venue = timed_wait, venue_call
        try:
            report = replay(platform.endpoints, request, prepared=prepared)
        finally:
            replay_run._wait_received, replay_run._venue = original_wait, original_venue
    lat = report.latency
    span = (lat["last_ack_ns"] - lat["first_send_ns"]) / 1e9
    frames = marks.get("frames") or report.frames_received
    cpu = {k: (marks["after"][k] - marks["before"][k]) / frames * 1e6 for k in pids} if "before" in marks else {}
    return {"linger_ms": linger_ms, "report": report, "rate": report.data_frames_received / span, "span_s": span,
            "cpu_us": cpu, "load": marks.get("load")}


def _average_record_size(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-size-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        sizes = [len(m.value()) for m in consumer.consume(500, timeout=5) if m.error() is None]
    finally:
        consumer.close()
    return int(statistics.mean(sizes)) if sizes else 400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default="", help="shipped name or fixture path (default: the preset, generated)")
    parser.add_argument("--duration", type=float, default=600, help="seconds of market to generate for the preset")
    parser.add_argument("--produce", type=int, default=200_000, help="records for the raw produce rate")
    # The broker's CPU per record falls with the records per batch (Tansu, measured: about 24 / 11 / 4.5 us
    # per record at linger 5 / 50 / 200 ms and 20k records/s over 48 topics), hence the longest linger here.
    parser.add_argument("--linger-ms", type=int, nargs="+", default=[5, 50, 200],
                        help="the ingest's INGEST_LINGER_MS, one run each")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="aether-bench-replay-") as tmp:
        root = Path(tmp)
        request = ReplayRequest(make_session(args, root), speed=None, timeout_s=600)
        session, manifest = prepared = prepare(request)
        print(f"session {session.name}: {manifest.api}, {len(manifest.symbols)} symbols, depth {manifest.book_depth}, "
              f"{manifest.frames:,} frames; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        print("budget enforcement LIFTED for this benchmark: no cgroup, no CPU quota, no memory limit")
        frames = [r.frame for r in read_session(session).records() if r.dir == "recv"]
        depth = manifest.book_depth or 10
        ingest = {p: ingest_alone(frames, manifest.api, depth, p) for p in ("msgspec", "json")}
        state = market_state(session)
        venue = {c: venue_alone(root, session, manifest, c) for c in ("picows", "websockets")}
        with EmbeddedKafka(root / "kafka", free_port()) as kafka:
            runs = [end_to_end(root, kafka, request, prepared, linger) for linger in args.linger_ms]
            topics = sorted({t for r in runs for t in r["report"].topics})
            avg_size = _average_record_size(kafka.bootstrap, topics[0]) if topics else 400
            raw_topics = [f"bench.raw.{i}" for i in range(len(topics))]
            kafka.create_topics(raw_topics, partitions=1)
            produce_rate = raw_produce_rate(kafka.bootstrap, raw_topics, avg_size, args.produce, max(args.linger_ms))

    best = max(runs, key=lambda r: r["rate"])
    w = 66
    print()
    print(f"{'stage':{w}} {'rate':>16}")
    label = f"raw produce, confluent-kafka -> Tansu ({len(topics)} topics, {avg_size} B, linger {max(args.linger_ms)} ms)"
    print(f"{label:{w}} {produce_rate:>12,.0f} msg/s")
    for client, v in venue.items():
        label = f"venue alone at --max -> a {client} client that only receives"
        print(f"{label:{w}} {v['rate']:>9,.0f} frames/s"
              f"   (client {v['client_us']:.1f} us/frame, venue {v['venue_us']:.1f} us/frame CPU)")
    for p, rate in ingest.items():
        label = f"ingest alone, 1 core: {p} parse + book + checksum + normalise"
        print(f"{label:{w}} {rate:>9,.0f} frames/s   ({1e6 / rate:.1f} us/frame)")
    print(f"{'venue market state per frame: eager (paced) / lazy (--max)':{w}} {state['eager']:>8.1f} / {state['lazy']:.1f} us")
    for r in runs:
        cpu = " ".join(f"{k} {v:.1f}" for k, v in r["cpu_us"].items())
        label = f"end to end, linger {r['linger_ms']} ms: first venue send -> last broker ack"
        print(f"{label:{w}} {r['rate']:>9,.0f} frames/s"
              f"   (CPU us/frame: {cpu}; total {sum(r['cpu_us'].values()):.1f}; load {r['load'] or 0:.1f})")
    print()
    for r in runs:
        rep, lat = r["report"], r["report"].latency
        print(f"linger {r['linger_ms']} ms: verified={rep.ok} frames={rep.data_frames_received:,} "
              f"records={rep.records_consumed:,}/{rep.records_expected:,} checksums={rep.checksums_verified:,} "
              f"span={r['span_s']:.2f} s latency p50/p99/max={lat['p50']}/{lat['p99']}/{lat['max']} ms")
        for failure in rep.failures():
            print(f"  failure: {failure}")
    print()
    print("ratios (same run): "
          f"WebSocket receive websockets/picows CPU {venue['websockets']['client_us'] / venue['picows']['client_us']:.1f}x; "
          f"ingest msgspec/json parse {ingest['msgspec'] / ingest['json']:.2f}x; "
          f"venue state eager/lazy {state['eager'] / max(state['lazy'], 1e-3):.0f}x; "
          + (f"end to end linger {runs[-1]['linger_ms']}/{runs[0]['linger_ms']} ms {runs[-1]['rate'] / runs[0]['rate']:.2f}x"
             if len(runs) > 1 else ""))
    cpu = best["cpu_us"]
    total = sum(cpu.values())
    print(f"target {TARGET:,} frames/s end to end: {'met' if best['rate'] >= TARGET else 'NOT met'} "
          f"({best['rate']:,.0f} frames/s, linger {best['linger_ms']} ms)")
    if cpu:
        binding = max(cpu, key=cpu.get)  # type: ignore[arg-type]
        print(f"CPU per frame end to end: {total:.1f} us over {os.cpu_count()} cores -> at most "
              f"{(os.cpu_count() or 1) / total * 1e6:,.0f} frames/s if every core were free and perfectly shared; "
              f"the {binding} process is the largest share ({cpu[binding]:.1f} us/frame -> "
              f"{1e6 / cpu[binding]:,.0f} frames/s on one core)")
    print(json.dumps({
        "e2e_frames_per_s": {r["linger_ms"]: round(r["rate"]) for r in runs},
        "cpu_us_per_frame": {r["linger_ms"]: {k: round(v, 1) for k, v in r["cpu_us"].items()} for r in runs},
        "venue_alone_frames_per_s": {c: round(v["rate"]) for c, v in venue.items()},
        "client_cpu_us_per_frame": {c: round(v["client_us"], 2) for c, v in venue.items()},
        "ingest_alone_frames_per_s": {p: round(v) for p, v in ingest.items()},
        "venue_state_us_per_frame": {k: round(v, 2) for k, v in state.items()},
        "raw_produce_msgs_per_s": round(produce_rate), "latency_ms": best["report"].latency,
        "verified": all(r["report"].ok for r in runs), "load_average": os.getloadavg()[0],
    }, default=str))


if __name__ == "__main__":
    main()
