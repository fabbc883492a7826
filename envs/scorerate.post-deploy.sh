#!/usr/bin/env bash
# Install the scorerate package into the rule env without touching the pinned dependencies
# conda installed. Snakemake runs this script from the workflow's working directory, which
# must be the repository root (run snakemake there, without --directory).
set -euo pipefail
if ! grep -qs '^name = "scorerate"' pyproject.toml; then
  echo "scorerate post-deploy: run snakemake from the repository root ($(pwd) has no" \
       "scorerate pyproject.toml)" >&2
  exit 1
fi
python -m pip install --no-deps --no-build-isolation .
