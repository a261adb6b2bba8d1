"""OrderIdSet, the check kernel's set of taken order ids, against a Python set (stateful)."""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from risk_gate.idset import OrderIdSet, home, probe

# Few distinct ids in a table that starts at 8 slots: long probe runs, shared home slots,
# wrap-around, growth, and many deletions inside runs.
_ids = st.one_of(st.integers(1, 60), st.integers(1, 3000), st.integers(2**63 - 4, 2**63 - 1), st.integers(-5, 0))


class IdSetMachine(RuleBasedStateMachine):
    """Each rule drives the real set and a Python set; the invariants compare them."""

    def __init__(self) -> None:
        super().__init__()
        self.real = OrderIdSet(capacity=8)
        self.model: set[int] = set()
        self.grown = 0
        self.real.on_grow.append(self._on_grow)

    def _on_grow(self) -> None:
        self.grown += 1

    @rule(ids=st.lists(_ids, max_size=30))
    def add_many(self, ids: list[int]) -> None:
        self.real.add_many(np.array(ids, dtype=np.int64))
        self.model |= {i for i in ids if i > 0}

    @rule(key=_ids)
    def add(self, key: int) -> None:
        self.real.add(key)
        if key > 0:
            self.model.add(key)

    @rule(key=_ids)
    def discard(self, key: int) -> None:
        assert self.real.discard(key) == (key in self.model)
        self.model.discard(key)

    @rule(data=st.data())
    def discard_present(self, data: st.DataObject) -> None:
        if self.model:
            key = data.draw(st.sampled_from(sorted(self.model)))
            assert self.real.discard(key)
            self.model.discard(key)

    @rule(ids=st.lists(_ids, max_size=50))
    def reset(self, ids: list[int]) -> None:
        self.real.reset(ids)
        self.model = {i for i in ids if i > 0}

    @invariant()
    def same_members(self) -> None:
        assert len(self.real) == len(self.model)
        assert set(self.real) == self.model

    @invariant()
    def at_most_half_full(self) -> None:
        assert 2 * len(self.real) <= len(self.real.keys)

    @invariant()
    def every_member_found_from_its_home(self) -> None:
        keys = self.real.keys
        for key in self.model:
            s = probe(keys, self.real.shift, key)
            assert s >= 0 and keys[s] == key
        for key in (1, 2, 2999, 3001):
            assert (probe(keys, self.real.shift, key) >= 0) == (key in self.model) == (key in self.real)


TestIdSet = IdSetMachine.TestCase
TestIdSet.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_reserve_when_set_would_pass_half_full_then_grows_keeps_members_and_calls_hooks():
    s = OrderIdSet()
    assert len(s.keys) == 1024
    calls = []
    s.on_grow.append(lambda: calls.append(len(s.keys)))
    s.add_many(np.arange(1, 513))
    assert calls == [] and len(s.keys) == 1024
    s.add(513)
    assert calls == [2048] and set(s) == set(range(1, 514))


def test_contains_when_not_a_positive_int64_then_false():
    s = OrderIdSet()
    s.add_many([5, 0, -3])
    assert 5 in s and 0 not in s and -3 not in s and 2**64 not in s and "5" not in s and len(s) == 1


def test_home_when_ids_consecutive_then_spread_over_the_table():
    shift = 64 - 10
    homes = {int(home(k, shift)) for k in range(1, 257)}
    assert len(homes) > 200
