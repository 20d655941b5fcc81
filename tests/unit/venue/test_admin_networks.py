"""Who may call the venue's ``/admin/*``: loopback plus ``VENUE_ADMIN_ALLOW`` (``gateway``: the default route's)."""

from __future__ import annotations

import ipaddress

from sandbox.venue.trading.admin import LOOPBACK, admin_networks, default_gateway

# /proc/net/route of a container on a docker bridge (addresses little-endian hex): default via 172.18.0.1
ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""


def test_default_gateway_is_read_from_the_route_table(tmp_path):
    table = tmp_path / "route"
    table.write_text(ROUTES)
    assert default_gateway(str(table)) == "172.18.0.1"
    table.write_text(ROUTES.splitlines()[0] + "\n" + ROUTES.splitlines()[2] + "\n")  # no default route
    assert default_gateway(str(table)) is None
    assert default_gateway(str(tmp_path / "absent")) is None


def test_allow_list_adds_the_gateway_alone_and_cidrs(tmp_path):
    table = tmp_path / "route"
    table.write_text(ROUTES)
    networks = [ipaddress.ip_network(n) for n in admin_networks("gateway, 10.1.0.0/16", str(table))]
    assert networks[: len(LOOPBACK)] == [ipaddress.ip_network(n) for n in LOOPBACK]
    assert ipaddress.ip_address("172.18.0.1") in networks[len(LOOPBACK)]
    assert ipaddress.ip_address("172.18.0.5") not in networks[len(LOOPBACK)]  # another container on the bridge
    assert ipaddress.ip_address("10.1.2.3") in networks[-1]
    assert admin_networks("", str(table)) == list(LOOPBACK)


def test_the_venue_process_guards_replay_control_like_the_trading_admin(app_client) -> None:
    """``/admin/replay`` (start, stop, send times) answers the admin networks only, as ``/admin/trading`` does."""
    from sandbox.venue.__main__ import DEFAULT_ASSETPAIRS, build_app

    app = build_app(DEFAULT_ASSETPAIRS, host="127.0.0.1", ws_port=0, session=None, seed=0, admin_allow="10.9.0.0/16")
    for path in ("/admin/replay", "/admin/replay/sends", "/admin/trading"):
        assert app_client(app, client=("192.168.7.7", 1)).request("GET", path).status_code == 403, path
        # allowed: answered by the route itself (/sends without its query parameter: 422, not 403)
        assert app_client(app, client=("10.9.3.4", 1)).request("GET", path).status_code in (200, 422), path
        assert app_client(app, client=("127.0.0.1", 1)).request("GET", path).status_code in (200, 422), path
