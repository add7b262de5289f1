"""Swap two directory entries in one step: Linux ``renameat2(RENAME_EXCHANGE)`` via ctypes.

Replacing a directory with ``rename`` takes two steps (old away, new in), so a crash between
them leaves no directory at the name. The exchange has no such instant. Where the kernel, the
filesystem or the C library lacks it, ``exchange`` returns False and the caller falls back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
#: errno values meaning "this system cannot exchange", not "this exchange failed".
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl without it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_FUNCTION = _renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap the entries ``a`` and ``b`` (both must exist); False if unsupported."""
    if _FUNCTION is None:
        return False
    if _FUNCTION(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(b))
