"""A library function called without an option does what the job does with its default."""

from __future__ import annotations

import inspect

import pytest

from scorerate import sampler
from scorerate.config.spec import BY_NAME

#: (library function, its keyword, the job parameter whose default it must equal)
SAME_DEFAULTS = [
    (sampler.sample, "chunk", "chunk"),
]


@pytest.mark.parametrize(("fn", "keyword", "param"), SAME_DEFAULTS,
                         ids=[f"{f.__module__}.{f.__name__}:{k}" for f, k, _ in SAME_DEFAULTS])
def test_library_default_is_the_jobs(fn, keyword, param):
    assert inspect.signature(fn).parameters[keyword].default == BY_NAME[param].default
