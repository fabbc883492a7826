"""cache.ByteLRU: the byte budget, the keep-one rule, LRU order and pickling."""

from __future__ import annotations

import pickle

import pytest

from scorerate.cache import ByteLRU


def _fill(c, keys, size):
    built = []
    for k in keys:
        c.get_or_build(k, lambda k=k: built.append(k) or k, lambda v: size)
    return built


def test_within_budget_evicts_least_recently_used():
    c = ByteLRU(300)
    _fill(c, [1, 2, 3], 100)
    c.get_or_build(1, lambda: pytest.fail("1 is cached"), lambda v: 100)  # 1 is now recent
    assert _fill(c, [4], 100) == [4]
    assert 2 not in c and all(k in c for k in (1, 3, 4)) and c.nbytes == 300


def test_keeps_the_newest_even_over_budget():
    c = ByteLRU(50)
    _fill(c, [1, 2], 100)
    assert len(c) == 1 and 2 in c


def test_fewer_than_min_entries_fit_keeps_one():
    c = ByteLRU(1000, min_entries=16)  # 10 of 100 bytes fit: an LRU of 10 would only thrash
    assert _fill(c, range(5), 100) == list(range(5))
    assert len(c) == 1 and 4 in c
    c = ByteLRU(1600, min_entries=16)  # 16 fit: a plain LRU of 16
    _fill(c, range(20), 100)
    assert len(c) == 16 and 3 not in c and 4 in c


def test_pickles_empty_with_its_limits():
    c = ByteLRU(300, min_entries=2)
    _fill(c, [1, 2], 100)
    d = pickle.loads(pickle.dumps(c))
    assert len(d) == 0 and (d.max_bytes, d.min_entries) == (300, 2)
    assert _fill(d, [1], 100) == [1]


def test_rejects_bad_limits():
    with pytest.raises(ValueError, match="min_entries"):
        ByteLRU(10, min_entries=0)
