"""Data-parallel training of the digits MLP on N processes with xbp.distributed (MPI, or NCCL on GPUs).

    mpiexec -n 2 python examples/train_digits_ddp.py [--epochs 20] [--batch-size 16]
        [--optimizer sgd|adam] [--lr LR] [--hidden 128] [--device cpu|cuda] [--backend mpi|nccl]
        [--seed 0] [--out runs/digits_ddp]

The same script runs on 1 process (plain ``python examples/train_digits_ddp.py``) or N. Every rank
builds the same model (DistributedDataParallel broadcasts rank 0's weights anyway), takes its
shard of the 1,437 training digits from a DistributedSampler (reshuffled every epoch with
``set_epoch``), and after each ``loss.backward()`` holds the gradient averaged over all ranks, so
the ranks stay in lock-step. `--batch-size` is per rank: the global batch is N times larger.
Rank 0 alone prints and writes the checkpoint (``xbp.save``, atomic) under --out; at the end the
script checks that every rank ends with bit-identical weights and exits 1 if not.
With ``--device cuda`` each rank uses GPU (local rank mod GPU count) and the default backend is NCCL.
"""
from __future__ import annotations

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import xbp  # noqa: E402
import xbp.distributed as dist  # noqa: E402
import xbp.nn as nn  # noqa: E402
import xbp.nn.functional as F  # noqa: E402
from xbp.data import load_digits  # noqa: E402
from xbp.distributed.sampler import DistributedSampler  # noqa: E402
from xbp.nn.parallel import DistributedDataParallel  # noqa: E402
import _cli  # noqa: E402

DEFAULT_LR = {"sgd": 0.1, "adam": 2e-3}


def parse_args(argv=None):
    ap = _cli.Parser(description="Data-parallel digits MLP with xbp.distributed (run under mpiexec -n N)")
    ap.add_argument("--hidden", type=_cli.int_at_least("--hidden", 1), default=128)
    ap.add_argument("--optimizer", choices=sorted(DEFAULT_LR), default="adam")
    ap.add_argument("--lr", type=_cli.positive_float("--lr"), default=None)
    ap.add_argument("--epochs", type=_cli.int_at_least("--epochs", 1), default=20)
    ap.add_argument("--batch-size", type=_cli.int_at_least("--batch-size", 1), default=16,
                    help="rows per rank and step (16)")
    ap.add_argument("--seed", type=_cli.int_at_least("--seed", 0), default=0)
    ap.add_argument("--device", default=None, help="cpu or cuda; default: $XBP_DEVICE or cpu")
    ap.add_argument("--backend", choices=["mpi", "nccl"], default=None,
                    help="default: nccl for cuda, mpi otherwise")
    ap.add_argument("--out", default=os.path.join("runs", "digits_ddp"))
    args = ap.parse_args(argv)
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]
    return args


def identical_on_all_ranks(model) -> bool:
    """True when every rank's parameters are bit-identical (elementwise MIN == MAX over ranks)."""
    flat = np.concatenate([p.detach().to("cpu").numpy().ravel() for p in model.parameters()])
    lo, hi = xbp.tensor(flat), xbp.tensor(flat)
    if dist.get_backend() == "nccl":
        lo, hi = lo.to("cuda"), hi.to("cuda")
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return bool(np.array_equal(lo.to("cpu").numpy(), hi.to("cpu").numpy()))


def main(argv=None) -> float:
    args = parse_args(argv)
    device = _cli.use_device(args.device)
    backend = args.backend or ("nccl" if str(device).startswith("cuda") else "mpi")
    # every check that can fail runs on every rank BEFORE the process group exists: a rank that
    # exits alone later would leave its peers waiting in a collective
    _cli.prepare_out_dir(args.out)
    try:
        (x_train, y_train), (x_test, y_test) = load_digits(test_size=0.2, seed=0, device="cpu")
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2)
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if backend == "nccl":
        device = f"cuda:{dist._default_group().comm.device_id}"
    log = print if rank == 0 else (lambda *a, **k: None)
    xn, yn = x_train.numpy(), y_train.numpy()
    x_test, y_test = x_test.to(device), y_test.to(device)

    xbp.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10)).to(device)
    ddp = DistributedDataParallel(model)
    opt = (xbp.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9) if args.optimizer == "sgd"
           else xbp.optim.Adam(ddp.parameters(), lr=args.lr))
    sampler = DistributedSampler(range(len(yn)), shuffle=True, seed=args.seed)
    steps = -(-len(sampler) // args.batch_size)
    log(f"{world} rank(s), backend {backend}, device {device}: MLP 64 -> {args.hidden} -> 10, "
        f"{args.optimizer} lr {args.lr:g}, {args.batch_size} rows per rank per step "
        f"(global batch {args.batch_size * world}), {len(sampler)} of {len(yn)} digits per rank, {steps} steps/epoch")

    t0 = time.perf_counter()
    test_acc = 0.0
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)            # the same new permutation on every rank
        idx = sampler.indices()
        loss_sum = xbp.zeros((), device=device, dtype=xbp.float64)
        for s in range(0, len(idx), args.batch_size):
            b = idx[s:s + args.batch_size]
            xb, yb = xbp.tensor(xn[b], device=device), xbp.tensor(yn[b], device=device)
            loss = F.cross_entropy(ddp(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with xbp.no_grad():
                loss_sum = loss_sum + loss.detach().to(xbp.float64) * len(b)
        dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM)      # for the log: the mean over all ranks
        model.eval()
        with xbp.no_grad():
            test_acc = float((model(x_test).argmax(dim=1) == y_test).sum().item()) / y_test.shape[0]
        model.train()
        log(f"epoch {epoch:3d}/{args.epochs}  loss {float(loss_sum.item()) / (len(idx) * world):.4f}  "
            f"test_acc {test_acc:.4f}")
    train_time = time.perf_counter() - t0

    same = identical_on_all_ranks(model)
    if rank == 0:
        ckpt = os.path.join(args.out, "digits_mlp_ddp.safetensors")
        state = {"model": ddp.state_dict(), "optimizer": opt.state_dict(), "epoch": args.epochs,
                 "world_size": world, "test_accuracy": test_acc}
        try:
            if _cli.save_checkpoint(state, ckpt, model):
                log(f"checkpoint: {ckpt}")
        except ImportError as e:
            log(f"checkpoint skipped: {e}")
    dist.barrier()                          # nobody exits before rank 0 has written the checkpoint
    log(f"weights identical on all {world} ranks: {same}")
    log(f"final test accuracy: {test_acc:.4f}  ({args.epochs} epochs in {train_time:.1f} s on {world} ranks)")
    dist.destroy_process_group()
    if not same:
        raise SystemExit(1)
    return test_acc


if __name__ == "__main__":
    main()
