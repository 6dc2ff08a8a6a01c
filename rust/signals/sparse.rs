//! The sparse driver of signals mode: the same run as `Engine::run` with the signal
//! strategy — same book, fill rules, portfolio, equity samples and carrying costs, bit for
//! bit — visiting only the ticks where something can happen.
//!
//! A symbol needs its bar processed only when a signal is set on it, when it has a market
//! order working (it fills at that bar), or when a working stop or limit (a bracket leg)
//! could match in that bar's range. Each symbol is scheduled at its next such bar (its
//! *event*) in a bucket per tick (first at the earliest tick the bar can have, which
//! needs no look-up of its time, then moved to its own); a tick is visited when a symbol
//! is due, when it ends a trading day (equity sample, carrying costs) or, with
//! `record_every_bar`, always. At a
//! visited tick the due symbols go through the engine's steps in the market's call order:
//! marked to the open when the book matches orders, the batch, marked to the close, the
//! rules at their signal bars, the barrier.
//!
//! Between two of its events a held position changes only by its marks. Rather than mark
//! it at every bar, the driver *parks* it (`Portfolio::park`): its terms leave the
//! account's sums and the driver sums the parked positions itself, only when something
//! reads the account (a batch that matches orders, the rules' equity, the barrier): each
//! parked position's term is then size × the close of its latest bar at that tick (or the
//! open of its bar at the tick, for the batch, which reads positions marked at their
//! opens). The account's sums being exact (fixed point), equity is the same bits however
//! its terms were summed, so this gives what marking every bar gives. The lots'
//! excursions (MAE/MFE) over the skipped bars are their lowest low and highest high,
//! applied when the position comes back (`unpark`). A position is parked at the close of
//! the bar where nothing can change it before its next event (no orders working, no
//! signal on this bar nor the next), without being marked there first; it stays parked
//! through a signal bar with no orders to match (the rules read only its size, and its
//! term at that close is in the parked sums) and comes back at the bar where its orders
//! can fill.

use super::{limit_entries, Desk, SignalStrategy};
use crate::book::{Book, Placing, Rules};
use crate::broker::{slipped, Bar};
use crate::clock::{gallop, DayEnds};
use crate::config::FillAt;
use crate::engine::{Engine, Parts};
use crate::error::Result;
use crate::market::{prefetch_far, Market};
use crate::orders::{OrderRequest, Role, ShareAtFill, Side};
use crate::portfolio::{worth, Money, Payment, Portfolio};
use crate::studies::Studies;
use std::sync::Arc;

/// No symbol (the end of a bucket's list; not parked).
const NONE: u32 = u32::MAX;

/// Run `engine` with `strategy` by the sparse driver, or by the engine's own loop when the
/// engine has studies declared (their caches follow every bar), holds a streamed window
/// rather than the whole market (bar indices are then not positions in the columns) or
/// has symbols with margin terms or borrow rates of their own (`Config::margins`,
/// `Config::borrow_rates`, `Config::borrow_column`) or locates quoted per bar
/// (`Config::locate_column`).
#[inline(never)]
pub(super) fn run(engine: &mut Engine, strategy: &mut SignalStrategy<'_>) -> Result<()> {
    let market = engine.market();
    let whole = (0..market.symbol_count()).all(|s| market.base(s) == 0);
    let fits = market.symbol_count() < NONE as usize;
    // (Symbols' own margin terms and borrow rates sum every position's term at each check
    // or day's end, and a parked position is outside the account's sums: the engine's
    // loop keeps them all.)
    let config = engine.config();
    let own_terms = !config.margins.is_empty()
        || !config.borrow_rates.is_empty()
        || config.borrow_column.is_some()
        || config.locate_column.is_some();
    if !engine.studies().is_empty() || !whole || !fits || own_terms {
        return engine.run(strategy);
    }
    let market = Arc::clone(market);
    let outcome = Driver::new(engine.parts()?, &market).run(&market, strategy);
    outcome?;
    engine.finish_parts()
}

struct Driver<'a, 'm> {
    p: Parts<'a>,
    /// Per symbol, what the driver keeps and reads of it at its events.
    lanes: Vec<Lane<'m>>,
    /// Per coming tick, the first symbol scheduled then (each lane links the next one).
    calendar: Calendar,
    /// The market's ticks' times.
    timeline: &'m [i64],
    /// Whether orders fill at the close of the bar they are placed on.
    at_close: bool,
    /// Whether the run's terms let `surely_affordable` answer yes at all (leverage at
    /// least 1, slippage below 100%).
    longs_affordable: bool,
    parked: ParkedPositions<'m>,
    /// Whether the portfolio holds the parked sums of this tick's close (reads reuse them).
    fresh: bool,
    /// Whether every mark of the market is above zero (a parked long's term is then).
    marks_positive: bool,
    /// With a funding or dividend column (`Config::funding`, `Config::dividends`), per
    /// symbol the bars with a rate or a dividend (not NaN, not 0), ascending: a held
    /// position has an event at each, where it settles them.
    payment_bars: Vec<Vec<usize>>,
    /// Per symbol that stops trading before the run's end (`Engine::set_delistings`), its
    /// last bar, where its orders are cancelled and its position closed: one held or with
    /// orders working has an event there. Empty when none stops.
    delist_bars: Vec<usize>,
    /// Whether the account may be margin called at some marks (`Portfolio::margin_exposed`,
    /// the parked positions counted): every tick is then visited and the account read at
    /// its closes, as the engine checks it at every tick. Found after each visited tick,
    /// and after a market phase that filled or settled funding (cash and positions change
    /// only there).
    exposed: bool,
    /// The symbols due at the tick being run, in the market's call order, each as its
    /// rank in that order above its index (`due_key`: sorting the keys sorts by rank).
    due: Vec<u64>,
    touched: Vec<Touched>,
    /// Whether orders can expire after a number of bars (limit entries with
    /// `limit_bars`): their last bars are then events too (`next_match`).
    expiring: bool,
}

/// The symbols scheduled at each of the coming ticks: per tick, the first of them (`NONE`:
/// none; each lane links the next one), in a ring of buckets (a calendar queue): tick t's
/// bucket is `t % len`, a power of two. Events are filed at ticks from the one being run
/// up to `len - 1` ticks on; one further on is filed in the bucket of the last tick the
/// ring reaches and moved on from there when it comes, as an event filed at the earliest
/// tick its bar can have is. The ring stays in cache, where a bucket per tick of the run
/// was memory to fill at each run (3.5% of a one-symbol run) and to wait for at each event.
/// A bit per bucket says which hold a symbol: the next busy tick is found 64 ticks at a
/// time.
struct Calendar {
    buckets: Vec<u32>,
    /// Bit `b % 64` of word `b / 64`: whether bucket `b` holds a symbol.
    busy: Vec<u64>,
    /// `len - 1`: a tick's bucket is `tick & mask`.
    mask: usize,
}

/// The most ticks the calendar reaches ahead (16 KiB of buckets). The tests' runs are
/// short: they get a ring of eight, so that their events wrap it and go beyond its reach.
#[cfg(not(test))]
const CALENDAR_TICKS: usize = 4096;
#[cfg(test)]
const CALENDAR_TICKS: usize = 8;

impl Calendar {
    /// The calendar of a timeline of `ticks` ticks.
    fn new(ticks: usize) -> Self {
        Self::with_len(ticks.next_power_of_two().clamp(2, CALENDAR_TICKS))
    }

    /// A ring of `len` buckets (a power of two, at least 2).
    fn with_len(len: usize) -> Self {
        debug_assert!(len.is_power_of_two() && len >= 2);
        Calendar {
            buckets: vec![NONE; len],
            busy: vec![0; len.div_ceil(64)],
            mask: len - 1,
        }
    }

    /// The tick to file an event of tick `tick` at, seen from tick `now` (not after it):
    /// `tick`, or the last the ring reaches.
    #[inline]
    fn reach(&self, now: usize, tick: usize) -> usize {
        tick.min(now + self.mask)
    }

    /// Whether `tick`'s bucket holds a symbol.
    #[inline]
    fn is_busy(&self, tick: usize) -> bool {
        self.buckets[tick & self.mask] != NONE
    }

    /// Make `symbol` the first of `tick`'s bucket (at most `len - 1` ticks from the one
    /// being run); returns the one that was first (`NONE`: none).
    #[inline]
    fn push(&mut self, tick: usize, symbol: u32) -> u32 {
        let b = tick & self.mask;
        self.busy[b >> 6] |= 1 << (b & 63);
        std::mem::replace(&mut self.buckets[b], symbol)
    }

    /// Empty `tick`'s bucket; returns its first symbol (`NONE`: none).
    #[inline]
    fn take(&mut self, tick: usize) -> u32 {
        let b = tick & self.mask;
        self.busy[b >> 6] &= !(1 << (b & 63));
        std::mem::replace(&mut self.buckets[b], NONE)
    }

    /// The first tick from `from` on, before `until`, whose bucket holds a symbol
    /// (`until`: none), when every event is filed at `from` or after.
    #[inline]
    fn next_busy(&self, from: usize, until: usize) -> usize {
        let mut t = from;
        while t < until {
            // The buckets from `t`'s to the end of its word (or of the ring, if shorter: a
            // word's bits past the ring's end are never set).
            let b = t & self.mask;
            let span = (64 - (b & 63)).min(self.buckets.len() - b);
            let bits = self.busy[b >> 6] >> (b & 63);
            if bits != 0 {
                return (t + bits.trailing_zeros() as usize).min(until);
            }
            t += span;
        }
        until
    }
}

/// A due symbol's sort key: its rank in the call order, then the symbol itself.
#[inline]
fn due_key(rank: u32, symbol: usize) -> u64 {
    u64::from(rank) << 32 | symbol as u64
}

/// The symbol of a `due_key`.
#[inline]
fn due_symbol(key: u64) -> usize {
    key as u32 as usize
}

/// Sort a tick's due keys: usually one or two, ordered in place (a library sort costs a
/// call and its set-up for them); many at once go to the library's sort.
#[inline]
fn sort_due(keys: &mut [u64]) {
    match keys.len() {
        0 | 1 => {}
        2 => {
            let (a, b) = (keys[0], keys[1]);
            (keys[0], keys[1]) = (a.min(b), a.max(b));
        }
        3..=16 => {
            for k in 1..keys.len() {
                let key = keys[k];
                let mut j = k;
                while j > 0 && keys[j - 1] > key {
                    keys[j] = keys[j - 1];
                    j -= 1;
                }
                keys[j] = key;
            }
        }
        _ => keys.sort_unstable(),
    }
}

/// One symbol as the driver keeps it, in one record: its columns, its event and its place
/// in the schedule (read together at each event).
struct Lane<'m> {
    bars: Columns<'m>,
    /// The bar of its event (once due: the bar being run; `usize::MAX`: none).
    event: usize,
    /// The next symbol in the same tick's bucket (`NONE`: the last).
    link: u32,
    /// Its rank in the market's call order.
    rank: u32,
}

/// A symbol's columns the driver reads (its bars' times and prices).
#[derive(Clone, Copy)]
struct Columns<'m> {
    ts: &'m [i64],
    open: &'m [f64],
    high: &'m [f64],
    low: &'m [f64],
    close: &'m [f64],
}

impl<'m> Columns<'m> {
    fn of(bars: &'m crate::market::SymbolBars) -> Self {
        Columns {
            ts: &bars.ts,
            open: &bars.open,
            high: &bars.high,
            low: &bars.low,
            close: &bars.close,
        }
    }

    /// How many bars.
    #[inline]
    fn len(&self) -> usize {
        self.ts.len()
    }
}

/// A symbol the market phase runs at this tick: its bar and that bar's prices (read once,
/// for every step of the phase), and whether its lots have seen that bar already (taken
/// out of the parked positions with it, having no orders).
struct Touched {
    symbol: usize,
    bar: usize,
    prices: Bar,
    seen: bool,
}

impl<'a, 'm> Driver<'a, 'm> {
    /// The driver of the engine's `p` over `market`, the engine's market (whose columns
    /// the lanes borrow for the run).
    fn new(p: Parts<'a>, market: &'m Market) -> Self {
        let n = p.market.symbol_count();
        let ticks = p.market.timeline().len();
        let mut lanes: Vec<Lane<'m>> = (0..n)
            .map(|s| Lane {
                bars: Columns::of(market.bars(s)),
                event: usize::MAX,
                link: NONE,
                rank: 0,
            })
            .collect();
        for (r, &s) in p.market.call_order().iter().enumerate() {
            lanes[s].rank = r as u32;
        }
        let at_close = p.config.fill_at == FillAt::Close;
        // (Every slippage is below 100%: `Config::validate`.)
        let longs_affordable = p.config.leverage >= 1.0;
        let columns = [p.config.funding, p.config.dividends];
        let payment_bars = match columns {
            [None, None] => Vec::new(),
            _ => (0..n).map(|s| payment_bars(market, s, columns)).collect(),
        };
        let delist_bars = (p.delisted_at.iter().enumerate())
            .map(|(s, &at)| {
                let ts = &market.bars(s).ts;
                let bar = ts.partition_point(|&x| x < at);
                if ts.get(bar) == Some(&at) {
                    bar
                } else {
                    usize::MAX
                }
            })
            .collect();
        Driver {
            delist_bars,
            p,
            lanes,
            calendar: Calendar::new(ticks),
            timeline: market.timeline(),
            at_close,
            longs_affordable,
            parked: ParkedPositions::new(n),
            fresh: false,
            marks_positive: market.marks_positive(),
            payment_bars,
            exposed: false,
            due: Vec::with_capacity(n),
            touched: Vec::with_capacity(n),
            expiring: false,
        }
    }

    /// Put `symbol`'s event, its bar `bar`, in the bucket of tick `tick` (its own tick or
    /// an earlier one: it is moved on when that tick comes), seen from tick `now`.
    fn schedule(&mut self, symbol: usize, bar: usize, tick: usize, now: usize) {
        let tick = self.calendar.reach(now, tick);
        let lane = &mut self.lanes[symbol];
        lane.event = bar;
        lane.link = self.calendar.push(tick, symbol as u32);
        // The run reads the tick's time first when it comes, after a jump over quiet
        // ticks whose times it does not read (a wait for memory otherwise).
        prefetch_far(self.timeline, tick);
    }

    fn run(mut self, market: &'m Market, strategy: &mut SignalStrategy<'_>) -> Result<()> {
        let timeline = market.timeline();
        self.expiring = strategy.expiring();
        for s in 0..market.symbol_count() {
            let ts = &market.bars(s).ts[..];
            let first = ts.partition_point(|&x| x < strategy.rules.trade_start);
            strategy.skip_to(s, first);
            let bar = strategy.next_signal(s);
            if bar < ts.len() {
                let tick = timeline.partition_point(|&x| x < ts[bar]);
                self.schedule(s, bar, tick, 0);
            }
        }
        let every_bar = self.p.config.record_every_bar;
        let mut day_ends = DayEnds::new(timeline, self.p.session_end);
        let mut day_end = day_ends.from(0);
        // The first tick the account is open at: ticks before it are not counted.
        let opens = timeline.partition_point(|&x| x < self.p.account_opens);
        let mut t = 0;
        while let Some(&now) = timeline.get(t) {
            let ends_day = t == day_end;
            if self.calendar.is_busy(t) {
                self.take_due(t, now);
            }
            if self.due.is_empty() && !ends_day && !every_bar && !self.exposed {
                // Nothing to run at this tick: nor at the ones before the next that has
                // symbols due or ends a day, which the run goes straight to.
                t = self.calendar.next_busy(t + 1, day_end.min(timeline.len()));
                continue;
            }
            *self.p.now = now;
            self.parked.tick = t;
            self.p.book.expire_before(now);
            self.fresh = false;
            if !self.due.is_empty() {
                let fills = self.p.book.fills().len();
                // Dividends at the opens, before the fills; funding at the closes, after.
                let mut changed = false;
                if let Some(column) = self.p.config.dividends {
                    changed |= self.settle(market, column, Payment::Dividend);
                }
                self.market_phase(market, strategy, now);
                // Its fills and payments may have exposed the account (most visits do
                // neither).
                changed |= self.p.book.fills().len() != fills;
                if let Some(column) = self.p.config.funding {
                    changed |= self.settle(market, column, Payment::Funding);
                }
                if changed {
                    self.exposed = self.exposure();
                }
            }
            if self.exposed {
                self.check_margin(market, now);
            }
            if !self.due.is_empty() {
                let mut desk = SparseDesk {
                    market,
                    book: &mut *self.p.book,
                    portfolio: &mut *self.p.portfolio,
                    parked: &mut self.parked,
                    fresh: &mut self.fresh,
                    studies: self.p.studies,
                    now,
                    symbol: 0,
                    bar: 0,
                    close: f64::NAN,
                };
                for &key in &self.due {
                    let s = due_symbol(key);
                    let i = self.lanes[s].event;
                    // The rules read nothing at a bar without a signal (a bar run for
                    // its orders): they are called at signal bars only, or at every bar
                    // visited when a time exit may fall on it.
                    if i < strategy.next_signal(s) && !strategy.times_exits() {
                        continue;
                    }
                    (desk.symbol, desk.bar) = (s, i);
                    desk.close = self.lanes[s].bars.close[i];
                    strategy.on_symbol_bar(&mut desk, s, i)?;
                }
            }
            self.barrier(market, now, ends_day);
            if ends_day {
                day_end = day_ends.from(t + 1);
            }
            for k in 0..self.due.len() {
                let s = due_symbol(self.due[k]);
                self.reschedule(strategy, s, t);
            }
            self.due.clear();
            self.exposed = self.exposure();
            // (The ticks skipped until the next one run end as this one did.)
            let held = self.p.portfolio.holds_any();
            if t >= opens {
                self.p.equity.tick_ended((t - opens) as u64, held);
            } else {
                self.p.equity.held_before_opening(held);
            }
            t += 1;
        }
        self.p
            .equity
            .ticks_were(timeline.len().saturating_sub(opens) as u64);
        // Back into the account, marked at their last bars (their lots see them all).
        while let Some(symbol) = self.parked.list.last().map(|p| p.symbol) {
            self.unpark(symbol, self.lanes[symbol].bars.len());
        }
        // A symbol flat with an order working through its last bar (a limit entry that
        // never filled) was visited only where the order could match; the engine's loop
        // marked it at each of those bars, the last one's close last. (Its size is 0: its
        // term of the account is 0 at any mark.)
        for s in 0..self.lanes.len() {
            let Lane { bars, .. } = self.lanes[s];
            let (book, Some(last)) = (&*self.p.book, bars.ts.len().checked_sub(1)) else {
                continue;
            };
            // (One placed at the last bar has not worked through any.)
            let through = |o: &crate::orders::Order| {
                o.live && book.orders().record(o.id).placed_ts < bars.ts[last]
            };
            if self.p.portfolio.position(s).size == 0.0 && book.working(s).iter().any(through) {
                self.p.portfolio.mark(s, bars.close[last]);
            }
        }
        self.p.portfolio.set_parked_sums(Money::ZERO, Money::ZERO);
        Ok(())
    }

    /// The symbols due at tick `t` (time `now`), in the market's call order; those in its
    /// bucket whose bar comes later move on to their own tick.
    fn take_due(&mut self, t: usize, now: i64) {
        let mut s = self.calendar.take(t);
        while s != NONE {
            let symbol = s as usize;
            let lane = &mut self.lanes[symbol];
            s = std::mem::replace(&mut lane.link, NONE);
            let (bar, at) = (lane.event, lane.bars.ts[lane.event]);
            if at == now {
                self.due.push(due_key(lane.rank, symbol));
            } else {
                let tick = gallop(self.timeline, t + 1, |x| x < at);
                self.schedule(symbol, bar, tick, t);
            }
        }
        sort_due(&mut self.due);
    }

    /// The engine's settlement of payments (`Engine::settle`) for the due symbols: a
    /// position held at its bar, parked or not, settles the bar's payment in extra column
    /// `column` if it has one. Whether any was settled.
    fn settle(&mut self, market: &Market, column: usize, kind: Payment) -> bool {
        let mut paid = false;
        for k in 0..self.due.len() {
            let s = due_symbol(self.due[k]);
            let size = self.p.portfolio.position(s).size;
            let bars = market.bars(s);
            if let (true, Some(values)) = (size != 0.0, &bars.extra[column]) {
                let i = self.lanes[s].event;
                if let Some(value) = Payment::at(values[i]) {
                    self.p.portfolio.settle(kind, s, size, bars.close[i], value);
                    paid = true;
                }
            }
        }
        paid
    }

    /// Whether the account may be margin called at some marks before cash or a position
    /// changes (`Portfolio::margin_exposed`, the parked positions counted).
    fn exposure(&self) -> bool {
        let p = &*self.p.portfolio;
        // (The usual run, long with cash to spare, answers on the first three.)
        (p.margin_exposed() || self.parked.shorts > 0 || !self.marks_positive) && p.holds_any()
    }

    /// The engine's margin call (`Engine::check_margin`): the account read at this tick's
    /// closes, the parked positions' included.
    fn check_margin(&mut self, market: &Market, now: i64) {
        self.read_parked(market, now, false);
        let p = &*self.p.portfolio;
        if self.p.config.margin_called(p) {
            self.liquidate(market, now);
        }
    }

    /// Close every position at its latest close and cancel every working order, as the
    /// engine's margin call does: the parked positions first come back into the account
    /// at their latest bars (their lots having seen the bars in between).
    #[inline(never)]
    fn liquidate(&mut self, market: &Market, now: i64) {
        // Each symbol's bars up to now (the one at this tick included).
        let seen = |lane: &Lane<'_>| lane.bars.ts.partition_point(|&x| x <= now);
        while let Some(symbol) = self.parked.list.last().map(|p| p.symbol) {
            let bar = seen(&self.lanes[symbol]);
            self.unpark(symbol, bar);
        }
        self.p.portfolio.set_parked_sums(Money::ZERO, Money::ZERO);
        self.fresh = false;
        let p = &*self.p.portfolio;
        let held: Vec<(usize, usize, f64)> = (market.call_order().iter())
            .filter(|&&s| p.position(s).size != 0.0)
            .map(|&s| {
                (
                    s,
                    seen(&self.lanes[s]).saturating_sub(1),
                    p.position(s).mark,
                )
            })
            .collect();
        let rules = Rules {
            config: self.p.config,
            studies: self.p.studies,
        };
        self.p.book.liquidate(now, &held, self.p.portfolio, rules);
    }

    /// Hand the parked positions' sums at time `now` to the portfolio, before something
    /// reads the account: at the close, or at the open (positions with a bar now marked
    /// there) for the batch.
    fn read_parked(&mut self, market: &Market, now: i64, open: bool) {
        if open || !self.fresh {
            read_parked(market, &mut self.parked, self.p.portfolio, now, open);
            self.fresh = !open;
        }
    }

    /// Bring `symbol` back into the account before its bar `bar` (its number of bars at
    /// the end of the run): marked at the close before it, its lots having seen the bars
    /// in between.
    fn unpark(&mut self, symbol: usize, bar: usize) {
        self.take_out(symbol, bar);
        let close = self.lanes[symbol].bars.close[bar - 1];
        self.p.portfolio.unpark(symbol, close);
    }

    /// Take `symbol` out of the parked positions at its bar `bar`, its lots having seen
    /// the bars before `seen_to`, without marking it: its term stays out of the account's
    /// sums until its next mark, which must come before anything reads them (the market
    /// phase marks every symbol it touches, at the open when the batch reads the account
    /// and at the close always). An amount the mark at the close before `bar` would find
    /// beyond the exact range is still reported as that mark would.
    #[inline]
    fn take_out(&mut self, symbol: usize, seen_to: usize) {
        let unseen = self.parked.remove(symbol);
        let b = self.lanes[symbol].bars;
        let (low, high) = (&b.low[unseen..seen_to], &b.high[unseen..seen_to]);
        if let Some((low, high)) = range(low, high) {
            self.p.portfolio.observe_range(symbol, low, high);
        }
        self.fresh = false;
    }

    /// The engine's market phase for the due symbols (see `Engine::run_window`): the
    /// bars enter the book's batch, positions are marked to the open when it matches
    /// orders, the batch executes, positions are marked to the close.
    ///
    /// Marks nothing reads are left out, as the results cannot tell: a position taken
    /// out of the parked ones is marked at the open or the close of this bar rather than
    /// first at the close before it, and positions are marked at the open only when the
    /// batch reads the account (it can execute an entry: only an entry can increase a
    /// position, the one fill that reads equity). A reduction books the same cash, lots
    /// and trades whatever the mark, and the close mark then sets every touched term.
    /// An amount beyond the exact range at a skipped mark is still reported.
    fn market_phase(&mut self, market: &'m Market, strategy: &SignalStrategy<'_>, now: i64) {
        self.touched.clear();
        let mut entries = false;
        for k in 0..self.due.len() {
            let s = due_symbol(self.due[k]);
            let (b, i) = (self.lanes[s].bars, self.lanes[s].event);
            // A position with no orders to match: its lots see this bar with the skipped
            // ones (nothing executes in between).
            let working = self.p.book.working(s);
            let idle = working.is_empty();
            let parked = self.parked.slot[s] != NONE;
            if idle {
                if parked && !self.at_close {
                    // Its signal bar, with no orders to match: it stays parked through it
                    // (the rules read its size; its term at this close is in the parked
                    // sums). Not when orders fill at the close: the barrier marks and
                    // fills it there.
                    continue;
                }
                if !parked && self.p.portfolio.position(s).size == 0.0 {
                    continue;
                }
            }
            let prices = Bar {
                open: b.open[i],
                high: b.high[i],
                low: b.low[i],
                close: b.close[i],
            };
            if !idle {
                entries |= working.iter().any(|o| o.live && o.role == Role::Entry);
                if self.p.book.reads_volume() {
                    self.p.book.allow_volume(s, i, market.bars(s).volume[i]);
                }
                self.p.book.open_bar(s, i, b.ts[i], prices);
            }
            if parked {
                self.take_out(s, if idle { i + 1 } else { i });
                let size = self.p.portfolio.position(s).size;
                if !Money::in_range(size * b.close[i - 1]) {
                    self.p.portfolio.mark(s, b.close[i - 1]);
                }
            }
            self.touched.push(Touched {
                symbol: s,
                bar: i,
                prices,
                seen: parked && idle,
            });
        }
        if self.touched.is_empty() {
            return;
        }
        let matching = self.p.book.is_matching();
        let reads = matching && entries;
        for t in &self.touched {
            let open = t.prices.open;
            let size = self.p.portfolio.position(t.symbol).size;
            if reads || !Money::in_range(size * open) {
                self.p.portfolio.mark(t.symbol, open);
            }
        }
        if reads {
            // With nothing parked the sums are nothing, read at once; else a batch that
            // surely affords every buy needs no read of the parked positions.
            if !self.parked.list.is_empty() && self.surely_affordable(market) {
                // Any sums of long positions do (see `surely_affordable`): the last ones.
                let value = self.parked.value;
                self.p.portfolio.set_parked_sums(value, value);
            } else {
                self.read_parked(market, now, true);
            }
        }
        if matching {
            let rules = Rules {
                config: self.p.config,
                studies: self.p.studies,
            };
            self.p.book.execute_batch(self.p.portfolio, rules);
        }
        for k in 0..self.touched.len() {
            let Touched {
                symbol: s,
                bar: i,
                prices,
                seen,
            } = self.touched[k];
            let position = self.p.portfolio.position(s);
            let (size, lots) = (position.size, !position.lots.is_empty());
            // A position that nothing can change before the next bar or more (no orders,
            // no signal on this bar nor the next) is parked at this close at once rather
            // than marked there first (`reschedule` would park it right after). Its lots
            // see this bar with the parked ones when it comes back, in one fold.
            let next = self.rules_next(strategy, s, 0);
            if size != 0.0 && i < next && next > i + 1 && self.p.book.working(s).is_empty() {
                self.park(s, i, if seen { i + 1 } else { i }, next);
            } else {
                if !seen && lots {
                    self.p.portfolio.observe_range(s, prices.low, prices.high);
                }
                self.p.portfolio.mark(s, prices.close);
            }
        }
        self.fresh = false;
    }

    /// Park `symbol`'s position at the close of its bar `i`, taking its term as booked
    /// (at any mark) out of the account's sums; its lots have seen the bars before
    /// `unseen` (`i + 1`, or `i`: they see that bar too when the position comes back).
    /// Its next event is at its bar `until` (or its number of bars).
    #[inline]
    fn park(&mut self, symbol: usize, i: usize, unseen: usize, until: usize) {
        let b = self.lanes[symbol].bars;
        let position = self.p.portfolio.position(symbol);
        let (size, multiplier) = (position.size, position.multiplier);
        self.p.portfolio.park(symbol);
        let value = term(size, b.close[i], multiplier).unwrap_or_else(|amount| {
            self.p.portfolio.flag_out_of_range(symbol, amount);
            Money::ZERO
        });
        self.parked
            .add(symbol, (size, multiplier), b, i, value, unseen);
        prefetch_bar(&b, i + 1);
        prefetch_bar(&b, i + 1 + PREFETCH_AHEAD / 2);
        // The lows and highs `take_out` folds when it comes back (up to `RANGE_AHEAD`
        // bars of them, a line of eight at a time): read once each, and cold otherwise.
        // The first two lines were fetched just above.
        for k in (i + 1 + PREFETCH_AHEAD..until.min(i + 1 + RANGE_AHEAD)).step_by(8) {
            prefetch_far(b.low, k);
            prefetch_far(b.high, k);
        }
        self.fresh = false;
    }

    /// Whether every increase the coming batch can execute surely passes the margin check
    /// (`Book::execute_increase`) whatever the parked positions are worth at the open, so
    /// their sums need not be read for it. Never with an order sized at its fill (its size
    /// reads the equity). It is so when every position is long or flat
    /// and stays so (no short counted in the account nor parked; the batch's symbols hold
    /// no short, and its only orders that can add are market buys), marks are positive,
    /// leverage is at least 1, and the cash now covers every buy of the batch (at its slipped
    /// open, with its commission) plus, for every other order, the most a sale of a long
    /// can cost beyond its proceeds (`Commission::most_beyond_a_sale`: the fixed part or
    /// the minimum; no answer with a fee per unit), with a margin for rounding:
    /// - with longs only, gross exposure is the account's value exactly (Σ |size| × mark =
    ///   Σ size × mark, term by term), so after a buy gross − equity × leverage × (1 +
    ///   1e-12) ≤ −(cash after the buy) − 1e-12 × equity: below zero while cash stays at or
    ///   above zero, and the parked positions (worth P ≥ 0 at any time: long, marks
    ///   positive) only add to both sides, which is why any P ≥ 0 gives the same answer;
    /// - the rounding of these f64 sums is a few units of 1e-16 of their size, far inside
    ///   the 1e-12 of equity and the 1e-9 of cash margin asked here.
    fn surely_affordable(&self, market: &Market) -> bool {
        let config = self.p.config;
        let portfolio = &*self.p.portfolio;
        if !self.longs_affordable
            || self.p.book.sizes_at_fill()
            || self.parked.shorts > 0
            || portfolio.has_short_terms()
            || !market.marks_positive()
        {
            return false;
        }
        let Some(beyond_a_sale) = config.most_beyond_a_sale() else {
            return false;
        };
        let mut spend = 0.0;
        for t in &self.touched {
            let s = t.symbol;
            if portfolio.position(s).size < 0.0 {
                return false;
            }
            let open = t.prices.open;
            for o in self.p.book.working(s).iter().filter(|o| o.live) {
                match o.role {
                    Role::Entry if o.side == Side::Buy && o.is_market() => {
                        let price = slipped(o, 1.0, open, config.slippage_of(s));
                        // Its bracket legs may sell in this bar too.
                        let legs = [
                            o.stop_loss.is_some() || o.stop_loss_trail.is_some(),
                            o.take_profit.is_some(),
                        ];
                        let legs = legs.into_iter().filter(|&x| x).count() as f64;
                        spend += worth(o.size, price, config.multiplier(s))
                            + config.fee(s, o.size, price, false);
                        spend += legs * beyond_a_sale;
                    }
                    Role::Entry => return false,
                    _ => spend += beyond_a_sale,
                }
            }
        }
        let cash = portfolio.cash();
        cash - spend >= 1e-9 * (cash.abs() + spend)
    }

    /// The engine's barrier (see `Engine::barrier`): orders placed at this tick join the
    /// book (market orders fill at this close under trade-on-close), carrying costs at a
    /// day's end, the equity sample.
    fn barrier(&mut self, market: &Market, now: i64, ends_day: bool) {
        let at_close = self.at_close;
        let pending = self.p.book.has_pending();
        let sample = self.p.config.record_every_bar || ends_day;
        if (pending && at_close) || sample {
            self.read_parked(market, now, false);
        }
        if pending {
            let rules = Rules {
                config: self.p.config,
                studies: self.p.studies,
            };
            let lanes = &self.lanes;
            // Only due symbols place orders, so each has its bar at this tick; they are
            // eligible from any later bar (no `order_delay` here: the engine's loop runs
            // those).
            self.p.book.admit_pending(
                now,
                self.p.portfolio,
                rules,
                |_| 0,
                |s| {
                    if !at_close {
                        return None;
                    }
                    let (i, b) = (lanes[s].event, lanes[s].bars);
                    let volume = || market.bars(s).volume[i];
                    (b.ts.get(i) == Some(&now)).then(|| (i, b.close[i], volume()))
                },
            );
        }
        if !self.delist_bars.is_empty() && self.delist_due(now) && sample {
            self.read_parked(market, now, false);
        }
        if ends_day && now >= self.p.account_opens {
            let own_borrow = &self.p.config.borrow_rates;
            let rates = &self.p.config.carry;
            self.p.portfolio.accrue_carry(now, rates, own_borrow);
            // The parked shorts' shares of the borrow fee (their terms were read above).
            if rates.borrow != 0.0 && self.parked.shorts > 0 {
                for p in self.parked.list.iter().filter(|p| p.size < 0.0) {
                    self.p
                        .portfolio
                        .parked_borrow_share(p.symbol, p.value, rates);
                }
            }
            self.p.book.end_day(now);
        }
        if sample {
            let p = &*self.p.portfolio;
            self.p
                .equity
                .push(now, p.equity(), p.cash(), p.gross_exposure());
        }
    }

    /// The engine's delistings at the barrier (`Engine::delist_due`) for the due symbols
    /// at their last bar (time `now`): a parked position back in the account first, at
    /// that bar (its lots having seen it). Whether the account changed (its parked sums
    /// are then read again).
    fn delist_due(&mut self, now: i64) -> bool {
        let mut changed = false;
        for k in 0..self.due.len() {
            let s = due_symbol(self.due[k]);
            let i = self.lanes[s].event;
            let holds = self.p.portfolio.position(s).size != 0.0 || self.p.book.has_working(s);
            if self.delist_bars[s] != i || !holds {
                continue;
            }
            debug_assert_eq!(self.lanes[s].bars.ts[i], now);
            if self.parked.slot[s] != NONE {
                self.unpark(s, i + 1);
            }
            let rules = Rules {
                config: self.p.config,
                studies: self.p.studies,
            };
            let close = self.lanes[s].bars.close[i];
            self.p
                .book
                .delist(now, (s, i, close), self.p.portfolio, rules);
            changed = true;
            self.fresh = false;
        }
        changed
    }

    /// After symbol `s`'s bar at tick `t`: find its next event, and park its position
    /// until then.
    fn reschedule(&mut self, strategy: &SignalStrategy<'_>, s: usize, t: usize) {
        // Its columns are read again where needed (no copy kept across the calls).
        let (i, end) = (self.lanes[s].event, self.lanes[s].bars.len());
        // (A time exit due at or before this bar acted here: its close is working.)
        let mut next = self.rules_next(strategy, s, i + 1);
        if let Some(bar) = self.next_match(s, i, next) {
            next = bar;
        }
        // A held position settles its funding or dividend at the next bar with one.
        if let Some(bars) = self.payment_bars.get(s) {
            if self.p.portfolio.position(s).size != 0.0 {
                let k = bars.partition_point(|&b| b <= i);
                if let Some(&bar) = bars.get(k) {
                    next = next.min(bar);
                }
            }
        }
        // A symbol that stops trading has its position closed and its orders cancelled
        // at its last bar.
        if let Some(&bar) = self.delist_bars.get(s) {
            let holds = self.p.portfolio.position(s).size != 0.0 || self.p.book.has_working(s);
            if bar > i && bar != usize::MAX && holds {
                next = next.min(bar);
            }
        }
        if next > i + 1 {
            // A position with bars before its next event is parked over them; without
            // any, its term in the account stays right until then.
            let size = self.p.portfolio.position(s).size;
            if size != 0.0 && self.parked.slot[s] == NONE {
                self.park(s, i, i + 1, next);
            }
        }
        if next < end {
            // Its bar then into cache, and the bar after it, where a signal bar's orders
            // fill (from its open, high and low: lines nothing at the signal bar reads,
            // and one bar in eight starts a line of its own).
            prefetch_bar(&self.lanes[s].bars, next);
            prefetch_bar(&self.lanes[s].bars, next + 1);
            // Each bar of `s` has a tick of its own, so `next` comes `next - i` ticks
            // after `i` at the earliest.
            self.schedule(s, next, t + (next - i), t);
        } else {
            self.lanes[s].event = usize::MAX;
        }
    }

    /// The bar at which the rules next act on `s` (its number of bars: never): its next
    /// signal bar, or its position's time exit if that is sooner and at or after `from`.
    #[inline]
    fn rules_next(&self, strategy: &SignalStrategy<'_>, s: usize, from: usize) -> usize {
        let signal = strategy.next_signal(s).min(self.lanes[s].bars.len());
        if !strategy.times_exits() {
            return signal; // (the usual run: nothing more to read)
        }
        let position = self.p.portfolio.position(s);
        strategy
            .deadline(s, || position.opened_at())
            .filter(|&bar| bar >= from)
            .map_or(signal, |bar| bar.min(signal))
    }

    /// The first bar of `s` after `i` and before `until` at which one of its working
    /// orders could match (`None`: none before `until`). Market orders (and anything
    /// that moves with each bar: trailing stops, stop-limits) make it the next bar; stops
    /// and limits are looked for in the bars' ranges, loosely (`<=`/`>=` at the open and
    /// at the extremes): a bar found that does not match is only run for nothing. An
    /// order's last bar (one working a number of bars) is one too: it expires there.
    fn next_match(&self, s: usize, i: usize, until: usize) -> Option<usize> {
        let working = self.p.book.working(s);
        if working.is_empty() || until <= i + 1 {
            return None;
        }
        // A bar matches a sell stop or a buy limit at or above its low side `below`, a buy
        // stop or a sell limit at or below its high side `above`.
        let (mut below, mut above) = (f64::NEG_INFINITY, f64::INFINITY);
        for o in working.iter().filter(|o| o.live) {
            let price = match (o.stop, o.limit) {
                _ if o.trail.is_some() || o.triggered => return Some(i + 1),
                (None, None) | (Some(_), Some(_)) => return Some(i + 1),
                (Some(p), None) | (None, Some(p)) => p,
            };
            let low_side = (o.side == Side::Sell) == o.stop.is_some();
            if low_side {
                below = below.max(price);
            } else {
                above = above.min(price);
            }
        }
        let expires = match self.expiring {
            true => (working.iter().filter(|o| o.live))
                .filter_map(|o| o.last_bar)
                .filter(|&last| last > i && last < until)
                .min(),
            false => None,
        };
        let until = expires.map_or(until, |last| last + 1);
        let b = self.lanes[s].bars;
        let (from, to) = (i + 1, until.min(b.len()));
        let (open, low, high) = (&b.open[from..to], &b.low[from..to], &b.high[from..to]);
        (0..open.len())
            .find(|&k| open[k] <= below || low[k] <= below || open[k] >= above || high[k] >= above)
            .map(|k| i + 1 + k)
            .or(expires)
    }
}

/// A parked position: its term in the parked sums is size × the close of `bar`, its
/// latest bar at tick `tick` (when the account was last read, or it was parked).
struct Parked<'m> {
    symbol: usize,
    size: f64,
    /// Its symbol's multiplier (`Config::multipliers`).
    multiplier: f64,
    /// Its symbol's times and closes (read at each read of the account).
    ts: &'m [i64],
    close: &'m [f64],
    bar: usize,
    tick: usize,
    /// size × close of `bar` × multiplier, exact (its term of the account's value).
    value: Money,
    /// The first bar its lots have not seen (their excursions are brought up to date
    /// when it comes back).
    unseen: usize,
}

/// The parked positions and the exact sum of their terms of value.
#[derive(Default)]
struct ParkedPositions<'m> {
    list: Vec<Parked<'m>>,
    /// Per symbol, its place in `list` (`NONE`: not parked).
    slot: Vec<u32>,
    value: Money,
    /// How many of them are short.
    shorts: usize,
    /// The tick being run (its index in the timeline).
    tick: usize,
}

/// How far ahead of a parked position's latest bar its columns are fetched into cache:
/// the account is read at scattered ticks, so its bars are not a stream the hardware
/// follows, and each read would otherwise wait for memory.
const PREFETCH_AHEAD: usize = 16;

/// How far ahead of its latest bar a parked position's time and close are fetched at each
/// read of the account: the next line of each. Reads come every few bars (each entry's
/// size reads the account), so the next line is wanted soon; fetched two lines ahead, it
/// was more often gone again by its read (the 20 symbols' run 29.0-29.9 ms against
/// 30.1-30.5, three rounds).
const READ_AHEAD: usize = 8;

/// How many of a parked position's coming bars have their lows and highs fetched into
/// cache when it is parked (a position is parked a few dozen bars most often).
const RANGE_AHEAD: usize = 64;

/// The bars of symbol `s` with a payment in any of extra columns `columns` (a funding
/// rate, a dividend: not NaN, not 0).
fn payment_bars(market: &Market, s: usize, columns: [Option<usize>; 2]) -> Vec<usize> {
    let extra = &market.bars(s).extra;
    let paid: Vec<&[f64]> = (columns.iter().flatten())
        .filter_map(|&c| extra[c].as_deref())
        .collect();
    (0..market.bars(s).len())
        .filter(|&i| paid.iter().any(|v| Payment::at(v[i]).is_some()))
        .collect()
}

/// Fetch the bar `i` of `bars` into cache: its time and four prices.
#[inline(always)]
fn prefetch_bar(bars: &Columns<'_>, i: usize) {
    prefetch_far(bars.ts, i);
    prefetch_far(bars.open, i);
    prefetch_far(bars.high, i);
    prefetch_far(bars.low, i);
    prefetch_far(bars.close, i);
}

/// What `size` units at `price` are worth (`portfolio::worth`) in exact units, or the
/// amount when it is beyond the exact range.
#[inline]
fn term(size: f64, price: f64, multiplier: f64) -> std::result::Result<Money, f64> {
    let amount = worth(size, price, multiplier);
    Money::from_f64(amount).ok_or(amount)
}

impl<'m> ParkedPositions<'m> {
    fn new(symbols: usize) -> Self {
        ParkedPositions {
            slot: vec![NONE; symbols],
            ..Default::default()
        }
    }

    /// Add `symbol`'s position of `size` and multiplier, marked at the close of its bar `bar` (one of
    /// `bars`, not its last), whose term `value` left the account, its lots having seen
    /// the bars before `unseen`.
    fn add(
        &mut self,
        symbol: usize,
        (size, multiplier): (f64, f64),
        bars: Columns<'m>,
        bar: usize,
        value: Money,
        unseen: usize,
    ) {
        // `Parked::advance` reads a close at each bar it finds in the times.
        assert_eq!(bars.close.len(), bars.ts.len(), "a symbol's columns");
        self.slot[symbol] = self.list.len() as u32;
        self.list.push(Parked {
            symbol,
            size,
            multiplier,
            ts: bars.ts,
            close: bars.close,
            bar,
            tick: self.tick,
            value,
            unseen,
        });
        self.value += value;
        self.shorts += usize::from(size < 0.0);
    }

    /// Take `symbol` out (it is parked): returns the first bar its lots have not seen.
    fn remove(&mut self, symbol: usize) -> usize {
        let k = std::mem::replace(&mut self.slot[symbol], NONE) as usize;
        let parked = self.list.swap_remove(k);
        if let Some(moved) = self.list.get(k) {
            self.slot[moved.symbol] = k as u32;
        }
        self.value -= parked.value;
        self.shorts -= usize::from(parked.size < 0.0);
        parked.unseen
    }

    /// The sums at time `now`: each position marked at the close of its latest bar (at
    /// the open of its bar at `now` when `open`). An amount beyond the exact range is
    /// reported to `portfolio` (and counts as nothing, as the account does).
    fn sums_at(
        &mut self,
        market: &Market,
        now: i64,
        open: bool,
        portfolio: &mut Portfolio,
    ) -> (Money, Money) {
        // Σ |term| is Σ term less twice the shorts' terms (negative): the shorts are summed
        // apart, only when there are any.
        let t = self.tick;
        let mut value = Money::ZERO;
        for p in &mut self.list {
            if p.tick != t {
                p.advance(t, now, portfolio);
            }
            value += p.value;
        }
        let shorts = if self.shorts == 0 {
            Money::ZERO
        } else {
            self.list
                .iter()
                .filter(|p| p.size < 0.0)
                .map(|p| p.value)
                .sum()
        };
        let gross_of = |mut sum: Money, shorts: Money| {
            sum -= shorts;
            sum -= shorts;
            sum
        };
        self.value = value;
        if !open {
            return (value, gross_of(value, shorts));
        }
        // Positions with a bar now are marked at its open for the batch: their terms at the
        // open replace those at the close (exact sums: the same as summing them afresh).
        let (mut at_open, mut shorts_open) = (value, shorts);
        for p in &self.list {
            if p.ts[p.bar] != now {
                continue;
            }
            let b = market.bars(p.symbol);
            prefetch_far(&b.open, p.bar + PREFETCH_AHEAD);
            let term_open = term(p.size, b.open[p.bar], p.multiplier).unwrap_or_else(|amount| {
                portfolio.flag_out_of_range(p.symbol, amount);
                Money::ZERO
            });
            at_open -= p.value;
            at_open += term_open;
            if p.size < 0.0 {
                shorts_open -= p.value;
                shorts_open += term_open;
            }
        }
        (at_open, gross_of(at_open, shorts_open))
    }
}

impl Parked<'_> {
    /// Move on to the latest bar at tick `t` (time `now`), a later tick than `tick`, and
    /// take its term: size × that bar's close. Each bar of a symbol has a tick of its
    /// own, so that bar is at most `t - tick` bars on: that one when it is at `now` (the
    /// symbol has a bar now, the usual case), else a few bars back (as many as it lacks
    /// since), else found by galloping.
    #[inline]
    fn advance(&mut self, t: usize, now: i64, portfolio: &mut Portfolio) {
        let ts = self.ts;
        let guess = self.bar + (t - self.tick);
        self.tick = t;
        let bar = match ts.get(guess) {
            Some(&x) if x == now => guess,
            _ => {
                // ts[self.bar] is not after `now`: the steps back stop there at the latest.
                let mut k = guess.min(ts.len() - 1);
                let stop = k.saturating_sub(4).max(self.bar);
                while k > stop && ts[k] > now {
                    k -= 1;
                }
                if ts[k] > now {
                    k = gallop(ts, self.bar + 1, |x| x <= now) - 1;
                }
                k
            }
        };
        if bar == self.bar {
            return;
        }
        self.bar = bar;
        prefetch_far(ts, bar + READ_AHEAD);
        prefetch_far(self.close, bar + READ_AHEAD);
        // SAFETY: `bar` is an index of `ts` (found there), and `close` is as long as `ts`
        // (asserted where the position was parked).
        let close = unsafe { *self.close.get_unchecked(bar) };
        self.value = term(self.size, close, self.multiplier).unwrap_or_else(|amount| {
            portfolio.flag_out_of_range(self.symbol, amount);
            Money::ZERO
        });
    }
}

/// Hand the parked positions' sums at time `now` to `portfolio` (see `Driver::read_parked`).
#[inline]
fn read_parked(
    market: &Market,
    parked: &mut ParkedPositions<'_>,
    portfolio: &mut Portfolio,
    now: i64,
    open: bool,
) {
    let (value, gross) = if parked.list.is_empty() {
        (Money::ZERO, Money::ZERO)
    } else {
        parked.sums_at(market, now, open, portfolio)
    };
    portfolio.set_parked_sums(value, gross);
}

/// The lowest of `low` and the highest of `high` (`None` when empty), skipping NaNs as
/// `f64::min` (`max`) does. The lowest of the same prices is the same in any grouping and
/// with any price taken twice (prices are never ±0), so the columns are folded in vectors
/// of prices and the last vector or two close the fold (overlapping the prices before)
/// rather than a loop over the rest one price at a time.
fn range(low: &[f64], high: &[f64]) -> Option<(f64, f64)> {
    let n = low.len().min(high.len());
    if n < 2 {
        return (n == 1).then(|| (low[0], high[0])).map(|(l, h)| {
            // A lone NaN is skipped: the fold of nothing.
            (
                if l.is_nan() { f64::INFINITY } else { l },
                if h.is_nan() { f64::NEG_INFINITY } else { h },
            )
        });
    }
    #[cfg(target_arch = "x86_64")]
    {
        // A position's skipped bars are a few dozen most often: four prices at a time
        // where the processor has AVX (found at run time, a cached flag), two otherwise.
        if n >= 8 && std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the processor has AVX (checked just above), and n >= 8.
            return Some(unsafe { range_avx(&low[..n], &high[..n]) });
        }
        Some(range_sse2(&low[..n], &high[..n]))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let lo = low[..n]
            .iter()
            .fold(f64::INFINITY, |a, &b| if b < a { b } else { a });
        let hi = high[..n]
            .iter()
            .fold(f64::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        Some((lo, hi))
    }
}

/// `range` of two columns of the same length, at least 2, two prices at a time.
#[cfg(target_arch = "x86_64")]
fn range_sse2(low: &[f64], high: &[f64]) -> (f64, f64) {
    use std::arch::x86_64::{
        _mm_cvtsd_f64, _mm_loadu_pd, _mm_max_pd, _mm_min_pd, _mm_set1_pd, _mm_unpackhi_pd,
    };
    let n = low.len();
    assert!(n >= 2 && high.len() == n);
    // SAFETY: SSE2 is part of every x86_64 processor, and every pair loaded starts at
    // most at n - 2 (unaligned loads of two values in bounds). `_mm_min_pd(x, acc)` is
    // `if x < acc { x } else { acc }`: a NaN price leaves the lane as it was.
    unsafe {
        let (l, h) = (low.as_ptr(), high.as_ptr());
        let mut lo = [_mm_set1_pd(f64::INFINITY); 2];
        let mut hi = [_mm_set1_pd(f64::NEG_INFINITY); 2];
        let mut k = 0;
        while k + 4 <= n {
            lo[0] = _mm_min_pd(_mm_loadu_pd(l.add(k)), lo[0]);
            lo[1] = _mm_min_pd(_mm_loadu_pd(l.add(k + 2)), lo[1]);
            hi[0] = _mm_max_pd(_mm_loadu_pd(h.add(k)), hi[0]);
            hi[1] = _mm_max_pd(_mm_loadu_pd(h.add(k + 2)), hi[1]);
            k += 4;
        }
        let rest = n - k;
        if rest > 0 {
            lo[0] = _mm_min_pd(_mm_loadu_pd(l.add(n - 2)), lo[0]);
            hi[0] = _mm_max_pd(_mm_loadu_pd(h.add(n - 2)), hi[0]);
        }
        if rest == 3 {
            lo[1] = _mm_min_pd(_mm_loadu_pd(l.add(n - 3)), lo[1]);
            hi[1] = _mm_max_pd(_mm_loadu_pd(h.add(n - 3)), hi[1]);
        }
        // The lanes hold no NaN (each starts infinite and keeps a price or itself).
        let lo = _mm_min_pd(lo[0], lo[1]);
        let hi = _mm_max_pd(hi[0], hi[1]);
        let low = _mm_cvtsd_f64(_mm_min_pd(_mm_unpackhi_pd(lo, lo), lo));
        let high = _mm_cvtsd_f64(_mm_max_pd(_mm_unpackhi_pd(hi, hi), hi));
        (low, high)
    }
}

/// `range` of two columns of the same length, at least 8, four prices at a time (eight
/// per step, the last four or eight closing the fold).
///
/// # Safety
/// The processor must have AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn range_avx(low: &[f64], high: &[f64]) -> (f64, f64) {
    use std::arch::x86_64::{
        _mm256_castpd256_pd128, _mm256_extractf128_pd, _mm256_loadu_pd, _mm256_max_pd,
        _mm256_min_pd, _mm256_set1_pd, _mm_cvtsd_f64, _mm_max_pd, _mm_min_pd, _mm_unpackhi_pd,
    };
    let n = low.len();
    assert!(n >= 8 && high.len() == n);
    // SAFETY: every four loaded start at most at n - 4 (unaligned loads in bounds); as
    // with two, `_mm256_min_pd(x, acc)` leaves a lane as it was for a NaN price.
    unsafe {
        let (l, h) = (low.as_ptr(), high.as_ptr());
        let (mut lo0, mut lo1) = (_mm256_set1_pd(f64::INFINITY), _mm256_set1_pd(f64::INFINITY));
        let (mut hi0, mut hi1) = (
            _mm256_set1_pd(f64::NEG_INFINITY),
            _mm256_set1_pd(f64::NEG_INFINITY),
        );
        let mut k = 0;
        while k + 8 <= n {
            lo0 = _mm256_min_pd(_mm256_loadu_pd(l.add(k)), lo0);
            lo1 = _mm256_min_pd(_mm256_loadu_pd(l.add(k + 4)), lo1);
            hi0 = _mm256_max_pd(_mm256_loadu_pd(h.add(k)), hi0);
            hi1 = _mm256_max_pd(_mm256_loadu_pd(h.add(k + 4)), hi1);
            k += 8;
        }
        let rest = n - k;
        if rest > 0 {
            lo0 = _mm256_min_pd(_mm256_loadu_pd(l.add(n - 4)), lo0);
            hi0 = _mm256_max_pd(_mm256_loadu_pd(h.add(n - 4)), hi0);
        }
        if rest > 4 {
            lo1 = _mm256_min_pd(_mm256_loadu_pd(l.add(n - 8)), lo1);
            hi1 = _mm256_max_pd(_mm256_loadu_pd(h.add(n - 8)), hi1);
        }
        // The lanes hold no NaN (each starts infinite and keeps a price or itself).
        let lo = _mm256_min_pd(lo0, lo1);
        let hi = _mm256_max_pd(hi0, hi1);
        let lo = _mm_min_pd(_mm256_castpd256_pd128(lo), _mm256_extractf128_pd::<1>(lo));
        let hi = _mm_max_pd(_mm256_castpd256_pd128(hi), _mm256_extractf128_pd::<1>(hi));
        let low = _mm_cvtsd_f64(_mm_min_pd(_mm_unpackhi_pd(lo, lo), lo));
        let high = _mm_cvtsd_f64(_mm_max_pd(_mm_unpackhi_pd(hi, hi), hi));
        (low, high)
    }
}

/// The desk of one due symbol at its bar: the book and the portfolio as the engine's tick
/// context shows them (the parked positions' sums handed over before equity is read).
struct SparseDesk<'d, 'm> {
    market: &'d Market,
    book: &'d mut Book,
    portfolio: &'d mut Portfolio,
    parked: &'d mut ParkedPositions<'m>,
    fresh: &'d mut bool,
    studies: &'d Studies,
    now: i64,
    /// The symbol (the one the rules ask about) and its bar at this tick, and that bar's
    /// close.
    symbol: usize,
    bar: usize,
    close: f64,
}

impl Desk for SparseDesk<'_, '_> {
    #[inline]
    fn now(&self) -> i64 {
        self.now
    }
    #[inline]
    fn held(&self, symbol: usize) -> f64 {
        self.portfolio.position(symbol).size
    }
    #[inline]
    fn multiplier(&self, symbol: usize) -> f64 {
        self.portfolio.position(symbol).multiplier
    }
    #[inline]
    fn opened_at(&self, symbol: usize) -> Option<usize> {
        self.portfolio.position(symbol).opened_at()
    }
    #[inline]
    fn price(&self, symbol: usize) -> f64 {
        debug_assert_eq!(symbol, self.symbol);
        self.close
    }
    // (Always: left to itself the compiler stopped inlining it once the rules grew, and
    // the driver's code around it came out slower.)
    #[inline(always)]
    fn equity(&mut self) -> f64 {
        if !*self.fresh {
            read_parked(self.market, self.parked, self.portfolio, self.now, false);
            *self.fresh = true;
        }
        self.portfolio.equity()
    }
    #[inline]
    fn submit(&mut self, req: OrderRequest) -> Result<u64> {
        let s = req.symbol;
        let placing = Placing {
            name: self.market.name(s),
            price: self.price(s),
            now: self.now,
            next_bar: self.bar + 1,
            symbol: s,
            bar: Some(self.bar),
            studies: self.studies,
        };
        self.book.submit(req, &placing)
    }
    fn size_at_fill(&mut self, id: u64, share: ShareAtFill) {
        self.book.size_at_fill(id, share);
    }
    #[inline]
    fn close_portion(&mut self, symbol: usize, portion: f64) -> Result<Option<u64>> {
        let held = self.held(symbol);
        self.book.close_position(symbol, held, portion, self.now)
    }
    fn cancel_limit_entries(&mut self, symbol: usize, long: bool, short: bool) {
        for id in limit_entries(self.book.working(symbol).iter(), long, short) {
            self.book.cancel(id, self.now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{due_key, due_symbol, range, sort_due, term, Calendar, Parked, CALENDAR_TICKS};
    #[cfg(target_arch = "x86_64")]
    use super::{range_avx, range_sse2};
    use crate::portfolio::Portfolio;
    use crate::test_draws::draws;

    #[test]
    fn a_parked_position_advances_to_its_latest_bar_and_takes_its_term() {
        // Symbols with bars at some ticks of a timeline (every one, most, few: gaps of any
        // length), read at rising ticks a few or many apart: the bar found is the last
        // one at or before the tick (the plain search), the term size x its close.
        let mut draw = draws(0x9E37_79B9_7F4A_7C15);
        let mut portfolio = Portfolio::new(0.0, 1);
        for case in 0..300 {
            let ticks = 2 + (draw() % 300) as usize;
            let timeline: Vec<i64> = (0..ticks as i64).map(|k| 1_000 + 7 * k).collect();
            let keep = [1000, 950, 500, 100][case % 4];
            let mut ts: Vec<i64> = timeline
                .iter()
                .copied()
                .filter(|_| draw() % 1000 < keep)
                .collect();
            if ts.len() < 2 {
                ts = timeline[..2].to_vec();
            }
            let close: Vec<f64> = (0..ts.len())
                .map(|_| 1.0 + (draw() % 10_000) as f64 / 7.0)
                .collect();
            let size = [3.5, -0.25, 1e-3][case % 3];
            let multiplier = [1.0, 50.0, 0.1, 12.5][case % 4];
            // Parked at one of its bars (not its last), at that bar's tick.
            let bar = (draw() % (ts.len() as u64 - 1)) as usize;
            let mut tick = timeline.partition_point(|&x| x < ts[bar]);
            let mut p = Parked {
                symbol: 0,
                size,
                multiplier,
                ts: &ts,
                close: &close,
                bar,
                tick,
                value: term(size, close[bar], multiplier).unwrap(),
                unseen: bar + 1,
            };
            loop {
                tick += 1 + (draw() % [2, 6, 40][case % 3]) as usize;
                if tick >= ticks {
                    break;
                }
                let now = timeline[tick];
                p.advance(tick, now, &mut portfolio);
                let latest = ts.partition_point(|&x| x <= now) - 1;
                assert_eq!((p.bar, p.tick), (latest, tick), "case {case} tick {tick}");
                assert_eq!(
                    p.value,
                    term(size, close[latest], multiplier).unwrap(),
                    "case {case}"
                );
            }
        }
        assert_eq!(portfolio.out_of_range(), None);
    }

    #[test]
    fn the_calendar_files_events_within_its_reach_and_finds_the_next_busy_tick() {
        // A run's ring covers its timeline when the cap allows, in a power of two.
        for ticks in [0usize, 1, 2, 3, 17, 64, 100_000] {
            let len = Calendar::new(ticks).buckets.len();
            assert!(len.is_power_of_two() && len >= ticks.clamp(2, CALENDAR_TICKS));
            assert!(len <= CALENDAR_TICKS);
        }
        // Rings of one word of bits and of many (the tests' runs use eight buckets), the
        // tick being run anywhere (the buckets wrap), events at random ticks from there on,
        // some taken out again: each is filed at its tick or at the last the ring reaches,
        // and the next busy tick, to limits within a word, across words and around the
        // ring, is the plain scan's over the ticks filed.
        let mut draw = draws(0x6A09_E667_F3BC_C908);
        for len in [2usize, 8, 64, 128, 4096] {
            for now in [0usize, 1, 5, 63, 64, len - 1, len, 3 * len + 2, 1_000_003] {
                let mut calendar = Calendar::with_len(len);
                let mut filed = vec![false; 2 * len + 131];
                let events = [0, 1, 3, 40][(draw() % 4) as usize];
                for _ in 0..events {
                    let tick = now + (draw() % (2 * len as u64 + 3)) as usize;
                    let at = calendar.reach(now, tick);
                    assert_eq!(at, tick.min(now + len - 1));
                    calendar.push(at, 7);
                    filed[at - now] = true;
                }
                for round in 0..3 {
                    for until in [0, 1, 9, 63, 64, 65, 130, len, 2 * len + 5].map(|d| now + d) {
                        let plain = (now..until).find(|&t| filed[t - now]).unwrap_or(until);
                        let found = calendar.next_busy(now, until);
                        assert_eq!(found, plain, "{len} buckets, {now}..{until}, round {round}");
                    }
                    // Take out the first busy tick's symbols, when there is one.
                    if let Some(d) = filed.iter().position(|&f| f) {
                        assert!(calendar.is_busy(now + d));
                        assert_eq!(calendar.take(now + d), 7);
                        assert!(!calendar.is_busy(now + d));
                        filed[d] = false;
                    }
                }
            }
        }
    }

    #[test]
    fn due_symbols_are_sorted_by_their_rank_in_the_call_order() {
        // Every count around the in-place sorts' limits, ranks drawn at random (each
        // symbol has its own): the keys come out in rank order, each with its symbol.
        let mut draw = draws(0x2545_F491_4F6C_DD1D);
        for len in 0..40 {
            for _ in 0..50 {
                let mut ranks: Vec<u32> = (0..len as u32).collect();
                for k in (1..ranks.len()).rev() {
                    ranks.swap(k, (draw() % (k as u64 + 1)) as usize);
                }
                let symbols: Vec<usize> = (0..len).map(|k| (k * 7 + 3) % 1000).collect();
                let mut keys: Vec<u64> = (0..len).map(|k| due_key(ranks[k], symbols[k])).collect();
                sort_due(&mut keys);
                let mut expected: Vec<(u32, usize)> =
                    ranks.iter().copied().zip(symbols.iter().copied()).collect();
                expected.sort();
                let got: Vec<(u32, usize)> = keys
                    .iter()
                    .map(|&k| ((k >> 32) as u32, due_symbol(k)))
                    .collect();
                assert_eq!(got, expected, "len {len}");
            }
        }
    }

    #[test]
    fn range_is_the_running_min_and_max_a_lot_sees_bar_by_bar() {
        // Every length around the lanes, with NaNs now and then (skipped by both).
        let mut draw = draws(0x9E37_79B9_7F4A_7C15);
        for len in 0..70 {
            for _ in 0..20 {
                let price = |x: u64| {
                    if x.is_multiple_of(23) {
                        f64::NAN
                    } else {
                        1.0 + (x % 10_000) as f64 / 100.0
                    }
                };
                let low: Vec<f64> = (0..len).map(|_| price(draw())).collect();
                let high: Vec<f64> = (0..len).map(|_| price(draw())).collect();
                let bar_by_bar = (!low.is_empty()).then(|| {
                    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
                    for (&l, &h) in low.iter().zip(&high) {
                        lo = lo.min(l);
                        hi = hi.max(h);
                    }
                    (lo.to_bits(), hi.to_bits())
                });
                let got = range(&low, &high).map(|(l, h)| (l.to_bits(), h.to_bits()));
                assert_eq!(got, bar_by_bar, "len {len}");
                // Each kernel on its own, whichever `range` picks on this processor.
                #[cfg(target_arch = "x86_64")]
                {
                    let bits = |(l, h): (f64, f64)| Some((l.to_bits(), h.to_bits()));
                    if len >= 2 {
                        assert_eq!(bits(range_sse2(&low, &high)), bar_by_bar, "len {len}");
                    }
                    if len >= 8 && std::arch::is_x86_feature_detected!("avx") {
                        // SAFETY: the processor has AVX.
                        let avx = unsafe { range_avx(&low, &high) };
                        assert_eq!(bits(avx), bar_by_bar, "len {len}");
                    }
                }
            }
        }
    }
}
