"""The server image installs ci/server/requirements.txt and tolu without its dependencies.

A dependency the server imports but the list forgets only shows when the container
starts (ModuleNotFoundError); this check finds it in a second, without Docker.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys

from harness.container.image import SERVER_DIR

IMPORT_THE_SERVER = """
import json, sys
import runner.server.app, runner.server.__main__, runner.server.migrations
print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))
"""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.lower())


def _requirement_name(line: str) -> str:
    return _canonical(re.split(r"[\[<>=!~ ;]", line.strip(), maxsplit=1)[0])


def test_every_direct_dependency_the_server_imports_is_in_the_image_requirements() -> None:
    out = subprocess.run(
        [sys.executable, "-P", "-c", IMPORT_THE_SERVER], capture_output=True, text=True, check=True
    ).stdout
    modules = json.loads(out.splitlines()[-1])
    provides = importlib.metadata.packages_distributions()
    imported = {_canonical(dist) for module in modules for dist in provides.get(module, [])}

    requires = importlib.metadata.requires("tolu") or []
    direct = {_requirement_name(r) for r in requires if "extra ==" not in r}
    listed = {
        _requirement_name(line)
        for line in (SERVER_DIR / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip()
    }
    missing = sorted((imported & direct) - listed)
    assert not missing, f"the server imports {missing}; add them to {SERVER_DIR / 'requirements.txt'}"
