"""The project image's source label: which checkout an image runs, and the warning when it is not this one."""

from __future__ import annotations

import shutil
from pathlib import Path

from sandbox.runtimes.docker.build import (
    PROJECT_FILES,
    PROJECT_TREES,
    SOURCE_LABEL,
    source_digest,
    source_root,
    stale_project_images,
)
from sandbox.spec.loader import default_spec

SPEC = default_spec()
PLATFORM = SPEC.component("auth-service").images.offline


def _copy_checkout(target: Path) -> Path:
    root = source_root()
    for name in PROJECT_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target / name)
    for tree in PROJECT_TREES:
        shutil.copytree(root / tree, target / tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def test_the_digest_follows_code_not_caches_or_the_readme(tmp_path: Path) -> None:
    root = _copy_checkout(tmp_path / "checkout")
    first = source_digest(root)
    assert first == source_digest(source_root()) and len(first) == 16
    (root / "README.md").write_text("edited\n")
    (root / "sandbox" / "__pycache__").mkdir(exist_ok=True)
    (root / "sandbox" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert source_digest(root) == first
    service = root / "sandbox" / "services" / "oms" / "orders.py"
    service.write_text(service.read_text() + "\n# edited\n")
    assert source_digest(root) != first
    (root / "sandbox" / "new_module.py").write_text("")
    renamed = source_digest(root)
    (root / "sandbox" / "new_module.py").rename(root / "sandbox" / "other_module.py")
    assert source_digest(root) != renamed  # paths count, not only contents


def _listed(tag: str, label: str | None) -> list[dict]:
    return [{"RepoTags": [tag], "Labels": {SOURCE_LABEL: label} if label else None},
            {"RepoTags": ["aether-sandbox/redis-offline:0.1"], "Labels": {SOURCE_LABEL: "0" * 16}}]


def test_an_image_from_other_source_is_named_with_the_rebuild_command() -> None:
    here = source_digest(source_root())
    in_use = {PLATFORM, "aether-sandbox/redis-offline:0.1"}
    assert stale_project_images(SPEC, in_use, _listed(PLATFORM, here), offline=True) == []
    assert stale_project_images(SPEC, in_use, _listed(PLATFORM, None), offline=True) == []  # the user's own build
    [warning] = stale_project_images(SPEC, in_use, _listed(PLATFORM, "f" * 16), offline=True)
    assert warning.startswith(f"{PLATFORM} was built from other source than this checkout (source {'f' * 16}, "
                              f"checkout {here})")
    assert "`aether-sandbox images build --offline` rebuilds it" in warning
    assert "--offline" not in stale_project_images(SPEC, in_use, _listed(PLATFORM, "f" * 16), offline=False)[0]
