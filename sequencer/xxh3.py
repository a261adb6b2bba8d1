"""XXH3-64 inside numba kernels: the xxhash package's own C function, called directly.

The ingest header kernel (:mod:`sequencer.ingest_headers`) checks every frame's checksum of a
drain in one call, instead of one ``xxhash.xxh3_64_intdigest`` call from Python per frame.
The ``xxhash`` extension module exports ``XXH3_64bits`` (seed 0, default secret: what
``xxh3_64_intdigest`` computes). Its address is registered with LLVM under a name of our own,
and :func:`xxh3_64` emits a plain call to that name: numba's disk cache then keeps the compiled
kernel (a ctypes function pointer would be a baked-in address, which numba refuses to cache),
and the name is resolved again in every process when this module is imported.

Where the symbol is not exported (another build of xxhash), :data:`AVAILABLE` is False and the
sequencer checks frames one by one in Python (:func:`sequencer.ingest.ingest_count`).
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["xxh3_64", "load_u64", "AVAILABLE"]

_SYMBOL = "seqrisk_xxh3_64bits"


def _address() -> int | None:
    try:
        from xxhash import _xxhash

        fn = ctypes.CDLL(_xxhash.__file__).XXH3_64bits
    except (ImportError, OSError, AttributeError):
        return None
    return ctypes.cast(fn, ctypes.c_void_p).value


_ADDRESS = _address()
AVAILABLE = _ADDRESS is not None
if AVAILABLE:
    llvm.add_symbol(_SYMBOL, _ADDRESS)


@intrinsic
def _call(typingctx, data, start, length):
    """``XXH3_64bits(&data[start], length)`` for a uint8 array (no bounds check: the caller's)."""
    if not (isinstance(data, types.Array) and data.dtype == types.uint8):
        return None
    sig = types.uint64(data, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        start_v = context.cast(builder, args[1], signature.args[1], types.int64)
        length_v = context.cast(builder, args[2], signature.args[2], types.int64)
        ptr = builder.bitcast(cgutils.pointer_add(builder, arr.data, start_v), cgutils.voidptr_t)
        fnty = ir.FunctionType(ir.IntType(64), [cgutils.voidptr_t, ir.IntType(64)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOL)
        return builder.call(fn, [ptr, length_v])

    return sig, codegen


@njit(inline="always")
def xxh3_64(b, start, length):
    """XXH3-64 of ``b[start:start + length]`` (``b`` a uint8 array; the range must be inside it)."""
    return _call(b, np.int64(start), np.int64(length))


@njit(inline="always")
def load_u64(b, p):
    """Little-endian uint64 at byte ``p`` of the uint8 array ``b``."""
    return (np.uint64(b[p]) | (np.uint64(b[p + 1]) << np.uint64(8)) | (np.uint64(b[p + 2]) << np.uint64(16))
            | (np.uint64(b[p + 3]) << np.uint64(24)) | (np.uint64(b[p + 4]) << np.uint64(32))
            | (np.uint64(b[p + 5]) << np.uint64(40)) | (np.uint64(b[p + 6]) << np.uint64(48))
            | (np.uint64(b[p + 7]) << np.uint64(56)))
