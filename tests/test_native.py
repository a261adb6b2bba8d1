"""sequencer.native.register: C functions registered for kernels to call by name."""

from __future__ import annotations

import sys

import pytest

from sequencer.native import register


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libc symbols looked up in the process itself")
def test_register_when_function_exists_then_true():
    assert register("seqrisk_test_strlen", None, "strlen")


def test_register_when_function_missing_then_false():
    assert not register("seqrisk_test_missing", None, "seqrisk_no_such_function_anywhere")


def test_register_when_library_missing_then_false(tmp_path):
    assert not register("seqrisk_test_missing_lib", str(tmp_path / "no-such-library.so"), "strlen")
