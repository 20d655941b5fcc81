"""Fixtures of the tests that run against the real Docker engine.

They skip, with the reason, where no engine answers.  The offline image set is
built once per session (``build_images`` is cached and file-locked, so a second
worker or run only checks it is up to date).
"""

from __future__ import annotations

import pytest

from sandbox.spec.loader import default_spec


@pytest.fixture(scope="session")
def engine_answers() -> None:
    """Skip unless a Docker engine answers on its socket."""
    from sandbox.runtimes import engine

    try:
        engine.engine_info(timeout=3.0)
    except engine.EngineUnreachable as exc:
        pytest.skip(f"no Docker engine answers: {exc}")


@pytest.fixture(scope="session")
def offline_images(engine_answers) -> None:
    """The offline image set, built (or found up to date) once per session."""
    from sandbox.runtimes.docker.build import build_images

    build_images(default_spec(), offline=True)


@pytest.fixture(scope="session")
def docker_client(engine_answers):
    """A docker SDK client, to check what the runtime reports independently of its own engine calls."""
    docker = pytest.importorskip("docker", reason="the docker SDK (pip install 'aether-sandbox[test]') checks containers")
    client = docker.from_env()
    yield client
    client.close()
