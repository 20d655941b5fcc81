"""Print the requirements of pyproject.toml, one a line.

    requirements.py pyproject.toml [EXTRA,EXTRA]    the project's dependencies (plus those extras')
    requirements.py pyproject.toml --build-system   what building the wheel needs

Used by the Dockerfile so the dependency layer depends on pyproject.toml only,
not on the project source. Standard library only (Python 3.11+).
"""

import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    document = tomllib.load(handle)
if sys.argv[2:] == ["--build-system"]:
    print("\n".join(document["build-system"]["requires"]))
    sys.exit(0)
project = document["project"]
requirements = list(project.get("dependencies", []))
extras = project.get("optional-dependencies", {})
for extra in filter(None, (part.strip() for part in (sys.argv[2] if len(sys.argv) > 2 else "").split(","))):
    if extra not in extras:
        sys.exit(f"pyproject.toml has no extra {extra!r} (it has: {', '.join(sorted(extras))})")
    requirements += [r for r in extras[extra] if not r.startswith(project["name"])]
print("\n".join(requirements))
