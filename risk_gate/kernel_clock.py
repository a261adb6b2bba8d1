"""The wall clock read inside the check kernel: ``clock_gettime(CLOCK_REALTIME)``, as ``time.time_ns``.

The gate's fast path lets :func:`risk_gate.kernel.decide` read the clock itself when the gate
uses the default clock (``time.time_ns``): the call from Python, and the int it builds, cost
about as much as the kernel's limit checks. The C library's ``clock_gettime`` is made callable
by a name of our own (:func:`sequencer.native.register`, so the kernel stays cached on disk)
and called with a ``timespec`` (two int64 on 64-bit Linux) on the stack. Elsewhere, or where it
cannot be found, :data:`AVAILABLE` is False and the gate reads the clock in Python as before.
A gate given another clock always uses that one.
"""

from __future__ import annotations

import ctypes
import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from sequencer.native import register

__all__ = ["realtime_ns", "AVAILABLE"]

_SYMBOL = "seqrisk_clock_gettime"
_CLOCK_REALTIME = 0  # Linux's clockid_t value
# The timespec read below is two int64: time_t and long are 64-bit on 64-bit Linux.
AVAILABLE = (
    sys.platform.startswith("linux") and ctypes.sizeof(ctypes.c_long) == 8
    and register(_SYMBOL, None, "clock_gettime")
)


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
