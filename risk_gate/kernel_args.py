"""Strict integer arguments for :func:`risk_gate.kernel.decide`: cheaper to pass, and never truncated.

numba unboxes an ``int64`` argument with ``PyNumber_Long`` then ``PyLong_AsLongLong``: a float
is truncated and a str parsed (``1.5 -> 1``, ``"3" -> 3``) without an error, the two calls
and the error check cost ~20 ns per argument, and ``PyLong_AsLongLong`` takes a slow generic
path for ints of two or more 30-bit digits (clock values, addresses). Here:

* :data:`strict_int64` is an int64 whose unboxing accepts only ``int`` (``bool`` included, it is
  an ``int``) and reads it with ``PyLong_AsLongLongAndOverflow`` (a short loop over digits):
  anything else raises ``TypeError`` (numpy integers too: the gate converts those with
  ``operator.index`` first, as before) and a value beyond int64 raises ``OverflowError``;
* :data:`order_fields` is a 7-tuple of such ints (a :class:`~risk_gate.checks.FixedOrder`)
  passed as one argument: one tuple check instead of unpacking it in Python and passing
  seven arguments.

Inside a kernel, :func:`as_int` and :func:`as_fields` view them as ``int64`` and
``UniTuple(int64, 7)`` (same machine representation, no code emitted).
"""

from __future__ import annotations

import sys

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import NativeValue, intrinsic, models, register_model, unbox

__all__ = ["StrictInt64", "OrderFields", "strict_int64", "order_fields", "as_int", "as_fields", "ORDER_FIELDS"]

ORDER_FIELDS = 7
# Read small non-negative ints from the object itself (no C call) on the CPython whose int
# layout this module knows; elsewhere every value goes through the C API.
_INLINE_LONG = sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11) and (
    sys.int_info.bits_per_digit, sys.int_info.sizeof_digit) == (30, 4)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_LONG_SUBCLASS = 1 << 24  # Py_TPFLAGS_LONG_SUBCLASS


class StrictInt64(types.Type):
    """An int64 argument unboxed only from a Python ``int``."""

    def __init__(self) -> None:
        super().__init__(name="StrictInt64")


class OrderFields(types.Type):
    """A tuple of seven Python ``int`` (a FixedOrder) unboxed to seven int64."""

    def __init__(self) -> None:
        super().__init__(name="OrderFields")


strict_int64 = StrictInt64()
order_fields = OrderFields()


@register_model(StrictInt64)
class _StrictInt64Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _I64)


@register_model(OrderFields)
class _OrderFieldsModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.ArrayType(_I64, ORDER_FIELDS))


def _set_type_error(c, is_error, message: str) -> None:
    c.pyapi.err_set_string("PyExc_TypeError", message)
    c.builder.store(cgutils.true_bit, is_error)


def _read_int(c, obj, is_error):
    """``obj`` as int64 (0 after an error, which is then set and flagged in ``is_error``)."""
    builder = c.builder
    out = cgutils.alloca_once_value(builder, _I64(0))
    if not _INLINE_LONG:
        _read_int_api(c, obj, out, is_error)
        return builder.load(out)
    # CPython 3.11 layout: refcount, type, signed digit count (sign = sign of the value), then
    # 30-bit digits. A non-negative exact int of at most three digits below 2**63 is read here;
    # anything else (negative, bool, subclasses, other types, wider values) takes the API.
    words = builder.bitcast(obj, _I64.as_pointer())
    exact = builder.icmp_unsigned(
        "==", builder.load(builder.gep(words, [_I32(1)])), builder.ptrtoint(c.pyapi.get_c_object("PyLong_Type"), _I64)
    )
    size = builder.load(builder.gep(words, [_I32(2)]))
    digits = builder.bitcast(builder.gep(words, [_I32(3)]), _I32.as_pointer())
    slow = cgutils.alloca_once_value(builder, cgutils.true_bit)

    def digit(n):
        return builder.zext(builder.load(builder.gep(digits, [_I32(n)])), _I64)

    with builder.if_then(builder.and_(exact, builder.icmp_unsigned("<=", size, _I64(3))), likely=True):
        with builder.if_else(builder.icmp_unsigned("<=", size, _I64(1)), likely=True) as (short, wide):
            with short:
                with builder.if_then(builder.icmp_unsigned("==", size, _I64(1))):
                    builder.store(digit(0), out)
                builder.store(cgutils.false_bit, slow)
            with wide:
                low = builder.or_(digit(0), builder.shl(digit(1), _I64(30)))
                with builder.if_else(builder.icmp_unsigned("==", size, _I64(2))) as (two, three):
                    with two:
                        builder.store(low, out)
                        builder.store(cgutils.false_bit, slow)
                    with three:
                        top = digit(2)
                        with builder.if_then(builder.icmp_unsigned("<", top, _I64(8))):  # below 2**63
                            builder.store(builder.or_(low, builder.shl(top, _I64(60))), out)
                            builder.store(cgutils.false_bit, slow)
    with builder.if_then(builder.load(slow), likely=False):
        _read_int_api(c, obj, out, is_error)
    return builder.load(out)


def _read_int_api(c, obj, out, is_error) -> None:
    """Store ``obj`` as int64 in ``out`` through the C API (TypeError unless an int, OverflowError beyond int64)."""
    builder = c.builder
    pyapi = c.pyapi
    get_flags = pyapi._get_function(ir.FunctionType(ir.IntType(64), [pyapi.pyobj]), name="PyType_GetFlags")
    flags = builder.call(get_flags, [pyapi.get_type(obj)])
    is_int = builder.icmp_unsigned("!=", builder.and_(flags, _I64(_LONG_SUBCLASS)), _I64(0))
    with builder.if_else(is_int, likely=True) as (yes, no):
        with yes:
            as_ll = pyapi._get_function(ir.FunctionType(_I64, [pyapi.pyobj, _I32.as_pointer()]), name="PyLong_AsLongLongAndOverflow")
            overflow = cgutils.alloca_once_value(builder, _I32(0))
            value = builder.call(as_ll, [obj, overflow])
            builder.store(value, out)
            # -1 is also a valid value: only then is the overflow flag worth reading.
            with builder.if_then(builder.icmp_signed("==", value, _I64(-1)), likely=False):
                with builder.if_then(builder.icmp_signed("!=", builder.load(overflow), _I32(0)), likely=False):
                    pyapi.err_set_string("PyExc_OverflowError", "integer argument beyond int64")
                    builder.store(cgutils.true_bit, is_error)
        with no:
            _set_type_error(c, is_error, "expected an int (fixed point)")


@unbox(StrictInt64)
def _unbox_strict_int64(typ, obj, c):
    is_error = cgutils.alloca_once_value(c.builder, cgutils.false_bit)
    value = _read_int(c, obj, is_error)
    return NativeValue(value, is_error=c.builder.load(is_error))


@unbox(OrderFields)
def _unbox_order_fields(typ, obj, c):
    builder = c.builder
    pyapi = c.pyapi
    out = cgutils.alloca_once_value(builder, ir.Constant(ir.ArrayType(_I64, ORDER_FIELDS), None))
    is_error = cgutils.alloca_once_value(builder, cgutils.false_bit)
    is_subtype = pyapi._get_function(ir.FunctionType(_I32, [pyapi.pyobj, pyapi.pyobj]), name="PyType_IsSubtype")
    is_tuple = builder.call(is_subtype, [pyapi.get_type(obj), pyapi.get_c_object("PyTuple_Type")])
    with builder.if_else(builder.icmp_signed("!=", is_tuple, _I32(0)), likely=True) as (yes, no):
        with yes:
            size = pyapi.tuple_size(obj)
            with builder.if_else(builder.icmp_signed("==", size, ir.Constant(size.type, ORDER_FIELDS)), likely=True) as (ok, bad):
                with ok:
                    for n in range(ORDER_FIELDS):
                        # Stop at the first bad field: a second error would replace the first.
                        with builder.if_then(builder.not_(builder.load(is_error)), likely=True):
                            value = _read_int(c, pyapi.tuple_getitem(obj, n), is_error)
                            builder.store(value, builder.gep(out, [_I32(0), _I32(n)]))
                with bad:
                    _set_type_error(c, is_error, "order: expected 7 fields")
        with no:
            _set_type_error(c, is_error, "order: expected a tuple")
    return NativeValue(builder.load(out), is_error=builder.load(is_error))


@intrinsic
def as_int(typingctx, value):
    """A :data:`strict_int64` (or any int64) as int64."""
    if not (isinstance(value, StrictInt64) or value == types.int64):
        return None

    def codegen(context, builder, signature, args):
        return args[0]

    return types.int64(value), codegen


@intrinsic
def as_fields(typingctx, value):
    """An :data:`order_fields` (or a 7-tuple of int64) as ``UniTuple(int64, 7)``."""
    if isinstance(value, OrderFields) or (isinstance(value, types.BaseTuple) and list(value) == [types.int64] * ORDER_FIELDS):
        def codegen(context, builder, signature, args):
            return args[0]

        return types.UniTuple(types.int64, ORDER_FIELDS)(value), codegen
    return None
