"""A subscriber's quiet state: what compiled code reads to know that ``poll()`` would do nothing.

:meth:`consumers.Subscriber.poll` returns at once, doing nothing, when the last full poll found
the consumer current and idle at HWM-file generation ``G``, the file's generation is still
``G`` (the sequencer has published nothing since) and its timers are not due yet. The
subscriber mirrors those facts into a small int64 array, ``Subscriber.quiet``:

===========  ==================================================================================
``Q_FILE``   address of the HWM file's generation word (the u64 at byte 8 of the mapping); 0 = none
``Q_GEN``    generation at which the last full poll found the consumer quiet; ``NOT_QUIET`` = not
``Q_FROM``   ``time.time_ns()`` when the timers were last looked at
``Q_UNTIL``  ``Q_FROM + check_interval``: when they are due again (the next full poll)
``Q_HWM``    ``Subscriber.hwm`` then, ``Q_HWM_TS`` its ``hwm_ts_ns``
``Q_STREAM`` ``STREAM_RECOVERING`` if it was recovering, ``| STREAM_ERROR`` if it had an error
===========  ==================================================================================

While the state is quiet those stream values are the subscriber's current ones (only a poll
that does work changes them, and it rewrites them), so compiled code can read them here too.

The subscriber times its timers on the monotonic clock; the window is also kept on the wall
clock because that is the clock the gate's kernel reads anyway. A wall clock stepped outside
the window ends it early (a poll that finds nothing to do); one stepped back inside it can
stretch it by at most the step, bounded by one check interval.

:func:`is_quiet` reads it inside a numba kernel: the gate's check kernel calls it instead of
``poll()`` being called from Python (a few ns instead of ~0.3 us); :func:`is_quiet_py` is the
plain reference. The mapping an address points to stays mapped until the subscriber closes
(:class:`consumers.hwm.HwmFile` keeps the mappings it replaces), so a stale address reads an
old generation that no longer changes, never freed memory; and the subscriber clears
``Q_FILE`` before it unmaps anything.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sequencer.native import voidptr

__all__ = ["Q_FILE", "Q_GEN", "Q_FROM", "Q_UNTIL", "Q_HWM", "Q_HWM_TS", "Q_STREAM", "STREAM_RECOVERING", "STREAM_ERROR", "Q_LENGTH", "NOT_QUIET", "new_quiet_state", "is_quiet", "is_quiet_py"]

Q_FILE, Q_GEN, Q_FROM, Q_UNTIL, Q_HWM, Q_HWM_TS, Q_STREAM = range(7)
Q_LENGTH = 7
STREAM_RECOVERING = 1
STREAM_ERROR = 2
NOT_QUIET = -2
"""``Q_GEN`` when the last full poll did not find the consumer quiet (generations are >= 0)."""


def new_quiet_state() -> np.ndarray:
    """A quiet state that is not quiet (no file, no generation)."""
    state = np.zeros(Q_LENGTH, np.int64)
    state[Q_GEN] = NOT_QUIET
    return state


@nb.njit(cache=True, inline="always")
def is_quiet(state_address, now_ns):
    """Whether ``poll()`` would return 0 doing nothing, for the quiet state at ``state_address``
    (0 = none: never) at wall-clock time ``now_ns``."""
    if state_address == 0:
        return False
    state = nb.carray(voidptr(state_address), Q_LENGTH, np.int64)
    file = state[Q_FILE]
    gen = state[Q_GEN]
    if file == 0 or gen < 0 or now_ns < state[Q_FROM] or now_ns >= state[Q_UNTIL]:
        return False
    return nb.carray(voidptr(file), 1, np.int64)[0] == gen


def is_quiet_py(state: np.ndarray, generation: int, now_ns: int) -> bool:
    """:func:`is_quiet` in plain Python; ``generation`` is the file's generation now (the word
    ``state[Q_FILE]`` points to, read by the caller)."""
    return bool(state[Q_FILE] != 0 and 0 <= state[Q_GEN] == generation and state[Q_FROM] <= now_ns < state[Q_UNTIL])
