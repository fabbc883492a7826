"""The study: run stores combined into study.zarr, finite-n predictions, and rates with verdicts."""
