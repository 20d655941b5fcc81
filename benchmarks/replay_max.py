"""Benchmark: end-to-end replay at --max (fixture -> venue -> ingest -> records counted in Kafka), stage by stage.

Budget enforcement is LIFTED here: no cgroup, no CPU quota, no memory limit
(the question is how fast the path can go, not whether it fits its budget;
benchmarks/ingest_budget.py answers that).  Everything runs on loopback.

Measured in one run, on one Tansu broker:

1. raw produce rate: confluent-kafka alone, records of the replay's average
   size over as many topics as the replay uses (the broker's ceiling here);
2. venue alone: the venue's WebSocket server replaying the session at --max
   to a client that only counts frames (the feed's ceiling);
3. ingest processing alone: parse + book + checksum + normalise per frame,
   in-process, no network, no Kafka (one core's worth of ingest CPU);
4. end to end: `aether-sandbox replay --max` through the real processes, the
   records counted back by consuming; frames/s from the first frame the venue
   sent to the last record the broker acknowledged, and latency percentiles.

The binding stage is the slowest of 2-4.  Usage:

    python benchmarks/replay_max.py [--session bench-v2-book100-24sym] [--runs 2] [--produce 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.ports import free_port
from sandbox.ingest.harness import PythonProcess, _base_env, replay_platform
from sandbox.replay.fixture import read_session
from sandbox.replay.run import ReplayRequest, call, prepare, replay


def raw_produce_rate(bootstrap: str, topics: list[str], size: int, count: int) -> float:
    """Messages/s for ``count`` records of ``size`` bytes round-robin over ``topics``, flush included."""
    from confluent_kafka import Producer

    payload = b"x" * size
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True, "acks": "all",
                         "on_delivery": lambda err, msg: None})
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


def venue_alone(root: Path, session: Path, manifest) -> tuple[float, int]:
    """Frames/s the venue sends at --max to a client that only counts them."""
    from websockets.asyncio.client import connect

    port, ws_port = free_port(), free_port()
    venue = PythonProcess(root / "venue-alone", "kraken-venue", "sandbox.venue.control", port,
                          _base_env() | {"AETHER_PORT": str(port), "AETHER_WS_PORT": str(ws_port)})

    async def count() -> tuple[float, int]:
        call("POST", f"{venue.url}/admin/replay", {"session": str(session), "max": True, "start": "manual"})
        path = "/v2" if manifest.api == "v2" else "/"
        async with connect(f"ws://127.0.0.1:{ws_port}{path}", compression=None, max_queue=1024) as ws:
            for channel in manifest.channels:
                if manifest.api == "v2":
                    params = {"channel": channel, "symbol": manifest.symbols}
                    if channel == "book":
                        params["depth"] = manifest.book_depth
                    if channel == "trade":
                        params["snapshot"] = False
                    await ws.send(json.dumps({"method": "subscribe", "params": params}))
                else:
                    sub = {"name": channel, **({"depth": manifest.book_depth} if channel == "book" else {})}
                    await ws.send(json.dumps({"event": "subscribe", "pair": manifest.symbols, "subscription": sub}))
            await asyncio.sleep(0.5)
            call("POST", f"{venue.url}/admin/replay/start")
            n, first, last = 0, None, time.perf_counter()
            while time.perf_counter() - last < 2.0:
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                if "heartbeat" in text[:32] or text.startswith('{"method"') or '"event":"subscriptionStatus"' in text:
                    continue
                n += 1
                last = time.perf_counter()
                first = first or last
            return (n / (last - first) if first and last > first else 0.0), n

    with venue:
        return asyncio.run(count())


def ingest_alone(session: Path, api: str, depth: int) -> float:
    """Frames/s of the ingest's per-frame work on one core (thread CPU time), Kafka and network left out."""
    from sandbox.ingest.feed import Feed
    from sandbox.ingest.normalise import Normaliser
    from sandbox.ingest.settings import IngestSettings
    from sandbox.ingest.stats import RunStats, Stats

    frames = [r.frame for r in read_session(session).records() if r.dir == "recv"]

    class NullPublisher:
        def produce(self, *args: object) -> None:
            pass

    best = float("inf")
    for _ in range(3):
        feed = Feed(IngestSettings(api_version=api, depth=depth), NullPublisher(), Stats(run=RunStats("bench")),  # type: ignore[arg-type]
                    Normaliser(api=api))
        started = time.thread_time()
        for frame in frames:
            feed.handle(frame, 0)
        best = min(best, time.thread_time() - started)
    return len(frames) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default="bench-v2-book100-24sym", help="shipped name or fixture path")
    parser.add_argument("--runs", type=int, default=2, help="end-to-end runs (the best is reported)")
    parser.add_argument("--produce", type=int, default=200_000, help="records for the raw produce rate")
    parser.add_argument("--linger-ms", type=int, default=5, help="the ingest's INGEST_LINGER_MS")
    args = parser.parse_args()

    request = ReplayRequest(args.session, speed=None, timeout_s=300)
    session, manifest = prepare(request)
    print(f"session {session.name}: {manifest.api}, {len(manifest.symbols)} symbols, depth {manifest.book_depth}, "
          f"{manifest.frames:,} frames; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print("budget enforcement LIFTED for this benchmark: no cgroup, no CPU quota, no memory limit")
    with tempfile.TemporaryDirectory(prefix="aether-bench-replay-") as tmp:
        root = Path(tmp)
        with EmbeddedKafka(root / "kafka", free_port()) as kafka:
            ingest_rate = ingest_alone(session, manifest.api, manifest.book_depth or 10)
            venue_rate, venue_frames = venue_alone(root, session, manifest)
            runs = []
            env = {"INGEST_LINGER_MS": str(args.linger_ms)}
            with replay_platform(root / "platform", kafka.bootstrap, ingest_env=env) as platform:
                for _ in range(args.runs):
                    report = replay(platform.endpoints, request, prepared=(session, manifest))
                    runs.append(report)
            topics = sorted({t for r in runs for t in r.topics})
            avg_size = _average_record_size(kafka.bootstrap, topics[0]) if topics else 400
            kafka.create_topics([f"bench.raw.{i}" for i in range(len(topics))], partitions=1)
            produce_rate = raw_produce_rate(kafka.bootstrap, [f"bench.raw.{i}" for i in range(len(topics))], avg_size, args.produce)

    best = max(runs, key=lambda r: r.end_to_end_rate or 0)
    e2e_frames = best.data_frames_received / ((best.latency["last_ack_ns"] - best.latency["first_send_ns"]) / 1e9)
    print()
    print(f"{'stage':58} {'rate':>16}")
    print(f"{'raw produce, confluent-kafka -> Tansu (' + str(len(topics)) + ' topics, ' + str(avg_size) + ' B)':58} {produce_rate:>12,.0f} msg/s")
    print(f"{'venue alone: WebSocket replay at --max to a counting client':58} {venue_rate:>9,.0f} frames/s")
    print(f"{'ingest alone: parse+book+checksum+normalise, 1 core':58} {ingest_rate:>9,.0f} frames/s")
    print(f"{'end to end: first venue send -> last broker ack':58} {e2e_frames:>9,.0f} frames/s")
    print(f"{'  records counted in Kafka per second (same span)':58} {best.end_to_end_rate or 0:>8,.0f} records/s")
    print()
    for i, r in enumerate(runs, 1):
        lat = r.latency
        print(f"run {i}: verified={r.ok} frames={r.data_frames_received:,} records={r.records_consumed:,}/{r.records_expected:,} "
              f"checksums={r.checksums_verified:,} e2e={r.end_to_end_rate or 0:,.0f} rec/s venue={r.achieved_rate or 0:,.0f} frames/s "
              f"latency p50/p99/max={lat['p50']}/{lat['p99']}/{lat['max']} ms")
    stages = {"venue (WebSocket replay)": venue_rate, "ingest (per-frame Python work)": ingest_rate,
              "Kafka produce": produce_rate}
    binding = min(stages, key=stages.get)  # type: ignore[arg-type]
    print()
    print(f"target 50,000 frames/s end to end: {'met' if e2e_frames >= 50_000 else 'NOT met'} ({e2e_frames:,.0f} frames/s)")
    print(f"slowest stage measured alone: {binding} at {stages[binding]:,.0f}/s; the end-to-end figure is lower because "
          f"the venue and the ingest share {os.cpu_count()} cores with Tansu and each other")
    print(json.dumps({"e2e_frames_per_s": round(e2e_frames), "e2e_records_per_s": best.end_to_end_rate,
                      "venue_alone_frames_per_s": round(venue_rate), "ingest_alone_frames_per_s": round(ingest_rate),
                      "raw_produce_msgs_per_s": round(produce_rate), "latency_ms": best.latency,
                      "verified": all(r.ok for r in runs), "median_e2e_records_per_s": statistics.median(
                          r.end_to_end_rate or 0 for r in runs)}))


def _average_record_size(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-size", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        sizes = [len(m.value()) for m in consumer.consume(500, timeout=5) if m.error() is None]
    finally:
        consumer.close()
    return int(statistics.mean(sizes)) if sizes else 400


if __name__ == "__main__":
    main()
