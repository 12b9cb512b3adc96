#!/usr/bin/env bash
# Fills benchmarks/wheels/ (git-ignored) with the wheels a GPU machine without a package index
# needs for `bash benchmarks/gpu.sh --offline`: only what its image lacks, for Python 3.12.
#
#   bash benchmarks/gpu_wheels.sh          # on a machine that reaches PyPI; prints what it fetched
#
# The GPU image (/work/.library/device/KINDS.md) has Python 3.12, jax 0.11.2 with its CUDA 13
# plugin, flax, optax, orbax-checkpoint, numpy, absl-py, pyyaml, pytest and xdist. What
# gpu.sh runs there (tests/test_models.py, benchmarks/gpu_bench.py: training steps on synthetic
# batches, generation) imports the model, the trainer and the config system, not the data stack
# (note-seq, pretty-midi, mido, grain, array-record, tensorflow-datasets, music21, tensorboardX:
# mvae_jax.input_pipeline imports grain and the MIDI code only where a dataset is read), so the
# one missing package is ml-collections (pure Python; its own needs, absl-py and PyYAML, are in
# the image). Nothing here depends on jax, so nothing can bring a second jax.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=benchmarks/wheels
mkdir -p "$dir"
# Pinned to the version the project is tested with; --no-deps: the rest is in the image.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation py --abi none --platform any -d "$dir" "ml-collections==1.1.0"
ls -l "$dir"
du -sh "$dir"
