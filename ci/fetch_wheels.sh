#!/usr/bin/env bash
# Download the pure-Python wheels that the GPU machine lacks into .whl/ (git-ignored), so the
# device tool can carry them: run here (with network), then call ci/gpu there with carry [".whl"].
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl array-api-compat==1.16.0 array-api-strict==2.6.1
# MPI for the distributed tests there (its image has mpi4py but no MPI library or mpiexec; NCCL
# comes with its PyTorch): MPICH's wheel (mpiexec, libmpi) and the mpi4py build for Python 3.12
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
  -d .whl mpich==5.0.2 mpi4py==4.1.2
ls -l .whl
