"""Build synthetic stamped journals with known answers (for audit, replay and OMS tests).

A :class:`JournalBuilder` stamps records itself (seq from 1, a fixed epoch, a clock that
advances by ``step_ns`` per record unless told otherwise), so tests know every seq and can
state the expected audit result. Quantities and prices are decimals in the instrument's
units (``"0.5"``, ``"100.25"``), converted exactly through the registry.

Typical use::

    b = JournalBuilder()
    b.price("BTC-USDT", "100")
    oid = b.new_order("acct-1", "BTC-USDT", "buy", "1", "100")   # lag 0: applied = seq - 1
    b.fill(oid, "1", "100")
    b.write(tmp_path / "journal")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sequencer.codes import LimitType, RefuseReason
from sequencer.jsonl import LIMIT_VALUE_SCALE
from sequencer.protocol import RECORD_DTYPE, Kind, Side, encode_frame
from sequencer.registry import Registry, default_registry, to_decimal

__all__ = ["JournalBuilder", "T0_NS", "GATE_PRODUCER", "VENUE_PRODUCER", "CONTROL_PRODUCER"]

T0_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
GATE_PRODUCER = 11
VENUE_PRODUCER = 22
CONTROL_PRODUCER = 33
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}


class JournalBuilder:
    """Accumulates stamped records; :meth:`write` journals them through ``sequencer.journal``."""

    def __init__(self, registry: Registry | None = None, *, t0_ns: int = T0_NS, step_ns: int = 1_000_000, epoch: int = 1) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.ts_ns = t0_ns
        self.step_ns = step_ns
        self.epoch = epoch
        self._rows: list[np.ndarray] = []
        self._producer_seq: dict[int, int] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        self._orders: dict[int, tuple[int, int, int, int]] = {}  # id -> account, instrument, venue, side

    # -- bookkeeping ---------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """Seq of the last record added (0 when empty)."""
        return len(self._rows)

    @property
    def next_seq(self) -> int:
        """Seq the next record will get."""
        return len(self._rows) + 1

    def records(self) -> np.ndarray:
        """Every record so far as one array."""
        if not self._rows:
            return np.zeros(0, dtype=RECORD_DTYPE)
        return np.concatenate(self._rows)

    def advance(self, ns: int) -> None:
        """Move the clock forward by ``ns`` (on top of the per-record step)."""
        self.ts_ns += ns

    def _add(self, kind: Kind, producer: int, ts_ns: int | None = None, **fields: object) -> int:
        rec = np.zeros(1, dtype=RECORD_DTYPE)
        seq = self.next_seq
        if ts_ns is None:
            self.ts_ns += self.step_ns
            ts_ns = self.ts_ns
        else:
            self.ts_ns = max(self.ts_ns, ts_ns)
        pseq = self._producer_seq.get(producer, 0) + 1
        self._producer_seq[producer] = pseq
        rec["seq"] = seq
        rec["ts_ns"] = ts_ns
        rec["epoch"] = self.epoch
        rec["kind"] = int(kind)
        rec["producer"] = producer
        rec["producer_seq"] = pseq
        for k, v in fields.items():
            rec[k] = v
        self._rows.append(rec)
        return seq

    def _ids(self, account: str | int, instrument: str | int, venue: str | int) -> tuple[int, object, int]:
        aid = account if isinstance(account, int) else self.registry.account_id(account)
        inst = self.registry.instrument(instrument)
        vid = venue if isinstance(venue, int) else self.registry.venue_id(venue)
        return aid, inst, vid

    # -- gate decisions ------------------------------------------------------------------
    def new_order(
        self,
        account: str | int,
        instrument: str | int,
        side: str,
        qty: object,
        price: object = 0,
        *,
        venue: str | int = "sim-1",
        order_id: int | None = None,
        applied_seq: int | None = None,
        hwm: int | None = None,
        lag: int | None = None,
        ts_ns: int | None = None,
        producer: int = GATE_PRODUCER,
    ) -> int:
        """An approval. ``applied_seq`` defaults to ``seq - 1 - lag`` (lag 0 = fully current)
        and ``hwm`` to ``seq - 1``. Returns the order id."""
        seq = self.next_seq
        if applied_seq is None:
            applied_seq = seq - 1 - (lag or 0)
        if hwm is None:
            hwm = seq - 1
        return self._order(Kind.NEW_ORDER, account, instrument, side, qty, price, venue, order_id, applied_seq, hwm, ts_ns, producer, 0, "")

    def refused(
        self,
        account: str | int,
        instrument: str | int,
        side: str,
        qty: object,
        price: object = 0,
        *,
        reason: RefuseReason | str,
        detail: str = "",
        venue: str | int = "sim-1",
        order_id: int | None = None,
        applied_seq: int | None = None,
        hwm: int | None = None,
        ts_ns: int | None = None,
        producer: int = GATE_PRODUCER,
    ) -> int:
        """A refusal with ``reason`` (a RefuseReason or its name). Returns the order id."""
        code = RefuseReason[reason] if isinstance(reason, str) else RefuseReason(reason)
        seq = self.next_seq
        applied_seq = seq - 1 if applied_seq is None else applied_seq
        hwm = seq - 1 if hwm is None else hwm
        return self._order(Kind.REFUSED, account, instrument, side, qty, price, venue, order_id, applied_seq, hwm, ts_ns, producer, int(code), detail)

    def _order(self, kind, account, instrument, side, qty, price, venue, order_id, applied, hwm, ts_ns, producer, code, text) -> int:
        aid, inst, vid = self._ids(account, instrument, venue)
        if order_id is None:
            order_id = self._next_order_id
        self._next_order_id = max(self._next_order_id, order_id + 1)
        sd = _SIDES[side]
        self._orders[order_id] = (aid, inst.id, vid, int(sd))
        self._add(
            kind, producer, ts_ns, account=aid, instrument=inst.id, venue=vid, side=int(sd), order_id=order_id,
            qty=inst.to_lots(qty), price=inst.to_ticks(price) if price else 0, aux1=applied, aux2=hwm,
            code=code, text=text.encode()[:40],
        )
        return order_id

    # -- venue events --------------------------------------------------------------------
    def ack(self, order_id: int, *, ts_ns: int | None = None) -> int:
        """Venue ack of ``order_id``; returns its seq."""
        return self._add(Kind.ACK, VENUE_PRODUCER, ts_ns, order_id=order_id)

    def cancel(self, order_id: int, *, ts_ns: int | None = None) -> int:
        """Cancel confirmed; returns its seq."""
        return self._add(Kind.CANCEL, VENUE_PRODUCER, ts_ns, order_id=order_id)

    def reject(self, order_id: int, reason: str = "venue reject", *, ts_ns: int | None = None) -> int:
        """Venue reject; returns its seq."""
        return self._add(Kind.REJECT, VENUE_PRODUCER, ts_ns, order_id=order_id, text=reason.encode()[:40])

    def fill(self, order_id: int, qty: object, price: object, *, trade_id: int | None = None, ts_ns: int | None = None) -> int:
        """A fill of a known order (ids and side from the order); returns its seq."""
        aid, iid, vid, sd = self._orders[order_id]
        inst = self.registry.instrument(iid)
        if trade_id is None:
            trade_id = self._next_trade_id
        self._next_trade_id = max(self._next_trade_id, trade_id + 1)
        return self._add(
            Kind.FILL, VENUE_PRODUCER, ts_ns, order_id=order_id, account=aid, instrument=iid, venue=vid, side=sd,
            qty=inst.to_lots(qty), price=inst.to_ticks(price), aux1=trade_id,
        )

    def price(self, instrument: str | int, price: object, *, ts_ns: int | None = None) -> int:
        """A reference price; returns its seq."""
        inst = self.registry.instrument(instrument)
        return self._add(Kind.PRICE, VENUE_PRODUCER, ts_ns, instrument=inst.id, price=inst.to_ticks(price))

    def position_reset(self, account: str | int, instrument: str | int, qty: object, price: object = 0, *, venue: str | int = 0) -> int:
        """Authoritative position (signed qty); returns its seq."""
        aid, inst, vid = self._ids(account, instrument, venue)
        return self._add(
            Kind.POSITION_RESET, CONTROL_PRODUCER, None, account=aid, instrument=inst.id, venue=vid,
            qty=inst.to_lots(qty), price=inst.to_ticks(price) if price else 0,
        )

    # -- control -------------------------------------------------------------------------
    def limit(self, limit: LimitType | str, value: object, *, account: str | int = 0, instrument: str | int = 0) -> int:
        """A limit change (``value`` in the limit's unit, e.g. ``"2.5"`` lots-as-decimal); returns its seq."""
        lt = LimitType[limit.upper()] if isinstance(limit, str) else LimitType(limit)
        aid = account if isinstance(account, int) else self.registry.account_id(account)
        iid = instrument if isinstance(instrument, int) else self.registry.instrument(instrument).id
        scaled = to_decimal(value, "value") * LIMIT_VALUE_SCALE
        return self._add(Kind.LIMIT, CONTROL_PRODUCER, None, code=int(lt), account=aid, instrument=iid, aux1=int(scaled))

    def _control(self, kind: Kind, account: str | int, instrument: str | int, reason: str) -> int:
        aid = account if isinstance(account, int) else self.registry.account_id(account)
        iid = instrument if isinstance(instrument, int) else self.registry.instrument(instrument).id
        return self._add(kind, CONTROL_PRODUCER, None, account=aid, instrument=iid, text=reason.encode()[:40])

    def halt(self, *, account: str | int = 0, instrument: str | int = 0, reason: str = "halt") -> int:
        """Halt a scope (all by default); returns its seq."""
        return self._control(Kind.HALT, account, instrument, reason)

    def resume(self, *, account: str | int = 0, instrument: str | int = 0, reason: str = "resume") -> int:
        """Resume a scope; returns its seq."""
        return self._control(Kind.RESUME, account, instrument, reason)

    def reduce_only(self, *, account: str | int = 0, instrument: str | int = 0, reason: str = "reduce only") -> int:
        """Reduce-only for a scope; returns its seq."""
        return self._control(Kind.REDUCE_ONLY, account, instrument, reason)

    # -- output --------------------------------------------------------------------------
    def frames(self, frame_records: int = 64) -> list[tuple[bytes, int, int]]:
        """``(frame bytes, first seq, count)`` of the records cut into frames."""
        recs = self.records()
        out = []
        for lo in range(0, len(recs), frame_records):
            part = recs[lo : lo + frame_records]
            out.append((encode_frame(part, epoch=self.epoch), int(part["seq"][0]), len(part)))
        return out

    def write(self, path: str | Path, *, frame_records: int = 64, segment_bytes: int = 64 << 20) -> Path:
        """Journal every record (durability ``none``) under ``path``; returns ``path``."""
        from sequencer.journal import Journal

        p = Path(path)
        journal = Journal.open(p, durability="none", segment_bytes=segment_bytes)
        try:
            epoch = journal.next_epoch()
            if epoch != self.epoch:
                # The journal hands out epochs; records must carry the one their frame has.
                for rec in self._rows:
                    rec["epoch"] = epoch
                self.epoch = epoch
            for frame, first, count in self.frames(frame_records):
                journal.append(frame, first, count, epoch)
            journal.sync()
        finally:
            journal.close()
        return p
