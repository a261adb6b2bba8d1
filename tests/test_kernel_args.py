"""The kernel's strict int arguments: exactly Python ints within int64, read correctly on
both the inline path (small non-negative exact ints) and the C API path (the rest)."""

from __future__ import annotations

import enum

import numba as nb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_gate.kernel_args import as_fields, as_int, order_fields, strict_int64


@nb.njit
def _echo(value, order):
    return as_int(value), as_fields(order)


_entry = _echo.compile((strict_int64, order_fields))
_I64 = st.integers(-(1 << 63), (1 << 63) - 1)


class _Level(enum.IntEnum):
    FIVE = 5


class _Int(int):
    pass


@settings(max_examples=400, deadline=None)
@given(value=st.one_of(_I64, st.integers(0, 1 << 31), st.integers((1 << 59) - 2, (1 << 63) - 1), st.sampled_from(
    [0, 1, (1 << 30) - 1, 1 << 30, (1 << 60) - 1, 1 << 60, 7 << 60, (1 << 63) - 1, -1, -(1 << 63)])))
def test_strict_int_when_int64_value_then_read_exactly(value):
    order = (value, 1, 2, 3, 4, 5, value)
    assert _entry(value, order) == (value, order)


@pytest.mark.parametrize(("value", "want"), [(True, 1), (False, 0), (_Level.FIVE, 5), (_Int(1 << 40), 1 << 40)])
def test_strict_int_when_int_subclass_then_its_value(value, want):
    assert _entry(value, (value,) * 7) == (want, (want,) * 7)


@pytest.mark.parametrize("value", [1.0, 1.5, "1", None, np.int64(3), np.float64(2.0)])
def test_strict_int_when_not_an_int_then_type_error(value):
    with pytest.raises(TypeError):
        _entry(value, (1,) * 7)
    with pytest.raises(TypeError):
        _entry(1, (1, 1, 1, 1, value, 1, 1))


@pytest.mark.parametrize("value", [1 << 63, 1 << 64, -(1 << 63) - 1, 1 << 90])
def test_strict_int_when_beyond_int64_then_overflow_error(value):
    with pytest.raises(OverflowError):
        _entry(value, (1,) * 7)
    with pytest.raises(OverflowError):
        _entry(1, (1, 1, 1, 1, 1, 1, value))


@pytest.mark.parametrize("order", [(1,) * 6, (1,) * 8, [1] * 7, 7])
def test_order_fields_when_not_a_7_tuple_then_type_error(order):
    with pytest.raises(TypeError):
        _entry(1, order)
