"""The HWM file: what the writer packs is what the reader (and the documented layout) sees."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.hwm_file import HWM_FILE_DTYPE, HWM_FILE_SIZE, HwmFileReader, HwmFileWriter


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(-(2**63), 2**63 - 1),
                          st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=5))
def test_hwm_file_when_written_then_reader_and_layout_see_last_value_with_even_generation(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("hwm") / "hwm"
    writer = HwmFileWriter(path)
    reader = HwmFileReader(path)
    try:
        for epoch, hwm, ts in values:
            writer.write(epoch, hwm, ts)
            assert reader.read() == (epoch, hwm, ts)
        raw = np.frombuffer(path.read_bytes(), HWM_FILE_DTYPE, count=1)[0]
        assert len(path.read_bytes()) == HWM_FILE_SIZE
        assert bytes(raw["magic"]) == b"SQHM"
        assert int(raw["generation"]) == 2 * len(values)
        assert (int(raw["epoch"]), int(raw["hwm"]), int(raw["ts_ns"])) == values[-1]
    finally:
        reader.close()
        writer.close()
