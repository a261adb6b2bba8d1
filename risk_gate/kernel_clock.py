"""The wall clock read inside the check kernel: ``clock_gettime(CLOCK_REALTIME)``, as ``time.time_ns``.

The gate's fast path lets :func:`risk_gate.kernel.decide` read the clock itself when the gate
uses the default clock (``time.time_ns``): the call from Python, and the int it builds, cost
about as much as the kernel's limit checks. The C library's ``clock_gettime`` is registered
with LLVM under a name of our own (so numba still caches the kernel on disk) and called with a
``timespec`` on the stack. Where it cannot be found, :data:`AVAILABLE` is False and the gate
reads the clock in Python as before. A gate given another clock always uses that one.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["realtime_ns", "AVAILABLE"]

_SYMBOL = "seqrisk_clock_gettime"
_CLOCK_REALTIME = 0  # Linux and the BSDs; macOS has its own value (and no such gate test)


def _address() -> int | None:
    try:
        fn = ctypes.CDLL(None).clock_gettime
    except (OSError, AttributeError):
        return None
    return ctypes.cast(fn, ctypes.c_void_p).value


_ADDRESS = _address()
AVAILABLE = _ADDRESS is not None and hasattr(ctypes, "c_int64") and ctypes.sizeof(ctypes.c_long) == 8
if AVAILABLE:
    llvm.add_symbol(_SYMBOL, _ADDRESS)


@intrinsic
def realtime_ns(typingctx):
    """Nanoseconds since the epoch (``CLOCK_REALTIME``), what ``time.time_ns()`` returns; 0 if the call fails."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        ts = cgutils.alloca_once(builder, ir.ArrayType(i64, 2))
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32), ts.type])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOL)
        rc = builder.call(fn, [ir.Constant(ir.IntType(32), _CLOCK_REALTIME), ts])
        sec = builder.load(builder.gep(ts, [ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), 0)]))
        nsec = builder.load(builder.gep(ts, [ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), 1)]))
        now = builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)
        ok = builder.icmp_signed("==", rc, ir.Constant(ir.IntType(32), 0))
        return builder.select(ok, now, ir.Constant(i64, 0))

    return sig, codegen
