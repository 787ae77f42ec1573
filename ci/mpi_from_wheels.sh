# Sourced by ci/gpu after the pure wheels are installed into /tmp/xbp-site: MPI from the wheels
# of ci/fetch_wheels.sh (the GPU image has mpi4py but no MPI library or mpiexec). pip --target
# leaves out a wheel's data files, so MPICH's libraries are unpacked by hand and libmpi is named
# to mpi4py (MPI4PY_LIBMPI; it finds libfabric and UCX beside it through its RUNPATH,
# $ORIGIN/mpich); mpiexec lands in /tmp/xbp-site/bin.
# Rehearsed in a Python 3.12 venv without mpi4py (2026-12-06: tests/test_distributed.py 22 passed):
#   python3.12 -m venv /tmp/v && . /tmp/v/bin/activate && pip install numpy pytest
#   python3 -m pip install --target /tmp/xbp-site .whl/*-none-any.whl
#   export PYTHONPATH=/tmp/xbp-site:$PWD && source ci/mpi_from_wheels.sh && python3 -m pytest tests/test_distributed.py
if compgen -G ".whl/mpich-*.whl" >/dev/null && compgen -G ".whl/mpi4py-*.whl" >/dev/null &&
   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/xbp-site \
     .whl/mpich-*.whl .whl/mpi4py-*.whl 2>/dev/null; then
  python3 - .whl/mpich-*.whl <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if ".data/data/lib/" in n and z.getinfo(n).file_size > 64:   # (not the symlinks, stored as tiny files)
        z.extract(n, "/tmp/xbp-mpich")
PY
  MPI4PY_LIBMPI=$(ls /tmp/xbp-mpich/*/data/lib/libmpi.so.12 | head -n 1)
  export MPI4PY_LIBMPI PATH=/tmp/xbp-site/bin:$PATH
  echo "MPI from the wheels: $(command -v mpiexec), $MPI4PY_LIBMPI"
else
  echo "MPI wheels not installed (not Python 3.12 here?): the distributed tests use what is installed"
fi
