"""``client.apps``: app definitions, and ``sync`` that makes the server match a site's ``apps/``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from runner.client._base import Manager, _changes
from runner.models import App, AppCreate, AppKind, AppUpdate, Hook, Page, Resources


class SyncResult(list[App]):
    """What ``apps.sync`` did: the list of apps, plus which were created/updated/unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[App] = []
        self.updated: list[App] = []
        self.unchanged: list[App] = []
        self.deleted: list[App] = []

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


_APP_FIELDS = tuple(f for f in AppUpdate.model_fields)


def _app_differs(current: App, wanted: AppCreate) -> bool:
    for field in _APP_FIELDS:
        have, want = getattr(current, field), getattr(wanted, field)
        if isinstance(have, BaseModel):
            have = have.model_dump()
        if isinstance(want, BaseModel):
            want = want.model_dump()
        if have != want:
            return True
    return False


class AppManager(Manager):
    """``client.apps``: app definitions, usually synced from a site's ``apps/`` folder."""

    path = "/apps"

    def create(
        self,
        *,
        site_id: int,
        name: str,
        description: str = "",
        kind: AppKind | str = AppKind.SHELL,
        command_template: str | None = None,
        serialized_function: str | None = None,
        parameters: dict[str, Any] | None = None,
        default_resources: Resources | dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        hooks: Sequence[Hook] | None = None,
        free_parameters: bool | None = None,
    ) -> App:
        """Register an app. 409 if the site already has an app of that name.

        Jobs are checked against ``parameters`` (name -> default; None: required) when they
        are created, unless ``free_parameters`` (then any parameter name is taken).
        """
        body = _changes(
            site_id=site_id,
            name=name,
            description=description,
            kind=kind,
            command_template=command_template,
            serialized_function=serialized_function,
            parameters=parameters,
            default_resources=default_resources,
            environment=environment,
            hooks=list(hooks) if hooks is not None else None,
            free_parameters=free_parameters,
        )
        return self.create_from(body)

    def create_from(self, app: AppCreate | Mapping[str, Any]) -> App:
        """Register an app from an ``AppCreate`` (as ``runner.apps`` makes them)."""
        result: App = self._send("POST", App, self.path, app)
        return result

    def get(self, id: int) -> App:
        return self._get_one(App, f"{self.path}/{id}")

    def filter(
        self, *, site_id: int | None = None, name: str | None = None, limit: int | None = None
    ) -> list[App]:
        return self._follow(App, {"site_id": site_id, "name": name}, limit)

    def page(
        self, *, site_id: int | None = None, name: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[App]:
        return self._page(App, {"site_id": site_id, "name": name, "limit": limit, "offset": offset})

    def update(
        self,
        id: int,
        *,
        description: str | None = None,
        kind: AppKind | str | None = None,
        command_template: str | None = None,
        serialized_function: str | None = None,
        parameters: dict[str, Any] | None = None,
        default_resources: Resources | dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        hooks: Sequence[Hook] | None = None,
        free_parameters: bool | None = None,
    ) -> App:
        body = _changes(
            description=description,
            kind=kind,
            command_template=command_template,
            serialized_function=serialized_function,
            parameters=parameters,
            default_resources=default_resources,
            environment=environment,
            hooks=list(hooks) if hooks is not None else None,
            free_parameters=free_parameters,
        )
        result: App = self._send("PATCH", App, f"{self.path}/{id}", body)
        return result

    def delete(self, id: int) -> None:
        self._delete(f"{self.path}/{id}")

    def sync(self, site_id: int, apps: Iterable[AppCreate], *, prune: bool = False) -> SyncResult:
        """Create or update the site's apps by name so the server matches ``apps``.

        Unchanged apps are left alone. With ``prune=True`` apps on the server that are
        not in ``apps`` are deleted (with their jobs). Returns the resulting apps in
        the order given, with ``.created``/``.updated``/``.unchanged``/``.deleted``.
        """
        wanted = list(apps)
        names = [a.name for a in wanted]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate app names: {', '.join(dupes)}")
        existing = {a.name: a for a in self.filter(site_id=site_id)}
        result = SyncResult()
        for app in wanted:
            if app.site_id != site_id:
                app = app.model_copy(update={"site_id": site_id})
            current = existing.get(app.name)
            if current is None:
                made = self.create_from(app)
                result.created.append(made)
            elif _app_differs(current, app):
                body = AppUpdate.model_validate({f: getattr(app, f) for f in _APP_FIELDS})
                made = self._send("PATCH", App, f"{self.path}/{current.id}", body.model_dump(mode="json"))
                result.updated.append(made)
            else:
                made = current
                result.unchanged.append(made)
            result.append(made)
        if prune:
            for name, current in existing.items():
                if name not in names:
                    self.delete(current.id)
                    result.deleted.append(current)
        return result
