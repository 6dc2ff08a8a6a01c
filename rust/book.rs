//! The order book: working orders per symbol (an order placed during a tick is written
//! there at once, and joins at the barrier), matching against each bar (`matching`),
//! execution into the portfolio (`execution`), bracket legs, and the log of every order's
//! life and fill.
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
mod working;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::broker::{ratchet, Bar, LimitFill, Moment};
use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::orders::{
    is_portion, Order, OrderRequest, Reason, Role, ShareAtFill, Side, Status, TimeInForce, Trail,
    UNADMITTED,
};
use crate::portfolio::{Lot, Portfolio};
use crate::results::{Fill, OrderLog};
use crate::studies::Studies;
use crate::symbol_set::SymbolSet;
use execution::{At, Executed, Waiting};
use matching::Play;
use working::Working;

pub struct Book {
    /// Working orders per symbol, in id order, and the symbols that have any. An order
    /// placed during the tick is already there, `UNADMITTED` until the barrier: written
    /// once, where it will work, rather than queued and copied over.
    working: Working,
    /// The symbol and id of each order placed since the last barrier, in placement order.
    placed: Vec<(usize, u64)>,
    /// Every order ever placed, in id order.
    log: OrderLog,
    fills: Vec<Fill>,
    /// The bars of this timestamp being matched (symbols with working orders).
    plays: Vec<Play>,
    /// The increases waiting for their turn in this batch, as queued (`queue` holds
    /// their slots here).
    waiting: Vec<Waiting>,
    /// How many plays of the batch have reached their first increase or their end (the
    /// first pass over the batch's plays).
    entered: usize,
    /// Plays waiting with an increase, by (open before intrabar, placement order): the
    /// order's id decides, the play and the slot in `waiting` come with it.
    queue: BinaryHeap<Reverse<(u8, u64, usize, usize)>>,
    /// Day and good-till-date orders by expiry time.
    expiries: BinaryHeap<Reverse<(i64, u64)>>,
    /// Day orders whose day has not ended yet: (id, time placed). A day order is good
    /// until the end of the trading day of the tick after it was placed; that day's last
    /// tick is known only when it passes (`end_day`), never by looking ahead.
    day_orders: Vec<(u64, i64)>,
    /// Orders ever placed with a last bar (bars / immediate-or-cancel): 0 skips the check.
    bar_limited: usize,
    /// Margin calls so far (`liquidate`).
    margin_calls: u32,
    /// `Config::volume_limit`: the fraction of a bar's volume a symbol's fills may take.
    volume_limit: Option<f64>,
    /// `Config::volume_impact`: how far a fill's share of its bar's volume moves its price.
    impact: f64,
    /// Per symbol, under the volume rules: the bar its fills last took volume of, the
    /// units left to fill in it, and its volume (`allow_volume`).
    allowance: Vec<(usize, f64, f64)>,
    /// Whether fills now follow the volume rules (a limit, an impact), but for a margin
    /// call's, which closes positions whatever the volume (one flag for the fill's one
    /// test).
    by_volume: bool,
    /// Under a volume limit, each order filled in part whose rest works on: the rest's id
    /// by the order's (`work_on_rest`), so that cancelling an order cancels its rest.
    rests: HashMap<u64, u64>,
    /// The rests of the orders the batch being executed filled in part, by their orders'
    /// ids and times, to join the book when it ends (`add_rests`).
    rests_to_add: Vec<(u64, i64, Order)>,
    /// The entries sized when they fill (`size_at_fill`), by id, until they do.
    sized_at_fill: HashMap<u64, ShareAtFill>,
    /// While such entries work: the equity the positions' margin left free when the
    /// batch being executed came to the first increase of its latest moment (`None`
    /// before any), the base each of that moment's entries sized at their increase is
    /// sized on.
    free_before_increases: Option<(Moment, f64)>,
    /// While such entries work: the equity the positions' margin left free before the
    /// batch being executed (or the orders filling at a close) filled anything, the base
    /// of those sized when they match (`execute_reduction`): the same for every symbol,
    /// whichever the walk reaches first.
    free_before_fills: f64,
    /// When a price reaching a limit fills it (`Config::limit_fill`, `fill_limits`).
    limits: LimitFill,
    /// Per symbol, whether its bar now says it may be sold short (`Config::locate_column`,
    /// `quote_locate`); None where not quoted.
    locates: Vec<Option<bool>>,
    /// The symbols whose bar's range their open lots took before a fill at the close in
    /// this tick's batch (`range_before_the_close`): the fold at the close skips them.
    ranged_at_close: Vec<usize>,
}

/// What the book needs to know about the moment an order is placed.
pub struct Placing<'a> {
    /// The symbol's name, for messages.
    pub name: &'a str,
    /// Its latest close (NaN before its first bar): `sl`/`tp` sides, trailing anchors.
    pub price: f64,
    pub now: i64,
    /// Index of the symbol's next bar (the first on which the order can fill).
    pub next_bar: usize,
    pub symbol: usize,
    /// The symbol's latest bar, for study reads.
    pub bar: Option<usize>,
    pub studies: &'a Studies,
}

impl Placing<'_> {
    /// The value of ATR study `id` now (its latest bar is complete).
    fn atr(&self, id: usize) -> f64 {
        self.studies
            .value(id, self.symbol, self.bar)
            .unwrap_or(f64::NAN)
    }
}

/// What the book reads while it matches and executes: the options and the studies (a
/// trailing stop may follow an ATR).
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    pub config: &'a Config,
    pub studies: &'a Studies,
}

fn check_trail(trail: Trail, at: &Placing<'_>) -> std::result::Result<(), String> {
    match trail {
        Trail::Distance(d) if !(d.is_finite() && d > 0.0) => Err(format!(
            "a trailing distance must be a positive price amount, got {d}"
        )),
        Trail::Fraction(f) if !(f.is_finite() && f > 0.0 && f < 1.0) => Err(format!(
            "a trailing percentage must be above 0% and below 100%, got {}%",
            f * 100.0
        )),
        Trail::Atr { study, multiple } => {
            if !at.studies.is_base_atr(study) {
                Err(format!(
                    "indicator {study} is not an ATR declared in init() over the base bars (self.atr(n))"
                ))
            } else if !(multiple.is_finite() && multiple > 0.0) {
                Err(format!("the ATR multiple must be positive, got {multiple}"))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn expiry_reason(order: Option<&Order>) -> Reason {
    match order.map(|o| o.time_in_force) {
        Some(TimeInForce::Day) => Reason::DayEnded,
        Some(TimeInForce::ImmediateOrCancel) => Reason::NotFilledOnItsBar,
        Some(TimeInForce::FillOrKill) => Reason::NotFilledWhole,
        Some(TimeInForce::AtTheOpen) => Reason::NotFilledAtTheOpen,
        Some(TimeInForce::AtTheClose) => Reason::NotFilledAtTheClose,
        Some(TimeInForce::Bars(_)) => Reason::BarsPassed,
        _ => Reason::TimePassed,
    }
}

/// Why a price given for `what` (an order's limit or stop, a trade's sl or tp) is
/// refused, if it is: prices are positive and finite.
fn price_refusal(what: &str, p: f64) -> Option<String> {
    (!(p.is_finite() && p > 0.0))
        .then(|| format!("{what} price must be positive and finite, got {p}"))
}

/// Open trade `lot` of `symbol`, or the refusal of what was asked of it (`then`: what
/// cannot be done, e.g. "it cannot be closed") once it has closed or never opened.
fn open_trade(portfolio: &Portfolio, symbol: usize, lot: u64, then: &str) -> Result<Lot> {
    portfolio.lot(symbol, lot).cloned().ok_or_else(|| {
        EngineError::InvalidOrder(format!(
            "trade {lot} is not open (closed, or never opened): {then}"
        ))
    })
}

impl Book {
    pub fn new(symbols: usize) -> Self {
        Book {
            working: Working::new(symbols),
            placed: Vec::new(),
            log: OrderLog::default(),
            fills: Vec::new(),
            plays: Vec::new(),
            waiting: Vec::new(),
            entered: 0,
            queue: BinaryHeap::new(),
            expiries: BinaryHeap::new(),
            day_orders: Vec::new(),
            bar_limited: 0,
            margin_calls: 0,
            volume_limit: None,
            impact: 0.0,
            allowance: vec![(usize::MAX, 0.0, 0.0); symbols],
            by_volume: false,
            rests: HashMap::new(),
            rests_to_add: Vec::new(),
            sized_at_fill: HashMap::new(),
            free_before_increases: None,
            free_before_fills: f64::NAN,
            ranged_at_close: Vec::new(),
            limits: LimitFill::Touch,
            locates: Vec::new(),
        }
    }

    /// Whether `symbol`'s bar now says it may be sold short (None: not quoted), from the
    /// data's column of locates (`Config::locate_column`).
    pub fn quote_locate(&mut self, symbol: usize, may: Option<bool>) {
        if self.locates.len() <= symbol {
            self.locates.resize(symbol + 1, None);
        }
        self.locates[symbol] = may;
    }

    /// Whether a fill may open or add to a short in `symbol` now: the `shortable` option
    /// allows it (the account's rule) and its bar does not say no locate is available.
    #[inline]
    fn may_short(&self, symbol: usize, config: &Config) -> bool {
        config.may_short(symbol) && self.locates.get(symbol) != Some(&Some(false))
    }

    /// Fill limits at a touch or only through them (`Config::limit_fill`).
    pub fn fill_limits(&mut self, limits: LimitFill) {
        self.limits = limits;
    }

    /// Whether `symbol`'s open lots took this tick's bar's range before a fill at its
    /// close (the engine's fold at the close then skips them: a lot that fill opened
    /// starts after the bar).
    #[inline]
    pub fn ranged_at_close(&self, symbol: usize) -> bool {
        !self.ranged_at_close.is_empty() && self.ranged_at_close.contains(&symbol)
    }

    /// After this tick's closes are folded: the next tick's fills at the close start afresh.
    #[inline]
    pub fn forget_ranges(&mut self) {
        self.ranged_at_close.clear();
    }

    /// Fill by the bars' volume: a symbol's fills in a bar take at most `fraction` of
    /// it (`Config::volume_limit`), and each moves its price by `impact` × the square of
    /// its share of it (`Config::volume_impact`). The drivers then give each bar's volume
    /// (`allow_volume`) before its orders are matched.
    pub fn follow_volume(&mut self, fraction: Option<f64>, impact: f64) {
        self.volume_limit = fraction;
        self.impact = impact;
        self.by_volume = fraction.is_some() || impact > 0.0;
    }

    /// Whether fills follow the bars' volume (`follow_volume`).
    #[inline(always)]
    pub fn reads_volume(&self) -> bool {
        self.volume_limit.is_some() || self.impact > 0.0
    }

    /// `symbol`'s bar `bar` trades `volume`: its fills may take the volume limit's share
    /// of it (all of it without a limit), less what they took already (a bar's fills at
    /// the open and at its close share one allowance).
    #[inline]
    pub fn allow_volume(&mut self, symbol: usize, bar: usize, volume: f64) {
        let allowance = &mut self.allowance[symbol];
        if allowance.0 != bar {
            // Without a limit all of it (a market impact alone); a bar with no volume
            // fills nothing either way (and 0 × infinity would be NaN).
            let share = self.volume_limit.unwrap_or(f64::INFINITY);
            let left = if volume > 0.0 { share * volume } else { 0.0 };
            *allowance = (bar, left, volume);
        }
    }

    /// Whether `symbol` has working orders (the market phase skips it otherwise).
    #[inline]
    pub fn has_working(&self, symbol: usize) -> bool {
        !self.working[symbol].is_empty()
    }

    /// The symbols with working orders (`has_working`), as a set kept with the orders.
    #[inline]
    pub fn working_symbols(&self) -> &SymbolSet {
        self.working.symbols()
    }

    /// `symbol`'s working orders, those placed during the tick included (`UNADMITTED`
    /// until the barrier).
    #[inline]
    pub fn working(&self, symbol: usize) -> &[Order] {
        &self.working[symbol]
    }

    /// Entry `id`, just placed, is sized when it fills, by `share` (its size until then is
    /// an estimate, what it reads as).
    pub fn size_at_fill(&mut self, id: u64, share: ShareAtFill) {
        self.sized_at_fill.insert(id, share);
    }

    /// Whether some working order is sized when it fills (`size_at_fill`): a batch then
    /// reads the account whatever it would spend.
    #[inline]
    pub fn sizes_at_fill(&self) -> bool {
        !self.sized_at_fill.is_empty()
    }

    /// Whether orders placed during this tick wait for the barrier.
    #[inline]
    pub fn has_pending(&self) -> bool {
        !self.placed.is_empty()
    }

    // ---- placing and cancelling ---------------------------------------------------------

    /// Check and queue a trader's order; it joins the book at this tick's barrier.
    pub fn submit(&mut self, req: OrderRequest, at: &Placing<'_>) -> Result<u64> {
        let name = at.name;
        let bad = |m: String| Err(EngineError::InvalidOrder(format!("{name}: {m}")));
        if !(req.size.is_finite() && req.size > 0.0) {
            return bad(format!(
                "size must be a positive number of units, got {}",
                req.size
            ));
        }
        // A plain market order (good till cancelled, nothing attached) has no other rule
        // to break: the rest are rules about what it would carry.
        let plain = req.limit.is_none()
            && req.stop.is_none()
            && req.stop_loss.is_none()
            && req.take_profit.is_none()
            && req.trail.is_none()
            && req.stop_loss_trail.is_none()
            && req.oco.is_none()
            && req.time_in_force == TimeInForce::GoodTillCancelled;
        if !plain {
            if let Err(m) = self.refusal(&req, at) {
                return bad(m);
            }
        }
        let group = req.oco.map(|other| self.join_group(other));
        let last_bar = match req.time_in_force {
            TimeInForce::ImmediateOrCancel
            | TimeInForce::FillOrKill
            | TimeInForce::AtTheOpen
            | TimeInForce::AtTheClose => Some(at.next_bar),
            TimeInForce::Bars(n) => Some(at.next_bar + n - 1),
            // A day order's end is set when its trading day ends (`end_day`); a
            // good-till-date order's time is in its time in force (`enqueued`).
            TimeInForce::GoodTillCancelled | TimeInForce::Day | TimeInForce::Until(_) => None,
        };
        // Written straight into its place among the working orders, whole (no copy of the
        // order, no field written twice).
        let id = self.next_id();
        self.working.push(Order {
            limit: req.limit,
            stop: req.stop,
            stop_loss: req.stop_loss,
            take_profit: req.take_profit,
            tag: req.tag,
            stop_loss_trail: req.stop_loss_trail,
            time_in_force: req.time_in_force,
            oco: group,
            last_bar,
            eligible_from: UNADMITTED,
            ..Order::new(id, req.symbol, req.side, req.size, Role::Entry)
        });
        if let Some(trail) = req.trail {
            let o = self.working[req.symbol].last_mut().expect("just placed");
            o.trail = Some(trail);
            o.stop = Some(f64::NAN);
            let atr = match trail {
                Trail::Atr { study, .. } => at.atr(study),
                _ => f64::NAN,
            };
            ratchet(o, at.price, atr);
        }
        // A plain market order without a tag carries no terms for the log.
        let carries = !plain || req.tag != 0;
        Ok(self.enqueued(req.symbol, at.now, carries))
    }

    /// Why the book refuses `req` for what it carries besides its size (prices, trails,
    /// time in force, one-cancels-other, bracket sides), if it does.
    fn refusal(&self, req: &OrderRequest, at: &Placing<'_>) -> std::result::Result<(), String> {
        for (what, v) in [
            ("limit", req.limit),
            ("stop", req.stop),
            ("sl", req.stop_loss),
            ("tp", req.take_profit),
        ] {
            if let Some(rule) = v.and_then(|p| price_refusal(what, p)) {
                return Err(rule);
            }
        }
        for (what, trail) in [("trail", req.trail), ("sl_trail", req.stop_loss_trail)] {
            if let Some(t) = trail {
                if let Err(rule) = check_trail(t, at) {
                    return Err(format!("{what}: {rule}"));
                }
            }
        }
        if req.trail.is_some() && (req.limit.is_some() || req.stop.is_some()) {
            return Err("a trailing stop (trail=) takes neither stop= nor limit=: its stop follows the price".into());
        }
        if req.trail.is_some() && !at.price.is_finite() {
            return Err("a trailing stop needs a price to trail from: place it after the symbol's first bar".into());
        }
        if req.stop_loss.is_some() && req.stop_loss_trail.is_some() {
            return Err("give sl= or sl_trail=, not both".into());
        }
        match req.time_in_force {
            TimeInForce::ImmediateOrCancel
                if req.limit.is_none() || req.stop.is_some() || req.trail.is_some() =>
            {
                return Err("immediate-or-cancel applies to limit orders only".into());
            }
            TimeInForce::FillOrKill if req.stop.is_some() || req.trail.is_some() => {
                return Err(
                    "fill or kill (tif='fok') applies to market and limit orders only".into(),
                );
            }
            TimeInForce::AtTheOpen | TimeInForce::AtTheClose
                if req.stop.is_some() || req.trail.is_some() =>
            {
                let when = if req.time_in_force == TimeInForce::AtTheOpen {
                    "at the open (tif='opg')"
                } else {
                    "at the close (tif='close')"
                };
                return Err(format!("{when} applies to market and limit orders only"));
            }
            TimeInForce::Bars(0) => {
                return Err("valid=0 bars: an order must be valid for at least 1 bar".into());
            }
            TimeInForce::Until(ts) if ts <= at.now => {
                return Err(format!(
                    "valid= until {ts} ns is not after the current time {} ns",
                    at.now
                ));
            }
            _ => {}
        }
        if let Some(other) = req.oco {
            let Some(rec) = self.log.get(other) else {
                return Err(format!("oco={other}: no such order"));
            };
            if rec.status != Status::Open || rec.role != Role::Entry {
                return Err(format!(
                    "oco={other}: order {other} is not an open order of the trader's own (it is {:?} {:?})",
                    rec.status, rec.role
                ));
            }
            if rec.symbol as usize != req.symbol {
                return Err(format!(
                    "oco={other}: order {other} is for another symbol; a one-cancels-other group holds one symbol's orders"
                ));
            }
        }
        let reference = req.limit.or(req.stop).unwrap_or(at.price);
        if reference.is_finite() {
            let long = req.side == Side::Buy;
            if let Some(sl) = req.stop_loss {
                if (long && sl >= reference) || (!long && sl <= reference) {
                    let rel = if long { "below" } else { "above" };
                    return Err(format!(
                        "sl {sl} must be {rel} the entry price {reference} for a {}",
                        req.side.word()
                    ));
                }
            }
            if let Some(tp) = req.take_profit {
                if (long && tp <= reference) || (!long && tp >= reference) {
                    let rel = if long { "above" } else { "below" };
                    return Err(format!(
                        "tp {tp} must be {rel} the entry price {reference} for a {}",
                        req.side.word()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The OCO group of open order `other`, made a group if it is not one yet.
    fn join_group(&mut self, other: u64) -> u64 {
        let s = self.log.record(other).symbol as usize;
        let order = self.working[s]
            .iter_mut()
            .find(|o| o.id == other)
            .expect("an open order is working");
        *order.oco.get_or_insert(other)
    }

    /// Queue an order that flattens `portion` (0 < portion <= 1) of `symbol`'s position,
    /// sized when it fills (FIFO: the oldest trades first). `None` when flat.
    pub fn close_position(
        &mut self,
        symbol: usize,
        held: f64,
        portion: f64,
        now: i64,
    ) -> Result<Option<u64>> {
        if !is_portion(portion) {
            return Err(EngineError::InvalidOrder(format!(
                "close: portion must be in (0, 1], got {portion}"
            )));
        }
        if held == 0.0 {
            return Ok(None);
        }
        let side = if held > 0.0 { Side::Sell } else { Side::Buy };
        let id = self.next_id();
        let size = held.abs() * portion;
        self.working.push(Order {
            portion,
            eligible_from: UNADMITTED,
            ..Order::new(id, symbol, side, size, Role::ClosePosition)
        });
        Ok(Some(self.enqueued(symbol, now, false)))
    }

    /// Close `portion` (0 < portion <= 1) of open trade `lot` of `symbol` at its next
    /// fill, that trade and no other (a position's other trades stay as they are, where a
    /// `close_position` takes the oldest first); sized when it fills, as a portion of what
    /// is left of the trade then (cancelled if nothing is).
    pub fn close_trade(
        &mut self,
        portfolio: &Portfolio,
        symbol: usize,
        lot: u64,
        portion: f64,
        now: i64,
    ) -> Result<u64> {
        let trade = open_trade(portfolio, symbol, lot, "it cannot be closed")?;
        if !is_portion(portion) {
            return Err(EngineError::InvalidOrder(format!(
                "close trade {lot}: portion must be in (0, 1], got {portion}"
            )));
        }
        let id = self.next_id();
        self.working.push(Order {
            portion,
            trade: Some(lot),
            eligible_from: UNADMITTED,
            ..Order::new(
                id,
                symbol,
                trade.closing_side(),
                trade.size * portion,
                Role::ClosePosition,
            )
        });
        Ok(self.enqueued(symbol, now, false))
    }

    /// Set open trade `lot`'s stop-loss (`Role::StopLoss`, a stop at `price`) or
    /// take-profit (`Role::TakeProfit`, a limit at `price`), as backtesting.py's
    /// `trade.sl = price` does, or take it away (`price` None). A fixed leg of that role
    /// still working is moved to `price` (the same order, from the symbol's next bar);
    /// otherwise a new leg is placed, joining the book at this tick's barrier, and a
    /// trailing one it replaces is cancelled. The new leg is the trade's from now on: it
    /// closes that trade alone, and is cancelled when the trade closes. Returns the leg's
    /// id (None when taken away).
    pub fn set_trade_exit(
        &mut self,
        portfolio: &mut Portfolio,
        symbol: usize,
        lot: u64,
        role: Role,
        price: Option<f64>,
        now: i64,
    ) -> Result<Option<u64>> {
        let what = if role == Role::StopLoss { "sl" } else { "tp" };
        let trade = open_trade(portfolio, symbol, lot, &format!("its {what} cannot be set"))?;
        if let Some(rule) = price.and_then(|p| price_refusal(what, p)) {
            return Err(EngineError::InvalidOrder(format!("trade {lot}: {rule}")));
        }
        let leg = if role == Role::StopLoss {
            trade.stop_loss
        } else {
            trade.take_profit
        };
        let working = leg.and_then(|id| {
            let o = self.working[symbol].iter().find(|o| o.id == id && o.live)?;
            let fixed = if role == Role::StopLoss {
                o.trail.is_none()
            } else {
                true
            };
            Some((id, fixed))
        });
        match (working, price) {
            (Some((id, true)), Some(p)) => {
                let (limit, stop) = if role == Role::StopLoss {
                    (None, Some(p))
                } else {
                    (Some(p), None)
                };
                self.modify(id, limit, stop, None)?;
                return Ok(Some(id));
            }
            (Some((id, _)), _) => {
                self.cancel_working(id, now, Reason::CancelledByStrategy);
                self.working.retain_live(symbol);
            }
            (None, _) => {}
        }
        let placed = price.map(|p| {
            let id = self.next_id();
            let mut o = Order::new(id, symbol, trade.closing_side(), trade.size, role);
            if role == Role::StopLoss {
                o.stop = Some(p);
            } else {
                o.limit = Some(p);
            }
            o.trade = Some(lot);
            o.eligible_from = UNADMITTED;
            self.working.push(o);
            let id = self.enqueued(symbol, now, true);
            // (The trade's exit comes from the order that opened it, as a bracket's leg.)
            self.log.set_parent(id, trade.entry_order);
            id
        });
        let l = portfolio.lot_mut(symbol, lot).expect("the trade is open");
        if role == Role::StopLoss {
            l.stop_loss = placed;
        } else {
            l.take_profit = placed;
        }
        Ok(placed)
    }

    /// The price of working order `id` of `symbol` that closes a trade at a price: a
    /// stop-loss leg's stop (where it trails to by now), a take-profit leg's limit. None
    /// when `id` is no longer working.
    pub fn exit_price(&self, symbol: usize, id: u64) -> Option<f64> {
        let o = self.working[symbol].iter().find(|o| o.id == id && o.live)?;
        o.stop.or(o.limit)
    }

    /// Log the order just placed (the last of `symbol`'s working orders; `carries`: it
    /// may carry terms, prices or a tag), note when it expires, and that it joins the
    /// book at the barrier. (Inlined into its two callers, which place an order each.)
    #[inline(always)]
    fn enqueued(&mut self, symbol: usize, now: i64, carries: bool) -> u64 {
        let o = self.working[symbol]
            .last()
            .expect("an order was just placed");
        let (id, time_in_force, limited) = (o.id, o.time_in_force, o.last_bar.is_some());
        self.placed.push((symbol, id));
        if carries {
            self.log.push(o, now);
        } else {
            self.log.push_plain(o, now);
        }
        if let TimeInForce::Until(ts) = time_in_force {
            self.expiries.push(Reverse((ts, id)));
        }
        if time_in_force == TimeInForce::Day {
            self.day_orders.push((id, now));
        }
        if limited {
            self.bar_limited += 1;
        }
        id
    }

    /// Change a working order's limit, stop or size; it takes effect from the next bar
    /// (matching only happens in the market phase). Refused with the reason for orders
    /// that are unknown, no longer open, or lack what is to be changed.
    pub fn modify(
        &mut self,
        id: u64,
        limit: Option<f64>,
        stop: Option<f64>,
        size: Option<f64>,
    ) -> Result<()> {
        let bad = |m: String| Err(EngineError::InvalidOrder(format!("modify order {id}: {m}")));
        let Some(rec) = self.log.get(id) else {
            return bad("no such order in this backtest".into());
        };
        if let Some(rest) = self.rests.get(&id) {
            return bad(format!(
                "it filled in part; its rest works on as order {}: modify that",
                self.latest_rest(*rest)
            ));
        }
        if rec.status != Status::Open {
            let word = match rec.status {
                Status::Filled => "filled",
                Status::Cancelled => "cancelled",
                Status::Rejected => "rejected",
                Status::Expired => "expired",
                Status::Open => "open",
            };
            return bad(format!("it is {word}; only working orders can be modified"));
        }
        for (what, v) in [("limit", limit), ("stop", stop), ("size", size)] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return bad(format!("{what} must be positive and finite, got {v}"));
                }
            }
        }
        let s = rec.symbol as usize;
        let o = self.working[s]
            .iter_mut()
            .find(|o| o.id == id && o.live)
            .expect("an open order is working");
        if limit.is_some() && o.limit.is_none() {
            return bad("it has no limit price to change (its type stays what it is)".into());
        }
        if stop.is_some() && (o.stop.is_none() || o.trail.is_some()) {
            let why = if o.trail.is_some() {
                "its stop trails the price"
            } else {
                "it has no stop price to change (its type stays what it is)"
            };
            return bad(why.into());
        }
        if size.is_some() && o.role != Role::Entry {
            return bad("its size follows its trade or position".into());
        }
        if let Some(v) = limit {
            o.limit = Some(v);
        }
        if let Some(v) = stop {
            o.stop = Some(v);
        }
        if let Some(v) = size {
            o.size = v;
            // A size given replaces the sizer's: an entry sized at its fill is not any more.
            self.sized_at_fill.remove(&id);
        }
        let (limit, stop, size) = (o.limit, o.stop, o.size);
        self.log.record_mut(id).size = size;
        (self.log).set_prices(id, limit.unwrap_or(f64::NAN), stop.unwrap_or(f64::NAN));
        Ok(())
    }

    /// The tick at `ts` ended a trading day: day orders placed before it expire at `ts`
    /// (from the next tick on, before its market phase). Orders placed at this very tick
    /// are good for the next day.
    pub fn end_day(&mut self, ts: i64) {
        let expiries = &mut self.expiries;
        self.day_orders.retain(|&(id, placed)| {
            if placed < ts {
                expiries.push(Reverse((ts, id)));
                false
            } else {
                true
            }
        });
    }

    /// Expire the orders whose time ran out before `now` (day and good-till-date orders):
    /// called before a tick's market phase, so they never fill on a later bar.
    /// (Inlined: most ticks have nothing to expire, which one look at the earliest says.)
    #[inline]
    pub fn expire_before(&mut self, now: i64) {
        if matches!(self.expiries.peek(), Some(&Reverse((ts, _))) if ts < now) {
            self.expire_due(now);
        }
    }

    #[inline(never)]
    fn expire_due(&mut self, now: i64) {
        while let Some(&Reverse((ts, id))) = self.expiries.peek() {
            if ts >= now {
                break;
            }
            self.expiries.pop();
            let rec = self.log.record(id);
            if rec.status != Status::Open {
                continue;
            }
            let s = rec.symbol as usize;
            let reason = expiry_reason(self.working[s].iter().find(|o| o.id == id));
            if self.cancel_working(id, ts, reason) {
                self.log.record_mut(id).status = Status::Expired;
                self.working.retain_live(s);
            }
        }
    }

    /// Cancel a working order (placed during this tick or before; a bracket leg too), or
    /// the rest of one filled in part that works on (`Config::volume_limit`). False if it
    /// was not working.
    pub fn cancel(&mut self, id: u64, now: i64) -> bool {
        let id = self.latest_rest(id);
        let done = self.cancel_working(id, now, Reason::CancelledByStrategy);
        if done {
            self.working.retain_live_everywhere();
        }
        done
    }

    /// Order `id`, or the latest rest of it when it filled in part (the rest of a rest
    /// too): what works on of it, if anything does.
    fn latest_rest(&self, mut id: u64) -> u64 {
        while let Some(&rest) = self.rests.get(&id) {
            id = rest;
        }
        id
    }

    /// Whether a close of `symbol`'s whole position (`close_position`) is working.
    pub fn closing(&self, symbol: usize) -> bool {
        let mut working = self.working[symbol].iter();
        working.any(|o| o.live && o.role == Role::ClosePosition && o.trade.is_none())
    }

    /// The close `id` of `symbol` just placed by `exclusive_orders` before an order at the
    /// open or at the close (`tif`) fills at that moment too, just before the order (placed
    /// first), and ends with it on `last_bar`, the order's bar.
    pub fn close_at_moment(&mut self, symbol: usize, id: u64, tif: TimeInForce, last_bar: usize) {
        if let Some(o) = self.working[symbol]
            .iter_mut()
            .find(|o| o.id == id && o.live)
        {
            o.time_in_force = tif;
            if o.last_bar.is_none() {
                o.last_bar = Some(last_bar);
                self.bar_limited += 1;
            }
        }
    }

    /// Cancel `symbol`'s entry orders still working (not the exits of its trades, nor
    /// the closes placed): what `exclusive_orders` does before an order is placed.
    pub fn cancel_entries(&mut self, symbol: usize, now: i64) {
        let entries: Vec<u64> = self.working[symbol]
            .iter()
            .filter(|o| o.live && o.role == Role::Entry)
            .map(|o| o.id)
            .collect();
        if !entries.is_empty() {
            for id in entries {
                self.cancel_working(id, now, Reason::ReplacedByALaterOrder);
            }
            self.working.retain_live(symbol);
        }
    }

    fn cancel_working(&mut self, id: u64, ts: i64, reason: Reason) -> bool {
        let Some(rec) = self.log.get(id) else {
            return false;
        };
        if rec.status != Status::Open {
            return false;
        }
        let s = rec.symbol as usize;
        let Some(o) = self.working[s].iter_mut().find(|o| o.id == id && o.live) else {
            return false;
        };
        o.live = false;
        self.finish(id, Status::Cancelled, ts, reason);
        true
    }

    // ---- what a strategy may read -------------------------------------------------------

    /// Ids of `symbol`'s working orders (those placed during this tick too), in id order.
    pub fn open_orders(&self, symbol: usize) -> Vec<u64> {
        let working = self.working[symbol].iter().filter(|o| o.live);
        working.map(|o| o.id).collect()
    }

    /// Symbols now flat with an entry order working or pending: positions on their way.
    pub fn pending_entry_count(&self, portfolio: &Portfolio) -> usize {
        let mut count = 0;
        for (s, book) in self.working.iter().enumerate() {
            if portfolio.position(s).size != 0.0 {
                continue;
            }
            if book.iter().any(|o| o.live && o.role == Role::Entry) {
                count += 1;
            }
        }
        count
    }

    /// Every order placed so far, with where its life ended.
    pub fn orders(&self) -> &OrderLog {
        &self.log
    }

    /// Every fill so far, in the order they were executed (one per order at most; the
    /// rest of each is in its order's record, see `OrderLog::fill_row`).
    pub fn fills(&self) -> &[Fill] {
        &self.fills
    }

    // ---- the market phase: one batch per timestamp ---------------------------------------

    /// Enter `symbol`'s bar `bar` (at `ts`) in this timestamp's batch, if it has working
    /// orders that can act in it (see `matching::is_quiet`). Call for every symbol with a
    /// bar, then `execute_batch` once.
    #[inline(always)]
    pub fn open_bar(&mut self, symbol: usize, bar: usize, ts: i64, prices: Bar) {
        if self.working.may_act(symbol, bar, &prices) {
            self.plays
                .push(Play::new(symbol, bar, ts, prices, self.limits));
        }
    }

    /// Whether bars entered since the last batch have orders to match (the batch will
    /// read the account: every position must be marked at its open first).
    #[inline]
    pub fn is_matching(&self) -> bool {
        !self.plays.is_empty()
    }

    /// Match and execute every bar entered since the last call, as one batch (see the
    /// module documentation for the order). Positions must be marked at these bars' opens.
    pub fn execute_batch(&mut self, portfolio: &mut Portfolio, rules: Rules<'_>) {
        self.waiting.clear();
        self.entered = 0;
        self.free_before_increases = None;
        self.note_free_before_fills(portfolio, rules.config);
        for p in 0..self.plays.len() {
            self.play_on(p, portfolio, rules);
            self.entered = p + 1;
        }
        // (Most batches queue nothing: the empty queue is not even asked.)
        while let Some(Reverse((_, _, p, slot))) = self.next_in_turn() {
            let w = self.waiting[slot];
            let at = self.at(p);
            // (Its bar's volume taken, nothing more of its symbol fills in it.)
            if !self.execute_increase(at, &w, portfolio, rules) {
                self.play_on(p, portfolio, rules);
            }
        }
        self.add_rests(portfolio);
        for p in 0..self.plays.len() {
            let at = self.at(p);
            if self.bar_limited > 0 {
                self.expire_at_bar(at);
            }
            self.working.retain_live(at.symbol);
        }
        self.plays.clear();
    }

    /// Note the account's free equity before a batch's fills, while entries sized at
    /// their fill work (the base of those sized when they match).
    #[inline]
    fn note_free_before_fills(&mut self, portfolio: &Portfolio, config: &Config) {
        if !self.sized_at_fill.is_empty() {
            self.free_before_fills = config.free_equity(portfolio);
        }
    }

    /// The queued increase whose turn it is.
    #[inline(always)]
    fn next_in_turn(&mut self) -> Option<Reverse<(u8, u64, usize, usize)>> {
        if self.queue.is_empty() {
            None
        } else {
            self.queue.pop()
        }
    }

    /// Orders whose last bar this was (bars / immediate-or-cancel) and that did not fill
    /// expire at its end.
    fn expire_at_bar(&mut self, at: At) {
        let ending: Vec<u64> = self.working[at.symbol]
            .iter()
            // (Not one placed since the last barrier: its bars start after it joins.)
            .filter(|o| o.live && o.last_bar == Some(at.bar) && o.eligible_from != UNADMITTED)
            .map(|o| o.id)
            .collect();
        for id in ending {
            let reason = expiry_reason(self.working[at.symbol].iter().find(|o| o.id == id));
            if self.cancel_working(id, at.ts, reason) {
                self.log.record_mut(id).status = Status::Expired;
            }
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
    fn play_on(&mut self, p: usize, portfolio: &mut Portfolio, rules: Rules<'_>) {
        let at = self.at(p);
        if let [only] = &self.working[at.symbol] {
            // A lone market order that can fill, with nothing attached (the usual play: an
            // entry or a close placed at the bar before), fills at the open: the walk's
            // first match, and its last, as executing it leaves nothing live in the bar (no
            // legs, no group). Resumed after waiting, the play finds nothing live.
            let lone =
                only.live && only.eligible_from <= at.bar && only.is_market() && !only.at_close();
            let bare = only.stop_loss.is_none()
                && only.take_profit.is_none()
                && only.stop_loss_trail.is_none()
                && only.trail.is_none()
                && only.oco.is_none();
            if lone && bare {
                let open = self.plays[p].prices.open;
                match self.execute_reduction(at, 0, open, Moment::Open, portfolio, rules) {
                    Executed::Done | Executed::NoVolume => {}
                    Executed::Waits(w) if self.its_turn() => {
                        self.execute_increase(at, &w, portfolio, rules);
                    }
                    Executed::Waits(w) => self.queue_increase(p, w),
                }
                return;
            }
        }
        loop {
            // With no live order left (the usual end: its one order filled) the rest of
            // the bar has nothing to match; the walk would find that out order by order.
            if !has_live(&self.working[at.symbol]) {
                return;
            }
            let play = &mut self.plays[p];
            let Some(m) = play.next_match(&mut self.working[play.symbol], rules.studies) else {
                return;
            };
            match self.execute_reduction(at, m.k, m.raw_price, m.moment, portfolio, rules) {
                Executed::Done => {}
                Executed::Waits(w) if self.its_turn() => {
                    if self.execute_increase(at, &w, portfolio, rules) {
                        return;
                    }
                }
                Executed::Waits(w) => {
                    self.queue_increase(p, w);
                    return;
                }
                // The bar's volume is taken: nothing more of this symbol fills in it.
                Executed::NoVolume => return,
            }
        }
    }

    /// Queue the increase `w` reached by play `p` for its turn (the play pauses there).
    fn queue_increase(&mut self, p: usize, w: Waiting) {
        let rank = match w.moment {
            Moment::Open => 0u8,
            Moment::Intrabar => 1,
            Moment::Close => 2,
        };
        self.queue
            .push(Reverse((rank, w.order.id, p, self.waiting.len())));
        self.waiting.push(w);
    }

    /// Whether an increase just reached by the play being walked is the next in turn
    /// without queueing: no other increase waits, and every other play of the batch has
    /// reached its first increase or its end (so no reduction is still to come before
    /// it). The queue would hand it back at once; this only saves the round trip.
    #[inline]
    fn its_turn(&self) -> bool {
        self.queue.is_empty() && self.entered + 1 >= self.plays.len()
    }

    // ---- the barrier ----------------------------------------------------------------------

    /// Orders placed during the tick join the book, one by one in placement order (they are
    /// among the working orders already: each becomes eligible where it is, from bar
    /// `first_bar(symbol)` of its symbol on).
    /// `fill_now(symbol)` gives (bar, close, volume) when a market order of that symbol
    /// fills at this bar's close (`FillAt::Close` and the symbol has a bar now): it
    /// executes its reducing part as it joins, and its increase once all have joined, in
    /// placement order (reducing parts first, then increases). (Inlined into the barrier:
    /// most barriers admit nothing, or only orders that fill later.)
    #[inline]
    pub fn admit_pending(
        &mut self,
        ts: i64,
        portfolio: &mut Portfolio,
        rules: Rules<'_>,
        first_bar: impl Fn(usize) -> usize,
        fill_now: impl Fn(usize) -> Option<(usize, f64, f64)>,
    ) {
        if self.placed.is_empty() {
            return;
        }
        if self.placed.iter().all(|&(s, _)| fill_now(s).is_none()) {
            // Nothing fills now (the usual barrier): they only become eligible, where they
            // are (the end of each symbol's orders).
            for &(s, _) in &self.placed {
                self.working.admit(s, first_bar(s));
            }
            self.placed.clear();
            return;
        }
        self.admit_filling_at_close(ts, portfolio, rules, fill_now);
    }

    /// `admit_pending` when market orders may fill at this close.
    #[inline(never)]
    fn admit_filling_at_close(
        &mut self,
        ts: i64,
        portfolio: &mut Portfolio,
        rules: Rules<'_>,
        fill_now: impl Fn(usize) -> Option<(usize, f64, f64)>,
    ) {
        let mut increases = Vec::new();
        let mut touched = Vec::new();
        self.free_before_increases = None;
        self.note_free_before_fills(portfolio, rules.config);
        for j in 0..self.placed.len() {
            let (s, id) = self.placed[j];
            // Placed last, so near the end. Skipped if cancelled since: by the strategy
            // (gone) or by its one-cancels-other group filling earlier in this batch.
            let Some(k) = self.working[s].iter().rposition(|o| o.id == id && o.live) else {
                continue;
            };
            let o = &mut self.working[s][k];
            o.eligible_from = 0;
            // (An order at the open waits for the next bar's open.)
            let now = o.is_market() && !o.at_open();
            let Some((bar, close, volume)) = (if now { fill_now(s) } else { None }) else {
                continue;
            };
            if self.by_volume {
                self.allow_volume(s, bar, volume);
            }
            let at = At { symbol: s, bar, ts };
            // The symbol may not have been marked this tick (flat, no orders till now).
            portfolio.mark(s, close);
            touched.push(s);
            match self.execute_reduction(at, k, close, Moment::Intrabar, portfolio, rules) {
                // (Without volume left it works on, from the next bar.)
                Executed::Done | Executed::NoVolume => {}
                Executed::Waits(w) => increases.push((at, w)),
            }
        }
        self.placed.clear();
        for (at, w) in increases {
            // Not one its one-cancels-other group cancelled while it waited (several of a
            // group's orders may wait here at once; in a bar's play only one can).
            if self.log.record(w.order.id).status == Status::Open {
                self.execute_increase(at, &w, portfolio, rules);
            }
        }
        self.add_rests(portfolio);
        for s in touched {
            self.working.retain_live(s);
        }
    }

    /// A margin call at `ts`: every working order is cancelled, then each position of
    /// `held` — (symbol, its latest bar, the price equity was marked at), in the
    /// market's call order — is closed by a market order filled there at once, slipped
    /// and charged as any market order. The records of both say why.
    #[inline(never)]
    pub fn liquidate(
        &mut self,
        ts: i64,
        held: &[(usize, usize, f64)],
        portfolio: &mut Portfolio,
        rules: Rules<'_>,
    ) {
        debug_assert!(
            self.placed.is_empty(),
            "a margin call comes before orders are placed"
        );
        let working: Vec<u64> = (self.working.iter().flatten())
            .filter(|o| o.live)
            .map(|o| o.id)
            .collect();
        for id in working {
            self.cancel_working(id, ts, Reason::MarginCall);
        }
        self.working.retain_live_everywhere();
        let mut closes = Vec::with_capacity(held.len());
        for &(s, _, _) in held {
            let size = portfolio.position(s).size;
            if let Ok(Some(id)) = self.close_position(s, size, 1.0, ts) {
                closes.push(id);
            }
        }
        // The broker closes every position whatever the bars' volume.
        let by_volume = std::mem::replace(&mut self.by_volume, false);
        self.admit_filling_at_close(ts, portfolio, rules, |s| {
            let &(_, bar, price) = held.iter().find(|h| h.0 == s)?;
            Some((bar, price, f64::INFINITY))
        });
        self.by_volume = by_volume;
        for id in closes {
            self.log.record_mut(id).reason = Reason::MarginCall;
        }
        self.margin_calls += 1;
    }

    /// `symbol` stopped trading after its bar `bar` of time `ts`, which closed at `close`
    /// (`Engine::set_delistings`): its working orders are cancelled, then its position is
    /// closed by a market order filled there at once, slipped and charged as any market
    /// order, whatever the bar's volume, as a broker closes a position in a delisted
    /// stock or an expired contract. The records of both say why.
    #[inline(never)]
    pub fn delist(
        &mut self,
        ts: i64,
        (symbol, bar, close): (usize, usize, f64),
        portfolio: &mut Portfolio,
        rules: Rules<'_>,
    ) {
        debug_assert!(
            self.placed.is_empty(),
            "a delisting comes after the orders join"
        );
        let working: Vec<u64> = (self.working[symbol].iter())
            .filter(|o| o.live)
            .map(|o| o.id)
            .collect();
        for id in working {
            self.cancel_working(id, ts, Reason::Delisted);
        }
        self.working.retain_live(symbol);
        let size = portfolio.position(symbol).size;
        let Ok(Some(id)) = self.close_position(symbol, size, 1.0, ts) else {
            return;
        };
        let by_volume = std::mem::replace(&mut self.by_volume, false);
        self.admit_filling_at_close(ts, portfolio, rules, |s| {
            (s == symbol).then_some((bar, close, f64::INFINITY))
        });
        self.by_volume = by_volume;
        self.log.record_mut(id).reason = Reason::Delisted;
    }

    /// How many margin calls the account has had (each closes every position).
    pub fn margin_calls(&self) -> u32 {
        self.margin_calls
    }

    // ---- the order log -------------------------------------------------------------------

    /// Make room for about `orders` more orders and fills, when a strategy knows roughly
    /// how many it will place (a hint: the log still grows past it; refused room is fine).
    pub fn reserve(&mut self, orders: usize) {
        self.log.reserve(orders);
        let _ = self.fills.try_reserve(orders);
    }

    /// Exchange the order log and the fills with `orders` and `fills`: buffers a grid
    /// thread lends each run and takes back after it (`Engine::swap_logs`), so their
    /// memory is written again rather than freshly mapped for every run.
    pub(crate) fn swap_logs(&mut self, orders: &mut OrderLog, fills: &mut Vec<Fill>) {
        std::mem::swap(&mut self.log, orders);
        std::mem::swap(&mut self.fills, fills);
    }

    fn next_id(&self) -> u64 {
        self.log.next_id()
    }

    fn finish(&mut self, id: u64, status: Status, ts: i64, reason: Reason) {
        if !self.sized_at_fill.is_empty() {
            self.sized_at_fill.remove(&id);
        }
        self.log.finish(id, status, ts, reason);
    }
}

/// Whether any of `working` is live (one order, the usual case, without the loop).
#[inline(always)]
fn has_live(working: &[Order]) -> bool {
    match working {
        [only] => only.live,
        _ => working.iter().any(|o| o.live),
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;
