"""C functions that numba kernels call by name: found with ctypes, registered with LLVM.

A kernel that calls a ctypes function pointer bakes the address into its code, and numba
refuses to cache it on disk. Registering the address under a name of our own
(``llvm.add_symbol``) and emitting a plain call to that name keeps the kernel cacheable: the
name is resolved again in every process, when the module that registers it is imported.

:func:`voidptr` turns an int64 address into a pointer inside a kernel (for ``numba.carray``):
kernels that view memory they were handed by address (the gate's state, a consumer's quiet
state, a mapped file) use it.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["register", "voidptr"]


def register(symbol: str, library: str | None, function: str) -> bool:
    """Register ``function`` of the shared library at path ``library`` (``None``: the process
    itself, e.g. libc) as ``symbol``; False when the library or the function is not there."""
    try:
        fn = getattr(ctypes.CDLL(library), function)
    except (OSError, AttributeError):
        return False
    address = ctypes.cast(fn, ctypes.c_void_p).value
    if not address:
        return False
    llvm.add_symbol(symbol, address)
    return True


@intrinsic
def voidptr(typingctx, addr):
    """An int64 address as a void pointer (for ``numba.carray``)."""
    sig = types.voidptr(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen
