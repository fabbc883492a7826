"""What a command may replace or move (scorerate.store.targets), against the real CLI.

aggregate --out, report --out and check-stores in a temporary working directory: the
working directory, its ancestors, a directory holding the inputs and anything that is not
an output of this project are refused with one line and exit 2, and nothing changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scorerate.store import targets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "workflow"))
from synthetic import write_run  # noqa: E402

CONFIG = {"densities": [{"name": "sym_beta", "beta": [1.0]}], "d": [1], "n": [100, 300],
          "seeds": [0], "estimators": ["truncated", "empirical"]}


def scorerate(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m scorerate ARGS` in `cwd` with this checkout's library."""
    return subprocess.run([sys.executable, "-m", "scorerate", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with the bytes of each file: 'nothing changed'."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


def refused(proc: subprocess.CompletedProcess, words: str) -> None:
    """Exit 2 with exactly one line on stderr containing `words`."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr


@pytest.fixture
def work(tmp_path):
    """A working directory with two run stores under results/runs, a config and a
    directory of the user's."""
    runs = [write_run(tmp_path / "results" / "runs", n=n) for n in (100, 300)]
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    return {"root": tmp_path, "runs": [str(p.relative_to(tmp_path)) for p in runs]}


def _aggregate(work, out: str) -> subprocess.CompletedProcess:
    return scorerate(work["root"], "aggregate", "--config", "config.json", "--out", out,
                     *work["runs"])


@pytest.mark.parametrize(("out", "words"), [
    ("mine", "not a scorerate study store"),
    (".", "working directory or one of its ancestors"),
    ("ABSOLUTE_CWD", "working directory or one of its ancestors"),
    ("..", "working directory or one of its ancestors"),
    ("results", "holds the input"),
    ("results/runs", "holds the input"),
    ("FIRST_RUN", "is or holds the input"),
    ("config.json", "is or holds the input"),
])
def test_aggregate_out_refuses_what_is_not_a_study_store(work, out, words):
    root = work["root"]
    out = {"ABSOLUTE_CWD": str(root), "FIRST_RUN": work["runs"][0]}.get(out, out)
    before = snapshot(root)
    refused(_aggregate(work, out), words)
    assert snapshot(root) == before


def test_aggregate_out_refuses_a_run_store_that_is_no_input(work):
    other = write_run(work["root"] / "elsewhere", n=1000)
    before = snapshot(work["root"])
    refused(_aggregate(work, str(other)), "not a scorerate study store")
    assert snapshot(work["root"]) == before


def test_aggregate_writes_and_then_replaces_its_own_study(work):
    root = work["root"]
    first = _aggregate(work, "results/study.zarr")
    assert first.returncode == 0, first.stderr
    assert targets.is_kind(root / "results" / "study.zarr", "study")
    again = _aggregate(work, "results/study.zarr")
    assert again.returncode == 0, again.stderr


@pytest.fixture
def study(work):
    proc = _aggregate(work, "results/study.zarr")
    assert proc.returncode == 0, proc.stderr
    return work


@pytest.mark.parametrize(("out", "words"), [
    (".", "working directory or one of its ancestors"),
    ("results", "holds the input"),
    ("mine", "not a scorerate report directory"),
    ("page", "not a scorerate report directory"),
])
def test_report_out_refuses_what_is_not_a_report(study, out, words):
    root = study["root"]
    page = root / "page"
    page.mkdir()
    (page / "index.html").write_text("<html>the user's own page</html>")
    before = snapshot(root)
    refused(scorerate(root, "report", "--study", "results/study.zarr", "--out", out), words)
    assert snapshot(root) == before


def test_report_out_replaces_its_own_report(study):
    root = study["root"]
    for _ in range(2):
        proc = scorerate(root, "report", "--study", "results/study.zarr", "--out", "rep")
        assert proc.returncode == 0, proc.stderr
    assert targets.REPORT_GENERATOR in (root / "rep" / "index.html").read_text()
    assert targets.is_kind(root / "rep", "report")


def test_check_stores_moves_only_run_stores(work):
    root = work["root"]
    fake = root / "results" / "runs" / "fake.zarr"
    fake.mkdir()
    (fake / "notes.txt").write_text("mine")
    bad = Path(root / work["runs"][1])
    meta = json.loads((bad / "zarr.json").read_text())
    meta["attributes"]["n"] = 7  # an identity attribute edited: the checksum fails
    (bad / "zarr.json").write_text(json.dumps(meta))
    proc = scorerate(root, "check-stores", "--corrupt-dir", "corrupt", work["runs"][0],
                     str(bad.relative_to(root)), str(fake.relative_to(root)))
    assert proc.returncode == 2, proc.stderr
    assert (fake / "notes.txt").read_text() == "mine"  # left in place
    assert "not a scorerate run store" in proc.stderr
    assert not bad.exists() and len(list((root / "corrupt").glob("*.why.txt"))) == 1
    assert (root / work["runs"][0]).is_dir()


def test_the_recognisers(work, tmp_path_factory):
    root = work["root"]
    run = root / work["runs"][0]
    assert targets.is_kind(run, "run") and not targets.is_kind(run, "study")
    assert not targets.is_kind(root / "mine", "run")
    assert not targets.is_kind(root / "mine", "report")
    assert targets.is_kind(tmp_path_factory.mktemp("empty"), "report")
    (run / "zarr.json").unlink()  # damaged metadata: still ours by its layout
    assert targets.is_kind(run, "run")
