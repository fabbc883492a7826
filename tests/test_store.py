"""Run stores: schema, atomic write, refusal to overwrite, corrupt-store detection."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from scorerate.store import runstore as store
from scorerate.store.runstore import StoreError

sys.path.insert(0, str(Path(__file__).parent / "workflow"))
from synthetic import rot_a_byte  # noqa: E402

from scorerate.store.targets import MARKER_ATTR
from scorerate.store.variables import RUN_COORDS, STOP_FACTORS, VARIABLES


def fake_run(seed: int = 0, m: int = 40, d: int = 2, n: int = 30, K: int = 5) -> xr.Dataset:
    """A Dataset with the run schema filled with seeded noise (no science needed here)."""
    rng = np.random.default_rng(seed)
    E = ["truncated", "empirical"]
    sizes = {"train": n, "dim": d, "estimator": 2, "sample": m, "t": K,
             "stop": len(STOP_FACTORS)}
    data = {v.name: (v.dims, rng.random(tuple(sizes[k] for k in v.dims))) for v in VARIABLES}
    data["train"] = (("train", "dim"), rng.normal(size=(n, d)))
    data["tv"] = (("estimator",), [rng.random(), np.nan])  # NaN metrics (d > 3) must survive
    return xr.Dataset(
        data,
        coords={"estimator": E, "t": np.geomspace(0.1, 10, K), "dim": np.arange(d),
                "stop": np.asarray(STOP_FACTORS)},
        attrs=dict(density="sym_beta", beta=1.0, d=d, n=n, seed=seed, t0=0.1, T=10.0,
                   steps=5, integrator="euler_maruyama", c_rho=1.0, m=m,
                   scorerate_version="test", wall_time_s=1.5, params_hash="ab" * 32,
                   eps=None, estimators=tuple(E), n_mc=np.int64(7), rtol=np.float32(0.5),
                   versions={"numpy": np.__version__}),
    )


def _assert_same_data(a: xr.Dataset, b: xr.Dataset) -> None:
    for name in store.SCHEMA:
        np.testing.assert_array_equal(a[name].values, b[name].values)  # exact, NaN == NaN
    for c in RUN_COORDS:
        assert [str(v) for v in a[c].values] == [str(v) for v in b[c].values]


def test_roundtrip_is_exact_and_opens_with_plain_xarray(tmp_path):
    ds = fake_run()
    path = store.write_run(ds, tmp_path / "run.zarr")
    back = store.open_run(path)
    _assert_same_data(ds, back)
    plain = xr.open_zarr(path)  # what the aggregator and users do
    assert set(store.SCHEMA) <= set(plain.variables)
    assert plain.attrs["estimators"] == ["truncated", "empirical"]  # JSON-safe: list
    assert plain.attrs["n_mc"] == 7 and isinstance(plain.attrs["n_mc"], int)
    assert plain.attrs["eps"] is None
    zarr_json = json.loads((path / "zarr.json").read_text())
    assert zarr_json["zarr_format"] == 3 and "consolidated_metadata" in zarr_json
    assert plain["samples"].encoding["chunks"] == (1, 40, 2)  # one chunk per estimator
    assert plain["samples"].encoding["compressors"]  # compressed via encoding
    # no temporary siblings left behind
    assert [p.name for p in tmp_path.iterdir()] == ["run.zarr"]


def test_schema_violations_are_refused_before_writing(tmp_path):
    ds = fake_run().drop_vars("mmd2")
    with pytest.raises(StoreError, match="mmd2"):
        store.write_run(ds, tmp_path / "bad.zarr")
    bad_dims = fake_run()
    bad_dims["tv"] = (("t",), np.zeros(bad_dims.sizes["t"]))
    with pytest.raises(StoreError, match="'tv' has dims"):
        store.write_run(bad_dims, tmp_path / "bad.zarr")
    no_attr = fake_run()
    del no_attr.attrs["params_hash"]
    with pytest.raises(StoreError, match="params_hash"):
        store.write_run(no_attr, tmp_path / "bad.zarr")
    assert not any(tmp_path.iterdir())


def test_existing_store_is_never_overwritten_unless_asked(tmp_path):
    path = tmp_path / "run.zarr"
    store.write_run(fake_run(seed=1), path)
    with pytest.raises(StoreError, match="already exists"):
        store.write_run(fake_run(seed=2), path)
    _assert_same_data(store.open_run(path), fake_run(seed=1))
    store.write_run(fake_run(seed=2), path, overwrite=True)
    _assert_same_data(store.open_run(path), fake_run(seed=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]


class _Boom(RuntimeError):
    pass


def _fail_after_some_arrays(monkeypatch, after: int) -> None:
    """Make xarray's array writes raise after `after` variables were written."""
    from xarray.backends.zarr import ZarrStore

    real = ZarrStore.set_variables
    calls = {"n": 0}

    def flaky(self, variables, *args, **kwargs):
        kept = {}
        for k, v in variables.items():
            if calls["n"] >= after:
                raise _Boom("disk full (simulated)")
            calls["n"] += 1
            kept[k] = v
            real(self, {k: v}, *args, **kwargs)

    monkeypatch.setattr(ZarrStore, "set_variables", flaky)


def test_failure_mid_write_leaves_no_finished_looking_store(tmp_path, monkeypatch):
    path = tmp_path / "run.zarr"
    _fail_after_some_arrays(monkeypatch, after=3)
    with pytest.raises(_Boom):
        store.write_run(fake_run(), path)
    assert not path.exists()
    assert not any(tmp_path.iterdir())  # the temporary sibling was cleaned up


def test_failed_overwrite_keeps_the_old_store_intact(tmp_path, monkeypatch):
    path = tmp_path / "run.zarr"
    store.write_run(fake_run(seed=1), path)
    _fail_after_some_arrays(monkeypatch, after=3)
    with pytest.raises(_Boom):
        store.write_run(fake_run(seed=2), path, overwrite=True)
    monkeypatch.undo()
    _assert_same_data(store.open_run(path), fake_run(seed=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]


def test_interrupted_temporary_store_is_not_complete(tmp_path, monkeypatch):
    # what a killed job leaves: a hidden temporary sibling, never the final name
    path = tmp_path / "run.zarr"
    import scorerate.store.runstore as st

    def killed(tmp, final, overwrite):
        raise KeyboardInterrupt

    monkeypatch.setattr(st, "swap_into_place", killed)
    with pytest.raises(KeyboardInterrupt):
        store.write_run(fake_run(), path)
    assert not path.exists() and not store.is_complete(path)


@pytest.mark.parametrize("damage", ["delete_chunk", "delete_metadata", "garble_metadata",
                                    "flip_data", "empty_dir"])
def test_corrupt_store_is_detected_with_a_clear_error(tmp_path, damage):
    path = store.write_run(fake_run(), tmp_path / "run.zarr")
    if damage == "delete_chunk":  # a missing chunk would silently read as NaN
        chunks = [p for p in (path / "samples").rglob("*") if p.is_file()
                  and p.name != "zarr.json"]
        chunks[0].unlink()
    elif damage == "delete_metadata":
        (path / "zarr.json").unlink()
    elif damage == "garble_metadata":
        (path / "zarr.json").write_text("{not json")
    elif damage == "flip_data":  # same shape, different numbers, valid metadata
        import zarr

        arr = zarr.open_array(path / "w1", mode="r+")
        arr[:] = arr[:] + 1.0
    elif damage == "empty_dir":
        shutil.rmtree(path)
        path.mkdir()
    with pytest.raises(StoreError, match=str(path)):
        store.open_run(path)
    assert not store.is_complete(path)


def test_open_run_names_a_missing_store(tmp_path):
    with pytest.raises(StoreError, match="no run store"):
        store.open_run(tmp_path / "nothing.zarr")


def test_json_safe_attrs():
    out = store.json_safe({"a": (1, np.float64(2.5)), "b": np.arange(2), "c": float("nan"),
                           "p": Path("x"), "n": None})
    assert out == {"a": [1, 2.5], "b": [0, 1], "c": None, "p": "x", "n": None}
    json.dumps(out, allow_nan=False)


def _edit_attrs(path: Path, **changes) -> None:
    """Edit root attributes by hand in zarr.json (and any consolidated copy of them)."""
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"].update(changes)
    cons = meta.get("consolidated_metadata") or {}
    for entry in (cons.get("metadata") or {}).values():
        if entry.get("node_type") == "group" and "attributes" in entry:
            entry["attributes"].update(changes)
    (path / "zarr.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("change", [{"n": 3000}, {"beta": 2.0}, {"seed": 5},
                                    {"density": "laplace"}, {"t0": 0.2}, {"T": 11.0},
                                    {"params_hash": "cd" * 32}])
def test_edited_identity_attribute_is_detected(tmp_path, change):
    path = store.write_run(fake_run(), tmp_path / "run.zarr")
    _edit_attrs(path, **change)
    key, value = next(iter(change.items()))
    assert xr.open_zarr(path).attrs[key] == value  # the edit is what a reader would see
    with pytest.raises(StoreError, match="identifying attributes"):
        store.open_run(path)
    assert store.is_run_store(path)  # still ours (may be replaced), but not trusted


def test_edit_of_a_non_identity_attribute_is_not_a_corruption(tmp_path):
    path = store.write_run(fake_run(), tmp_path / "run.zarr")
    _edit_attrs(path, wall_time_s=99.0)
    assert store.open_run(path).attrs["wall_time_s"] == 99.0


def test_store_without_the_marker_is_refused_and_not_ours(tmp_path):
    path = store.write_run(fake_run(), tmp_path / "run.zarr")
    meta = json.loads((path / "zarr.json").read_text())
    del meta["attributes"][MARKER_ATTR]
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="marker"):
        store.open_run(path)
    assert not store.is_run_store(path)
    other = tmp_path / "other"
    other.mkdir()
    assert not store.is_run_store(other) and not store.is_run_store(tmp_path / "nothing")


def test_the_verification_cache_sees_bit_rot_that_keeps_size_and_mtime(tmp_path):
    path = store.write_run(fake_run(), tmp_path / "run.zarr")
    cache = tmp_path / "verified.json"
    assert store.quarantine_bad_stores({str(path): {}}, tmp_path / "corrupt", cache=cache) == []
    assert str(path) in json.loads(cache.read_text())  # verified once, remembered
    rot_a_byte(path)
    moved = store.quarantine_bad_stores({str(path): {}}, tmp_path / "corrupt", cache=cache)
    assert len(moved) == 1 and "checksum" in moved[0]
    assert not path.exists()
