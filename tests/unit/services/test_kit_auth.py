"""Token verification and role checks with a local key and fakeredis (no servers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Annotated, Any

import fakeredis
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from sandbox.services.kit import CurrentPrincipal, KitSettings, Principal, TokenVerifier, create_service_app, require_roles
from sandbox.services.kit.auth import InvalidToken, session_key

KID = "test-key"


def _jwk(key: Ed25519PrivateKey, kid: str = KID) -> dict[str, Any]:
    jwk = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}


KEY = Ed25519PrivateKey.generate()
JWKS = {"keys": [_jwk(KEY)]}


def make_token(
    *, key: Ed25519PrivateKey = KEY, kid: str = KID, roles: list[str] | None = None, sid: str = "s1",
    exp_in: int = 300, alg: str = "EdDSA", **overrides: Any,
) -> str:
    now = int(time.time())
    claims = {
        "iss": "aether-auth", "aud": "aether", "sub": "alice", "roles": roles if roles is not None else ["trader"],
        "sid": sid, "kind": "user", "scope": [], "iat": now, "exp": now + exp_in, "typ": "access", **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def verify(token: str, verifier: TokenVerifier | None = None) -> Principal:
    return asyncio.run((verifier or TokenVerifier(keys=JWKS)).verify(token))


def test_a_valid_token_gives_its_principal() -> None:
    p = verify(make_token(roles=["trader", "viewer"]))
    assert (p.subject, p.roles, p.sid, p.kind, p.scopes) == ("alice", ("trader", "viewer"), "s1", "user", ())


REASONS = {"expired", "forged: other key, same kid", "unknown kid", "audience", "issuer", "not an access token",
           "no sid", "roles not a list", "bad kind", "garbage", "empty", "HS256 with the kid"}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (make_token(exp_in=-60), "expired"),
        (make_token(key=Ed25519PrivateKey.generate()), "forged: other key, same kid"),
        (make_token(kid="unknown"), "unknown kid"),
        (make_token(aud="someone-else"), "audience"),
        (make_token(iss="evil"), "issuer"),
        (make_token(typ="refresh"), "not an access token"),
        (make_token(sid=None), "no sid"),
        (make_token(roles="admin"), "roles not a list"),  # type: ignore[arg-type]
        (make_token(kind="robot"), "bad kind"),
        ("not-a-jwt", "garbage"),
        ("", "empty"),
        (jwt.encode({"sub": "alice"}, "s" * 40, algorithm="HS256", headers={"kid": KID}), "HS256 with the kid"),
    ],
    ids=lambda value: value if value in REASONS else "",  # tokens differ per xdist worker; ids must not
)
def test_bad_tokens_are_rejected(token: str, reason: str) -> None:
    with pytest.raises(InvalidToken):
        verify(token)


def test_alg_none_is_rejected() -> None:
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None, algorithm="none", headers={"kid": KID})  # type: ignore[arg-type]
    with pytest.raises(InvalidToken):
        verify(token)


def test_verified_tokens_are_cached_and_the_cache_is_bounded() -> None:
    verifier = TokenVerifier(keys=JWKS, cache_size=2)
    tokens = [make_token(sid=f"s{i}") for i in range(3)]
    for t in tokens:
        verify(t, verifier)
    assert list(verifier._cache) == tokens[1:]
    verifier.set_jwks({"keys": []})  # keys gone: only cached tokens still verify
    assert verify(tokens[2], verifier).sid == "s2"
    with pytest.raises(InvalidToken):
        verify(tokens[0], verifier)


def test_cached_tokens_still_expire() -> None:
    verifier = TokenVerifier(keys=JWKS, leeway_s=0)
    token = make_token(exp_in=1)
    verify(token, verifier)
    verifier._cache[token] = Principal("alice", ("trader",), "s1", "user", (), int(time.time()) - 1)
    with pytest.raises(InvalidToken, match="expired"):
        verify(token, verifier)


def test_unknown_roles_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        require_roles("superuser")


def test_admin_holds_every_role() -> None:
    assert Principal("a", ("admin",), "s", "user").has_role("trader")
    assert not Principal("v", ("viewer",), "s", "user").has_role("trader")


# ---- the dependencies over HTTP ------------------------------------------------------------


@pytest.fixture
def app_and_redis() -> Iterator[tuple[FastAPI, fakeredis.aioredis.FakeRedis]]:
    server = fakeredis.FakeServer()
    router = APIRouter()

    @router.get("/any")
    async def any_user(p: CurrentPrincipal) -> dict:
        return {"sub": p.subject}

    @router.get("/trade-a", dependencies=[require_roles("trader")])
    async def trade_a() -> dict:
        return {}

    @router.get("/trade-b")
    async def trade_b(p: Annotated[Principal, Depends(require_roles("trader", "risk-officer"))]) -> dict:
        return {"roles": list(p.roles)}

    async def wire(app: FastAPI) -> None:
        app.state.sessions = fakeredis.aioredis.FakeRedis(server=server)
        app.state.verifier = TokenVerifier(keys=JWKS)

    kit = KitSettings(service_name="auth-deps", session_redis_url="redis://127.0.0.1:1/0")
    app = create_service_app(kit=kit, title="t", routers=[router], on_startup=[wire])
    yield app, fakeredis.FakeRedis(server=server)


def _get(client: TestClient, path: str, token: str | None) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {token}"} if token else {})


def test_http_auth_statuses(app_and_redis: tuple[FastAPI, Any]) -> None:
    app, redis = app_and_redis
    for sid in ("live", "live-admin", "live-viewer"):
        redis.set(session_key(sid), "1")
    trader = make_token(sid="live")
    admin = make_token(sid="live-admin", roles=["admin"])
    viewer = make_token(sid="live-viewer", roles=["viewer"])
    with TestClient(app) as client:
        assert _get(client, "/any", trader).json() == {"sub": "alice"}
        missing = _get(client, "/any", None)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"] == "unauthorized"
        assert client.get("/any", headers={"Authorization": "Basic abc"}).status_code == 401
        assert _get(client, "/any", make_token(exp_in=-60, sid="live")).status_code == 401
        assert _get(client, "/any", make_token(sid="never-created")).status_code == 401
        assert _get(client, "/trade-a", trader).status_code == 200
        assert _get(client, "/trade-a", admin).status_code == 200
        forbidden = _get(client, "/trade-b", viewer)
        assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
        assert forbidden.json()["detail"] == {"required": ["risk-officer", "trader"], "held": ["viewer"]}
        # revocation: deleting the session key rejects the (cached) token on the next request
        redis.delete(session_key("live"))
        revoked = _get(client, "/any", trader)
        assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]


def test_bearer_scheme_is_in_openapi(app_and_redis: tuple[FastAPI, Any]) -> None:
    app, _ = app_and_redis
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/trade-a"]["get"]["security"] == [{"HTTPBearer": []}]


def test_session_store_down_is_503_not_401() -> None:
    router = APIRouter()

    @router.get("/any")
    async def any_user(p: CurrentPrincipal) -> dict:
        return {}

    async def wire(app: FastAPI) -> None:
        app.state.verifier = TokenVerifier(keys=JWKS)

    kit = KitSettings(service_name="t", session_redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_service_app(kit=kit, title="t", routers=[router], on_startup=[wire])) as client:
        resp = _get(client, "/any", make_token())
    assert resp.status_code == 503 and resp.json()["error"] == "session_store_unavailable"


def test_jwks_is_fetched_lazily_and_refetched_on_unknown_kid_with_a_rate_limit() -> None:
    import httpx

    from sandbox.services.kit import auth as kit_auth
    from sandbox.services.kit.errors import ServiceError

    served: dict[str, Any] = {"jwks": JWKS, "calls": 0, "down": False}

    def handler(request: httpx.Request) -> httpx.Response:
        served["calls"] += 1
        if served["down"]:
            return httpx.Response(503)
        return httpx.Response(200, json=served["jwks"])

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            verifier = TokenVerifier("http://auth/.well-known/jwks.json", http=http)
            assert served["calls"] == 0
            assert (await verifier.verify(make_token())).subject == "alice"
            assert served["calls"] == 1
            await verifier.verify(make_token(sid="s2"))
            assert served["calls"] == 1  # known kid: no fetch
            # a rotated key appears: the unknown kid triggers one refetch
            new_key = Ed25519PrivateKey.generate()
            served["jwks"] = {"keys": [_jwk(KEY), _jwk(new_key, "k2")]}
            verifier._last_fetch -= kit_auth.JWKS_REFETCH_INTERVAL_S
            assert (await verifier.verify(make_token(key=new_key, kid="k2"))).subject == "alice"
            assert served["calls"] == 2
            # forged kids right after cannot make it fetch again
            for i in range(5):
                with pytest.raises(InvalidToken):
                    await verifier.verify(make_token(kid=f"forged-{i}"))
            assert served["calls"] == 2

            cold = TokenVerifier("http://auth/.well-known/jwks.json", http=http)
            served["down"] = True
            with pytest.raises(ServiceError) as err:
                await cold.verify(make_token())
            assert err.value.status == 503

    asyncio.run(scenario())


def test_session_checks_in_one_tick_share_a_pipeline_and_keep_their_own_answers() -> None:
    from sandbox.services.kit.auth import SessionChecker

    class CountingRedis(fakeredis.aioredis.FakeRedis):
        pipelines = 0
        singles = 0

        def pipeline(self, *args: Any, **kwargs: Any) -> Any:
            CountingRedis.pipelines += 1
            return super().pipeline(*args, **kwargs)

        async def exists(self, *keys: Any) -> int:
            CountingRedis.singles += 1
            return await super().exists(*keys)

    async def scenario() -> None:
        redis = CountingRedis()
        for i in range(0, 100, 2):
            await redis.set(session_key(f"s{i}"), "1")
        checker = SessionChecker(redis)
        answers = await asyncio.gather(*(checker.live(f"s{i}") for i in range(100)))
        assert answers == [i % 2 == 0 for i in range(100)]
        assert CountingRedis.pipelines == 2 and CountingRedis.singles == 0  # 64 + 36, not 100 round trips
        assert await checker.live("s0") is True and await checker.live("s1") is False
        assert CountingRedis.singles == 2  # a lone check is a plain EXISTS
        await redis.delete(session_key("s0"))
        assert await checker.live("s0") is False  # never cached

        class Broken(fakeredis.aioredis.FakeRedis):
            async def exists(self, *keys: Any) -> int:
                raise ConnectionError("down")

            def pipeline(self, *args: Any, **kwargs: Any) -> Any:
                raise ConnectionError("down")

        broken = SessionChecker(Broken())
        results = await asyncio.gather(*(broken.live(f"s{i}") for i in range(3)), return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results)

    asyncio.run(scenario())
