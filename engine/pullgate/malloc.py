"""Cap glibc's malloc arenas in the daemon.

glibc gives threads their own arenas (up to 8 per core) and keeps the memory freed in each for
reuse. The daemon's RPC threads read registry bodies in 64 KiB chunks up to the size limits;
under faults (bodies over a limit, cut short) many threads hold such buffers at once, and each
arena keeps its high-water mark: measured under the fault soak (tests/test_soak.py), RSS grew
12 % over 10,000 calls with the default arenas and 4 % with two. Two arenas cost nothing
measurable here (the GIL serialises most allocation anyway).

An operator's own ``MALLOC_ARENA_MAX`` wins; other C libraries (musl) are left alone.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["cap_malloc_arenas"]

M_ARENA_MAX = -8  # <malloc.h>
ARENAS = 2


def cap_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Limit glibc to ``arenas`` malloc arenas; True when the limit was set."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process already uses
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))
