"""Identity-keyed random streams: same name, same numbers; other name, other numbers."""

from __future__ import annotations

import numpy as np

from scorerate.seeding import job_key, rng


def test_same_parts_same_stream_regardless_of_order_of_creation():
    a = rng(0, "job", "particle", 5).standard_normal(8)
    rng(0, "job", "particle", 6).standard_normal(100)  # another stream in between
    b = rng(0, "job", "particle", 5).standard_normal(8)
    np.testing.assert_array_equal(a, b)


def test_different_parts_different_streams():
    draws = {p: rng(0, "job", "particle", p).standard_normal(4).tobytes() for p in range(50)}
    assert len(set(draws.values())) == 50
    assert not np.array_equal(rng(0, "a").random(4), rng(1, "a").random(4))
    # "1" and 1 are different identities
    assert not np.array_equal(rng("1").random(4), rng(1).random(4))


def test_job_key_canonical():
    assert job_key("sym_beta", 1, 2, 1000, 0) == job_key("sym_beta", 1.0, 2, 1000, 0)
    assert job_key("sym_beta", 1.0, 2, 1000, 0) != job_key("sym_beta", 1.0, 2, 1000, 1)


def test_numpy_scalars_name_the_same_stream_as_python_numbers():
    a = rng(np.int64(3), np.float64(0.5)).random(4)
    np.testing.assert_array_equal(a, rng(3, 0.5).random(4))
