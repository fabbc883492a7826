"""Open registries of named factories: a dict of built-ins, import paths and entry points.

`Registry` is the one list of names for estimators and densities (the study config and
the CLI validate against it). A name resolves, in order, to: a registered name; an import
path "pkg.module:Attr" (dotted attributes allowed after the colon); an installed entry
point of the registry's group (a plug-in's pyproject `[project.entry-points."<group>"]`).
Anything else is one ValueError listing the valid names.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

__all__ = ["Registry"]


class Registry(dict):
    """name -> factory, with `register` and `resolve` (see the module docstring).

    Parameters
    ----------
    what : the kind of thing, for error messages ("estimator", "density").
    group : the entry point group searched by `resolve`.
    """

    def __init__(self, what: str, group: str, entries: dict[str, Any] | None = None) -> None:
        super().__init__(entries or {})
        self.what = what
        self.group = group

    def register(self, name: str, factory: Any, *, replace: bool = False) -> Any:
        """Add `factory` under `name` (ValueError if taken, unless replace=True); returns it."""
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"{self.what} name must be a non-empty string without ':', "
                             f"got {name!r}")
        if not callable(factory):
            raise ValueError(f"{self.what} factory {name!r} must be callable, got {factory!r}")
        if name in self and not replace and self[name] is not factory:
            raise ValueError(f"{self.what} {name!r} is already registered; pass replace=True")
        self[name] = factory
        return factory

    def plugin_names(self) -> list[str]:
        """Names of the installed entry points of this registry's group."""
        return sorted(ep.name for ep in entry_points(group=self.group))

    def resolve(self, name: str) -> Any:
        """The factory that `name` designates: registered name, "pkg.mod:Attr" or entry point."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.what} must be named by a non-empty string, got {name!r}")
        if name in self:
            return self[name]
        if ":" in name:
            return self._import(name)
        eps = [ep for ep in entry_points(group=self.group) if ep.name == name]
        if eps:
            return self._checked(name, eps[0].load())
        valid = list(self) + [p for p in self.plugin_names() if p not in self]
        raise ValueError(f"unknown {self.what} {name!r}; choose one of {valid}, or give an "
                         f"import path 'package.module:Name' or an entry point of group "
                         f"{self.group!r}")

    def _import(self, path: str) -> Any:
        module, _, attr = path.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import {self.what} {path!r}: {exc}") from exc
        return self._checked(path, obj)

    def _checked(self, name: str, obj: Any) -> Any:
        if not callable(obj):
            raise ValueError(f"{self.what} {name!r} is not callable (a factory), got {obj!r}")
        return obj
