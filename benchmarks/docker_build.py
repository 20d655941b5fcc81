"""How long the offline image build takes: cold, and cached (target: cached rebuild <= 60 s).

    python benchmarks/docker_build.py                # cold, then cached (median of 3)
    python benchmarks/docker_build.py --cached-only  # only the cached rebuild of the real image set

Cold means nothing reused: a fresh debootstrap into an empty cache directory,
a fresh ``docker import`` and builds with no layer cache.  So as not to take
away the images a running sandbox (or another test run) uses, the cold build
uses its own tags (``aether-sandbox-bench/...``) and cache directory, which are
removed afterwards; a fresh import gives the base a new ID, so Docker's layer
cache cannot reuse anything of the real set.  The cached figure rebuilds the
real set (``aether-sandbox images build --offline``) after one warm-up build.

Needs a Docker engine, root (debootstrap) and deb.debian.org and PyPI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.runtimes.docker.build import BuildReport, build_images  # noqa: E402
from sandbox.spec.loader import default_spec  # noqa: E402
from sandbox.spec.models import PlatformSpec  # noqa: E402

BENCH_PREFIX = "aether-sandbox-bench/"
BENCH_BASE = BENCH_PREFIX + "debian-offline:bookworm"


def bench_spec(spec: PlatformSpec) -> PlatformSpec:
    """``spec`` with every offline image renamed into the benchmark's namespace."""
    components = []
    for c in spec.components:
        if c.images is not None and c.images.offline:
            renamed = c.images.offline.replace("aether-sandbox/", BENCH_PREFIX, 1)
            c = c.model_copy(update={"images": c.images.model_copy(update={"offline": renamed})})
        components.append(c)
    return spec.model_copy(update={"components": components})


def remove_bench_images() -> None:
    """Remove every image in the benchmark's namespace (and, with them, their intermediate layers)."""
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True, check=True)
    tags = [t for t in out.stdout.split() if t.startswith(BENCH_PREFIX)]
    if tags:
        subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True, check=False)


def show(label: str, report: BuildReport) -> None:
    print(f"{label}: {report.seconds:.1f} s")
    for image in report.images:
        print(f"  {image.name:48} {image.status:7} {image.seconds:7.1f} s {image.size_bytes / 2**20:7.0f} MiB")


def cold_and_cached(progress) -> None:
    spec = bench_spec(default_spec())
    cache = Path(tempfile.mkdtemp(prefix="aether-bench-cache-"))
    previous = os.environ.get("AETHER_SANDBOX_CACHE")
    os.environ["AETHER_SANDBOX_CACHE"] = str(cache)
    try:
        remove_bench_images()
        cold = build_images(spec, offline=True, progress=progress, base_tag=BENCH_BASE)
        show("cold offline build (empty cache, no layer cache)", cold)
        cached = build_images(spec, offline=True, base_tag=BENCH_BASE)
        show("cached offline rebuild (same inputs)", cached)
        print(f"cold {cold.seconds:.1f} s, cached {cached.seconds:.1f} s, ratio {cold.seconds / max(cached.seconds, 0.1):.0f}x")
    finally:
        remove_bench_images()
        shutil.rmtree(cache, ignore_errors=True)
        if previous is None:
            os.environ.pop("AETHER_SANDBOX_CACHE", None)
        else:
            os.environ["AETHER_SANDBOX_CACHE"] = previous


def cached_only(runs: int) -> None:
    spec = default_spec()
    warm = build_images(spec, offline=True)
    print(f"warm-up build of the real offline set: {warm.seconds:.1f} s "
          f"({sum(not i.cached for i in warm.images)} image(s) rebuilt)")
    times = []
    for _ in range(runs):
        report = build_images(spec, offline=True)
        times.append(report.seconds)
        if not all(i.cached for i in report.images):
            print("  note: an image was rebuilt (its inputs changed during the run)")
    print(f"cached offline rebuild, median of {runs}: {statistics.median(times):.1f} s "
          f"(runs: {', '.join(f'{t:.1f}' for t in times)}; target <= 60 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cached-only", action="store_true", help="only the cached rebuild of the real image set")
    parser.add_argument("--runs", type=int, default=3, help="cached rebuilds to take the median of")
    parser.add_argument("--quiet", action="store_true", help="no build progress lines")
    args = parser.parse_args()
    started = time.monotonic()
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.1f} ({os.cpu_count()} CPUs)")
    progress = None if args.quiet else (lambda line: print(f"  [{time.monotonic() - started:6.1f}s] {line}", flush=True))
    if not args.cached_only:
        cold_and_cached(progress)
    cached_only(args.runs)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
