//! What a run leaves behind: the order log, fills, equity samples (closed trades live in
//! the portfolio).

use crate::orders::{Order, OrderRecord, OrderRow, OrderTerms, Reason, Role, Status, NO_TERMS};
use crate::portfolio::ClosedTrade;
use bitrep::SumF64;

/// One fill as the log keeps it: the order that filled and the commission it paid. The
/// rest of the fill (symbol, time, side, units, price, role) is in the order's record,
/// written with it: an order fills once (`OrderLog::fill_row` gives every field).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fill {
    pub order_id: u64,
    pub commission: f64,
}

/// One fill with every field, as the results show it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FillRow {
    pub order_id: u64,
    pub symbol: usize,
    pub ts: i64,
    /// +1 buy, -1 sell.
    pub direction: f64,
    pub size: f64,
    pub price: f64,
    pub commission: f64,
    pub role: Role,
}

/// A closed trade with every field, as the results show it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TradeRow {
    pub symbol: usize,
    pub trade_id: u64,
    /// +1 long, -1 short.
    pub direction: f64,
    pub size: f64,
    pub entry_ts: i64,
    pub exit_ts: i64,
    pub entry_price: f64,
    pub exit_price: f64,
    pub pnl: f64,
    pub return_pct: f64,
    pub commission: f64,
    pub bars_held: usize,
    pub mae: f64,
    pub mfe: f64,
    pub entry_order: u64,
    pub exit_order: u64,
    /// The entry order's tag (the strategy's; 0 without one).
    pub tag: i64,
}

/// The closed trades' columns a row of statistics reads, in the order they closed: what
/// the statistics need of the trades, without the rest of each trade's row (its times,
/// prices and exit order are exported only when the trades themselves are read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TradeColumns {
    pub pnl: Vec<f64>,
    pub return_pct: Vec<f64>,
    pub commission: Vec<f64>,
    pub bars_held: Vec<i64>,
    pub mae: Vec<f64>,
    pub mfe: Vec<f64>,
    /// Exit time less entry time, ns.
    pub duration: Vec<i64>,
}

impl TradeColumns {
    /// The columns of `closed`, in one pass over the trades (a pass per column would read
    /// every trade's record six times: megabytes for a busy run).
    pub fn of(closed: &[ClosedTrade]) -> Self {
        let n = closed.len();
        let mut c = TradeColumns {
            pnl: Vec::with_capacity(n),
            return_pct: Vec::with_capacity(n),
            commission: Vec::with_capacity(n),
            bars_held: Vec::with_capacity(n),
            mae: Vec::with_capacity(n),
            mfe: Vec::with_capacity(n),
            duration: Vec::with_capacity(n),
        };
        for t in closed {
            c.pnl.push(t.pnl);
            c.return_pct.push(t.return_pct());
            c.commission.push(t.commission);
            c.bars_held.push(t.bars_held as i64);
            c.mae.push(t.mae);
            c.mfe.push(t.mfe);
            c.duration.push(t.exit_ts - t.entry_ts);
        }
        c
    }
}

/// The sum of `values` rounded once, from their exact sum (a fixed-point accumulator that
/// holds any f64 exactly, the `bitrep` crate): the same bits in any order, which is why the
/// statistics sum trades with it. Trades closed at one instant are listed in the order
/// they executed, which may follow the symbols' names; a running or pairwise sum depends
/// on that order, and sorting first (which made it not) costs more than the rest of the
/// statistics. Equal to Python's `math.fsum` where that gives a number (but +0.0 for an
/// exactly zero sum); NaN if a value is NaN or both infinities occur, an infinity if one
/// does or the exact sum overflows.
pub fn exact_sum(values: &[f64]) -> f64 {
    values.iter().copied().collect::<SumF64>().value()
}

/// The sums the trade statistics read (`tickstep.metrics`), each exact (`exact_sum`), so
/// the same bits in any order of the trades: computed here in one place, by the grid's
/// threads as each run ends (off the thread that makes the rows) and for any other
/// Result through `_core.trade_sums`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TradeSums {
    /// P&L of the winning trades (P&L > 0), and how many.
    pub gross_profit: f64,
    pub wins: usize,
    /// P&L of the losing trades (P&L < 0: a negative sum), and how many.
    pub gross_loss: f64,
    pub losses: usize,
    /// Every trade's P&L (NaN with a NaN P&L, which is neither a win nor a loss).
    pub pnl: f64,
    /// The squared deviations from the mean P&L (`pnl` / trades): (P&L - mean)², each
    /// rounded as numpy's `(pnl - mean) ** 2` rounds it (SQN's spread).
    pub squared_deviations: f64,
    pub return_pct: f64,
    pub mae: f64,
    pub mfe: f64,
    pub commission: f64,
    /// The durations (ns), summed in whole numbers too wide to overflow, and the longest
    /// (0 without trades).
    pub duration: i128,
    pub longest: i64,
}

impl TradeSums {
    /// The sums of the trades' columns (each summed on its own: any lengths).
    pub fn of(
        pnl: &[f64],
        return_pct: &[f64],
        mae: &[f64],
        mfe: &[f64],
        commission: &[f64],
        duration: &[i64],
    ) -> Self {
        let (mut profit, mut loss, mut all) = (SumF64::new(), SumF64::new(), SumF64::new());
        let (mut wins, mut losses) = (0, 0);
        for &p in pnl {
            all.add(p);
            if p > 0.0 {
                profit.add(p);
                wins += 1;
            } else if p < 0.0 {
                loss.add(p);
                losses += 1;
            }
        }
        let total = all.value();
        let mean = total / pnl.len() as f64;
        let squared_deviations = pnl
            .iter()
            .map(|&p| (p - mean) * (p - mean))
            .collect::<SumF64>()
            .value();
        TradeSums {
            gross_profit: profit.value(),
            wins,
            gross_loss: loss.value(),
            losses,
            pnl: total,
            squared_deviations,
            return_pct: exact_sum(return_pct),
            mae: exact_sum(mae),
            mfe: exact_sum(mfe),
            commission: exact_sum(commission),
            duration: duration.iter().map(|&d| i128::from(d)).sum(),
            longest: duration.iter().copied().max().unwrap_or(0),
        }
    }

    /// The sums of `TradeColumns`.
    pub fn of_columns(c: &TradeColumns) -> Self {
        TradeSums::of(
            &c.pnl,
            &c.return_pct,
            &c.mae,
            &c.mfe,
            &c.commission,
            &c.duration,
        )
    }
}

/// Every order placed in a run, in id order (an order's id is its place + 1), with where
/// its life ended. Compact: a record of what every order has, and a table of the terms
/// only some carry (prices, a tag), so a run of plain market orders writes 56 bytes per
/// order; `row` gives every field back.
#[derive(Clone, Debug, Default)]
pub struct OrderLog {
    records: Vec<OrderRecord>,
    terms: Vec<OrderTerms>,
    /// The ids of the orders rejected, as they were: what the end of a run reports
    /// (usually none) without a scan of every record.
    rejected: Vec<u64>,
}

impl OrderLog {
    /// How many orders were placed.
    #[inline]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The id the next order placed gets.
    #[inline]
    pub fn next_id(&self) -> u64 {
        self.records.len() as u64 + 1
    }

    /// The record of order `id`, if there is one.
    #[inline]
    pub fn get(&self, id: u64) -> Option<&OrderRecord> {
        id.checked_sub(1).and_then(|k| self.records.get(k as usize))
    }

    /// The record of order `id` (an id the book gave out).
    #[inline]
    pub(crate) fn record(&self, id: u64) -> &OrderRecord {
        &self.records[(id - 1) as usize]
    }

    #[inline]
    pub(crate) fn record_mut(&mut self, id: u64) -> &mut OrderRecord {
        &mut self.records[(id - 1) as usize]
    }

    /// The records, in id order.
    #[inline]
    pub fn records(&self) -> &[OrderRecord] {
        &self.records
    }

    /// Log order `o` (whose id is `next_id`), placed at `ts`, as it starts its life.
    #[inline(always)]
    pub(crate) fn push(&mut self, o: &Order, ts: i64) {
        let terms = match OrderTerms::of(o) {
            None => NO_TERMS,
            Some(t) => {
                self.terms.push(t);
                // (A table of 2^32 terms would hold 170 GB: an index fits in 32 bits.)
                (self.terms.len() - 1) as u32
            }
        };
        self.push_record(o, ts, terms);
    }

    /// `push` for an order known to carry no terms (a plain market order or a close).
    #[inline(always)]
    pub(crate) fn push_plain(&mut self, o: &Order, ts: i64) {
        debug_assert!(OrderTerms::of(o).is_none());
        self.push_record(o, ts, NO_TERMS);
    }

    #[inline(always)]
    fn push_record(&mut self, o: &Order, ts: i64, terms: u32) {
        debug_assert_eq!(o.id, self.next_id());
        self.records.push(OrderRecord {
            size: o.size,
            placed_ts: ts,
            closed_ts: i64::MIN,
            filled_size: 0.0,
            fill_price: f64::NAN,
            symbol: o.symbol as u32,
            terms,
            side: o.side,
            role: o.role,
            status: Status::Open,
            reason: Reason::None,
            filled_side: 0,
        });
    }

    /// The terms of order `id`'s record `rec` (`OrderTerms::NONE` for a plain order).
    #[inline]
    pub fn terms(&self, rec: &OrderRecord) -> OrderTerms {
        match rec.terms {
            NO_TERMS => OrderTerms::NONE,
            k => self.terms[k as usize],
        }
    }

    /// Order `id`'s limit and stop after a change (`Book::modify`); an order with either
    /// price has terms, as it had the price when it was placed.
    pub(crate) fn set_prices(&mut self, id: u64, limit: f64, stop: f64) {
        let k = self.records[(id - 1) as usize].terms;
        if k != NO_TERMS {
            let t = &mut self.terms[k as usize];
            t.limit = limit;
            t.stop = stop;
        } else {
            debug_assert!(limit.is_nan() && stop.is_nan());
        }
    }

    /// Order `id` comes from order `parent`'s fill (a bracket leg, a rest): kept in its
    /// terms (an order without terms gets them).
    pub(crate) fn set_parent(&mut self, id: u64, parent: u64) {
        let rec = &mut self.records[(id - 1) as usize];
        if rec.terms == NO_TERMS {
            self.terms.push(OrderTerms::NONE);
            rec.terms = (self.terms.len() - 1) as u32;
        }
        self.terms[rec.terms as usize].parent = parent;
    }

    /// The order whose fill made order `id` (0 for none: ids start at 1).
    #[inline]
    pub fn parent(&self, id: u64) -> u64 {
        self.terms(&self.records[(id - 1) as usize]).parent
    }

    /// Order `id`'s tag (0 without one).
    #[inline]
    pub fn tag(&self, id: u64) -> i64 {
        self.terms(&self.records[(id - 1) as usize]).tag
    }

    /// Order `id` with every field.
    pub fn row(&self, id: u64) -> OrderRow {
        let rec = &self.records[(id - 1) as usize];
        let t = self.terms(rec);
        OrderRow {
            id,
            symbol: rec.symbol as usize,
            side: rec.side,
            size: rec.size,
            limit: t.limit,
            stop: t.stop,
            stop_loss: t.stop_loss,
            take_profit: t.take_profit,
            role: rec.role,
            tag: t.tag,
            parent: t.parent,
            placed_ts: rec.placed_ts,
            status: rec.status,
            closed_ts: rec.closed_ts,
            reason: rec.reason,
            filled_size: rec.filled_size,
            fill_price: rec.fill_price,
            filled_side: rec.filled_side,
        }
    }

    /// Every order with every field, in id order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = OrderRow> + '_ {
        (0..self.records.len()).map(|k| self.row(k as u64 + 1))
    }

    /// End order `id`'s life: `status` at `ts`, for `reason`.
    #[inline]
    pub(crate) fn finish(&mut self, id: u64, status: Status, ts: i64, reason: Reason) {
        let r = self.record_mut(id);
        r.status = status;
        r.closed_ts = ts;
        r.reason = reason;
        if status == Status::Rejected {
            self.rejected.push(id);
        }
    }

    /// The rejected orders with every field, in id order: `rows_with(Status::Rejected)`
    /// of the orders whose life `finish` ended so, read from their ids rather than found
    /// by a scan of every order.
    pub fn rejected_rows(&self) -> Vec<OrderRow> {
        let mut ids = self.rejected.clone();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().map(|id| self.row(id)).collect()
    }

    /// The orders whose life ended with `status`, with every field, in id order.
    pub fn rows_with(&self, status: Status) -> Vec<OrderRow> {
        let ids = (1..).zip(&self.records);
        let matching = ids.filter(|(_, r)| r.status == status);
        matching.map(|(id, _)| self.row(id)).collect()
    }

    /// Fill `f` with every field: the rest is in its order's record.
    #[inline]
    pub fn fill_row(&self, f: &Fill) -> FillRow {
        let rec = &self.records[(f.order_id - 1) as usize];
        FillRow {
            order_id: f.order_id,
            symbol: rec.symbol as usize,
            ts: rec.closed_ts,
            direction: f64::from(rec.filled_side),
            size: rec.filled_size,
            price: rec.fill_price,
            commission: f.commission,
            role: rec.role,
        }
    }

    /// Closed trade `t` with every field: its symbol and side are its exit order's (whose
    /// fill closed it, on the other side).
    #[inline]
    pub fn trade_row(&self, t: &ClosedTrade) -> TradeRow {
        let exit = &self.records[(t.exit_order - 1) as usize];
        TradeRow {
            symbol: exit.symbol as usize,
            trade_id: t.trade_id,
            direction: -f64::from(exit.filled_side),
            size: t.size,
            entry_ts: t.entry_ts,
            exit_ts: t.exit_ts,
            entry_price: t.entry_price,
            exit_price: t.exit_price,
            pnl: t.pnl,
            return_pct: t.return_pct(),
            commission: t.commission,
            bars_held: t.bars_held,
            mae: t.mae,
            mfe: t.mfe,
            entry_order: t.entry_order,
            exit_order: t.exit_order,
            tag: self.tag(t.entry_order),
        }
    }

    /// Empty, keeping the room.
    pub fn clear(&mut self) {
        self.records.clear();
        self.terms.clear();
        self.rejected.clear();
    }

    /// Make room for about `orders` more orders (a hint; refused room is fine).
    pub fn reserve(&mut self, orders: usize) {
        let _ = self.records.try_reserve(orders);
    }
}

/// Equity as recorded at the end of each trading day (and at every bar when asked), and
/// how many ticks ended with a position held, whatever the samples kept.
#[derive(Clone, Debug, Default)]
pub struct EquityCurve {
    pub ts: Vec<i64>,
    pub equity: Vec<f64>,
    pub cash: Vec<f64>,
    pub gross_exposure: Vec<f64>,
    /// Ticks run since the account opened (numbered from 0), and those of them at whose
    /// end the account held a position, kept as spans: `Exposure Time [%]`, which the
    /// day-end samples alone would take from the day ends (a position held only within a
    /// day never counting).
    ticks: u64,
    exposed_before: u64,
    /// The tick from whose end on the account has held a position, while it does.
    held_since: Option<u64>,
}

impl EquityCurve {
    /// Tick `k` since the account opened ended with the account holding a position
    /// (`held`) or flat; the ticks since the last one reported ended as it did (nothing
    /// changed in them), so a loop that skips idle ticks reports the ones it runs.
    #[inline]
    pub fn tick_ended(&mut self, k: u64, held: bool) {
        match (held, self.held_since) {
            (true, None) => self.held_since = Some(k),
            (false, Some(from)) => {
                self.exposed_before += k - from;
                self.held_since = None;
            }
            _ => {}
        }
        self.ticks = k + 1;
    }

    /// A tick before the account opened ended holding a position (`held`) or flat: what
    /// the ticks from its opening on hold until the next one reported (a loop that
    /// skips idle ticks may run none at the opening).
    #[inline]
    pub fn held_before_opening(&mut self, held: bool) {
        self.held_since = held.then_some(0);
    }

    /// The next tick since the account opened ended holding a position or flat (a loop
    /// that runs every tick).
    #[inline]
    pub fn next_tick_ended(&mut self, held: bool) {
        self.tick_ended(self.ticks, held);
    }

    /// The run's ticks since the account opened were `ticks` (those after the last one
    /// reported ended as it did).
    pub fn ticks_were(&mut self, ticks: u64) {
        self.ticks = self.ticks.max(ticks);
    }

    /// (ticks that ended holding a position, ticks) since the account opened.
    pub fn exposure_ticks(&self) -> (u64, u64) {
        let open = self.held_since.map_or(0, |from| self.ticks - from);
        (self.exposed_before + open, self.ticks)
    }

    pub fn push(&mut self, ts: i64, equity: f64, cash: f64, gross: f64) {
        self.ts.push(ts);
        self.equity.push(equity);
        self.cash.push(cash);
        self.gross_exposure.push(gross);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::Side;
    use crate::test_draws::draws;

    /// The record an order's life writes, every field kept as it is written (the log as
    /// it was before it was made compact): the reference the compact log is read against.
    fn full_row(o: &Order, ts: i64) -> OrderRow {
        OrderRow {
            id: o.id,
            symbol: o.symbol,
            side: o.side,
            size: o.size,
            limit: o.limit.unwrap_or(f64::NAN),
            stop: o.stop.unwrap_or(f64::NAN),
            stop_loss: o.stop_loss.unwrap_or(f64::NAN),
            take_profit: o.take_profit.unwrap_or(f64::NAN),
            role: o.role,
            tag: o.tag,
            parent: 0,
            placed_ts: ts,
            status: Status::Open,
            closed_ts: i64::MIN,
            reason: Reason::None,
            filled_size: 0.0,
            fill_price: f64::NAN,
            filled_side: 0,
        }
    }

    /// Every field, floats by their bits (NaN included).
    fn fields(r: &OrderRow) -> String {
        let b = |x: f64| x.to_bits();
        format!(
            "{} {} {:?} {} {} {} {} {} {:?} {} {} {:?} {} {:?} {} {} {}",
            r.id,
            r.symbol,
            r.side,
            b(r.size),
            b(r.limit),
            b(r.stop),
            b(r.stop_loss),
            b(r.take_profit),
            r.role,
            r.tag,
            r.placed_ts,
            r.status,
            r.closed_ts,
            r.reason,
            b(r.filled_size),
            b(r.fill_price),
            r.filled_side
        )
    }

    /// Orders of every kind (plain, with any of the four prices, tagged) placed, filled
    /// (some only in part, then rejected), ended with each reason and modified at random:
    /// every field the exports read of every order and every fill, as the compact log
    /// gives it back, is the field as written.
    #[test]
    fn the_compact_log_gives_back_every_field_as_written() {
        let mut next = draws(0x2545_F491_4F6C_DD1D);
        let mut pick = |n: u64| next() % n;
        let mut log = OrderLog::default();
        let mut fills = Vec::new();
        let (mut want, mut want_fills) = (Vec::<OrderRow>::new(), Vec::<FillRow>::new());
        let price = |k: u64| 90.0 + k as f64 * 0.25;
        let (mut plain, mut carrying) = (0, 0);
        for step in 0..20_000i64 {
            let open: Vec<u64> = (want.iter().filter(|r| r.status == Status::Open))
                .map(|r| r.id)
                .collect();
            match pick(4) {
                0 | 1 if !open.is_empty() => {
                    let id = open[pick(open.len() as u64) as usize];
                    let (r, rec) = (&mut want[(id - 1) as usize], log.record_mut(id));
                    match pick(3) {
                        0 => {
                            // Filled (in part, then rejected, now and then).
                            let (size, at, side) = (1.0 + pick(7) as f64, price(pick(40)), pick(2));
                            let direction = if side == 0 { 1.0 } else { -1.0 };
                            (r.filled_size, r.fill_price, r.filled_side) =
                                (size, at, direction as i8);
                            (r.status, r.closed_ts, r.reason) =
                                (Status::Filled, step, Reason::None);
                            (rec.filled_size, rec.fill_price) = (size, at);
                            rec.filled_side = direction as i8;
                            (rec.status, rec.closed_ts, rec.reason) =
                                (Status::Filled, step, Reason::None);
                            let commission = pick(100) as f64 / 7.0;
                            fills.push(Fill {
                                order_id: id,
                                commission,
                            });
                            want_fills.push(FillRow {
                                order_id: id,
                                symbol: r.symbol,
                                ts: step,
                                direction,
                                size,
                                price: at,
                                commission,
                                role: r.role,
                            });
                            if pick(4) == 0 {
                                (r.status, r.reason) =
                                    (Status::Rejected, Reason::InsufficientMargin);
                                (rec.status, rec.reason) =
                                    (Status::Rejected, Reason::InsufficientMargin);
                            }
                        }
                        1 => {
                            let reason = Reason::ALL[1 + pick(12) as usize];
                            let status = [Status::Cancelled, Status::Rejected, Status::Expired]
                                [pick(3) as usize];
                            (r.status, r.closed_ts, r.reason) = (status, step, reason);
                            (rec.status, rec.closed_ts, rec.reason) = (status, step, reason);
                        }
                        _ => {
                            // Modified: its size, and the prices it has.
                            r.size = 1.0 + pick(9) as f64;
                            rec.size = r.size;
                            if !r.limit.is_nan() {
                                r.limit = price(pick(40));
                            }
                            if !r.stop.is_nan() {
                                r.stop = price(pick(40));
                            }
                            log.set_prices(id, r.limit, r.stop);
                        }
                    }
                }
                _ => {
                    let id = log.next_id();
                    let side = if pick(2) == 0 { Side::Buy } else { Side::Sell };
                    let role = [
                        Role::Entry,
                        Role::StopLoss,
                        Role::TakeProfit,
                        Role::ClosePosition,
                    ][pick(4) as usize];
                    let mut o =
                        Order::new(id, pick(300) as usize, side, 1.0 + pick(9) as f64, role);
                    let mut maybe = |o: &mut Option<f64>| {
                        if pick(5) == 0 {
                            *o = Some(price(pick(40)));
                        }
                    };
                    maybe(&mut o.limit);
                    maybe(&mut o.stop);
                    maybe(&mut o.stop_loss);
                    maybe(&mut o.take_profit);
                    if pick(6) == 0 {
                        o.tag = pick(1000) as i64 - 500;
                    }
                    if OrderTerms::of(&o).is_some() {
                        carrying += 1;
                    } else {
                        plain += 1;
                    }
                    log.push(&o, step);
                    want.push(full_row(&o, step));
                }
            }
        }
        assert_eq!(log.len(), want.len());
        let got: Vec<String> = log.rows().map(|r| fields(&r)).collect();
        assert_eq!(got, want.iter().map(fields).collect::<Vec<_>>());
        let got: Vec<FillRow> = fills.iter().map(|f| log.fill_row(f)).collect();
        assert_eq!(got, want_fills);
        let rejected: Vec<String> = log.rows_with(Status::Rejected).iter().map(fields).collect();
        let want_rejected = want.iter().filter(|r| r.status == Status::Rejected);
        assert_eq!(rejected, want_rejected.map(fields).collect::<Vec<_>>());
        // Both kinds of order, and fills, are common enough to mean something.
        assert!(plain > 3_000 && carrying > 3_000 && want_fills.len() > 2_000);
        assert!(want
            .iter()
            .any(|r| r.status == Status::Rejected && r.filled_size > 0.0));
    }

    #[test]
    fn the_rejected_rows_are_the_rows_rejected_in_id_order() {
        let mut log = OrderLog::default();
        let statuses = [
            Status::Filled,
            Status::Rejected,
            Status::Cancelled,
            Status::Expired,
        ];
        for k in 0..300u64 {
            let side = if k % 2 == 0 { Side::Buy } else { Side::Sell };
            log.push(
                &Order::new(k + 1, (k % 7) as usize, side, 1.0, Role::Entry),
                k as i64,
            );
        }
        // Ended out of id order (as fills and rejections at later ticks come), some left open.
        let mut next = draws(7);
        for id in (1..=300u64).rev() {
            let draw = next();
            if draw.is_multiple_of(4) {
                continue;
            }
            let status = statuses[(draw >> 8) as usize % 4];
            log.finish(id, status, 1_000 + id as i64, Reason::InsufficientMargin);
        }
        let want = log.rows_with(Status::Rejected);
        assert!(want.len() > 20 && want.len() < 200);
        let got: Vec<String> = log.rejected_rows().iter().map(fields).collect();
        assert_eq!(got, want.iter().map(fields).collect::<Vec<_>>());
        log.clear();
        assert!(log.rejected_rows().is_empty());
    }

    /// Values on a grid of 2^-20 up to 2^33 in size: their exact sum is an integer count of
    /// 2^-20 (an i128), rounded once by the conversion: the reference `exact_sum` must equal
    /// in any order, where a running sum of the same values differs.
    #[test]
    fn the_exact_sum_is_the_exact_total_rounded_once_in_any_order() {
        let mut draw = draws(41);
        let scale = (-20f64).exp2();
        let mut running_differs = false;
        for case in 0..200 {
            let n = 1 + (draw() % 400) as usize;
            let mut units: Vec<i64> = (0..n)
                .map(|_| {
                    // Up to 2^53 units (2^33 in value), each exact as an f64.
                    let magnitude = draw() % 54;
                    let v = (draw() >> 3) as i64 & ((1i64 << magnitude) - 1).max(1);
                    if draw().is_multiple_of(2) {
                        v
                    } else {
                        -v
                    }
                })
                .collect();
            let want = units.iter().map(|&u| i128::from(u)).sum::<i128>() as f64 * scale;
            for turn in 0..4 {
                let values: Vec<f64> = units.iter().map(|&u| u as f64 * scale).collect();
                let got = exact_sum(&values);
                assert_eq!(got.to_bits(), want.to_bits(), "case {case}, order {turn}");
                running_differs |= values.iter().sum::<f64>().to_bits() != want.to_bits();
                units.rotate_left(1 + (draw() as usize % n));
                units.swap(0, draw() as usize % n);
            }
        }
        assert!(
            running_differs,
            "the cases never tell an exact sum from a running one"
        );
    }

    #[test]
    fn the_trade_sums_are_the_exact_sums_of_their_parts() {
        // P&Ls of every sign, zeros of both signs, a NaN now and then: each sum is the
        // exact sum of the values it takes, the counts those of > 0 and < 0, and the
        // spread the exact sum of (p - mean)² with mean = the P&L's sum / n.
        let mut draw = draws(77);
        for case in 0..300 {
            let n = (draw() % 60) as usize;
            let value = |x: u64| match x % 11 {
                0 => 0.0,
                1 => -0.0,
                2 if case % 5 == 0 => f64::NAN,
                _ => ((x >> 8) % 100_000) as f64 / 7.0 - 7_000.0,
            };
            let pnl: Vec<f64> = (0..n).map(|_| value(draw())).collect();
            let other: Vec<f64> = (0..n / 2).map(|_| value(draw())).collect();
            let s = TradeSums::of(&pnl, &other, &pnl, &other, &pnl, &[]);
            let wins: Vec<f64> = pnl.iter().copied().filter(|&p| p > 0.0).collect();
            let losses: Vec<f64> = pnl.iter().copied().filter(|&p| p < 0.0).collect();
            let bits = |x: f64| if x.is_nan() { u64::MAX } else { x.to_bits() };
            assert_eq!(
                (s.wins, s.losses),
                (wins.len(), losses.len()),
                "case {case}"
            );
            assert_eq!(bits(s.gross_profit), bits(exact_sum(&wins)), "case {case}");
            assert_eq!(bits(s.gross_loss), bits(exact_sum(&losses)), "case {case}");
            assert_eq!(bits(s.pnl), bits(exact_sum(&pnl)), "case {case}");
            let mean = exact_sum(&pnl) / n as f64;
            let spread: Vec<f64> = pnl.iter().map(|&p| (p - mean).powi(2)).collect();
            assert_eq!(
                bits(s.squared_deviations),
                bits(exact_sum(&spread)),
                "case {case}"
            );
            for (got, column) in [
                (s.return_pct, &other),
                (s.mae, &pnl),
                (s.mfe, &other),
                (s.commission, &pnl),
            ] {
                assert_eq!(bits(got), bits(exact_sum(column)), "case {case}");
            }
            // Listed in another order: the same bits.
            let mut turned = pnl.clone();
            turned.reverse();
            let t = TradeSums::of(&turned, &other, &turned, &other, &turned, &[]);
            assert_eq!(
                [t.gross_profit, t.gross_loss, t.pnl, t.squared_deviations].map(bits),
                [s.gross_profit, s.gross_loss, s.pnl, s.squared_deviations].map(bits),
                "case {case}"
            );
        }
    }

    #[test]
    fn durations_sum_past_what_an_i64_holds_and_keep_the_longest() {
        // 2,000 trades of 200 years each (in ns, 6.3e18 apiece): their sum is beyond
        // i64::MAX (9.2e18), as whole numbers exactly.
        let long = 200 * 365 * 86_400 * 1_000_000_000_i64;
        let durations: Vec<i64> = (0..2_000).map(|k| long - k).collect();
        let s = TradeSums::of(&[], &[], &[], &[], &[], &durations);
        let expected = 2_000 * i128::from(long) - (0..2_000).sum::<i128>();
        assert_eq!((s.duration, s.longest), (expected, long));
        let none = TradeSums::of(&[], &[], &[], &[], &[], &[]);
        assert_eq!((none.duration, none.longest), (0, 0));
    }

    #[test]
    fn the_exact_sum_of_special_values() {
        assert_eq!(exact_sum(&[]), 0.0);
        assert_eq!(exact_sum(&[1e16, 1.0, -1e16]), 1.0); // a running sum gives 0
        assert_eq!(exact_sum(&[1e308, 1e308]), f64::INFINITY);
        assert_eq!(exact_sum(&[-1e308, -1e308, 1.0]), f64::NEG_INFINITY);
        assert_eq!(exact_sum(&[f64::INFINITY, -1e308, 2.0]), f64::INFINITY);
        assert!(exact_sum(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert!(exact_sum(&[1.0, f64::NAN, 2.0]).is_nan());
        assert_eq!(exact_sum(&[5e-324, 5e-324]), 1e-323);
    }
}
