"""One thread-safe LRU cache bounded by bytes, for per-t objects rebuilt on demand.

A reverse trajectory visits the same times for every chunk of particles, so objects built
per time t (the binned backend's FFT grids, highorder's k-d trees of noised points) are
worth keeping while they fit. The rule, after each insertion of an entry of b bytes:

- if fewer than `min_entries` entries of that size fit in `max_bytes`, keep only the new
  entry: an LRU smaller than the cycle of times it serves evicts every entry before its
  reuse, so it would only thrash (and hold memory);
- otherwise evict least recently used entries while the total exceeds `max_bytes`,
  never the newest one.

With min_entries = 1 this is "stay within budget, but always keep the newest". Entries
are built outside the lock (two threads may build the same key once each; the result is
the same). Pickling gives an empty cache with the same limits: caches do not travel with
Dask tasks. Cost: O(1) per lookup, O(entries) per insertion.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from .checks import check_int

__all__ = ["ByteLRU"]


class ByteLRU:
    """Thread-safe LRU of at most `max_bytes` (see the module for the eviction rule).

    Parameters
    ----------
    max_bytes : budget in bytes (>= 0).
    min_entries : below this many entries in budget, keep just the newest one (>= 1).
    """

    def __init__(self, max_bytes: int, min_entries: int = 1) -> None:
        self.max_bytes = check_int("max_bytes", max_bytes, lo=0)
        self.min_entries = check_int("min_entries", min_entries, lo=1)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    @property
    def nbytes(self) -> int:
        """Bytes held now (as reported by the `nbytes` given with each entry)."""
        with self._lock:
            return sum(b for _, b in self._items.values())

    def get_or_build(self, key: Hashable, build: Callable[[], Any],
                     nbytes: Callable[[Any], int]) -> Any:
        """The cached value of `key`, or `build()` stored with size `nbytes(value)`."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit[0]
        value = build()
        size = int(nbytes(value))
        with self._lock:
            self._items[key] = (value, size)
            self._items.move_to_end(key)
            fit = self.max_bytes // size if size > 0 else self.min_entries
            if fit < self.min_entries:  # too few fit: an LRU would only thrash
                for k in [k for k in self._items if k != key]:
                    del self._items[k]
            total = sum(b for _, b in self._items.values())
            while len(self._items) > 1 and total > self.max_bytes:
                _, (_, b) = self._items.popitem(last=False)
                total -= b
        return value

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._items.clear()

    def __getstate__(self) -> dict:
        return {"max_bytes": self.max_bytes, "min_entries": self.min_entries}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"], state["min_entries"])
