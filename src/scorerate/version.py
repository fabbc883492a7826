"""The installed version of scorerate, recorded in every run store ('0+unknown' in a bare tree)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("scorerate")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"
