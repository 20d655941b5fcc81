"""The runtime-neutral environment renderer: placeholders as a runtime's address book resolves them."""

from __future__ import annotations

from sandbox.runtimes.env import AddressBook, fill
from sandbox.spec.checks import check_platform
from sandbox.spec.loader import default_spec


class Loopback(AddressBook):
    bind_host = "127.0.0.1"
    sandbox = "t"

    def __init__(self, running: dict[str, int]) -> None:
        self.running = running

    def has(self, component: str) -> bool:
        return component in self.running

    def postgres_dsn(self, database: str) -> str:
        return f"postgresql://u:p@127.0.0.1:{self.running['timescaledb']}/{database}"

    def host_port(self, component: str, port: str = "") -> str:
        return f"127.0.0.1:{self.running[component]}"

    def kraken_credentials_dir(self) -> str:
        return "/creds"

    def cache_dir(self, component: str) -> str:
        return f"/cache/{component}"

    def credential(self, name: str) -> str:
        return name


def test_an_optional_peer_is_its_url_when_it_runs_and_empty_when_it_does_not():
    with_feast = Loopback({"feast": 16566, "capital-allocator": 18003})
    without = Loopback({"capital-allocator": 18003})
    assert fill("{url_if_up:feast}", "risk-service", with_feast) == "http://127.0.0.1:16566"
    assert fill("{url_if_up:feast}", "risk-service", without) == ""
    assert fill("{url:capital-allocator}", "risk-service", without) == "http://127.0.0.1:18003"


def test_risk_service_reads_volatility_from_feast_only_when_feast_runs():
    spec = default_spec()
    assert spec.component("risk-service").env["RISK_FEATURE_SERVER_URL"] == "{url_if_up:feast}"
    assert "feast" not in spec.component("risk-service").depends_on  # optional: risk starts without it
    assert check_platform(spec) == []
