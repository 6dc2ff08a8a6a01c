//! The order book: working orders per symbol, orders placed during the current tick
//! (pending until the barrier), matching against each bar (`matching`), execution into
//! the portfolio (`execution`), bracket legs, and the log of every order's life and fill.
//!
//! The fill-price rules live in `broker`. This module decides which orders are tried, in
//! what order, and when each fill executes:
//!
//! All fills at one timestamp — every symbol with a bar then — form one batch. Each
//! symbol's bar is matched in its own order (`matching`). A fill that reduces a position
//! (a sell of a long, a cover of a short, a close, a bracket leg, the reducing part of a
//! flip) executes as soon as it is matched. A fill that would increase a position waits:
//! its symbol's bar pauses there until every symbol of the batch has reached its first
//! increase, so every reduction that comes first in its own bar has freed its buying
//! power. Then increases execute one at a time — those matched at the open before those
//! matched later in the bar, then in order of placement — each judged against the buying
//! power left; after each, its symbol's bar resumes up to its next increase. Nothing here
//! depends on symbol names or on the order of symbols. Trade-on-close market orders at the
//! barrier form a batch the same way: reducing parts first, then increases in placement
//! order.

mod execution;
mod matching;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::broker::{Bar, Moment};
use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::orders::{Order, OrderRecord, OrderRequest, Role, Side, Status};
use crate::portfolio::Portfolio;
use crate::results::Fill;
use execution::{At, Executed, Waiting};
use matching::Play;

pub struct Book {
    /// Working orders per symbol, in id order.
    working: Vec<Vec<Order>>,
    /// Orders placed during this tick's strategy phase: they join at the barrier.
    pending: Vec<Order>,
    /// Every order ever placed; index = id - 1.
    log: Vec<OrderRecord>,
    fills: Vec<Fill>,
    /// The bars of this timestamp being matched (symbols with working orders).
    plays: Vec<Play>,
    /// Per play, the increase it waits to execute.
    waiting: Vec<Option<Waiting>>,
    /// Plays waiting with an increase, by (open before intrabar, placement order).
    queue: BinaryHeap<Reverse<(u8, u64, usize)>>,
}

impl Book {
    pub fn new(symbols: usize) -> Self {
        Book {
            working: (0..symbols).map(|_| Vec::new()).collect(),
            pending: Vec::new(),
            log: Vec::new(),
            fills: Vec::new(),
            plays: Vec::new(),
            waiting: Vec::new(),
            queue: BinaryHeap::new(),
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

    // ---- the market phase: one batch per timestamp ---------------------------------------

    /// Enter `symbol`'s bar `bar` (at `ts`) in this timestamp's batch, if it has working
    /// orders. Call for every symbol with a bar, then `execute_batch` once.
    #[inline]
    pub fn open_bar(&mut self, symbol: usize, bar: usize, ts: i64, prices: Bar) {
        if !self.working[symbol].is_empty() {
            self.plays.push(Play::new(symbol, bar, ts, prices));
        }
    }

    /// Match and execute every bar entered since the last call, as one batch (see the
    /// module documentation for the order). Positions must be marked at these bars' opens.
    pub fn execute_batch(&mut self, portfolio: &mut Portfolio, config: &Config) {
        self.waiting.clear();
        self.waiting.resize(self.plays.len(), None);
        for p in 0..self.plays.len() {
            self.play_on(p, portfolio, config);
        }
        while let Some(Reverse((_, _, p))) = self.queue.pop() {
            let w = self.waiting[p].take().expect("a queued play waits");
            let at = self.at(p);
            self.execute_increase(at, w, portfolio, config);
            self.play_on(p, portfolio, config);
        }
        for play in self.plays.drain(..) {
            self.working[play.symbol].retain(|o| o.live);
        }
    }

    fn at(&self, p: usize) -> At {
        let play = &self.plays[p];
        At {
            symbol: play.symbol,
            bar: play.bar,
            ts: play.ts,
        }
    }

    /// Match and execute play `p` until its bar is done or an increase must wait.
    fn play_on(&mut self, p: usize, portfolio: &mut Portfolio, config: &Config) {
        let at = self.at(p);
        loop {
            let play = &mut self.plays[p];
            let Some(m) = play.next_match(&mut self.working[play.symbol]) else {
                return;
            };
            match self.execute_reduction(at, m.k, m.raw_price, m.moment, portfolio, config) {
                Executed::Done => {}
                Executed::Waits(w) => {
                    let rank = u8::from(w.moment != Moment::Open);
                    self.queue.push(Reverse((rank, w.order_id, p)));
                    self.waiting[p] = Some(w);
                    return;
                }
            }
        }
    }

    // ---- the barrier ----------------------------------------------------------------------

    /// Orders placed during the tick join the book. `fill_now(symbol)` gives (bar, close)
    /// when a market order of that symbol fills at this bar's close (`FillAt::Close` and
    /// the symbol has a bar now); such orders form one batch: the reducing parts first,
    /// then the increases, each in placement order.
    pub fn admit_pending(
        &mut self,
        ts: i64,
        portfolio: &mut Portfolio,
        config: &Config,
        fill_now: impl Fn(usize) -> Option<(usize, f64)>,
    ) {
        if self.pending.is_empty() {
            return;
        }
        let mut increases = Vec::new();
        let mut touched = Vec::new();
        for o in std::mem::take(&mut self.pending) {
            let s = o.symbol;
            let at_close = if o.is_market() { fill_now(s) } else { None };
            self.working[s].push(o);
            let Some((bar, close)) = at_close else {
                continue;
            };
            let at = At { symbol: s, bar, ts };
            // The symbol may not have been marked this tick (flat, no orders till now).
            portfolio.mark(s, close);
            let k = self.working[s].len() - 1;
            touched.push(s);
            match self.execute_reduction(at, k, close, Moment::Intrabar, portfolio, config) {
                Executed::Done => {}
                Executed::Waits(w) => increases.push((at, w)),
            }
        }
        for (at, w) in increases {
            self.execute_increase(at, w, portfolio, config);
        }
        for s in touched {
            self.working[s].retain(|o| o.live);
        }
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
            filled_size: 0.0,
            fill_price: f64::NAN,
            filled_side: 0,
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
