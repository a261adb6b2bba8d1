"""Producer runs of a validated drain: stretches of frames the dedup table can take whole.

:func:`frame_runs` (numba) splits a drain's frames into maximal stretches of consecutive
frames of one producer whose producer seqs increase from frame to frame. When the first
frame of each stretch is above the producer's highest stamped seq, the whole drain is new
and the sequencer stamps it without looking at single frames. :func:`frame_runs_py` is the
plain-Python reference the tests compare it with.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["frame_runs", "frame_runs_py", "RUN_FIELDS"]

RUN_FIELDS = ("producer", "first_pseq", "last_pseq", "frame_lo", "frame_hi", "contiguous")
"""Columns of a run: producer, its first and last producer seq, frames ``lo..hi-1``, and 1 when
its producer seqs step by one over every record (one dedup run), else 0."""


@njit(cache=True)
def _runs_kernel(info, starts, out):
    nframes = info.shape[0]
    nruns = 0
    for f in range(nframes):
        if info[f, 0] >= 0:
            return -1
        producer, p0, p1 = info[f, 3], info[f, 4], info[f, 5]
        steps = p1 - p0 == starts[f + 1] - starts[f] - 1
        if nruns and out[nruns - 1, 0] == producer and p0 > out[nruns - 1, 2]:
            r = nruns - 1
            if not (steps and p0 == out[r, 2] + 1):
                out[r, 5] = 0
            out[r, 2] = p1
            out[r, 4] = f + 1
            continue
        out[nruns, 0] = producer
        out[nruns, 1] = p0
        out[nruns, 2] = p1
        out[nruns, 3] = f
        out[nruns, 4] = f + 1
        out[nruns, 5] = 1 if steps else 0
        nruns += 1
    return nruns


def frame_runs(info: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
    """The runs (rows of :data:`RUN_FIELDS`) of a drain, or None when a frame is invalid.

    ``info`` is :func:`sequencer.ingest.validate_drain`'s output (bad index, code, field,
    producer, first and last producer seq per frame), ``starts`` the frames' record offsets.
    """
    out = np.empty((len(info), 6), np.int64)
    n = _runs_kernel(info, starts, out)
    return None if n < 0 else out[:n]


def frame_runs_py(info: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
    """Plain-Python reference of :func:`frame_runs`."""
    runs: list[list[int]] = []
    for f in range(len(info)):
        bad, _code, _field, producer, p0, p1 = (int(x) for x in info[f])
        if bad >= 0:
            return None
        steps = p1 - p0 == int(starts[f + 1]) - int(starts[f]) - 1
        if runs and runs[-1][0] == producer and p0 > runs[-1][2]:
            run = runs[-1]
            run[5] = int(run[5] and steps and p0 == run[2] + 1)
            run[2] = p1
            run[4] = f + 1
        else:
            runs.append([producer, p0, p1, f, f + 1, int(steps)])
    return np.array(runs, np.int64).reshape(-1, 6)
