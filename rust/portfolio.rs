//! Portfolio: one cash balance for all symbols, net positions made of FIFO lots (trades),
//! and equity kept up to date incrementally.
//!
//! Accounting identity, true after every operation:
//!   equity = cash + Σ position_size × mark_price
//! where each position is marked at its own symbol's latest price (never the entry price).
//! `value` (Σ size × mark) and `gross` (Σ |size| × mark) are adjusted by deltas on each fill
//! and each new price, so no operation walks all positions.

use std::collections::VecDeque;

/// An open trade: one entry, possibly partly closed since.
#[derive(Clone, Debug)]
pub struct Lot {
    pub id: u64,
    /// +1 long, -1 short.
    pub direction: f64,
    /// Units still open (> 0).
    pub size: f64,
    pub entry_price: f64,
    pub entry_ts: i64,
    pub entry_bar: usize,
    /// Entry commission not yet charged to a closed part of this lot.
    pub entry_commission: f64,
    /// Highest and lowest prices seen while open, for excursions.
    pub high: f64,
    pub low: f64,
    pub stop_loss: Option<u64>,
    pub take_profit: Option<u64>,
}

/// A finished trade (or the closed part of one).
#[derive(Clone, Debug, PartialEq)]
pub struct ClosedTrade {
    pub symbol: usize,
    pub trade_id: u64,
    pub direction: f64,
    pub size: f64,
    pub entry_ts: i64,
    pub exit_ts: i64,
    pub entry_price: f64,
    pub exit_price: f64,
    /// Net of the entry and exit commissions attributed to this size.
    pub pnl: f64,
    /// Net return on everything the trade cost: `pnl / (entry_price × size + commission)`.
    /// Costs count in the base so that a small piece carrying a fixed fee reads as the
    /// loss of (nearly) all it cost, never as a loss of many times its notional; a long
    /// can never lose more than 100%.
    pub return_pct: f64,
    pub commission: f64,
    pub bars_held: usize,
    /// Maximum adverse / favourable excursion as a fraction of the entry price (≤ 0 / ≥ 0).
    pub mae: f64,
    pub mfe: f64,
    pub exit_order: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Position {
    /// Signed units: > 0 long, < 0 short.
    pub size: f64,
    /// Latest price (NaN before the symbol's first bar).
    pub mark: f64,
    pub lots: VecDeque<Lot>,
}

impl Position {
    /// Volume-weighted entry price of the open lots (NaN when flat).
    pub fn average_price(&self) -> f64 {
        let (mut units, mut cost) = (0.0, 0.0);
        for lot in &self.lots {
            units += lot.size;
            cost += lot.size * lot.entry_price;
        }
        if units > 0.0 {
            cost / units
        } else {
            f64::NAN
        }
    }
}

/// What one fill did to the trades of its symbol.
#[derive(Debug, Default)]
pub struct FillEffect {
    /// Lots closed completely: their bracket legs must be cancelled.
    pub closed_lots: Vec<Lot>,
    /// The lot this fill opened, if any.
    pub opened_lot: Option<u64>,
}

/// A fill as the portfolio books it.
#[derive(Clone, Copy, Debug)]
pub struct Execution {
    pub symbol: usize,
    pub direction: f64,
    pub size: f64,
    pub price: f64,
    pub commission: f64,
    pub ts: i64,
    pub bar: usize,
    pub order_id: u64,
    /// Bracket legs close exactly their own lot, not the oldest one.
    pub closes_lot: Option<u64>,
}

pub struct Portfolio {
    pub cash: f64,
    value: f64,
    gross: f64,
    positions: Vec<Position>,
    next_lot_id: u64,
    pub closed: Vec<ClosedTrade>,
    /// Carrying costs charged so far, net of interest earned.
    pub carry_paid: f64,
    /// The day end carrying costs were last accrued at (ns UTC).
    last_accrual: Option<i64>,
}

/// Annual rates of carrying costs, as a broker charges them: accrued for each calendar
/// day (actual/365) at the end of each trading day, on the balances held then.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CarryRates {
    /// `borrow_rate`: fee on the market value of short positions.
    pub borrow: f64,
    /// `margin_rate`: interest paid on negative cash (money borrowed to buy).
    pub margin: f64,
    /// `cash_rate`: interest earned on positive cash (short sale proceeds included).
    pub cash: f64,
}

const NANOS_PER_DAY: f64 = 86_400e9;

/// Lots smaller than this fraction of their size count as fully closed (float dust).
const DUST: f64 = 1e-9;

impl Portfolio {
    pub fn new(cash: f64, symbols: usize) -> Self {
        Portfolio {
            cash,
            value: 0.0,
            gross: 0.0,
            positions: (0..symbols)
                .map(|_| Position {
                    mark: f64::NAN,
                    ..Default::default()
                })
                .collect(),
            next_lot_id: 1,
            closed: Vec::new(),
            carry_paid: 0.0,
            last_accrual: None,
        }
    }

    /// Charge the carrying costs of the calendar days since the previous day end (one for
    /// the first; a weekend between two sessions makes three), at the day end `ts`:
    /// borrow fees on short market value, interest on negative cash, interest earned on
    /// positive cash. Returns the net amount charged (taken from cash, hence equity).
    pub fn accrue_carry(&mut self, ts: i64, rates: &CarryRates) -> f64 {
        // Rounded: a day of 23 or 25 hours (DST) or an early close is still one day.
        let days = self.last_accrual.map_or(1.0, |prev| {
            ((ts - prev) as f64 / NANOS_PER_DAY).round().max(1.0)
        });
        self.last_accrual = Some(ts);
        if *rates == CarryRates::default() {
            return 0.0;
        }
        let short_value: f64 = self
            .positions
            .iter()
            .filter(|p| p.size < 0.0)
            .map(|p| -p.size * p.mark)
            .sum();
        let rate = if self.cash < 0.0 {
            rates.margin
        } else {
            rates.cash
        };
        let cost = (short_value * rates.borrow - self.cash * rate) * days / 365.0;
        self.cash -= cost;
        self.carry_paid += cost;
        cost
    }

    #[inline]
    pub fn equity(&self) -> f64 {
        self.cash + self.value
    }

    /// Σ |size| × mark over all positions.
    #[inline]
    pub fn gross_exposure(&self) -> f64 {
        self.gross
    }

    #[inline]
    pub fn position(&self, symbol: usize) -> &Position {
        &self.positions[symbol]
    }

    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    pub fn open_position_count(&self) -> usize {
        self.positions.iter().filter(|p| p.size != 0.0).count()
    }

    /// Move `symbol`'s mark to `price`, adjusting equity by the position's change in value.
    #[inline]
    pub fn mark(&mut self, symbol: usize, price: f64) {
        let p = &mut self.positions[symbol];
        if p.size != 0.0 {
            let d = price - p.mark;
            self.value += p.size * d;
            self.gross += p.size.abs() * d;
        }
        p.mark = price;
    }

    /// Widen the excursion range of `symbol`'s open lots with a bar's low and high.
    #[inline]
    pub fn observe_range(&mut self, symbol: usize, low: f64, high: f64) {
        for lot in self.positions[symbol].lots.iter_mut() {
            lot.low = lot.low.min(low);
            lot.high = lot.high.max(high);
        }
    }

    /// Equity and gross exposure if `size` units were bought (direction +1) or sold (-1)
    /// at `price` paying `commission`: used for the margin check before a fill.
    pub fn after_fill(
        &self,
        symbol: usize,
        direction: f64,
        size: f64,
        price: f64,
        commission: f64,
    ) -> (f64, f64, bool) {
        let p = &self.positions[symbol];
        let new_size = p.size + direction * size;
        let grows = new_size.abs() > p.size.abs() * (1.0 + DUST);
        let mark = if p.mark.is_nan() { price } else { p.mark };
        let equity = self.equity() - commission + direction * size * (mark - price);
        let gross = self.gross + (new_size.abs() - p.size.abs()) * mark;
        (equity, gross, grows)
    }

    /// Book a fill: cash, lots (FIFO against the opposite side, or the named lot),
    /// closed-trade records, and the incremental value/gross.
    pub fn apply(&mut self, x: Execution) -> FillEffect {
        let mut effect = FillEffect::default();
        self.cash -= x.direction * x.size * x.price + x.commission;
        let pos = &mut self.positions[x.symbol];
        if pos.mark.is_nan() {
            pos.mark = x.price;
        }
        let mut remaining = x.size;

        if let Some(lot_id) = x.closes_lot {
            if let Some(k) = pos.lots.iter().position(|l| l.id == lot_id) {
                let take = remaining.min(pos.lots[k].size);
                close_part(pos, k, take, &x, &mut self.closed, &mut effect);
                remaining -= take;
            }
        } else {
            while remaining > 0.0 {
                let Some(front) = pos.lots.front() else { break };
                if front.direction == x.direction {
                    break;
                }
                let take = remaining.min(front.size);
                close_part(pos, 0, take, &x, &mut self.closed, &mut effect);
                remaining -= take;
                if remaining <= x.size * DUST {
                    remaining = 0.0;
                }
            }
        }

        if remaining > x.size * DUST {
            let id = self.next_lot_id;
            self.next_lot_id += 1;
            let entry_commission = x.commission * remaining / x.size;
            pos.lots.push_back(Lot {
                id,
                direction: x.direction,
                size: remaining,
                entry_price: x.price,
                entry_ts: x.ts,
                entry_bar: x.bar,
                entry_commission,
                high: x.price,
                low: x.price,
                stop_loss: None,
                take_profit: None,
            });
            effect.opened_lot = Some(id);
        }

        // Recount the position from its lots rather than accumulating float deltas.
        let old = pos.size;
        pos.size = pos.lots.iter().map(|l| l.direction * l.size).sum();
        self.value += (pos.size - old) * pos.mark;
        self.gross += (pos.size.abs() - old.abs()) * pos.mark;
        effect
    }

    pub fn lot_mut(&mut self, symbol: usize, lot_id: u64) -> Option<&mut Lot> {
        self.positions[symbol]
            .lots
            .iter_mut()
            .find(|l| l.id == lot_id)
    }

    pub fn lot(&self, symbol: usize, lot_id: u64) -> Option<&Lot> {
        self.positions[symbol].lots.iter().find(|l| l.id == lot_id)
    }
}

/// Close `take` units of lot `k`, writing a closed-trade record with its share of the
/// entry and exit commissions: the lot's entry commission in proportion to the units
/// closed, the closing fill's commission in proportion to the units it closes here.
fn close_part(
    pos: &mut Position,
    k: usize,
    take: f64,
    x: &Execution,
    closed: &mut Vec<ClosedTrade>,
    effect: &mut FillEffect,
) {
    let lot = &mut pos.lots[k];
    let share = take / lot.size;
    let entry_commission = lot.entry_commission * share;
    let exit_commission = x.commission * take / x.size;
    lot.entry_commission -= entry_commission;
    lot.high = lot.high.max(x.price);
    lot.low = lot.low.min(x.price);
    let commission = entry_commission + exit_commission;
    let pnl = lot.direction * (x.price - lot.entry_price) * take - commission;
    let (adverse, favourable) = if lot.direction > 0.0 {
        (lot.low, lot.high)
    } else {
        (lot.high, lot.low)
    };
    closed.push(ClosedTrade {
        symbol: x.symbol,
        trade_id: lot.id,
        direction: lot.direction,
        size: take,
        entry_ts: lot.entry_ts,
        exit_ts: x.ts,
        entry_price: lot.entry_price,
        exit_price: x.price,
        pnl,
        return_pct: pnl / (lot.entry_price * take + commission),
        commission,
        bars_held: x.bar.saturating_sub(lot.entry_bar),
        mae: lot.direction * (adverse / lot.entry_price - 1.0),
        mfe: lot.direction * (favourable / lot.entry_price - 1.0),
        exit_order: x.order_id,
    });
    lot.size -= take;
    if lot.size <= take * DUST {
        let done = pos.lots.remove(k).expect("lot index in range");
        effect.closed_lots.push(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(direction: f64, size: f64, price: f64, commission: f64) -> Execution {
        Execution {
            symbol: 0,
            direction,
            size,
            price,
            commission,
            ts: 0,
            bar: 0,
            order_id: 0,
            closes_lot: None,
        }
    }

    fn check_identity(p: &Portfolio) {
        let marked: f64 = p
            .positions()
            .iter()
            .filter(|x| x.size != 0.0)
            .map(|x| x.size * x.mark)
            .sum();
        assert!((p.equity() - (p.cash + marked)).abs() < 1e-9 * p.equity().abs().max(1.0));
    }

    #[test]
    fn long_round_trip_with_commission() {
        let mut p = Portfolio::new(10_000.0, 1);
        p.mark(0, 100.0);
        p.apply(exec(1.0, 10.0, 100.0, 2.0));
        assert_eq!(p.cash, 10_000.0 - 1000.0 - 2.0);
        p.mark(0, 110.0);
        check_identity(&p);
        assert!((p.equity() - (10_000.0 - 2.0 + 100.0)).abs() < 1e-9);
        p.apply(exec(-1.0, 10.0, 110.0, 3.0));
        let t = &p.closed[0];
        // (110 - 100) × 10 - (2 + 3) = 95, on 1000 + 5 of cost.
        assert!((t.pnl - 95.0).abs() < 1e-12);
        assert!((t.return_pct - 95.0 / 1005.0).abs() < 1e-12);
        assert!((p.equity() - 10_095.0).abs() < 1e-9);
        assert_eq!(p.position(0).size, 0.0);
    }

    #[test]
    fn short_pnl_and_flip_through_zero() {
        let mut p = Portfolio::new(1_000.0, 1);
        p.mark(0, 50.0);
        p.apply(exec(-1.0, 4.0, 50.0, 0.0));
        assert_eq!(p.cash, 1_200.0);
        p.mark(0, 45.0);
        check_identity(&p);
        // Buy 6: closes the 4 short (+20) and opens 2 long at 45.
        let e = p.apply(exec(1.0, 6.0, 45.0, 0.0));
        assert_eq!(e.closed_lots.len(), 1);
        assert!(e.opened_lot.is_some());
        assert!((p.closed[0].pnl - 20.0).abs() < 1e-12);
        assert_eq!(p.position(0).size, 2.0);
        check_identity(&p);
        assert!((p.equity() - 1_020.0).abs() < 1e-9);
    }

    #[test]
    fn carrying_costs_accrue_per_calendar_day() {
        let rates = CarryRates {
            borrow: 0.0365,
            margin: 0.073,
            cash: 0.0,
        };
        let day = 86_400_000_000_000i64;
        let mut p = Portfolio::new(1_000.0, 2);
        p.mark(0, 50.0);
        p.apply(exec(-1.0, 100.0, 50.0, 0.0)); // short 5,000: cash 6,000
                                               // 5,000 × 3.65% / 365 = 0.50 a day; no interest on positive cash at 0%.
        assert!((p.accrue_carry(16 * 3_600_000_000_000, &rates) - 0.5).abs() < 1e-12);
        // Friday to Monday: three days.
        assert!((p.accrue_carry(3 * day + 16 * 3_600_000_000_000, &rates) - 1.5).abs() < 1e-12);
        assert!((p.carry_paid - 2.0).abs() < 1e-12);
        assert!((p.cash - 5_998.0).abs() < 1e-9);
        check_identity(&p);
        // Cover and buy 200 of another at 50: cash 5,998 - 5,000 - 10,000 = -9,002.
        p.apply(exec(1.0, 100.0, 50.0, 0.0));
        p.mark(1, 50.0);
        p.apply(exec(1.0, 200.0, 50.0, 0.0));
        let charged = p.accrue_carry(4 * day + 16 * 3_600_000_000_000, &rates);
        assert!((charged - 9_002.0 * 0.073 / 365.0).abs() < 1e-12);
        check_identity(&p);
    }

    #[test]
    fn a_sliver_with_a_fixed_fee_loses_what_it_cost_not_ten_times_it() {
        let mut p = Portfolio::new(10_000.0, 1);
        p.mark(0, 10.0);
        p.apply(exec(1.0, 100.0, 10.0, 1.0));
        p.apply(exec(1.0, 0.01, 10.0, 1.0)); // a top-up of 0.10 paying a 1.00 fee
        p.apply(exec(-1.0, 100.01, 11.0, 1.0));
        let (big, sliver) = (&p.closed[0], &p.closed[1]);
        let exit_share = 0.01 / 100.01;
        // 0.01 × (11 - 10) - 1 - exit share = -0.9901..., on 0.10 + 1 + exit share.
        let pnl = 0.01 - 1.0 - exit_share;
        assert!((sliver.pnl - pnl).abs() < 1e-12);
        assert!((sliver.return_pct - pnl / (0.1 + 1.0 + exit_share)).abs() < 1e-12);
        assert!(sliver.return_pct > -1.0);
        let big_fees = 1.0 + 100.0 / 100.01;
        assert!((big.return_pct - (100.0 - big_fees) / (1000.0 + big_fees)).abs() < 1e-12);
    }

    #[test]
    fn fifo_partial_close_splits_commission() {
        let mut p = Portfolio::new(10_000.0, 1);
        p.mark(0, 10.0);
        p.apply(exec(1.0, 10.0, 10.0, 1.0));
        p.apply(exec(1.0, 10.0, 12.0, 1.0));
        p.apply(exec(-1.0, 15.0, 11.0, 1.5));
        // First lot fully (+10 - 1 - 1.0), then 5 of the second (-5 - 0.5 - 0.5).
        assert!((p.closed[0].pnl - 8.0).abs() < 1e-12);
        assert!((p.closed[1].pnl - (-6.0)).abs() < 1e-12);
        assert_eq!(p.position(0).lots.len(), 1);
        assert!((p.position(0).lots[0].entry_commission - 0.5).abs() < 1e-12);
        p.mark(0, 11.0);
        check_identity(&p);
    }
}
