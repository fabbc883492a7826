"""The one rule for what a command may replace, overwrite or move: `check_target`.

`aggregate --out`, `report --out`, `run-job --overwrite` and `check-stores` all ask it.
Never: /, the working directory or any ancestor of it, a path that is or holds one of the
command's own inputs, a symbolic link, or anything that is not an output of this project
of the expected kind. Each kind is recognised by its own marker, read without importing
anything it names: a run or study store by the `scorerate_store` attribute in its
zarr.json (a run store whose metadata is damaged, by its layout), a report by the
generator tag of its index.html. Refusals are ValueError with one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from .variables import RUN_COORDS, VARIABLES

__all__ = ["KINDS", "MARKER", "MARKER_ATTR", "REPORT_FILES", "REPORT_GENERATOR", "check_dir",
           "check_file", "check_source", "check_target", "is_kind"]

#: marker of a run store of this project (with the version of its checksum scheme); a
#: study store's value starts with "study/"
MARKER_ATTR = "scorerate_store"
MARKER = "run/2"
#: the generator tag written into every report's index.html
REPORT_GENERATOR = '<meta name="generator" content="scorerate report">'
#: a report's own entries (a report directory holds nothing else)
REPORT_FILES = frozenset({"index.html", "rates.csv", "jobs.csv", "summary.md", "figures",
                          ".index.html.tmp"})
#: how a report written before the generator tag is recognised (its title)
_OLD_REPORT_TITLE = "<title>scorerate report: convergence rates"
#: the study store's description before it carried a marker
_OLD_STUDY_DESCRIPTION = "scorerate study: metrics of every (density, beta, d, n, seed) job"
#: kind -> what refusals call it
KINDS = {"run": "scorerate run store", "study": "scorerate study store",
         "report": "scorerate report directory"}


def _zarr_attrs(path: Path) -> dict | None:
    """The attributes in `path`/zarr.json (a Zarr 3 group), or None if there are none."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    return attrs if isinstance(attrs, dict) else None


def _run_layout(path: Path) -> bool:
    """A directory holding only a run store's variables, several of them (its zarr.json
    may be damaged or gone): how a run store whose marker cannot be read is recognised."""
    variables = {v.name for v in VARIABLES}
    names = {p.name for p in path.iterdir()}
    allowed = variables | set(RUN_COORDS) | {"zarr.json", ".snakemake_timestamp"}
    return names <= allowed and len(names & variables) >= 3


def _is_report(path: Path) -> bool:
    """An empty directory, or one holding only report files whose index.html (if any) a
    scorerate report wrote."""
    names = {p.name for p in path.iterdir()}
    if not names <= REPORT_FILES:
        return False
    index = path / "index.html"
    if not index.exists():
        return True
    try:
        head = index.read_text(errors="replace")[:4000]
    except OSError:
        return False
    return REPORT_GENERATOR in head or _OLD_REPORT_TITLE in head


def is_kind(path: str | os.PathLike, kind: str) -> bool:
    """Whether the existing directory `path` is a `kind` ("run", "study", "report") of this
    project, by its marker (see the module docstring)."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    if kind == "report":
        return _is_report(path)
    attrs = _zarr_attrs(path)
    if kind == "run":
        return (attrs is not None and attrs.get(MARKER_ATTR) == MARKER) or (
            attrs is None and _run_layout(path))
    if kind == "study":
        return attrs is not None and (str(attrs.get(MARKER_ATTR, "")).startswith("study/")
                                      or attrs.get("description") == _OLD_STUDY_DESCRIPTION)
    raise ValueError(f"unknown kind {kind!r}; one of {sorted(KINDS)}")


def _inside(a: Path, b: Path) -> bool:
    """Whether resolved path `a` is `b` or lies under it."""
    return a == b or b in a.parents


def check_target(path: str | os.PathLike, kind: str, *,
                 inputs: Iterable[str | os.PathLike] = ()) -> None:
    """ValueError (one line) unless `path` may be replaced by a new `kind`: it does not exist
    yet, or it is a `kind` of this project that is not /, the working directory or an
    ancestor of it, and is neither one of `inputs` nor holds one."""
    name = KINDS[kind]
    target = Path(os.path.abspath(path))
    real = target.resolve()
    cwd = Path.cwd().resolve()
    if real == Path("/") or _inside(cwd, real):
        raise ValueError(f"{path} is the working directory or one of its ancestors; "
                         f"refusing to replace it (name a new {name})")
    for item in inputs:
        if _inside(Path(os.path.abspath(item)).resolve(), real):
            raise ValueError(f"{path} is or holds the input {item}; refusing to replace it")
    if target.is_symlink():
        raise ValueError(f"{path} is a symbolic link; refusing to replace it (name the "
                         f"{name} itself)")
    if target.exists() and not is_kind(target, kind):
        what = "a directory" if target.is_dir() else "a file"
        raise ValueError(f"{path} exists and is {what}, not a {name}; refusing to replace "
                         f"it (remove or rename it, or choose another path)")


#: what writes each kind, for refusals of a wrong input
_WRITER = {"run": "`scorerate run-job`", "study": "`scorerate aggregate`",
           "report": "`scorerate report`"}


def check_source(path: str | os.PathLike, kind: str) -> None:
    """ValueError (one line) unless `path` is an existing `kind` of this project: the input
    check of a command that reads one (report's --study), by the same markers."""
    if not is_kind(path, kind):
        what = ("does not exist" if not os.path.lexists(path) else
                f"is not a {KINDS[kind]} (one is written by {_WRITER[kind]})")
        raise ValueError(f"{path} {what}")


def _creatable(path: Path, what: str) -> None:
    """ValueError unless the nearest existing ancestor of `path` is a directory."""
    ancestor = Path(os.path.abspath(path)).parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{what} {path}: {ancestor} is not a directory")


def check_file(path: str | os.PathLike, what: str) -> None:
    """ValueError (one line) unless a small file of ours (a cache, a marker) may be written
    at `path`: it is absent or a regular file, and can be created where it is."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ValueError(f"{what} {path} exists and is not a file; refusing to write it")
    _creatable(path, what)


def check_dir(path: str | os.PathLike, what: str, *,
              inputs: Iterable[str | os.PathLike] = ()) -> None:
    """ValueError (one line) unless `path` is or may become a directory that things are
    moved into: not a file, and neither one of `inputs` nor inside one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} exists and is not a directory")
    _creatable(path, what)
    real = Path(os.path.abspath(path)).resolve()
    for item in inputs:
        if _inside(real, Path(os.path.abspath(item)).resolve()):
            raise ValueError(f"{what} {path} is or lies inside the input {item}")
