#!/usr/bin/env bash
# Install the scorerate package (from the checkout Snakemake runs in) into the rule env,
# without touching the pinned dependencies conda installed.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation .
