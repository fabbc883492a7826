"""Shell injection through a study config: every key the schema knows, refused at `-n`.

Each config key (found by walking workflow/schemas/config.schema.yaml, so a new key is
tried too) gets a value holding `$( )`, backticks, `;` and spaces that would create a
file INJECTED if any shell ran it. `snakemake -n` must refuse the config, and no INJECTED
file may appear. Values that pass validation go through scorerate.config.shell.quote: a real
bash run of a quoted payload prints it back and runs nothing.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml
from snakerun import REPO, TINY, smk, with_

from scorerate.config import file as config_file
from scorerate.config import shell

#: each would create INJECTED in the working directory if a shell ran it
PAYLOADS = ("x$(touch INJECTED)", "x`touch INJECTED`", "x;touch INJECTED", "x touch INJECTED",
            "1 $(touch INJECTED) `touch INJECTED`; touch INJECTED",
            "x$(touch${IFS}INJECTED)`touch${IFS}INJECTED`;touch${IFS}INJECTED")
#: tried in every key: all forms with spaces, and all without (past a no-space pattern)
EVERY_KEY = PAYLOADS[-2:]
ADDRESSES = tuple(f"tcp://{p}:8786" for p in PAYLOADS) + (
    "tcp://10.0.0.1:8786;touch INJECTED", "tcp://10.0.0.1:8786\ntouch INJECTED")


def _schema_keys() -> list[tuple[str, ...]]:
    """Every leaf key path of the config schema, e.g. ('t_grid', 'tmin'), ('densities',
    0, 'name'), ('d',)."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    out = []
    for key, spec in schema["properties"].items():
        if spec.get("type") == "object":
            out += [(key, sub) for sub in spec["properties"]]
        elif key == "densities":
            out += [(key, 0, sub) for sub in spec["items"]["properties"]]
        else:
            out.append((key,))
    return out


def _is_list(path: tuple) -> bool:
    """Whether the schema wants a list at `path` (then the payload goes in as its item)."""
    return path[-1] in ("d", "n", "seeds", "estimators", "beta")


def _poisoned(path: tuple, payload: str) -> dict:
    """TINY with the value at `path` replaced by `payload` (as a list item for lists)."""
    cfg = copy.deepcopy(TINY)
    cfg.setdefault("dask", {"scheduler_address": None, "jobs_per_client": 1})
    cfg.setdefault("t_grid", {"tmin": 0.01, "tmax": 10.0, "num": 5})
    node = cfg
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = [payload] if _is_list(path) else payload
    return cfg


KEYS = _schema_keys()


def test_the_schema_walk_finds_every_key_that_reaches_a_shell_line():
    names = {".".join(map(str, k)) for k in KEYS}
    assert {"densities.0.name", "densities.0.beta", "estimators", "seeds", "m", "t0",
            "t_grid.tmin", "dask.scheduler_address", "highorder_order"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("payload", EVERY_KEY, ids=["spaces", "no-spaces"])
@pytest.mark.parametrize("path", KEYS, ids=lambda k: ".".join(map(str, k)))
def test_a_payload_in_any_config_key_is_refused_at_dry_run(path, payload, tmp_path):
    res = smk(tmp_path, _poisoned(path, payload), "-n", "-p")
    assert res.returncode != 0, res.stdout
    assert "Error validating config file" in res.stdout or "config" in res.stdout.split(
        "Error")[-1], res.stdout  # the config's validation refused it, not a crash later
    assert "Job stats" not in res.stdout  # refused before a plan exists
    assert not (tmp_path / "INJECTED").exists()
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
@pytest.mark.parametrize("address", ADDRESSES)
def test_a_scheduler_address_with_shell_text_is_refused_at_dry_run(address, tmp_path):
    res = smk(tmp_path, with_(TINY, dask={"scheduler_address": address}), "-n", "-p")
    assert res.returncode != 0, res.stdout
    assert "scheduler_address" in res.stdout
    assert "scorerate run-job" not in res.stdout
    assert not (tmp_path / "INJECTED").exists()


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_library_refuses_the_same_addresses(address):
    with pytest.raises(ValueError, match="scheduler_address"):
        config_file.check_config(with_(TINY, dask={"scheduler_address": address}))
    with pytest.raises(ValueError, match="malformed scheduler address"):
        shell.check_address(address)


@pytest.mark.parametrize("address", ["tcp://10.0.0.1:8786", "tls://node-3.hpc.example:8786",
                                     "tcp://[::1]:8786", "localhost:8786"])
def test_real_addresses_pass(address):
    assert shell.check_address(address) == address


@pytest.mark.parametrize("address", ADDRESSES[:3])
def test_run_job_refuses_the_address_in_one_line(address, tmp_path):
    env_src = str(REPO / "src")
    proc = subprocess.run(
        [sys.executable, "-m", "scorerate", "run-job", "--density", "sym_beta", "--beta", "1",
         "--d", "1", "--n", "50", "--out", str(tmp_path / "run.zarr"), "--scheduler", address],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": env_src, "HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "malformed scheduler address" in lines[0], proc.stderr
    assert not (tmp_path / "INJECTED").exists() and not (tmp_path / "run.zarr").exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_quoted_payload_is_one_inert_word_in_a_real_shell(payload, tmp_path):
    line = f"printf '%s|' {shell.quote(payload)} {shell.option('--x', payload)}"
    out = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and out.stdout == f"{payload}|--x|{payload}|"
    assert not (tmp_path / "INJECTED").exists()


def test_safe_values_are_left_as_they_were():
    """Quoting changes no command line of a valid config, so it reruns no job."""
    for v in ("sym_beta", "1.0", "1e-05", "results/runs/sym_beta/beta=1.0/d=1/n=50/seed=0.zarr",
              "tcp://10.0.0.1:8786", "euler_maruyama"):
        assert shell.quote(v) == v
