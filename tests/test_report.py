"""The report: every output written, self-contained HTML, tables filled and consistent."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from scorerate.aggregate import aggregate, write_study
from scorerate.cli import main
from scorerate.rates import COLUMNS, VERDICTS, rate_table
from scorerate.report import make_report

sys.path.insert(0, str(Path(__file__).parent / "workflow"))
from synthetic import write_run  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NS = (100, 300, 1000)
SEEDS = (0, 1, 2)
N_BOOT = 60


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A synthetic study in d = 1, 2 (errors n^-0.5), one cell (d=2, n=1000, seed=2)
    missing, aggregated and written like the workflow does."""
    root = tmp_path_factory.mktemp("study")
    runs = [write_run(root / "runs", d=d, n=n, seed=s) for d in (1, 2) for n in NS
            for s in SEEDS if (d, n, s) != (2, 1000, 2)]
    config = {"densities": [{"name": "sym_beta", "beta": [1.0]}], "d": [1, 2], "n": list(NS),
              "seeds": list(SEEDS)}
    path = write_study(aggregate(runs, config=config), root / "study.zarr")
    out = root / "report"
    index = make_report(path, out, n_boot=N_BOOT)
    return {"root": root, "path": path, "out": out, "index": index}


def test_every_output_is_written(study):
    out = study["out"]
    assert study["index"] == out / "index.html"
    names = sorted(p.name for p in (out / "figures").iterdir())
    for d in (1, 2):
        slug = f"sym_beta_beta1_d{d}"
        for kind in ("rates_n", "score_t", "samples"):
            assert f"{kind}_{slug}.png" in names
    assert "verdicts.png" in names
    for p in (out / "figures").iterdir():
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000  # a real, drawn figure
    for name in ("rates.csv", "summary.md", "index.html"):
        assert (out / name).stat().st_size > 0


def test_html_is_self_contained_and_embeds_every_png(study):
    text = study["index"].read_text()
    srcs = re.findall(r"""src=['"]([^'"]+)['"]""", text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    # the only links to files beside it are the two tables the page offers as downloads
    hrefs = re.findall(r"""href=['"]([^'"]+)['"]""", text)
    assert sorted(h for h in hrefs if not h.startswith("#")) == ["rates.csv", "summary.md"]
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in srcs}
    on_disk = {p.read_bytes() for p in (study["out"] / "figures").iterdir()}
    assert embedded == on_disk


def test_tables_are_filled_and_match_the_rates(study):
    rates = pd.read_csv(study["out"] / "rates.csv")
    assert list(rates.columns) == COLUMNS
    assert set(rates["verdict"]) <= set(VERDICTS)
    # the CSV is the rate table of the study (same keyed bootstrap, so same numbers)
    direct = rate_table(xr.open_zarr(study["path"]).load(), n_boot=N_BOOT)
    np.testing.assert_allclose(rates["slope"], direct["slope"], rtol=1e-12)
    np.testing.assert_allclose(rates["ci_low"], direct["ci_low"], rtol=1e-12)
    # synthetic metrics fall as n^-0.5: every fitted slope in n is near it
    tv = rates[(rates.metric == "tv") & (rates.axis == "n")]
    assert len(tv) == 4 and np.all(np.abs(tv.slope + 0.5) < 0.1)
    summary = (study["out"] / "summary.md").read_text()
    html_text = study["index"].read_text()
    assert "(no rows)" not in summary and "(no rows)" not in html_text
    for title in ("Rates in n", "Score MSE in n at each fixed t", "Score MSE in t at each n"):
        assert f"## {title}" in summary and f"<summary><h2>{title}</h2>" in html_text
    # one markdown row per rate row, plus the verdict counts that add up to them
    body = [ln for ln in summary.splitlines() if ln.startswith("| sym_beta")]
    assert len(body) == len(rates)
    counts = dict(re.findall(r"^\| (inside CI|outside CI|not enough data|no theory) \| (\d+) \|$",
                             summary, flags=re.M))
    assert sum(map(int, counts.values())) == len(rates)
    # every row of the HTML tables is coloured by its verdict
    assert html_text.count("<tr style=") == len(rates)


def test_cli(study, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", "--study", str(study["path"]), "--out", str(out),
                 "--n-boot", "20"]) == 0
    assert (out / "index.html").is_file() and "wrote" in capsys.readouterr().out
    assert main(["report", "--study", str(tmp_path / "none.zarr"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
