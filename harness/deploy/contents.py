"""What is in an image: its size, its layers (the build step that made each, and its size),
the Python distributions of its venv and the base system (docs/ci.md reports these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: run inside the image with its own interpreter: the base system, Python, every distribution.
_PROBE = """
import importlib.metadata as m, json, platform
release = [l.split("=", 1) for l in open("/etc/os-release") if "=" in l]
os_name = dict((k, v.strip().strip('"')) for k, v in release).get("PRETTY_NAME", "")
dists = sorted({(d.metadata["Name"], d.version) for d in m.distributions() if d.metadata["Name"]})
print(json.dumps({"os": os_name, "python": platform.python_version(), "packages": dists}))
"""


@dataclass(frozen=True)
class Layer:
    size_bytes: int
    created_by: str


@dataclass(frozen=True)
class ImageContents:
    image: str
    size_bytes: int
    layers: list[Layer]
    os: str
    python: str
    packages: list[tuple[str, str]]

    def as_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "size_bytes": self.size_bytes,
            "os": self.os,
            "python": self.python,
            "layers": [{"size_bytes": x.size_bytes, "created_by": x.created_by} for x in self.layers],
            "packages": [{"name": n, "version": v} for n, v in self.packages],
        }


def image_contents(client: Any, image: str) -> ImageContents:
    """Size and layers from the engine; system, Python and packages from inside the image."""
    import json

    img = client.images.get(image)
    layers = [
        Layer(int(h.get("Size") or 0), _short(str(h.get("CreatedBy") or "")) or "(base image)")
        for h in reversed(img.history())
        if int(h.get("Size") or 0) > 0
    ]
    out = client.containers.run(
        image, entrypoint=["/opt/tolu/bin/python", "-P", "-c", _PROBE], remove=True, stdout=True, stderr=False
    )
    inside = json.loads(bytes(out).decode().strip().splitlines()[-1])
    return ImageContents(
        image=image,
        size_bytes=int(img.attrs.get("Size") or 0),
        layers=layers,
        os=inside["os"],
        python=inside["python"],
        packages=[(str(n), str(v)) for n, v in inside["packages"]],
    )


def _short(created_by: str) -> str:
    text = " ".join(created_by.replace("/bin/sh -c #(nop) ", "").replace("/bin/sh -c ", "RUN ").split())
    return text if len(text) <= 100 else text[:97] + "..."
