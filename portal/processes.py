"""Child processes that never outlive the worker that started them."""

import ctypes
import ctypes.util
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent():
    """`preexec_fn` for trainers and model servers.

    Celery's pool processes ignore SIGINT and their children inherit that, so
    the defaults are restored; and on Linux the kernel SIGKILLs the child when
    the process that started it dies (a killed worker must free its GPU).
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
