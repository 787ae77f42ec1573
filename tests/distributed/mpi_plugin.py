"""pytest plugin for the tests that run inside an MPI job:

    mpiexec -n 2 python -m pytest -p mpi_plugin tests/distributed/mpi_collectives.py tests/distributed/mpi_ddp.py

(with tests/distributed on PYTHONPATH; tests/test_distributed.py launches exactly this). The files
are named mpi_*.py, not test_*.py, so the normal single-process suite never collects them.

Every rank runs the same tests in the same order; a test that fails on one rank aborts the whole
job (its peers would otherwise wait forever in the next collective), after printing the failure
under that rank's name."""
import sys

import pytest

import xbp.distributed as dist


def pytest_configure(config):
    if not dist.is_initialized():
        dist.init_process_group("mpi")


def pytest_runtest_logreport(report):
    if report.failed:
        r = dist.get_rank()
        sys.stderr.write(f"\n[rank {r}] FAILED {report.nodeid} ({report.when})\n{report.longreprtext}\n")
        sys.stderr.flush()
        from xbp.distributed import _mpi
        _mpi.abort(3)


@pytest.fixture
def world():
    return dist.get_rank(), dist.get_world_size()


_NCCL_GROUP = []


@pytest.fixture(params=["cpu", "strict", "cuda"])
def dev_group(request):
    """(device, group) pairs: cpu and strict tensors over the default MPI group; cuda tensors
    over an NCCL group (skipped with the reason where there is no GPU or no NCCL)."""
    if request.param != "cuda":
        return request.param, None
    from xbp.distributed import _nccl
    reason = _nccl.unavailable_reason()
    if reason:
        pytest.skip(reason)
    import cupy
    gpus = cupy.cuda.runtime.getDeviceCount()
    if dist.get_world_size() > gpus:
        pytest.skip(f"nccl: {dist.get_world_size()} ranks but {gpus} GPU(s) (NCCL needs one GPU per rank); "
                    "the 1-rank NCCL run covers cuda here")
    if not _NCCL_GROUP:
        _NCCL_GROUP.append(dist.new_group(backend="nccl"))
    return "cuda", _NCCL_GROUP[0]
