//! Execution: what a matched order does to the account, in two steps.
//!
//! `execute_reduction` resolves the order's size and side against the position as it is
//! now (a `close()` flattens what is held, a bracket leg closes its own trade), applies
//! slippage on the side actually executed, and executes at once the part that reduces
//! the position. What would increase a position (all of an order that adds or opens, the
//! rest of one that flips) is returned as `Waiting`; `execute_increase` executes it later,
//! when the book gives it its turn, against the buying power left then. Both parts of one
//! order pay the same commission per unit, so splitting it changes no trade record; the
//! order gets one fill row, written when it is done.

use std::cmp::Reverse;

use super::{Book, Rules};
use crate::broker::{impacted, ratchet, slipped, Moment};
use crate::config::Config;
use crate::orders::{round_to_lot, Order, Reason, Role, ShareAtFill, Status, TimeInForce};
use crate::portfolio::{worth, Execution, Portfolio};
use crate::results::Fill;

/// Lots smaller than this fraction of their order count as nothing left (float dust).
const DUST: f64 = 1e-9;

/// Where the book is in time while it executes: a symbol's bar.
#[derive(Clone, Copy, Debug)]
pub(super) struct At {
    pub symbol: usize,
    pub bar: usize,
    pub ts: i64,
}

/// What executing a matched order reads of it, read once when it is matched: it is no
/// longer live, so nothing changes these (nor its place among its symbol's working
/// orders, which only the end of a batch or a barrier compacts) until it is done.
#[derive(Clone, Copy, Debug)]
pub(super) struct Matched {
    /// Index of the order in its symbol's working orders.
    pub k: usize,
    pub id: u64,
    pub role: Role,
    /// For bracket legs: the trade (lot) they close.
    pub trade: Option<u64>,
    pub oco: Option<u64>,
    /// Whether it carries a stop-loss or take-profit for the trade it opens.
    pub bracket: bool,
}

impl Matched {
    #[inline(always)]
    fn of(o: &Order, k: usize) -> Self {
        Matched {
            k,
            id: o.id,
            role: o.role,
            trade: o.trade,
            oco: o.oco,
            bracket: o.stop_loss.is_some() | o.take_profit.is_some() | o.stop_loss_trail.is_some(),
        }
    }
}

/// The increasing part of a matched order, waiting for its turn.
#[derive(Clone, Copy, Debug)]
pub(super) struct Waiting {
    pub order: Matched,
    pub moment: Moment,
    /// +1 buy, -1 sell.
    pub direction: f64,
    /// Units still to execute, at `price` (after slippage) and `fee_per_unit`.
    pub size: f64,
    pub price: f64,
    /// The price the order matched at (before slippage and impact): where the market was
    /// when it filled, which the margin check values the symbol at.
    pub market: f64,
    pub fee_per_unit: f64,
    /// Units of the order already executed (its reducing part): one fill row for both
    /// parts is written when the order is done.
    pub done: f64,
    /// Units beyond what the bar's volume allowed (`Config::volume_limit`): they work on
    /// as a new order once this one is done.
    pub rest: f64,
}

/// What `Book::size_at_its_fill` made of an increase about to execute.
enum AtItsFill {
    /// Not an entry sized when its increase executes: as it is.
    NotSizedSo,
    /// Sized now (and its share of the bar's volume taken).
    Sized(Waiting),
    /// Nothing affordable (rejected), or a fill or kill the volume cannot fill whole
    /// (expired): done.
    Ended,
    /// The bar's volume is taken: it works on, and nothing more of its symbol fills in
    /// this bar.
    NoVolume,
}

/// What of an order the bar's volume lets fill now (`Book::take_volume`).
#[derive(Clone, Copy, Debug)]
struct Taken {
    /// Units that fill now.
    size: f64,
    /// Units beyond the volume left, which work on as a new order.
    rest: f64,
    /// The fill's share of the bar's volume (its price impact's measure).
    share: f64,
}

enum ByVolume {
    Takes(Taken),
    /// None of it: the volume is taken.
    NoVolume,
    /// A fill or kill order the volume left cannot fill whole.
    Killed,
}

pub(super) enum Executed {
    /// Filled, or ended (cancelled, rejected) without filling.
    Done,
    /// The reducing part (if any) is done; this increase waits for its turn.
    Waits(Waiting),
    /// Not executed: the bar's volume is taken, or it had none (`Config::volume_limit`,
    /// `Config::volume_impact`). The order works on, and nothing more of its symbol fills
    /// in this bar.
    NoVolume,
}

/// The units of an entry of `s` sized at its fill (`ShareAtFill`), bought (`direction`
/// +1) or sold (-1) at `price` (after slippage; `maker`: a limit filled at its price)
/// where the market is at `market` (the price matched, before slippage): the most whose
/// cost there (the price times the multiplier a unit) with their commission is the
/// order's fraction of the buying power of an account with `free` equity
/// (`Config::free_equity`: the batch's before its moment's increases, or before its
/// fills for an entry that first reverses a position), and never
/// more than the margin check lets the fill take from `account`
/// (`Config::beyond_buying_power`), rounded down to its lots. A volume's price impact is
/// not foreseen (the fill's check still applies).
///
/// The two agree for a flat account without leverage or slippage: a fraction of 1 spends
/// the cash with the commission. With leverage the check also holds the commission (and
/// the slippage, lost at once) against the equity the margin comes from: a fraction of 1
/// then buys what the check allows rather than being rejected for a few units beyond
/// it. An entry that first closes an opposite position is sized on the account before
/// the batch (its closing frees margin the check then finds).
fn units_at_fill(
    share: ShareAtFill,
    (price, market, direction, maker): (f64, f64, f64, bool),
    s: usize,
    (account, free): (&Portfolio, f64),
    config: &Config,
) -> f64 {
    let m = config.multiplier(s);
    let unit = worth(1.0, price, m);
    if !(unit > 0.0 && unit.is_finite()) {
        // (A price that makes nothing of any money.)
        return 0.0;
    }
    let schedule = config.commission_of(s);
    let money = config.buying_power_of(free, s, unit) * share.fraction;
    let mut units = schedule.most_units(money, unit, unit, maker);
    if account.position(s).size * direction >= 0.0 {
        // What the check asks of each unit: the margin it takes at the market price and
        // what its price beyond that costs at once; from the equity that the margin of
        // the positions (this symbol's valued at that price too) leaves free.
        let held = account.after_fill(s, direction, 0.0, (price, market), 0.0);
        let per_unit = config.margin_of(s).initial(1.0, worth(1.0, market, m))
            + worth(direction, price - market, m);
        let unmargined = held.equity - config.margin_required(account, &held);
        units = units.min(schedule.most_units(unmargined, per_unit, unit, maker));
    }
    if !units.is_finite() {
        return 0.0;
    }
    share.lot.map_or(units, |lot| round_to_lot(units, lot))
}

impl Book {
    /// Execute the reducing part of the order at `working[s][k]`, matched at `raw_price`.
    /// (Inlined: an order that reduces nothing — an entry while flat, the usual entry —
    /// is resolved and handed back to wait for its turn without a call; what reduces is
    /// executed out of line, in `execute_reducing_part`.)
    #[inline(always)]
    pub(super) fn execute_reduction(
        &mut self,
        at: At,
        k: usize,
        raw_price: f64,
        moment: Moment,
        portfolio: &mut Portfolio,
        rules: Rules<'_>,
    ) -> Executed {
        let config = rules.config;
        let s = at.symbol;
        // The order is read here once: what the rest of its execution needs is `matched`.
        let order = &mut self.working[s][k];
        order.live = false;
        let matched = Matched::of(order, k);
        let held = portfolio.position(s).size;
        let sized = match matched.role {
            Role::Entry => Some((order.size, order.side.sign())),
            // A close of one trade (`Trade.close()`): its portion of what is left of it.
            Role::ClosePosition if matched.trade.is_some() => (matched.trade)
                .and_then(|lot| portfolio.lot(s, lot))
                .map(|lot| (lot.size * order.portion, -lot.direction)),
            Role::ClosePosition => {
                // (Against the position: held is not 0, nor NaN.)
                let against = if held > 0.0 { -1.0 } else { 1.0 };
                (held != 0.0).then(|| (held.abs() * order.portion, against))
            }
            Role::StopLoss | Role::TakeProfit => (matched.trade)
                .and_then(|lot| portfolio.lot(s, lot))
                .map(|lot| (lot.size, -lot.direction)),
        };
        let Some((mut size, direction)) = sized else {
            self.cancel_unsized(matched, at.ts);
            return Executed::Done;
        };
        // Its price after slippage (a volume's impact comes with its share of the volume,
        // below). A limit order filled at its own limit price rested until the market came
        // to it: a maker's fill. At a better price (the bar opened through the limit), or
        // any market or stop fill, it took the price there was: a taker's.
        let slipped_price = slipped(order, direction, raw_price, config.slippage_of(s));
        let maker = order.limit == Some(raw_price);
        // An entry sized at its fill that only increases is sized when that increase
        // executes (`size_at_its_fill`), on the buying power the batch has after the
        // moment's reductions and before its increases, and takes its share of the bar's
        // volume then (nothing else of its symbol fills in between): what its symbol's
        // place among the others cannot change. One that first reduces an opposite
        // position must know its size now: it is sized on the buying power the account
        // had before the batch's fills, which the others' reductions, executed before or
        // after it as the walk reaches their symbols, do not change either.
        let mut sized_now = false;
        let mut sized_later = false;
        if !self.sized_at_fill.is_empty() && matched.role == Role::Entry {
            if let Some(&share) = self.sized_at_fill.get(&matched.id) {
                if held * direction < 0.0 {
                    let fill = (slipped_price, raw_price, direction, maker);
                    let account = (&*portfolio, self.free_before_fills);
                    let Some(units) =
                        self.units_or_rejected(at, matched.id, share, fill, account, config)
                    else {
                        return Executed::Done;
                    };
                    size = units;
                    self.working[s][k].size = size;
                    self.log.record_mut(matched.id).size = size;
                    sized_now = true;
                } else {
                    sized_later = true;
                }
            }
        }
        // Under the volume rules it takes what the bar's volume has left, and its share of
        // the volume moves its price (a margin call's closes take what they must).
        let (mut price, mut rest) = (slipped_price, 0.0);
        if self.by_volume {
            let outcome = if sized_later {
                // (It takes its share of the volume when it is sized: here, only whether
                // the bar has any left.)
                let left = self.allowance[s].1;
                if left.is_nan() || left <= 0.0 {
                    ByVolume::NoVolume
                } else {
                    ByVolume::Takes(Taken {
                        size,
                        rest,
                        share: 0.0,
                    })
                }
            } else {
                let fill_or_kill = self.working[s][k].time_in_force == TimeInForce::FillOrKill;
                self.take_volume(s, size, fill_or_kill)
            };
            match outcome {
                ByVolume::Takes(t) => {
                    (size, rest) = (t.size, t.rest);
                    let order = &self.working[s][k];
                    price = impacted(order, direction, slipped_price, t.share, self.impact);
                }
                ByVolume::NoVolume => {
                    self.working[s][k].live = true;
                    return Executed::NoVolume;
                }
                ByVolume::Killed => {
                    self.finish(matched.id, Status::Expired, at.ts, Reason::NotFilledWhole);
                    return Executed::Done;
                }
            }
        }
        if sized_now {
            self.sized_at_fill.remove(&matched.id);
        }
        let fee_per_unit = config.fee(s, size, price, maker) / size;
        let waiting = Waiting {
            order: matched,
            moment,
            direction,
            size,
            price,
            market: raw_price,
            fee_per_unit,
            done: 0.0,
            rest,
        };
        // A position is all long or all short, so only what opposes it reduces it (up to
        // its size); all of an order that does not oppose it increases it.
        if held * direction < 0.0 {
            self.execute_reducing_part(at, waiting, held, portfolio, rules)
        } else {
            Executed::Waits(waiting)
        }
    }

    /// A matched order with nothing to execute: a `close()` of a position already flat,
    /// a bracket leg or a close of one trade whose trade is already closed.
    #[inline(never)]
    fn cancel_unsized(&mut self, matched: Matched, ts: i64) {
        let reason = if matched.role == Role::ClosePosition && matched.trade.is_none() {
            Reason::PositionAlreadyFlat
        } else {
            Reason::TradeAlreadyClosed
        };
        self.finish(matched.id, Status::Cancelled, ts, reason);
    }

    /// Execute what `w` (all of a resolved order, nothing done yet) reduces of the
    /// position `held`, which it opposes: up to its size. The rest, if any, waits.
    #[inline(never)]
    fn execute_reducing_part(
        &mut self,
        at: At,
        mut w: Waiting,
        held: f64,
        portfolio: &mut Portfolio,
        rules: Rules<'_>,
    ) -> Executed {
        let size = w.size;
        let reduce = size.min(held.abs());
        let part = (reduce, w.price, reduce * w.fee_per_unit);
        self.apply_part(at, w.order, w.direction, part, w.moment, portfolio, rules);
        let rest = size - reduce;
        if rest <= size * DUST {
            let fee = reduce * w.fee_per_unit;
            self.record_fill(at, w.order.id, w.direction, reduce, w.price, fee);
            if w.rest > 0.0 {
                self.work_on_rest(at, w.order.k, w.rest, portfolio);
            }
            return Executed::Done;
        }
        w.size = rest;
        w.done = reduce;
        Executed::Waits(w)
    }

    /// Execute a waiting increase if the buying power left allows it, else reject it.
    /// True when it met its bar's volume taken (an entry sized at its fill, which takes
    /// its share only now): it works on, and nothing more of its symbol fills in the bar.
    pub(super) fn execute_increase(
        &mut self,
        at: At,
        w: &Waiting,
        portfolio: &mut Portfolio,
        rules: Rules<'_>,
    ) -> bool {
        let config = rules.config;
        let s = at.symbol;
        // (An increase that sells opens or adds to a short.)
        if w.direction < 0.0 && !self.may_short(s, config) {
            self.reject_increase(at, w, Reason::NotShortable);
            return false;
        }
        // An entry sized at its fill, not when it matched, takes its size now.
        let sized;
        let w = if self.sized_at_fill.is_empty() {
            w
        } else {
            match self.size_at_its_fill(at, w, portfolio, config) {
                AtItsFill::NotSizedSo => w,
                AtItsFill::Sized(resized) => {
                    sized = resized;
                    &sized
                }
                AtItsFill::Ended => return false,
                AtItsFill::NoVolume => return true,
            }
        };
        let fee = w.size * w.fee_per_unit;
        let after = portfolio.after_fill(s, w.direction, w.size, (w.price, w.market), fee);
        if after.grows && config.beyond_buying_power(portfolio, &after) {
            self.reject_increase(at, w, Reason::InsufficientMargin);
            return false;
        }
        let part = (w.size, w.price, fee);
        self.apply_part(at, w.order, w.direction, part, w.moment, portfolio, rules);
        let units = w.done + w.size;
        let fee = units * w.fee_per_unit;
        self.record_fill(at, w.order.id, w.direction, units, w.price, fee);
        if w.rest > 0.0 {
            self.work_on_rest(at, w.order.k, w.rest, portfolio);
        }
        false
    }

    /// Increase `w` (about to execute, while some order is sized at its fill) sized now if
    /// it is an entry sized at its fill not sized when it matched (see
    /// `execute_reduction`): the share of the buying power the batch had before the
    /// increases of its moment (the open, inside the bar, the close; taken at the first of
    /// them: entries filling together share one base, whatever their order), never more
    /// than the fill's check allows of the account now.
    /// Its units, its commission per unit and its order's records take the size; with
    /// nothing affordable it is rejected for margin. Under the volume rules it then takes
    /// its share of the bar's volume, as an order sized before takes it when it matches.
    /// (Out of line: most fills are not sized so.)
    #[inline(never)]
    fn size_at_its_fill(
        &mut self,
        at: At,
        w: &Waiting,
        portfolio: &Portfolio,
        config: &Config,
    ) -> AtItsFill {
        let free = match self.free_before_increases {
            Some((moment, free)) if moment == w.moment => free,
            _ => {
                let free = config.free_equity(portfolio);
                self.free_before_increases = Some((w.moment, free));
                free
            }
        };
        let id = w.order.id;
        let Some(share) = self.sized_at_fill.remove(&id) else {
            return AtItsFill::NotSizedSo;
        };
        let s = at.symbol;
        // (Nothing of it has executed, and no volume rule moved its price yet: `price` is
        // the price matched after slippage.)
        let order = &self.working[s][w.order.k];
        let maker = order.limit == Some(w.market);
        let fill_or_kill = order.time_in_force == TimeInForce::FillOrKill;
        let fill = (w.price, w.market, w.direction, maker);
        let Some(size) = self.units_or_rejected(at, id, share, fill, (portfolio, free), config)
        else {
            return AtItsFill::Ended;
        };
        let mut taken = Taken {
            size,
            rest: 0.0,
            share: 0.0,
        };
        if self.by_volume {
            match self.take_volume(s, size, fill_or_kill) {
                ByVolume::Takes(t) => taken = t,
                ByVolume::NoVolume => {
                    // Sized again at a later bar, the one whose volume lets it fill.
                    self.sized_at_fill.insert(id, share);
                    self.working[s][w.order.k].live = true;
                    return AtItsFill::NoVolume;
                }
                ByVolume::Killed => {
                    self.finish(id, Status::Expired, at.ts, Reason::NotFilledWhole);
                    return AtItsFill::Ended;
                }
            }
        }
        let order = &mut self.working[s][w.order.k];
        order.size = size;
        self.log.record_mut(id).size = size;
        let order = &self.working[s][w.order.k];
        let price = impacted(order, w.direction, w.price, taken.share, self.impact);
        let fee_per_unit = config.fee(s, taken.size, price, maker) / taken.size;
        AtItsFill::Sized(Waiting {
            size: taken.size,
            price,
            fee_per_unit,
            rest: taken.rest,
            ..*w
        })
    }

    /// `units_at_fill` for entry `id`; None (and the entry rejected for margin) when
    /// nothing is affordable. (Out of line: most fills are not sized so.)
    #[inline(never)]
    fn units_or_rejected(
        &mut self,
        at: At,
        id: u64,
        share: ShareAtFill,
        fill: (f64, f64, f64, bool),
        account: (&Portfolio, f64),
        config: &Config,
    ) -> Option<f64> {
        let units = units_at_fill(share, fill, at.symbol, account, config);
        if units.is_nan() || units <= 0.0 {
            self.finish(id, Status::Rejected, at.ts, Reason::InsufficientMargin);
            return None;
        }
        Some(units)
    }

    /// Under the volume rules, what of `size` units of an order of `s` the volume its bar
    /// has left lets fill now, taken from it: all, or (unless the order is `fill_or_kill`)
    /// the part left, the rest to work on; nothing when none is left.
    fn take_volume(&mut self, s: usize, size: f64, fill_or_kill: bool) -> ByVolume {
        let (_, left, volume) = &mut self.allowance[s];
        // (NaN volume, which the door refuses, would fill nothing.)
        if left.is_nan() || *left <= size * DUST {
            return ByVolume::NoVolume;
        }
        let mut part = size;
        if size - *left > size * DUST {
            // Fill or kill: whole or not at all. Killed here, it leaves the bar's volume
            // to the symbol's other orders.
            if fill_or_kill {
                return ByVolume::Killed;
            }
            // A part of an order of whole units (shares, contracts) is whole units: the
            // bar's share of its volume rounded down, a hair of float noise below a whole
            // unit forgiven (0.35 × 180 is 62.99999999999999); an order of fractional
            // units takes that share exactly.
            part = if size.fract() == 0.0 {
                round_to_lot(*left, 1.0)
            } else {
                *left
            };
            if part <= size * DUST {
                return ByVolume::NoVolume;
            }
        }
        *left -= part;
        ByVolume::Takes(Taken {
            size: part,
            rest: size - part,
            share: part / *volume,
        })
    }

    /// An increase the account does not allow (for `reason`): rejected, with the fill row
    /// of its reducing part if it had one. (Out of line: the common fill keeps its
    /// registers.)
    #[inline(never)]
    fn reject_increase(&mut self, at: At, w: &Waiting, reason: Reason) {
        // (One still to be sized at its fill has taken none yet.)
        if self.by_volume && !self.sized_at_fill.contains_key(&w.order.id) {
            // What it took of the bar's volume and did not fill is the bar's again.
            self.allowance[at.symbol].1 += w.size;
        }
        if w.done > 0.0 {
            let fee = w.done * w.fee_per_unit;
            self.record_fill(at, w.order.id, w.direction, w.done, w.price, fee);
        }
        self.finish(w.order.id, Status::Rejected, at.ts, reason);
    }

    /// Book one executed part `(units, price, commission)` of the matched order in the
    /// portfolio, and its bracket legs: cancelled with their trade, attached to a trade
    /// just opened.
    #[allow(clippy::too_many_arguments)]
    // Inlined into both of its callers: its nine arguments stay in registers.
    #[inline(always)]
    fn apply_part(
        &mut self,
        at: At,
        order: Matched,
        direction: f64,
        (size, price, commission): (f64, f64, f64),
        moment: Moment,
        portfolio: &mut Portfolio,
        rules: Rules<'_>,
    ) {
        let s = at.symbol;
        let (id, role, oco) = (order.id, order.role, order.oco);
        if moment == Moment::Close {
            self.range_before_the_close(s, portfolio);
        }
        let effect = portfolio.apply(Execution {
            symbol: s,
            direction,
            size,
            price,
            commission,
            ts: at.ts,
            bar: at.bar,
            order_id: id,
            closes_lot: order.trade,
        });
        if !portfolio.closed_legs().is_empty() {
            self.cancel_closed_legs(portfolio, at.ts);
        }
        if let Some(group) = oco {
            self.cancel_group(s, group, id, at.ts);
        }
        // A new lot's legs are none until attached: only an entry with a bracket has any.
        if let (Some(lot), Role::Entry, true) = (effect.opened_lot, role, order.bracket) {
            let order = self.working[s][order.k];
            self.attach_bracket(&order, lot, at, moment, portfolio, rules);
        }
    }

    /// A fill at the close comes after the whole of its bar, as one at the barrier does:
    /// the symbol's open lots take the bar's range first (a trade it closes counts its
    /// excursions through the bar), once per bar, and the engine's fold at the close skips
    /// the symbol (a lot it opens counts them from the next bar).
    #[cold]
    fn range_before_the_close(&mut self, s: usize, portfolio: &mut Portfolio) {
        if self.ranged_at_close.contains(&s) {
            return;
        }
        if let Some(play) = self.plays.iter().find(|p| p.symbol == s) {
            portfolio.observe_range(s, play.prices.low, play.prices.high);
        }
        self.ranged_at_close.push(s);
    }

    /// Cancel the bracket legs of the lots the latest fill closed completely. (Out of
    /// line, as are the other rarer steps of a fill: the common fill keeps its registers.)
    #[inline(never)]
    fn cancel_closed_legs(&mut self, portfolio: &Portfolio, ts: i64) {
        for &leg in portfolio.closed_legs() {
            self.cancel_working(leg, ts, Reason::ItsTradeWasClosed);
        }
    }

    /// Cancel the other orders of one-cancels-other group `group`, one of which (`id`)
    /// just filled: every one still open, those placed during this tick included (at a
    /// barrier filling market orders at the close, one placed after the filling one has
    /// not joined yet) and those waiting with their increase in this batch (taken out of
    /// the book to execute, so not live, but not filled).
    #[inline(never)]
    fn cancel_group(&mut self, s: usize, group: u64, id: u64, ts: i64) {
        let log = &self.log;
        let others: Vec<u64> = self.working[s]
            .iter()
            .filter(|o| o.oco == Some(group) && o.id != id)
            .filter(|o| log.record(o.id).status == Status::Open)
            .map(|o| o.id)
            .collect();
        for other in others {
            if let Some(o) = self.working[s].iter_mut().find(|o| o.id == other) {
                o.live = false;
            }
            self.finish(other, Status::Cancelled, ts, Reason::ItsGroupFilled);
        }
    }

    /// One fill row per order (its id and commission), written when it is done, and what
    /// its record says was executed (the rest of the fill row); the record is closed as
    /// filled (a rejection of the rest of an order whose reducing part filled then
    /// overwrites its status and reason, at the same time).
    #[inline]
    fn record_fill(&mut self, at: At, id: u64, direction: f64, size: f64, price: f64, fee: f64) {
        self.fills.push(Fill {
            order_id: id,
            commission: fee,
        });
        let rec = self.log.record_mut(id);
        rec.filled_size = size;
        rec.fill_price = price;
        rec.filled_side = direction as i8;
        rec.status = Status::Filled;
        rec.closed_ts = at.ts;
        rec.reason = Reason::None;
    }

    /// Create the stop-loss / take-profit legs of a freshly opened trade. After an entry at
    /// the open, both legs watch the rest of that bar; after an intrabar entry the stop-loss
    /// still does (conservative), the take-profit from the next bar; after an entry at the
    /// close, both from the next bar (nothing of this one is left).
    #[inline(never)]
    fn attach_bracket(
        &mut self,
        entry: &Order,
        lot: u64,
        at: At,
        moment: Moment,
        portfolio: &mut Portfolio,
        rules: Rules<'_>,
    ) {
        let (size, entry_price) = portfolio
            .lot(entry.symbol, lot)
            .map_or((0.0, f64::NAN), |l| (l.size, l.entry_price));
        let (sl_from, tp_from) = match moment {
            Moment::Open => (0, 0),
            Moment::Intrabar => (0, at.bar + 1),
            Moment::Close => (at.bar + 1, at.bar + 1),
        };
        let leg = |role, stop, limit, eligible_from| {
            let mut o = Order::new(0, entry.symbol, entry.side.opposite(), size, role);
            o.stop = stop;
            o.limit = limit;
            o.trade = Some(lot);
            o.eligible_from = eligible_from;
            o.tag = entry.tag;
            o
        };
        let mut sl = entry
            .stop_loss
            .map(|p| self.add_working(leg(Role::StopLoss, Some(p), None, sl_from), at.ts));
        if let Some(trail) = entry.stop_loss_trail {
            // A trailing stop-loss starts from the entry price; an ATR distance is the
            // ATR as of the bar before (this bar's range is not known at the fill).
            let mut o = leg(Role::StopLoss, Some(f64::NAN), None, sl_from);
            o.trail = Some(trail);
            let atr = match trail {
                crate::orders::Trail::Atr { study, .. } => rules
                    .studies
                    .prev(study, entry.symbol, Some(at.bar))
                    .unwrap_or(f64::NAN),
                _ => f64::NAN,
            };
            ratchet(&mut o, entry_price, atr);
            sl = Some(self.add_working(o, at.ts));
        }
        let tp = entry
            .take_profit
            .map(|p| self.add_working(leg(Role::TakeProfit, None, Some(p), tp_from), at.ts));
        for made in [sl, tp].into_iter().flatten() {
            self.log.set_parent(made, entry.id);
        }
        if let Some(l) = portfolio.lot_mut(entry.symbol, lot) {
            l.stop_loss = sl;
            l.take_profit = tp;
        }
    }

    /// The order at `working[s][k]` filled in part, the bar's volume allowing no more
    /// (`Config::volume_limit`): the `rest` of its units works on from the next bar as a
    /// new order on the same terms, until the same time in force ends. A stop that filled
    /// was reached: the rest is a market order (a stop-limit's, its limit). A close
    /// closes the rest of what it was closing; a bracket leg (sized from its trade at
    /// its fill) stays its trade's leg; the order's one-cancels-other group has already
    /// resolved. On its last bar (immediate-or-cancel, a number of bars) the rest ends.
    /// The rest joins the book when the batch ends (`add_rests`).
    #[inline(never)]
    fn work_on_rest(&mut self, at: At, k: usize, rest: f64, portfolio: &mut Portfolio) {
        let s = at.symbol;
        let o = self.working[s][k];
        if o.last_bar.is_some_and(|last| last <= at.bar) {
            self.log.record_mut(o.id).reason = Reason::PartFilledRestEnded;
            return;
        }
        let mut r = Order {
            id: 0,
            size: rest,
            eligible_from: at.bar + 1,
            checked_bar: usize::MAX,
            live: true,
            oco: None,
            ..o
        };
        if r.stop.is_some() {
            r.trail = None;
            if r.limit.is_some() {
                r.triggered = true;
            } else {
                r.stop = None;
            }
        }
        if r.role == Role::ClosePosition {
            // Its portion of what is left of the position (or of its trade) is the rest.
            let left = match r.trade {
                Some(lot) => portfolio.lot(s, lot).map_or(0.0, |l| l.size),
                None => portfolio.position(s).size.abs(),
            };
            if left <= 0.0 {
                return;
            }
            r.portion = (rest / left).min(1.0);
        }
        self.log.record_mut(o.id).reason = Reason::PartFilledRestWorksOn;
        self.rests_to_add.push((o.id, at.ts, r));
    }

    /// The rests of the orders the batch filled in part (`work_on_rest`) join the book, in
    /// the order their orders were placed: their ids, which order the increases of a
    /// later batch, then follow no symbol's place in the walk.
    #[inline(always)]
    pub(super) fn add_rests(&mut self, portfolio: &mut Portfolio) {
        // (Most batches fill nothing in part.)
        if !self.rests_to_add.is_empty() {
            self.add_rests_now(portfolio);
        }
    }

    #[inline(never)]
    fn add_rests_now(&mut self, portfolio: &mut Portfolio) {
        let mut rests = std::mem::take(&mut self.rests_to_add);
        rests.sort_unstable_by_key(|&(parent, _, _)| parent);
        for &(parent, ts, r) in &rests {
            let s = r.symbol;
            let id = self.add_working(r, ts);
            self.log.set_parent(id, parent);
            match r.time_in_force {
                TimeInForce::Until(ts) => self.expiries.push(Reverse((ts, id))),
                TimeInForce::Day => {
                    // Good for the same day as the order it is the rest of (whose day has
                    // not ended: it filled).
                    if let Some(&(_, placed)) = self.day_orders.iter().find(|d| d.0 == parent) {
                        self.day_orders.push((id, placed));
                    }
                }
                _ => {}
            }
            if r.last_bar.is_some() {
                self.bar_limited += 1;
            }
            if let (Some(lot), Role::StopLoss | Role::TakeProfit) = (r.trade, r.role) {
                if let Some(l) = portfolio.lot_mut(s, lot) {
                    if l.stop_loss == Some(parent) {
                        l.stop_loss = Some(id);
                    }
                    if l.take_profit == Some(parent) {
                        l.take_profit = Some(id);
                    }
                }
            }
            self.rests.insert(parent, id);
        }
        // (The buffer kept for the next batch's rests.)
        rests.clear();
        self.rests_to_add = rests;
    }

    /// Log an order the book creates itself (a bracket leg) and make it work now.
    fn add_working(&mut self, mut o: Order, ts: i64) -> u64 {
        o.id = self.next_id();
        self.log.push(&o, ts);
        let id = o.id;
        self.working.push(o);
        id
    }
}
