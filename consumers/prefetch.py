"""Software prefetch for numba kernels: a hint that an array item will be read soon.

``prefetch_item(arr, idx)`` emits ``llvm.prefetch`` (read, keep in all cache levels) for the
cache line holding the first byte of ``arr[idx]``; ``prefetch_span(arr, idx)`` also the line
of its last byte, for items that straddle two lines (a 128-byte record always does).
Both compile to one or two ``prefetcht0`` instructions: no load, no branch, no fault (an x86
prefetch of any address is harmless), so they never change what a kernel computes. They
exist because the Book fold waits on dependent cache misses (index slot -> order row) that
the out-of-order window is too small to overlap across events; issuing them some records
ahead overlaps them (see ``docs/fold.md``).

``idx`` must be in bounds (``0 <= idx < len(arr)``, 1-d ``arr``): no check is made, like
``_u`` indexing in the kernel.

They are numba intrinsics: callable only from ``@njit`` code, inlined at the call site (no
call, no reference counting of ``arr``).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch_item", "prefetch_span"]

_I8P = ir.IntType(8).as_pointer()
_I32 = ir.IntType(32)
# llvm.prefetch(ptr, rw = 0 read, locality = 3 keep in every level, cache type = 1 data)
_PREFETCH_TY = ir.FunctionType(ir.VoidType(), [_I8P, _I32, _I32, _I32])


def _item_pointer(context, builder, aryty, ary_value, idx_value):
    ary = context.make_array(aryty)(context, builder, ary_value)
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [idx_value], wraparound=False)
    return builder.bitcast(ptr, _I8P)


def _emit_prefetch(builder, ptr) -> None:
    fn = builder.module.declare_intrinsic("llvm.prefetch", [_I8P], _PREFETCH_TY)
    builder.call(fn, [ptr, _I32(0), _I32(3), _I32(1)])


def _check(arr, idx) -> bool:
    return isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(idx, types.Integer)


@intrinsic
def prefetch_item(typingctx, arr, idx):
    """Prefetch the cache line of ``arr[idx]``'s first byte."""
    if not _check(arr, idx):
        return None

    def codegen(context, builder, sig, args):
        _emit_prefetch(builder, _item_pointer(context, builder, sig.args[0], args[0], args[1]))
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


@intrinsic
def prefetch_span(typingctx, arr, idx):
    """Prefetch the cache lines of ``arr[idx]``'s first and last bytes."""
    if not _check(arr, idx):
        return None

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        _emit_prefetch(builder, ptr)
        last = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype)) - 1
        if last > 0:
            _emit_prefetch(builder, builder.gep(ptr, [ir.IntType(64)(last)]))
        return context.get_dummy_value()

    return types.void(arr, idx), codegen
