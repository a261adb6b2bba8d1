"""The prefetch intrinsics: hints only (kernels compute the same), cacheable, typed strictly."""

from __future__ import annotations

import importlib.util
import platform
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from numba.core.errors import TypingError

from sequencer.protocol import RECORD_DTYPE
from consumers.prefetch import prefetch_item, prefetch_span


@njit
def _sum_prefetching(ids, recs, ahead):
    """sum(ids) + sum(recs.qty), prefetching ``ahead`` items ahead (indexes wrap, as a hash would)."""
    s = 0
    n = len(ids)
    for r in range(n):
        j = (r + ahead) % n
        prefetch_item(ids, j)
        prefetch_span(recs, j)
        s += ids[r] + recs[r].qty
    return s


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=200), ahead=st.integers(0, 300))
def test_prefetch_when_used_in_a_loop_then_result_unchanged(values, ahead):
    ids = np.array(values, dtype=np.int64)
    recs = np.zeros(len(ids), RECORD_DTYPE)
    recs["qty"] = ids[::-1]
    assert _sum_prefetching(ids, recs, ahead) == int(ids.sum()) * 2


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="checks x86 assembly")
def test_prefetch_span_when_item_straddles_lines_then_first_and_last_byte_prefetched():
    ids = np.arange(4, dtype=np.int64)
    _sum_prefetching(ids, np.zeros(4, RECORD_DTYPE), 1)
    asm = _sum_prefetching.inspect_asm(_sum_prefetching.signatures[0])
    prefetches = [line.split()[1] for line in asm.splitlines() if line.strip().startswith("prefetcht0")]
    assert any(p.startswith("127(") for p in prefetches), prefetches  # last byte of a 128-byte record
    assert len(prefetches) >= 3


def test_prefetch_when_not_a_1d_array_and_int_then_typing_error():
    @njit
    def bad(a):
        prefetch_item(a, 0)

    with pytest.raises(TypingError):
        bad(np.zeros((2, 2)))


_CACHED_SOURCE = textwrap.dedent(
    """
    from numba import njit
    from consumers.prefetch import prefetch_item

    @njit(cache=True)
    def total(a):
        s = 0
        for r in range(len(a)):
            prefetch_item(a, (r + 8) % len(a))
            s += a[r]
        return s
    """
)


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[name]
    return mod


def test_prefetch_when_kernel_cached_then_second_load_reads_the_disk_cache(tmp_path):
    path = tmp_path / "pf_cached.py"
    path.write_text(_CACHED_SOURCE)
    a = np.arange(100, dtype=np.int64)
    first = _load(path, "pf_cached_first")
    assert first.total(a) == a.sum()
    assert list(tmp_path.glob("__pycache__/*.nbi")), "no cache index written"
    second = _load(path, "pf_cached_second")
    assert second.total(a) == a.sum()
    assert sum(second.total.stats.cache_hits.values()) == 1
