"""A rank that dies must take the job down: an uncaught exception in any rank of an initialized
process group prints its traceback under the rank's name and aborts every rank (MPI_Abort), so
no peer waits forever in a collective. Installed by `init_process_group`, removed by
`destroy_process_group`."""
from __future__ import annotations

import sys
import threading

_PREV = {}


def install(world) -> None:
    if _PREV:
        return
    _PREV["sys"] = sys.excepthook
    _PREV["thread"] = threading.excepthook
    rank, size = world.rank, world.size

    def abort_job(exc_type, exc, tb, where="process"):
        if exc_type is KeyboardInterrupt or exc_type is SystemExit and exc.code in (0, None):
            return _PREV["sys"](exc_type, exc, tb)
        import traceback
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(f"xbp.distributed: rank {rank} of {size} failed with an uncaught exception "
                         f"({where}); aborting all ranks.\n[rank {rank}] " +
                         text.replace("\n", f"\n[rank {rank}] ").rstrip() + "\n")
        sys.stderr.flush()
        # MPI_Abort makes the launcher kill every rank at once; the traceback above still sits in
        # the pipe to the launcher's proxy, and once (1 in some hundreds of CI runs on a loaded
        # 2-core machine) the job ended with nothing on stderr. A moment for it to be forwarded
        # costs a dying job nothing.
        import time
        time.sleep(0.25)
        from . import _mpi
        _mpi.abort(1)

    def thread_hook(args):
        abort_job(args.exc_type, args.exc_value, args.exc_traceback, f"thread {args.thread.name}")

    sys.excepthook = abort_job
    threading.excepthook = thread_hook


def uninstall() -> None:
    if _PREV:
        sys.excepthook = _PREV.pop("sys")
        threading.excepthook = _PREV.pop("thread")
