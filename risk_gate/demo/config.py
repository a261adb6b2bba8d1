"""The ``[demo]`` config section and the built-in configuration the demo runs with.

Without ``--config`` the demo writes :data:`DEFAULT_CONFIG` to ``OUT/seqrisk.toml`` and
every process reads that file: the default registry, a sequencer with ``batch``
durability, and gate limits tight enough that the strategy actually reaches them.
Endpoints in the file are ignored: the demo picks its own loopback endpoints.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sequencer.config import ConfigError, convert_section

__all__ = ["DemoConfig", "DEFAULT_CONFIG", "load_demo_config"]


class DemoConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[demo]``: how the demo's strategy, venue and fault injection behave.

    Fault times are fractions of the run (``--seconds``) measured from the moment every
    process is up.
    """

    orders_per_s: float = 30.0
    burst_every_s: float = 3.0
    burst_orders: int = 25
    price_interval_ms: float = 50.0
    price_vol_bps: float = 3.0
    reject_prob: float = 0.04
    cancel_prob: float = 0.25
    rest_ms: float = 600.0
    stall_at: float = 0.3
    stall_s: float = 2.0
    kill_at: float = 0.6
    down_s: float = 1.0
    reduce_only_at: float = 0.8
    reduce_only_s: float = 1.5

    def __post_init__(self) -> None:
        if not 0 < self.orders_per_s <= 10_000:
            raise ValueError("orders_per_s must be in (0, 10000]")
        if not 0 < self.price_interval_ms <= 10_000:
            raise ValueError("price_interval_ms must be in (0, 10000]")
        if self.burst_orders < 0 or self.burst_every_s <= 0:
            raise ValueError("burst_orders must be >= 0 and burst_every_s > 0")
        for name in ("reject_prob", "cancel_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        for name in ("stall_at", "kill_at", "reduce_only_at"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a fraction of the run in [0, 1]")
        for name in ("stall_s", "down_s", "reduce_only_s", "rest_ms", "price_vol_bps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


def load_demo_config(doc: dict[str, Any]) -> DemoConfig:
    """Validate the ``[demo]`` section of a parsed config document (defaults when absent)."""
    section = doc.get("demo", {})
    if not isinstance(section, dict):
        raise ConfigError("demo: expected a table")
    return convert_section(section, DemoConfig, "demo")


DEFAULT_CONFIG = """\
# seqrisk demo configuration (written by `seqrisk demo`; edit and pass with --config).
# Endpoints are chosen by the demo itself; everything else here is used as written.

[sequencer]
durability = "batch"
heartbeat_ms = 1.0

[gate]
# Staleness budgets: refuse when more than 64 events behind the HWM, when the HWM is
# older than 250 ms (sequencer gone), or when a price needed is older than 2 s.
max_lag_events = 64
max_hwm_age_ms = 250
price_ttl_ms = 2000
max_order_notional = 150000
max_gross_exposure = 600000
max_open_orders = 12
rate_per_sec = 20
rate_per_min = 900
price_collar_bps = 40

[gate.instruments.BTC-USDT]
max_order_qty = "1.5"
max_position = "3"

[gate.instruments.ETH-USDT]
max_order_qty = "20"
max_position = "40"

[gate.instruments.EUR-USD]
max_order_qty = 100000
max_position = 250000

[gate.accounts.acct-2]
max_gross_exposure = 350000
max_open_orders = 8

[gate.accounts.acct-2.instruments.BTC-USDT]
max_position = "1.5"

[demo]
orders_per_s = 30.0
burst_every_s = 3.0
burst_orders = 25
price_interval_ms = 50.0
stall_at = 0.3
stall_s = 2.0
kill_at = 0.6
down_s = 1.0
reduce_only_at = 0.8
reduce_only_s = 1.5
"""
