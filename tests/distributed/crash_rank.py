"""Run under mpiexec: rank 1 raises while rank 0 waits in a collective that rank 1 never joins.
The job must end (non-zero) within seconds, the error naming rank 1 -- not hang."""
import sys
import time

import xbp
import xbp.distributed as dist

dist.init_process_group("mpi")
rank = dist.get_rank()
t = xbp.tensor([1.0, 2.0])
dist.all_reduce(t)                      # one good collective first
if rank == 1:
    time.sleep(0.2)
    raise ValueError("deliberate failure on rank 1")
dist.all_reduce(t)                      # rank 0 blocks here, waiting for the dead peer
print("rank 0 got past the collective: the abort did not happen", file=sys.stderr)
