"""The working copy of the feature repository that Feast runs on.

``feature_repo/`` in the project holds the definitions and a templated
``feature_store.yaml``; each sandbox (and each test) gets a copy with the
template filled in: its Redis online store, its registry file, its data dir.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sandbox.errors import InvalidInput

#: Files copied from the project's feature repository.
REPO_FILES = ("features.py", "pipeline.py", ".feastignore")


def source_dir() -> Path:
    """``feature_repo/`` of the project (beside the ``sandbox`` package)."""
    return Path(__file__).resolve().parents[2] / "feature_repo"


def redis_connection(url: str) -> str:
    """Feast's Redis connection string (``host:port,db=N[,password=..]``) for a ``redis://`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise InvalidInput(f"not a redis:// URL: {url!r}", hint="e.g. redis://127.0.0.1:6379/0")
    db = (parts.path or "/0").strip("/") or "0"
    text = f"{parts.hostname}:{parts.port or 6379},db={int(db)}"
    if parts.password:
        text += f",password={unquote(parts.password)}"
    return text


def render(target: Path, redis_url: str) -> Path:
    """Write the working copy into ``target`` (idempotent); returns ``target``."""
    source = source_dir()
    target.mkdir(parents=True, exist_ok=True)
    (target / "data").mkdir(exist_ok=True)
    for name in REPO_FILES:
        shutil.copyfile(source / name, target / name)
    template = (source / "feature_store.yaml.template").read_text()
    text = template.replace("{registry_path}", str(target / "registry.db")).replace(
        "{redis_connection}", redis_connection(redis_url)
    )
    (target / "feature_store.yaml").write_text(text)
    return target
