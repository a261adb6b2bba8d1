"""The embeddable gate: a Subscriber folding the stream, the pure checks, and the audit trail.

Everything with a clock, a socket or a file lives here; the decision itself is
:func:`risk_gate.checks.check_order` (the reference) and its compiled form
:func:`risk_gate.kernel.decide`. ``check()``:

1. drains what the subscriber has pending (non-blocking, at most ``max_drain_frames``), so
   the lag it decides on is only what is still in flight;
2. converts the order (decimals to fixed point, memoized by :class:`FixedConverter`) and
   decides on ``HWM = max(heartbeat HWM, applied seq)`` (the heartbeat can lag the data): one
   kernel call for a well-formed order; the reference for anything the kernel hands back
   (invalid fields, values beyond int64) and for a refusal's detail text (a kernel/reference
   disagreement refuses with ``INTERNAL_ERROR``);
3. on approval reserves the order locally (released when its ``new_order`` comes back on the
   stream), takes a rate token and marks its id taken (the kernel does all three in the same
   call; it also finds duplicate ids in its :class:`~risk_gate.idset.OrderIdSet`); any
   exception refuses with ``INTERNAL_ERROR``;
4. publishes a ``new_order`` / ``refused`` record (aux1 = applied seq, aux2 = that HWM): with
   ``publish_mode="each"`` (default) and a :class:`~sequencer.producer.Producer`, packed into a
   preallocated one-record frame (:class:`~risk_gate.publish.DecisionFrame`) and sent at once
   without blocking; otherwise queued and submitted through ``producer.submit``.

A gate with the kernel on, no decision log and no approval to publish (no producer, or
``publish_approvals`` off) takes a fast path for a :class:`FixedOrder` the kernel approves:
the same steps in a few lines of Python, handing anything else (a refusal, a field that is
not an int, an exception) to the full path, which decides it again (the kernel changes no
state unless it approves).
"""

from __future__ import annotations

import operator
import time
from pathlib import Path
from typing import Any, Callable

import msgspec

from risk_gate.checks import BookView, FixedOrder, StreamView, check_order
from risk_gate.fastpath import KernelCheck, compiled_decide_quiet, compiled_quiet
from risk_gate.fold import GateFold
from risk_gate.kernel import FALLBACK, LAST_CODE, NEED_LIMITS, NEED_POLL
from risk_gate.kernel_clock import AVAILABLE as _KERNEL_CLOCK_AVAILABLE
from risk_gate.limits import GateConfig, LimitTable, load_gate_config
from risk_gate.order import Decision, FixedConverter, Order
from risk_gate.publish import DecisionFrame, DecisionPublishing
from risk_gate.reasons import RefuseReason
from risk_gate.state import RateState, Reservations
from sequencer.log import get_logger
from sequencer.registry import Registry, default_registry

__all__ = ["Gate", "DecisionLogEntry"]

log = get_logger("gate")

_INTERNAL = RefuseReason.INTERNAL_ERROR
_DUP = RefuseReason.DUPLICATE_ORDER_ID
_FALLBACK = FALLBACK
_NEED_LIMITS = NEED_LIMITS
_LAST_CODE = LAST_CODE
_NEED_POLL = NEED_POLL
# The clock the kernel can read itself (a gate given any other clock reads that one in Python).
_KERNEL_CLOCK = time.time_ns if _KERNEL_CLOCK_AVAILABLE else object()
_perf_ns = time.perf_counter_ns


def _integral(fo: FixedOrder) -> tuple[FixedOrder, str | None]:
    """``fo`` with integer-like fields (numpy ints, bools) as ints, or a detail naming the first that is not."""
    values = []
    for name, value in zip(FixedOrder._fields, fo):
        try:
            values.append(operator.index(value))
        except TypeError:
            return FixedOrder(*(v if type(v) is int else 0 for v in fo)), f"{name}: must be an integer (fixed point), got {value!r}"
    return FixedOrder(*values), None


def _hwm_file(gate_value: str, seq: Any) -> str | None:
    """The gate's HWM file: its own ``hwm_file``, else where the sequencer of ``seq`` (a
    ``SequencerConfig``) writes it (``JOURNAL/hwm`` by default); None when either says "off"."""
    from sequencer.service import hwm_file_path

    if gate_value.lower() in ("off", "none"):
        return None
    if gate_value:
        return gate_value
    path = hwm_file_path(seq, Path(seq.journal))
    return str(path) if path is not None else None


def _agreed(code: int, reason: RefuseReason | None, detail: str) -> tuple[RefuseReason, str]:
    """The kernel's refusal with the reference's detail; a disagreement refuses as INTERNAL_ERROR."""
    if reason is not None and int(reason) == code:
        return reason, detail
    log.error("check kernel refused %s but the reference decided %s", RefuseReason(code).name, reason)
    return _INTERNAL, f"kernel refused {RefuseReason(code).name}, reference decided {reason.name if reason else 'approve'}"


class DecisionLogEntry(msgspec.Struct, array_like=True, gc=False):
    """One line of the decision log: ``[ts_ns, order_id, code, applied_seq, hwm, latency_ns]``
    (code 0 = approved, else the RefuseReason value)."""

    ts_ns: int
    order_id: int
    code: int
    applied_seq: int
    hwm: int
    latency_ns: int


class Gate(DecisionPublishing):
    """Pre-trade risk gate embedded in a strategy process (see the module docstring).

    ``subscriber``/``producer`` may be given instead of endpoints (tests, custom transports);
    ``clock`` returns ns on the sequencer's clock (``time.time_ns`` on the same host).
    With ``ingest=None`` and no producer, decisions are not published. ``subscriber_options``
    are passed to :class:`consumers.subscriber.Subscriber` (e.g. ``stall_s``).
    ``kernel=False`` decides every order with the pure-Python reference
    (:func:`~risk_gate.checks.check_order`) instead of the compiled kernel (same decisions).
    """

    def __init__(
        self,
        publish: str | None = None,
        hwm: str | None = None,
        replay: str | None = None,
        ingest: str | None = None,
        *,
        limits: GateConfig | LimitTable | None = None,
        registry: Registry | None = None,
        hwm_file: str | None = None,
        name: str = "gate",
        publish_approvals: bool | None = None,
        publish_refusals: bool | None = None,
        publish_mode: str = "each",
        decision_log: str | Path | None = None,
        max_drain_frames: int | None = None,
        subscriber: Any = None,
        producer: Any = None,
        clock: Callable[[], int] = time.time_ns,
        subscriber_options: dict[str, Any] | None = None,
        kernel: bool = True,
    ) -> None:
        if publish_mode not in ("each", "batch"):
            raise ValueError(f"publish_mode must be 'each' or 'batch', got {publish_mode!r}")
        if isinstance(limits, LimitTable):
            table = limits
            self.registry = registry or table.registry
        else:
            self.registry = registry or default_registry()
            table = LimitTable(limits, self.registry)
        cfg = table.config
        self.config = cfg
        self.name = name
        self.table = table
        self.fold = GateFold(self.registry, table)
        self.fold.on_new_orders = self._released
        self.book = self.fold.book
        a, i, _v = self.book.shape
        self.reservations = Reservations(a, i)
        self.rates = RateState(a)
        self._view = BookView.from_book(self.book, self.registry)
        # Read the fold's current set: a restore replaces it.
        self._view.order_known = lambda oid: oid in self.fold.seen_ids
        self._kernel = KernelCheck(self.book, self.registry, table, self.reservations, self.rates) if kernel else None
        if self._kernel is not None:
            # The kernel's copy of the taken ids (empty, like the new fold's): stream ids per
            # batch, approvals as made.
            self.fold.on_order_ids = self._kernel.ids.add_many
            self.fold.on_restored = self._rebuild_ids
        self._by_id = self.reservations.by_id  # never replaced
        self._clock = clock
        self._max_drain = max_drain_frames if max_drain_frames is not None else cfg.max_drain_frames
        self._pub_ok = cfg.publish_approvals if publish_approvals is None else publish_approvals
        self._pub_refused = cfg.publish_refusals if publish_refusals is None else publish_refusals
        self._each = publish_mode == "each"
        self._outbox: list[tuple] = []
        self._text_cache: dict[str, bytes] = {}
        self._refused = 0
        self._pub_counts: dict[str, int] = {"published": 0, "publish_errors": 0, "unpublished": 0}
        self.refused_by_reason: dict[str, int] = {}
        if subscriber is None:
            from consumers.subscriber import Subscriber

            if not (publish and hwm and replay):
                raise ValueError("Gate needs publish, hwm and replay endpoints (or a subscriber)")
            subscriber = Subscriber(
                publish=publish, hwm=hwm, replay=replay, fold=self.fold, hwm_file=hwm_file, name=name, **(subscriber_options or {})
            )
        self.subscriber = subscriber
        if producer is None and ingest:
            from sequencer.producer import Producer

            producer = Producer(ingest=ingest, name=name)
        self.producer = producer
        # Publish each decision through a preallocated frame when the producer can take one.
        self._fast: DecisionFrame | None = None
        if self._each and producer is not None and hasattr(producer, "submit_encoded"):
            self._fast = DecisionFrame(producer.producer_id)
        self._convert = FixedConverter(self.registry)
        self._token_ids: dict[int, list[int]] = {}
        self._since_reply_poll = 0
        path = decision_log if decision_log is not None else (cfg.decision_log or None)
        self._log_file = open(path, "ab", buffering=1 << 16) if path else None  # noqa: SIM115
        self._log_enc = msgspec.json.Encoder()
        # check()'s approval fast path: the kernel on, no decision log, no approval to publish
        # (fixed at construction, like the entry point and meta address it calls).
        self._lean = self._kernel is not None and self._log_file is None and not (self._pub_ok and producer is not None)
        self._decide = self._kernel.decide if self._kernel is not None else None
        self._meta_address = self._kernel.meta_address if self._kernel is not None else 0
        # With a subscriber that publishes its quiet state and stream state (consumers.quiet)
        # and the default clock (the kernel reads it), the fast path lets the kernel tell
        # whether poll() would do anything and read the stream values (decide_quiet).
        self._quiet = (
            self._kernel is not None and clock is _KERNEL_CLOCK and isinstance(getattr(subscriber, "stream_state", None), tuple)
            and self._kernel.watch_quiet(getattr(subscriber, "quiet", None))
        )
        self._quiet_address = int(self._kernel.quiet.ctypes.data) if self._quiet else 0
        self._quiet_now = compiled_quiet() if self._quiet else None
        self._decide_quiet = compiled_decide_quiet() if self._quiet else None

    # -- construction from the config file ------------------------------------------------
    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> "Gate":
        """A gate from a TOML config: ``[gate]`` limits and switches, endpoints defaulting to ``[sequencer]``."""
        from sequencer.config import load_document, load_registry, load_sequencer_config

        doc = load_document(path)
        reg = load_registry(doc)
        cfg = load_gate_config(doc, reg)
        seq = load_sequencer_config(doc)
        kwargs: dict[str, Any] = {
            "publish": cfg.publish or seq.publish,
            "hwm": cfg.hwm or seq.hwm,
            "replay": cfg.replay or seq.replay,
            "ingest": cfg.ingest or seq.ingest,
            "hwm_file": _hwm_file(cfg.hwm_file, seq),
            "limits": LimitTable(cfg, reg),
            "registry": reg,
            "name": cfg.name,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    # -- state ---------------------------------------------------------------------------
    def _rebuild_ids(self) -> None:
        """The kernel's taken ids again from the stream's and the reservations' (after a restore)."""
        self._kernel.ids.reset(self.fold.seen_ids | self.reservations.by_id.keys())

    def _unreserve(self, order_id: int, withdrawn: bool) -> None:
        """Drop a reservation that will never be seen on the stream (``withdrawn``: the approval was
        not given); its id is free again unless the stream has it."""
        res = self.reservations
        (res.withdraw if withdrawn else res.release)(order_id)
        if self._kernel is not None and order_id not in self.fold.seen_ids:
            self._kernel.ids.discard(order_id)

    def _released(self, order_ids: list[int]) -> None:
        res = self.reservations
        if res.by_id:
            for oid in order_ids:
                res.release(oid)

    def stream_view(self) -> StreamView:
        """What the subscriber knows now: applied seq, HWM (at least the applied seq), its timestamp, recovering, error."""
        s = self.subscriber
        applied = s.applied_seq
        hwm = s.hwm
        # The conflated heartbeat can lag the data path: the sequencer has published at
        # least what was applied, so the HWM is never below the applied seq (lag >= 0).
        return StreamView(applied, hwm if hwm > applied else applied, s.hwm_ts_ns, s.recovering, s.error)

    @property
    def applied_seq(self) -> int:
        return self.fold.applied_seq

    def poll(self, max_frames: int | None = None) -> int:
        """Apply pending stream events, collect ingest replies, flush queued decisions."""
        n = self.subscriber.poll(max_frames or self._max_drain)
        self.flush()
        self._poll_replies()
        return n

    # -- the check -----------------------------------------------------------------------
    def check(self, order: Order | FixedOrder) -> Decision:
        """Decide ``order`` (an :class:`Order` with decimals and names, or a :class:`FixedOrder`)."""
        if self._lean and type(order) is FixedOrder:
            # The approval fast path: _check's steps for an order the kernel approves, with
            # nothing to log or publish. Anything else (a refusal, a fallback, a field that is
            # not an int, an exception) is decided by _check; the kernel changes no state
            # unless it approves, so deciding again is safe.
            now = None
            quiet = self._quiet
            try:
                s = self.subscriber
                if quiet:
                    # The kernel reads the clock (0), the stream values and says NEED_POLL
                    # unless a poll would do nothing; on approval it returns the time.
                    now = 0
                    code = self._decide_quiet(self._meta_address, order, 0)
                    if code > _LAST_CODE:
                        applied = self.fold.applied
                        hwm, hwm_ts, _recovering, _error = s.stream_state
                        if hwm < applied:
                            hwm = applied
                if not quiet or code == _NEED_POLL:
                    quiet = False
                    now = None
                    s.poll(self._max_drain)
                    clock = self._clock
                    # With the default clock the kernel reads it (0): one Python call and int less.
                    now = 0 if clock is _KERNEL_CLOCK else clock()
                    applied = self.fold.applied
                    hwm = s.hwm
                    if hwm < applied:
                        hwm = applied
                    hwm_ts = s.hwm_ts_ns
                    flags = 0 if s.error is None else 2
                    if (hwm > applied or not hwm_ts) and s.recovering:
                        flags |= 1
                    code = self._decide(self._meta_address, order, now, applied, hwm, hwm_ts, flags)
            except Exception as exc:  # a non-int field (TypeError) or a failure: _check decides, failing closed
                if now is None:
                    return self._check(order, None, exc)
                # Unless the kernel got to see that the subscriber was quiet, _check polls first.
                return self._check(order, None if quiet else (now or None))
            if code > _LAST_CODE:
                now = code  # approved at the time the kernel read
                code = 0
            if code == 0:
                # The kernel refused a taken id and added this one to its set; the reservation
                # record also counts the approval (Reservations.total).
                oid = order[6]
                self._by_id[oid] = order
                return Decision(True, None, "", applied, hwm, hwm_ts, now, oid)
            return self._check(order, now or None)
        return self._check(order)

    def _check(self, order: Order | FixedOrder, now: int | None = None, failure: Exception | None = None) -> Decision:
        """The full check. With ``now``, the subscriber was drained and the clock read by
        :meth:`check`'s fast path; ``failure`` (raised there before that) refuses with INTERNAL_ERROR."""
        log_file = self._log_file
        t0 = _perf_ns() if log_file is not None else 0
        fo: FixedOrder | None = None
        applied = hwm = hwm_ts = 0
        try:
            if failure is not None:
                raise failure
            s = self.subscriber
            if now is None:
                if not (self._quiet_address and self._quiet_now(self._quiet_address)):
                    s.poll(self._max_drain)
                now = self._clock()
            if type(order) is FixedOrder:
                fo = order
                invalid = None
                # The kernel takes only ints (risk_gate.kernel_args). The sum of ints is an int
                # (one C call); a float, Decimal or numpy field changes its type and a str
                # raises: those go through _integral, which names a bad field.
                try:
                    plain = type(sum(fo)) is int
                except TypeError:
                    plain = False
                if not plain:
                    fo, invalid = _integral(fo)
            else:
                fo, invalid = self._convert(order)
            oid = fo[6]
            fold = self.fold
            applied = fold.applied  # the state this decision reads (a plain int attribute)
            hwm = s.hwm
            if hwm < applied:
                # The conflated heartbeat can lag the data path: the sequencer has published
                # at least what was applied, so the HWM used and recorded is never below it.
                hwm = applied
            hwm_ts = s.hwm_ts_ns
            # ``recovering`` only matters when the lag is not known to be within budget; with a
            # fresh HWM and lag 0 it cannot change the decision (budgets are >= 0), so the
            # subscriber's (costly) property is read only otherwise.
            recovering = s.recovering if (hwm > applied or not hwm_ts) else False
            error = s.error
            code = _FALLBACK
            kern = self._kernel
            res = self.reservations
            if invalid is None and kern is not None:
                flags = (1 if recovering else 0) | (2 if error is not None else 0)
                if oid in res.by_id or oid in fold.seen_ids:
                    flags |= 4
                kern.ids.reserve(1)  # room for this id: the kernel never grows the set
                try:
                    code = kern.decide(kern.meta_address, fo, now, applied, hwm, hwm_ts, flags)
                except OverflowError:  # a field beyond int64: the reference path decides it
                    code = _FALLBACK
                if code == _NEED_LIMITS:
                    code = self._kernel_retry(kern, fo, now, applied, hwm, hwm_ts, flags)
            if code == 0:
                reason = None
                detail = ""
                res.by_id[oid] = fo
            else:
                # A plain tuple in StreamView's field order: cheaper than building the NamedTuple.
                reason, detail = check_order(
                    fo, self._view, self.table, res, self.rates, (applied, hwm, hwm_ts, recovering, error), now, invalid
                )
                if code > 0:
                    reason, detail = _agreed(code, reason, detail)
                elif reason is None:
                    self._reserve(fo, now)
        except Exception as exc:  # fail closed: whatever broke, this order is refused
            log.exception("check failed; refusing", extra={"seq": applied})
            reason = _INTERNAL
            detail = f"{type(exc).__name__}: {exc}"
        return self._decided(order, fo, reason, detail, applied, hwm, hwm_ts, now or 0, log_file, t0)

    def _kernel_retry(self, kern: KernelCheck, fo: FixedOrder, now: int, applied: int, hwm: int, hwm_ts: int, flags: int) -> int:
        """The kernel's verdict once the account's limit rows are loaded (FALLBACK when they cannot be)."""
        if not kern.load(fo[0]):
            return _FALLBACK
        return kern.decide(kern.meta_address, fo, now, applied, hwm, hwm_ts, flags)

    def _reserve(self, fo: FixedOrder, now: int) -> None:
        """Take the rate tokens and reserve an order the reference path approved."""
        account = fo[0]
        r = self.table.resolved(account, fo[1])
        if r.rate_per_sec >= 0 or r.rate_per_min >= 0:
            self.rates.take(account, now, r.rate_per_sec, r.rate_per_min)
        self.reservations.add(fo)
        if self._kernel is not None:
            self._kernel.ids.add(fo[6])

    @property
    def counts(self) -> dict[str, int]:
        """Decisions made and records published: approved, refused, published, publish_errors, unpublished."""
        return {"approved": self.reservations.total, "refused": self._refused, **self._pub_counts}

    def _log(self, d: Decision, t0: int) -> None:
        entry = DecisionLogEntry(self._clock(), d.order_id, 0 if d.reason is None else int(d.reason), d.applied_seq, d.hwm, _perf_ns() - t0)
        self._log_file.write(self._log_enc.encode(entry) + b"\n")

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Flush queued decisions, close sockets and the decision log."""
        try:
            if self.producer is not None:
                self.flush()
                self.producer.flush(1.0)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            if self.producer is not None:
                self.producer.close()
            close = getattr(self.subscriber, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> "Gate":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
