"""Doctor's verdict: which runtimes can run here, and which ``auto`` would pick."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from sandbox.doctor import checks as c
from sandbox.spec.models import PlatformSpec

RUNTIMES = ("docker", "local")


@dataclass
class DoctorReport:
    """Every check, and per runtime whether it can run on this machine."""

    checks: list[c.Check]
    runtimes: dict[str, bool]
    auto: str | None
    """The runtime ``--runtime auto`` picks, or ``None`` when none can run."""
    reason: str

    def to_dict(self) -> dict:
        """A JSON-ready dictionary."""
        return asdict(self)


def run_doctor(spec: PlatformSpec) -> DoctorReport:
    """Run every check concurrently and judge the runtimes."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [
            pool.submit(c.check_engine),
            pool.submit(c.check_compose),
            pool.submit(c.check_images, spec),
            pool.submit(c.check_ports, spec),
            pool.submit(c.check_debootstrap),
            pool.submit(c.check_cgroups),
            pool.submit(c.check_binaries),
            pool.submit(c.check_feast),
        ]
        results: list[c.Check] = []
        for future in futures:
            value = future.result()
            results.extend(value if isinstance(value, list) else [value])
    runtimes = {
        name: all(check.status is not c.Status.FAIL for check in results if name in check.needed_by)
        for name in RUNTIMES
    }
    if runtimes["docker"]:
        auto, reason = "docker", "a Docker engine answers and its images are present"
    elif runtimes["local"]:
        blockers = [check.name for check in results if "docker" in check.needed_by and check.status is c.Status.FAIL]
        auto, reason = "local", "docker runtime unavailable (" + ", ".join(blockers) + "); embedded binaries present"
    else:
        auto, reason = None, "neither runtime can run: see the failed checks"
    return DoctorReport(results, runtimes, auto, reason)
