"""nautilus_trader: ``BacktestEngine`` with 1-minute bars, its ``SimpleMovingAverage``
indicators, explicit crossover test in ``on_bar``, 1 unit, zero fees.

Run by ``compare.py`` with nautilus_trader's own interpreter (it pins pandas < 3):
``python run_nautilus.py DATA.npz --bars N``. Needs only numpy, pandas and
nautilus_trader; times ``engine.run()`` (data already added) and prints
``RESULT {"seconds": ..., "cpu": ..., "counts": {...}}``.

Fill convention: nautilus fills a market order sent from ``on_bar`` at once, at the
last price its simulated exchange has seen: the close of the signal bar, not the next
bar's open. The peers' data has no gaps (round-the-clock minutes, each bar opening at the
previous close), so that is the same price, and the position every later decision sees
is the same: trade counts and P&L match the next-open convention; only the fill's
timestamp is one bar earlier. Prices are rounded to the instrument's cent tick, so
``compare.py --jitter`` cannot move them off the grid here (nautilus then counts as on
the grid). Nautilus stamps a bar at its close: the bars are shifted by one minute so
that each bar's stamp is its close, which changes no price or order.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--bars", type=int, default=1 << 62)
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=30)
    args = ap.parse_args()

    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig, StrategyConfig
    from nautilus_trader.indicators import SimpleMovingAverage
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.data import Bar, BarType
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId, Venue
    from nautilus_trader.model.objects import Money, Quantity
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.trading.strategy import Strategy

    with np.load(args.data) as z:
        n = min(int(z["lengths"][0]), args.bars)
        cols = {c: z[c][:n] for c in ("ts", "open", "high", "low", "close", "volume")}
    index = pd.DatetimeIndex(
        cols.pop("ts").view("datetime64[ns]") + np.timedelta64(1, "m"), tz="UTC"
    )
    frame = pd.DataFrame(cols, index=index)

    class CrossConfig(StrategyConfig, frozen=True):
        instrument_id: InstrumentId
        bar_type: BarType
        fast: int
        slow: int

    class SmaCross(Strategy):
        def __init__(self, config: CrossConfig) -> None:
            super().__init__(config)
            self.fast = SimpleMovingAverage(config.fast)
            self.slow = SimpleMovingAverage(config.slow)
            self.fast_before = self.slow_before = math.nan
            self.one = Quantity.from_int(1)

        def on_start(self) -> None:
            self.register_indicator_for_bars(self.config.bar_type, self.fast)
            self.register_indicator_for_bars(self.config.bar_type, self.slow)
            self.subscribe_bars(self.config.bar_type)

        def on_bar(self, bar: Bar) -> None:
            if not (self.fast.initialized and self.slow.initialized):
                return
            f, s = self.fast.value, self.slow.value
            fb, sb = self.fast_before, self.slow_before
            self.fast_before, self.slow_before = f, s
            iid = self.config.instrument_id
            if f > s:
                if fb <= sb and self.portfolio.is_flat(iid):
                    self.submit_order(self.order_factory.market(iid, OrderSide.BUY, self.one))
            elif f < s and fb >= sb and self.portfolio.is_net_long(iid):
                self.close_all_positions(iid)

    venue = Venue("XNAS")
    instrument = TestInstrumentProvider.equity(symbol="PEER", venue="XNAS")
    bar_type = BarType.from_str(f"{instrument.id}-1-MINUTE-LAST-EXTERNAL")
    bars = BarDataWrangler(bar_type, instrument).process(frame)
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    engine.add_venue(
        venue=venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=USD,
        starting_balances=[Money(1_000_000_000, USD)],
    )
    engine.add_instrument(instrument)
    engine.add_data(bars)
    engine.add_strategy(
        SmaCross(
            CrossConfig(
                instrument_id=instrument.id, bar_type=bar_type, fast=args.fast, slow=args.slow
            )
        )
    )
    c0, t0 = time.process_time(), time.perf_counter()
    engine.run()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    orders = [o for o in engine.cache.orders() if o.is_closed and o.filled_qty > 0]
    buys = sum(1 for o in orders if o.side == OrderSide.BUY)
    # Netting keeps one position per instrument, reopened by each buy: round trips are
    # counted as sell fills (long-only).
    counts = {"buys": buys, "sells": len(orders) - buys, "closed": len(orders) - buys}
    print("RESULT " + json.dumps({"seconds": seconds, "cpu": cpu, "bars": n, "counts": counts}))


if __name__ == "__main__":
    main()
