//! The order book: working orders per symbol, orders placed during the current tick
//! (pending until the barrier), matching against each bar, execution into the portfolio,
//! bracket legs, and the log of every order's life and every fill.
//!
//! The fill-price rules themselves live in `broker`; this module decides which orders are
//! tried, in what order, and what a fill does (sizes, margin, brackets).

use crate::broker::{match_order, slipped, Bar, Moment};
use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::orders::{Order, OrderRecord, OrderRequest, Role, Side, Status};
use crate::portfolio::{Execution, Portfolio};
use crate::results::Fill;

pub struct Book {
    /// Working orders per symbol, in id order.
    working: Vec<Vec<Order>>,
    /// Orders placed during this tick's strategy phase: they join at the barrier.
    pending: Vec<Order>,
    /// Every order ever placed; index = id - 1.
    log: Vec<OrderRecord>,
    fills: Vec<Fill>,
}

/// Where the book is in time while it matches one symbol's bar.
#[derive(Clone, Copy)]
struct At {
    symbol: usize,
    bar: usize,
    ts: i64,
}

impl Book {
    pub fn new(symbols: usize) -> Self {
        Book {
            working: (0..symbols).map(|_| Vec::new()).collect(),
            pending: Vec::new(),
            log: Vec::new(),
            fills: Vec::new(),
        }
    }

    /// Whether `symbol` has working orders (the market phase skips it otherwise).
    #[inline]
    pub fn has_working(&self, symbol: usize) -> bool {
        !self.working[symbol].is_empty()
    }

    // ---- placing and cancelling ---------------------------------------------------------

    /// Check and queue a trader's order; it joins the book at this tick's barrier.
    /// `name` is the symbol's name (for messages), `price` its latest close (NaN before
    /// its first bar), used to check that `sl`/`tp` lie on the right side of the entry.
    pub fn submit(&mut self, req: OrderRequest, name: &str, price: f64, now: i64) -> Result<u64> {
        let bad = |m: String| Err(EngineError::InvalidOrder(format!("{name}: {m}")));
        if !(req.size.is_finite() && req.size > 0.0) {
            return bad(format!(
                "size must be a positive number of units, got {}",
                req.size
            ));
        }
        for (what, v) in [
            ("limit", req.limit),
            ("stop", req.stop),
            ("sl", req.stop_loss),
            ("tp", req.take_profit),
        ] {
            if let Some(p) = v {
                if !(p.is_finite() && p > 0.0) {
                    return bad(format!("{what} price must be positive and finite, got {p}"));
                }
            }
        }
        let reference = req.limit.or(req.stop).unwrap_or(price);
        if reference.is_finite() {
            let long = req.side == Side::Buy;
            if let Some(sl) = req.stop_loss {
                if (long && sl >= reference) || (!long && sl <= reference) {
                    let rel = if long { "below" } else { "above" };
                    return bad(format!(
                        "sl {sl} must be {rel} the entry price {reference} for a {}",
                        req.side.word()
                    ));
                }
            }
            if let Some(tp) = req.take_profit {
                if (long && tp <= reference) || (!long && tp >= reference) {
                    let rel = if long { "above" } else { "below" };
                    return bad(format!(
                        "tp {tp} must be {rel} the entry price {reference} for a {}",
                        req.side.word()
                    ));
                }
            }
        }
        Ok(self.enqueue(req, Role::Entry, now))
    }

    /// Queue an order that flattens `symbol` (sized at fill time); `None` when flat.
    pub fn close_position(&mut self, symbol: usize, held: f64, now: i64) -> Option<u64> {
        if held == 0.0 {
            return None;
        }
        let side = if held > 0.0 { Side::Sell } else { Side::Buy };
        Some(self.enqueue(
            OrderRequest::market(symbol, side, held.abs()),
            Role::ClosePosition,
            now,
        ))
    }

    fn enqueue(&mut self, req: OrderRequest, role: Role, now: i64) -> u64 {
        let o = Order {
            id: self.next_id(),
            symbol: req.symbol,
            side: req.side,
            size: req.size,
            limit: req.limit,
            stop: req.stop,
            stop_loss: req.stop_loss,
            take_profit: req.take_profit,
            role,
            trade: None,
            triggered: false,
            eligible_from: 0,
            checked_bar: usize::MAX,
            live: true,
            tag: req.tag,
        };
        let id = o.id;
        self.log_order(&o, now);
        self.pending.push(o);
        id
    }

    /// Cancel a working or pending order (a bracket leg too). False if it was not working.
    pub fn cancel(&mut self, id: u64, now: i64) -> bool {
        let done = self.cancel_working(id, now, "cancelled by the strategy");
        if done {
            for book in self.working.iter_mut() {
                book.retain(|o| o.live);
            }
        }
        done
    }

    fn cancel_working(&mut self, id: u64, ts: i64, reason: &'static str) -> bool {
        let Some(rec) = id.checked_sub(1).and_then(|i| self.log.get(i as usize)) else {
            return false;
        };
        if rec.status != Status::Open {
            return false;
        }
        let s = rec.symbol;
        if let Some(o) = self.working[s].iter_mut().find(|o| o.id == id && o.live) {
            o.live = false;
        } else if let Some(k) = self.pending.iter().position(|o| o.id == id) {
            self.pending.remove(k);
        } else {
            return false;
        }
        self.finish(id, Status::Cancelled, ts, reason);
        true
    }

    // ---- what a strategy may read -------------------------------------------------------

    /// Ids of `symbol`'s working and pending orders.
    pub fn open_orders(&self, symbol: usize) -> Vec<u64> {
        let working = self.working[symbol].iter().filter(|o| o.live).map(|o| o.id);
        let pending = self
            .pending
            .iter()
            .filter(|o| o.symbol == symbol)
            .map(|o| o.id);
        working.chain(pending).collect()
    }

    /// Symbols now flat with an entry order working or pending: positions on their way.
    pub fn pending_entry_count(&self, portfolio: &Portfolio) -> usize {
        let mut count = 0;
        for (s, book) in self.working.iter().enumerate() {
            if portfolio.position(s).size != 0.0 {
                continue;
            }
            let entry = |o: &Order| o.live && o.role == Role::Entry && o.symbol == s;
            if book.iter().any(entry) || self.pending.iter().any(entry) {
                count += 1;
            }
        }
        count
    }

    /// Every order placed so far, with where its life ended.
    pub fn orders(&self) -> &[OrderRecord] {
        &self.log
    }

    pub fn fills(&self) -> &[Fill] {
        &self.fills
    }

    // ---- the barrier ----------------------------------------------------------------------

    /// Orders placed during the tick join the book. `fill_now(symbol)` gives (bar, close)
    /// when a market order of that symbol fills at this bar's close (`FillAt::Close` and
    /// the symbol has a bar now); such orders fill here, in placement order.
    pub fn admit_pending(
        &mut self,
        ts: i64,
        portfolio: &mut Portfolio,
        config: &Config,
        fill_now: impl Fn(usize) -> Option<(usize, f64)>,
    ) {
        for o in std::mem::take(&mut self.pending) {
            let s = o.symbol;
            let at_close = if o.is_market() { fill_now(s) } else { None };
            self.working[s].push(o);
            if let Some((bar, close)) = at_close {
                portfolio.mark(s, close);
                let k = self.working[s].len() - 1;
                let at = At { symbol: s, bar, ts };
                self.execute(at, k, close, Moment::Intrabar, portfolio, config);
                self.working[s].retain(|o| o.live);
            }
        }
    }

    // ---- matching ------------------------------------------------------------------------

    /// Match `s`'s working orders against its bar `i`: first what fills at the open, then,
    /// after the open, stop-type orders before limits, repeated for legs created meanwhile.
    pub fn match_bar(
        &mut self,
        s: usize,
        i: usize,
        ts: i64,
        bar: &Bar,
        portfolio: &mut Portfolio,
        config: &Config,
    ) {
        let at = At {
            symbol: s,
            bar: i,
            ts,
        };
        let mut k = 0;
        while k < self.working[s].len() {
            self.try_fill(at, k, bar, Moment::Open, None, portfolio, config);
            k += 1;
        }
        // Stops (including legs born during the pass) run to exhaustion; then limits, one
        // at a time: a limit fill that creates new legs sends the new stops back first.
        loop {
            let mut k = 0;
            while k < self.working[s].len() {
                self.try_fill(at, k, bar, Moment::Intrabar, Some(true), portfolio, config);
                k += 1;
            }
            let mut new_legs = false;
            let mut k = 0;
            while k < self.working[s].len() {
                let before = self.working[s].len();
                self.try_fill(at, k, bar, Moment::Intrabar, Some(false), portfolio, config);
                k += 1;
                if self.working[s].len() > before {
                    new_legs = true;
                    break;
                }
            }
            if !new_legs {
                break;
            }
        }
        self.working[s].retain(|o| o.live);
    }

    #[allow(clippy::too_many_arguments)]
    fn try_fill(
        &mut self,
        at: At,
        k: usize,
        bar: &Bar,
        moment: Moment,
        stops: Option<bool>,
        portfolio: &mut Portfolio,
        config: &Config,
    ) {
        let i = at.bar;
        let o = &mut self.working[at.symbol][k];
        if !o.live || o.eligible_from > i {
            return;
        }
        if let Some(stops_first) = stops {
            if o.is_market() || o.checked_bar == i || o.is_stop_type() != stops_first {
                return;
            }
            o.checked_bar = i;
        }
        let was_triggered = o.triggered;
        match match_order(o, bar, moment) {
            Some(price) => self.execute(at, k, price, moment, portfolio, config),
            None => {
                if o.triggered && !was_triggered {
                    // A stop-limit triggered but not marketable rests from the next bar.
                    o.checked_bar = i;
                    o.eligible_from = i + 1;
                }
            }
        }
    }

    // ---- execution -----------------------------------------------------------------------

    /// Fill the working order at `working[s][k]` at `raw_price` (before slippage).
    fn execute(
        &mut self,
        at: At,
        k: usize,
        raw_price: f64,
        moment: Moment,
        portfolio: &mut Portfolio,
        config: &Config,
    ) {
        let (s, ts) = (at.symbol, at.ts);
        let order = self.working[s][k].clone();
        self.working[s][k].live = false;
        let position = portfolio.position(s);
        let (size, direction) = match order.role {
            Role::Entry => (order.size, order.side.sign()),
            Role::ClosePosition => {
                if position.size == 0.0 {
                    self.finish(order.id, Status::Cancelled, ts, "position already flat");
                    return;
                }
                (position.size.abs(), -position.size.signum())
            }
            Role::StopLoss | Role::TakeProfit => {
                match order.trade.and_then(|id| portfolio.lot(s, id)) {
                    Some(lot) => (lot.size, -lot.direction),
                    None => {
                        self.finish(order.id, Status::Cancelled, ts, "trade already closed");
                        return;
                    }
                }
            }
        };
        let price = slipped(&order, raw_price, config.slippage_bps);
        let commission = config.commission(size, price);
        let (equity_after, gross_after, grows) =
            portfolio.after_fill(s, direction, size, price, commission);
        if grows
            && (equity_after <= 0.0 || gross_after > equity_after * config.leverage * (1.0 + 1e-12))
        {
            self.finish(order.id, Status::Rejected, ts, "insufficient margin");
            return;
        }
        let effect = portfolio.apply(Execution {
            symbol: s,
            direction,
            size,
            price,
            commission,
            ts,
            bar: at.bar,
            order_id: order.id,
            closes_lot: order.trade,
        });
        self.fills.push(Fill {
            order_id: order.id,
            symbol: s,
            ts,
            direction,
            size,
            price,
            commission,
            role: order.role,
        });
        self.finish(order.id, Status::Filled, ts, "");
        for lot in effect.closed_lots {
            for leg in [lot.stop_loss, lot.take_profit].into_iter().flatten() {
                self.cancel_working(leg, ts, "its trade was closed");
            }
        }
        if let (Some(lot), Role::Entry) = (effect.opened_lot, order.role) {
            self.attach_bracket(&order, lot, at, moment, portfolio);
        }
    }

    /// Create the stop-loss / take-profit legs of a freshly opened trade. After an entry at
    /// the open, both legs watch the rest of that bar; after an intrabar entry the stop-loss
    /// still does (conservative), the take-profit from the next bar.
    fn attach_bracket(
        &mut self,
        entry: &Order,
        lot: u64,
        at: At,
        moment: Moment,
        portfolio: &mut Portfolio,
    ) {
        let size = portfolio.lot(entry.symbol, lot).map_or(0.0, |l| l.size);
        let same_bar = if moment == Moment::Intrabar {
            at.bar + 1
        } else {
            0
        };
        let sl = entry
            .stop_loss
            .map(|p| self.add_leg(entry, lot, size, Role::StopLoss, Some(p), None, 0, at.ts));
        let tp = entry.take_profit.map(|p| {
            self.add_leg(
                entry,
                lot,
                size,
                Role::TakeProfit,
                None,
                Some(p),
                same_bar,
                at.ts,
            )
        });
        if let Some(l) = portfolio.lot_mut(entry.symbol, lot) {
            l.stop_loss = sl;
            l.take_profit = tp;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_leg(
        &mut self,
        entry: &Order,
        lot: u64,
        size: f64,
        role: Role,
        stop: Option<f64>,
        limit: Option<f64>,
        eligible_from: usize,
        ts: i64,
    ) -> u64 {
        let o = Order {
            id: self.next_id(),
            symbol: entry.symbol,
            side: entry.side.opposite(),
            size,
            limit,
            stop,
            stop_loss: None,
            take_profit: None,
            role,
            trade: Some(lot),
            triggered: false,
            eligible_from,
            checked_bar: usize::MAX,
            live: true,
            tag: entry.tag,
        };
        self.log_order(&o, ts);
        let id = o.id;
        self.working[entry.symbol].push(o);
        id
    }

    // ---- the order log -------------------------------------------------------------------

    fn next_id(&self) -> u64 {
        self.log.len() as u64 + 1
    }

    fn log_order(&mut self, o: &Order, ts: i64) {
        self.log.push(OrderRecord {
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
            placed_ts: ts,
            status: Status::Open,
            closed_ts: i64::MIN,
            reason: "",
        });
    }

    fn finish(&mut self, id: u64, status: Status, ts: i64, reason: &'static str) {
        let r = &mut self.log[(id - 1) as usize];
        r.status = status;
        r.closed_ts = ts;
        r.reason = reason;
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;
