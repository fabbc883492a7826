"""CF conventions (CF-1.8) of the run and study stores: the global attributes every store
carries, and attribute values netCDF can hold.

The stores are Zarr, but anything CF tools expect is there, so `xarray.Dataset.to_netcdf`
writes a store as it is and a CF checker accepts it (tests/test_cf.py, RULES below).
Attributes only: no data variable changes, so checksums (store.content_checksum) and
parameter hashes are the same as before and existing stores stay valid.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

__all__ = ["CONVENTIONS", "REFERENCES", "RULES", "code_commit", "global_attrs",
           "netcdf_attrs"]

CONVENTIONS = "CF-1.8"
REFERENCES = ("Zhang, Yin, Liang, Liu, Minimax optimality of score-based diffusion models: "
              "beyond the density lower bound assumptions, ICML 2024, arXiv:2402.15602; "
              "Wibisono, Wu, Yang, Optimal score estimation via empirical Bayes smoothing, "
              "COLT 2024, arXiv:2402.07747")
#: the CF rules the stores follow (each checked by tests/test_cf.py)
RULES = (
    "global attributes Conventions, title, history, source, references, and the creation "
    "date (date_created, ISO 8601) and code commit (git_commit)",
    "every data variable and coordinate has a long_name",
    "units, where present, are UDUNITS strings ('1' for dimensionless quantities, 's'); "
    "names, counts, indices, flags and paths carry none",
    "attribute values are strings or numbers (no None, no mappings, no nested lists)",
    "the dataset writes with Dataset.to_netcdf and reads back with the same data",
)


def code_commit() -> str:
    """The git commit of the scorerate source this process runs ('unknown' when it is not
    a git checkout), with '-dirty' when its tree has uncommitted changes."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(here), *args], capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if not head:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return head + ("-dirty" if dirty else "")


def global_attrs(title: str, history: str, *, created: str | None = None) -> dict[str, str]:
    """The CF global attributes of a store: `title`, one `history` line (prefixed with the
    creation time), `source` (scorerate and its version), `references`, `date_created`
    (now unless `created` is given) and `git_commit`."""
    from ..version import __version__

    created = created or datetime.now(UTC).isoformat(timespec="seconds")
    return {"Conventions": CONVENTIONS, "title": title, "history": f"{created}: {history}",
            "source": f"scorerate {__version__}", "references": REFERENCES,
            "date_created": created, "git_commit": code_commit()}


def netcdf_attrs(attrs: Mapping[str, object]) -> dict[str, object]:
    """`attrs` in values netCDF holds: None dropped (it means a default), booleans as 0/1,
    mappings, lists of strings and ragged lists as JSON text, numeric lists as arrays,
    non-finite floats kept (netCDF has NaN)."""
    out: dict[str, object] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, bool | np.bool_):
            out[key] = int(value)
        elif isinstance(value, str | int | float | np.integer | np.floating):
            out[key] = value
        elif isinstance(value, list | tuple) and value and all(
                isinstance(v, int | float | np.integer | np.floating)
                and not isinstance(v, bool) for v in value):
            out[key] = np.asarray(value, dtype=np.float64 if any(
                isinstance(v, float | np.floating) for v in value) else np.int64)
        else:
            out[key] = json.dumps(_plain(value), sort_keys=True, allow_nan=True)
    return out


def _plain(value: object) -> object:
    """JSON-able form of numpy values, tuples and paths inside a mapping or list."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)
