"""One MLP training step, N times, plain or wrapped in DistributedDataParallel on a 1-rank MPI group,
for callgrind instruction counts (bench/RESULTS.md, DDP section):

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=$PWD valgrind --tool=callgrind python bench/ddp_step_callgrind.py {plain|ddp} N

Per-step instructions: (Ir at N=15 - Ir at N=5) / 10 (the start-up cancels).
"""
import sys

import numpy as np

import xbp
import xbp.distributed as dist
import xbp.nn as nn
import xbp.nn.functional as F
from xbp.nn.parallel import DistributedDataParallel as DDP
dist.init_process_group("mpi")
mode, steps = sys.argv[1], int(sys.argv[2])
rs = np.random.RandomState(0)
x = xbp.tensor(rs.randn(128, 784).astype(np.float32)); y = xbp.tensor(rs.randint(0, 10, 128).astype(np.int64))
xbp.manual_seed(0)
m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
if mode != "plain":
    m = DDP(m)
opt = xbp.optim.SGD(m.parameters(), lr=0.01)
for _ in range(steps):
    opt.zero_grad(); F.cross_entropy(m(x), y).backward(); opt.step()
dist.destroy_process_group()
