"""XXH3-64 inside numba kernels: the xxhash package's own C function, called directly.

The ingest header kernel (:mod:`sequencer.ingest_headers`) checks every frame's checksum of a
drain in one call, instead of one ``xxhash.xxh3_64_intdigest`` call from Python per frame.
The ``xxhash`` extension module exports ``XXH3_64bits`` (seed 0, default secret: what
``xxh3_64_intdigest`` computes); :func:`sequencer.native.register` makes it callable by a name
of our own, so the kernels using :func:`xxh3_64` stay cached on disk.

Where the symbol is not exported (another build of xxhash), :data:`AVAILABLE` is False and the
sequencer checks frames one by one in Python (:func:`sequencer.ingest.ingest_count`).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from sequencer.native import register

__all__ = ["xxh3_64", "AVAILABLE"]

_SYMBOL = "seqrisk_xxh3_64bits"


def _register() -> bool:
    try:
        from xxhash import _xxhash
    except ImportError:
        return False
    return register(_SYMBOL, _xxhash.__file__, "XXH3_64bits")


AVAILABLE = _register()


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

