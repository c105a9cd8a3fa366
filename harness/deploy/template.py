"""A deployment template for a facility (``tolu ci template``): what a facility starts from.

::

    DIR/
      README.md       for that facility: what is here, how to start, connect users and the site
      Dockerfile      FROM the tolu server image, with the facility's configuration
      .dockerignore   only site/settings.yml goes into the build (not the secrets)
      compose.yaml    the server and PostgreSQL (or SQLite in a volume), volumes, the port
      server.env      the server's environment (database URL with its password); mode 0600
      .env            the database password compose.yaml reads; mode 0600
      site/           the site directory for the login node: settings.yml for its scheduler
                      (validated by tolu's settings loader before anything is written), apps/

The files are jinja2 templates in ``harness/deploy/facility/``; the site's settings.yml is
``tolu site init``'s own commented file (``runner.site.directory``) with the facility's values
filled in. Secrets are made here (``secrets.token_hex``), never left as placeholders.
"""

from __future__ import annotations

import re
import secrets
import shlex
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import yaml

import runner
from runner.site import directory
from runner.site.apps import EXAMPLE_APP
from runner.site.settings import SETTINGS_FILE, SettingsError
from runner.site.settings import load as load_settings

FOLDER = Path(__file__).with_name("facility")
#: files rendered from FOLDER/<name>.j2, with their modes (secrets are private)
FILES = {
    "Dockerfile": 0o644,
    ".dockerignore": 0o644,
    "compose.yaml": 0o644,
    "server.env": 0o600,
    "README.md": 0o644,
}
DATABASES = ("postgresql", "sqlite")
DEFAULT_POSTGRES_IMAGE = "postgres:16-bookworm"
#: the MPI launcher a scheduler's allocations usually start ranks with
MPI_LAUNCHERS = {"slurm": "srun"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class TemplateError(ValueError):
    """A value the template cannot use; the message names the option."""


@dataclass(frozen=True)
class Facility:
    """What a facility's deployment is made of (the options of ``tolu ci template``)."""

    facility: str
    scheduler: str
    image: str
    database: str = "postgresql"
    postgres_image: str = DEFAULT_POSTGRES_IMAGE
    port: int = 8000
    bind: str = "127.0.0.1"
    server_url: str = ""
    project: str = ""
    queue: str = ""
    mpi_launcher: str = ""
    cpus: int = 0
    gpus: int = 0

    def check(self) -> None:
        if not _NAME.match(self.facility):
            raise TemplateError(
                f"--facility {self.facility!r}: lower-case letters, digits and '-' (not first)"
            )
        if self.scheduler not in directory.SCHEDULERS:
            raise TemplateError(f"--scheduler {self.scheduler!r}: one of {', '.join(directory.SCHEDULERS)}")
        if self.database not in DATABASES:
            raise TemplateError(f"--database {self.database!r}: one of {', '.join(DATABASES)}")
        if not 1 <= self.port <= 65535:
            raise TemplateError(f"--port {self.port}: between 1 and 65535")
        if not self.image or any(c.isspace() for c in self.image):
            raise TemplateError(f"--image {self.image!r}: an image reference without spaces")

    @property
    def url(self) -> str:
        """Where sites and users reach the server."""
        if self.server_url:
            return self.server_url.rstrip("/")
        host = socket.getfqdn() if self.bind in ("0.0.0.0", "::") else self.bind
        return f"http://{host}:{self.port}"


def render(target: Path, facility: Facility, *, command: str = "") -> list[Path]:
    """Write the template for ``facility`` into ``target`` (new or empty); the files written."""
    facility.check()
    if target.exists() and any(target.iterdir()):
        raise TemplateError(f"{target} is not empty: render into a new directory")
    settings_text = site_settings(facility)
    values = {
        **asdict(facility),
        "server_url": facility.url,
        "mpi_launcher": facility.mpi_launcher or MPI_LAUNCHERS.get(facility.scheduler, "mpich"),
        "db_password": secrets.token_hex(16),
        "version": runner.__version__,
        "rendered_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command or "tolu ci template",
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(FOLDER),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # Dockerfile, YAML, env and Markdown: nothing here is HTML
    )
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, mode in FILES.items():
        path = target / name
        # templates are named without the leading dot: package data globs skip dot files
        path.write_text(env.get_template(f"{name.lstrip('.')}.j2").render(values))
        path.chmod(mode)
        written.append(path)
    dotenv = target / ".env"
    dotenv.write_text(f"# compose.yaml reads this (private)\nTOLU_DB_PASSWORD={values['db_password']}\n")
    dotenv.chmod(0o600)
    written.append(dotenv)
    site = target / "site"
    directory.make_layout(site)
    (site / SETTINGS_FILE).write_text(settings_text)
    (site / "apps" / "hello.yml").write_text(EXAMPLE_APP)
    written += [site / SETTINGS_FILE, site / "apps" / "hello.yml"]
    _check_compose(target / "compose.yaml")
    return written


def site_settings(facility: Facility) -> str:
    """``tolu site init``'s commented settings.yml with the facility's values, validated."""
    text = directory.render_settings(
        name=facility.facility, scheduler=facility.scheduler, server_url=facility.url
    )
    launcher = facility.mpi_launcher or MPI_LAUNCHERS.get(facility.scheduler, "mpich")
    text = _set(text, "  mpi_launcher: ", launcher)
    text = _set(text, "  default_project: ", _quoted(facility.project))
    text = _set(text, "  default_queue: ", _quoted(facility.queue))
    text = _set(text, "    cpus: ", str(facility.cpus))
    text = _set(text, "    gpus: ", str(facility.gpus))
    _validate(text)
    return text


def _set(text: str, prefix: str, value: str) -> str:
    """Replace the value of the first line starting with ``prefix`` (keeps the comments)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(prefix):
            lines[i] = prefix + value + "\n"
            return "".join(lines)
    raise AssertionError(f"settings template has no line {prefix!r}")  # the template changed under us


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _validate(text: str) -> None:
    """Load the settings the way ``tolu site start`` will, from a scratch site directory."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tolu-template-") as tmp:
        (Path(tmp) / SETTINGS_FILE).write_text(text)
        try:
            load_settings(tmp)
        except SettingsError as exc:
            raise TemplateError(str(exc).replace(tmp, "site")) from None


def _check_compose(path: Path) -> None:
    """The rendered compose file is YAML with the services the README promises."""
    doc = yaml.safe_load(path.read_text())
    if "server" not in (doc or {}).get("services", {}):
        raise AssertionError(f"{path}: no server service")  # a template bug, not the user's


def command_line(argv: list[str]) -> str:
    """How the template was rendered, for its README."""
    return shlex.join(["tolu", "ci", "template", *argv])
