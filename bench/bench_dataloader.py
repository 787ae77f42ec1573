"""Speed-up of DataLoader worker processes on a dataset whose __getitem__ costs ~1 ms.

    python bench/bench_dataloader.py [--n 240] [--batch 8] [--rounds 7] [--workers 0 1 2]

Two kinds of sample cost: `sleep` (1 ms of waiting, like reading a file: a worker needs no core
while it waits) and `busy` (~1 ms of Python arithmetic, calibrated once in the main process: it
needs a core, so the speed-up is bounded by the free cores). One epoch = n samples in batches of
`batch`. For each num_workers, two timings: `epoch` (a fresh iterator, worker start-up included)
and `persistent` (persistent_workers=True, after one warm-up epoch). Rounds interleave all
variants (order rotated each round); medians over rounds with [min-max]; a speed-up is the
median of the per-round ratios to that round's num_workers=0 epoch (paired), with [min-max]."""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from xbp.data import DataLoader, Dataset  # noqa: E402


def _spin(k):
    s = 0
    for i in range(k):
        s += i * i
    return s


def calibrate(target_s=1e-3):
    k = 1000
    while True:
        dt = float("inf")
        for _ in range(20):                  # the fastest run: what the loop costs on a free core
            t0 = time.perf_counter()
            _spin(k)
            dt = min(dt, time.perf_counter() - t0)
        if dt > target_s / 4:
            return max(1, int(k * target_s / dt))
        k *= 2


class Costly(Dataset):
    def __init__(self, n, kind, spin):
        self.n, self.kind, self.spin = n, kind, spin

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.kind == "sleep":
            time.sleep(1e-3)
        else:
            _spin(self.spin)
        return i


def epoch_time(loader):
    t0 = time.perf_counter()
    n = 0
    for b in loader:
        n += len(b)
    return time.perf_counter() - t0, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    spin = calibrate()
    now = []
    for _ in range(10):
        t0 = time.perf_counter()
        _spin(spin)
        now.append(time.perf_counter() - t0)
    print(f"# cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, busy sample: {spin} iterations "
          f"(median {statistics.median(now) * 1e3:.2f} ms now), n={args.n}, batch={args.batch}, "
          f"rounds={args.rounds}")
    kinds = ("sleep", "busy")
    persistent = {}
    for kind in kinds:
        for w in args.workers:
            if w > 0:
                dl = DataLoader(Costly(args.n, kind, spin), batch_size=args.batch, num_workers=w,
                                persistent_workers=True)
                epoch_time(dl)                      # warm-up: start the workers
                persistent[kind, w] = dl
    variants = [(kind, w, mode) for kind in kinds for w in args.workers
                for mode in (("epoch",) if w == 0 else ("epoch", "persistent"))]
    times = {v: [] for v in variants}
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for kind, w, mode in order:
            if mode == "persistent":
                dl = persistent[kind, w]
            else:
                dl = DataLoader(Costly(args.n, kind, spin), batch_size=args.batch, num_workers=w)
            dt, n = epoch_time(dl)
            assert n == args.n
            times[kind, w, mode].append(dt)
    print("| sample cost | num_workers | epoch (start-up incl.) | speed-up | persistent workers | speed-up |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        for w in args.workers:
            cells = []
            for mode in ("epoch", "persistent"):
                ts = times.get((kind, w, mode))
                if not ts:
                    cells += ["-", "-"]
                    continue
                m = statistics.median(ts)
                # paired: the speed-up of each round against the same round's num_workers=0 epoch
                ratios = [b / t for b, t in zip(times[kind, args.workers[0], "epoch"], ts)]
                cells += [f"{m * 1e3:.0f} ms [{min(ts) * 1e3:.0f}-{max(ts) * 1e3:.0f}]",
                          f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"]
            print(f"| {kind} 1 ms | {w} | " + " | ".join(cells) + " |")
    for dl in persistent.values():
        del dl
    persistent.clear()


if __name__ == "__main__":
    main()
