"""Shell words for the workflow's command lines, and the Dask scheduler address check.

Every value of a study config that reaches a rule's shell line goes through `quote` (one
helper, `shlex.quote`), after the config's own validation: a value that slipped past the
checks is then one inert word, never a command. Safe text (names, numbers, paths of this
project) comes out unchanged, so quoting changes no command line and reruns no job.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

__all__ = ["ADDRESS_PATTERN", "check_address", "option", "quote", "words"]

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: scheme://host:port, host a hostname or IPv4 (dotted labels) or [IPv6]; the scheme is
#: optional here (host:port means tcp) but required in the config schema
ADDRESS_PATTERN = re.compile(
    rf"(?:[a-z]+://)?(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\]):[0-9]{{1,5}}")


def quote(value: object) -> str:
    """One shell word holding `value`'s text (shlex.quote; safe text is left as it is)."""
    return shlex.quote(str(value))


def words(values: Iterable[object]) -> str:
    """The values as shell words, each quoted, separated by spaces."""
    return " ".join(quote(v) for v in values)


def option(flag: str, value: object) -> str:
    """'--flag VALUE' with VALUE quoted, or '' when value is None (the default applies)."""
    return "" if value is None else f"{flag} {quote(value)}"


def check_address(address: str) -> str:
    """`address` if it is a scheduler address (scheme://host:port, port 1-65535), else
    ValueError: no space, quote, `;`, `$( )` or backtick ever reaches a command line."""
    if not isinstance(address, str) or not ADDRESS_PATTERN.fullmatch(address):
        raise ValueError(f"malformed scheduler address {address!r}: expected "
                         f"tcp://HOST:PORT (HOST a hostname, an IPv4 address or [IPv6])")
    port = int(address.rsplit(":", 1)[1])
    if not 0 < port < 65536:
        raise ValueError(f"scheduler address {address!r}: port must be in 1..65535")
    return address
