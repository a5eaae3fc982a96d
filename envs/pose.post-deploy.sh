#!/usr/bin/env bash
# Snakemake runs this once after creating envs/pose.yaml: mediapipe without its declared
# dependencies (numpy<2, jax, a second OpenCV), as requirements-nodeps.txt does for the venv.
set -euo pipefail
python -m pip install --no-deps mediapipe==0.10.21
