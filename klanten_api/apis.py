"""Where each API lives (DECISIONS #18, #19): one declarative entry per API, everything else derived from it.

An entry names the API's OpenAPI document, the module with one handler per operationId, the base paths it is served
at and the Settings field that picks its canonical base path. `Layout` is that list for one configuration: app.py
mounts every base path of every API (the same document once per base path), the HTTP layer takes its routes, ETag
paths, safe log paths and API roots from it, and the spec routes serve each document on each base path with
`servers` = the API's canonical base. Every URL the server writes uses the canonical base; the other paths are
aliases that answer the same.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from service.constants import CM_COMPONENT, COMPONENT
from .apiroot import collecties
from .settings import PROJECT_ROOT, SPEC_PATH, ConfigError, Settings

# paths of the server itself, outside every API (ops endpoints, the pages that error `type`s point at)
RESERVED_PATHS = ("/ref", "/_health", "/_metrics")


@dataclass(frozen=True)
class Api:
    naam: str                        # the API's name in settings and logs: klanten, contactmomenten
    spec: Path                       # its OpenAPI document
    handlers: str                    # module with one function per operationId of the document
    base_paths: tuple[str, ...]      # where it is served; the first is the default canonical one
    setting: str                     # the Settings field with the canonical base path
    component: str                   # its audit `bron` and the Autorisaties API component whose grants count


KLANTEN = Api("klanten", SPEC_PATH, "handlers", ("/api/v1", "/klanten/api/v1"), "klanten_base_path", COMPONENT)
# at Open Klant 1.x's place for it
CONTACTMOMENTEN = Api("contactmomenten", PROJECT_ROOT / "spec" / "contactmomenten.yaml", "handlers.contactmomenten",
                      ("/contactmomenten/api/v1",), "contactmomenten_base_path", CM_COMPONENT)

APIS: tuple[Api, ...] = (KLANTEN, CONTACTMOMENTEN)


def load_spec(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class MountedApi:
    """One API as this configuration serves it."""
    api: Api
    spec: dict = field(repr=False)
    base_paths: tuple[str, ...]      # the canonical one first, then the aliases

    @property
    def naam(self) -> str:
        return self.api.naam

    @property
    def canonical(self) -> str:
        return self.base_paths[0]

    @property
    def collecties(self) -> tuple[str, ...]:
        return collecties(self.spec["paths"])

    def handler_module(self):
        return importlib.import_module(self.api.handlers)


def _overlap(a: str, b: str) -> bool:
    """One path is the other or lies under it (a Mount of the shorter one would take the longer one's requests)."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


class Layout:
    """The served APIs with their base paths, for one configuration."""

    def __init__(self, mounted: tuple[MountedApi, ...]):
        self.apis = mounted
        # longest first: a path belongs to the most specific base path that holds it
        self._bases = sorted(((base, m) for m in mounted for base in m.base_paths), key=lambda bm: -len(bm[0]))

    @classmethod
    def from_settings(cls, settings: Settings, apis: tuple[Api, ...] = APIS) -> "Layout":
        """Each API at its canonical base path (its setting) and its other supported paths. A canonical path that
        is none of the supported ones is served as well, in front of them; no two APIs may share or nest a path."""
        mounted, taken = [], [(p, "the server itself") for p in RESERVED_PATHS]
        for api in apis:
            canonical = getattr(settings, api.setting)
            paths = (canonical, *(p for p in api.base_paths if p != canonical))
            for path in paths:
                botsing = next((naam for ander, naam in taken if _overlap(path, ander)), None)
                if botsing:
                    raise ConfigError(f"{('KLANTEN_' + api.setting).upper()}: the {api.naam} API cannot be served at "
                                      f"{path}, it overlaps a path of {botsing}")
                taken.append((path, f"the {api.naam} API"))
            mounted.append(MountedApi(api, load_spec(api.spec), paths))
        return cls(tuple(mounted))

    def api(self, naam: str) -> MountedApi:
        return next(m for m in self.apis if m.naam == naam)

    def serving(self, path: str) -> tuple[MountedApi, str] | None:
        """The API and base path a request path falls under, or None."""
        for base, mounted in self._bases:
            if path == base or path.startswith(base + "/"):
                return mounted, base
        return None

    def canonical_path(self, path: str) -> str:
        """`path` on its API's canonical base path (paths outside every API stay as they are)."""
        found = self.serving(path)
        if found is None:
            return path
        mounted, base = found
        return mounted.canonical + path[len(base):]

    def eigen_pad(self, naam: str, path: str) -> str | None:
        """The part after the base path when `path` lies under any base path of API `naam` (a klant URL on either
        Klanten path counts as ours, DECISIONS #18), else None."""
        for base in self.api(naam).base_paths:
            if path.startswith(base + "/"):
                return path[len(base):]
        return None
