"""output_law with a grid score (an estimator object) and in three dimensions.

Oracles: the plain score callable (the law is the same law; only the score's evaluation
differs, by <= rtol); the linear Gaussian chain's closed-form variance; the KDE limit of
the empirical score; a Monte Carlo of the sampler itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from scorerate import density, law, theory
from scorerate.estimators import build


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("name", ["truncated", "regularized", "empirical"])
def test_grid_path_gives_the_plain_path_law(d, name):
    """Same tv_law and l2_law to 1e-9 (the scores agree to rtol 1e-6 and enter the law
    through the drift h s only), and the method counts are recorded."""
    n = 400
    p0 = density("sym_beta", beta=1.0, d=d)
    est = build(name, p0.sample(n, seed=6), {"backend": "dense"})
    kw = dict(d=d, t0=theory.t0_early_stop(n, 1.0, d), T=theory.T_horizon(n, 1.0, d),
              steps=12, resolution=2.0)
    plain = law.output_law(est.score, **kw)
    grid = law.output_law(est, **kw)
    assert plain.methods == {}
    assert sum(grid.methods[k] for k in ("grid", "bound", "exact", "skipped")) > 0
    assert abs(law.tv_law(plain, p0) - law.tv_law(grid, p0)) < 1e-9
    assert abs(law.l2_law(plain, p0) - law.l2_law(grid, p0)) < 1e-9
    assert abs(grid.mass.sum() - 1.0) < 1e-12


def test_grid_path_refuses_probability_flow():
    est = build("empirical", np.random.default_rng(0).standard_normal((50, 1)))
    with pytest.raises(ValueError, match="probability_flow"):
        law.output_law(est, d=1, t0=0.1, T=1.0, steps=4, integrator="probability_flow")
