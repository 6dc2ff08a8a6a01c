//! Engine: one backtest, the loop alone. Each tick is a market phase (native), a strategy
//! phase (the strategy's callbacks, through a `TickContext`) and a barrier, over the union
//! timeline of all symbols.
//!
//! - Market phase: every symbol with a bar moves its cursor and marks its position to the
//!   open; candles and statistics of extra columns are updated with the bar (statistics of
//!   base bars were computed for the bars of the clock's plan when it was made, each
//!   readable from its own bar on); then the book matches and executes the
//!   working orders of all these bars as one batch (reductions before increases, see
//!   `book`); then positions are marked to the close.
//! - Strategy phase: `on_bar` for each symbol with a bar, in the market's call order (the
//!   order the user gave the symbols, never their names), then `on_tick`. Orders placed
//!   here wait in the book's pending queue, in placement order.
//!
//! Both phases visit the tick's symbols in the call order (`active`), so a strategy that
//! places orders in `next(symbol)` places them in an order no name decides, and the fills
//! and trades of one instant are listed in it.
//! - Barrier: pending orders join the book, so they can fill from the symbol's next bar on
//!   (never at a price of the bar on which they were decided) — except market orders under
//!   `FillAt::Close`, which fill now at this bar's close. Equity is sampled, and the clock's
//!   back bitmap is built for the next tick (it is swapped in when that tick begins).
//!
//! Single-threaded and deterministic: the same inputs give the same outputs, bit for bit.

use std::sync::Arc;

use crate::book::{Book, Rules};
use crate::broker::Bar;
use crate::clock::{iso_time, next_day_end, Clock, NANOS_PER_DAY};
use crate::config::{basis_points, Commission, Config, FillAt, Margin, MarginParts};
use crate::context::{Setup, TickContext};
use crate::error::{EngineError, Result};
use crate::holding::{HoldingSpans, LotLife};
use crate::market::Market;
use crate::orders::OrderRow;
use crate::portfolio::{ClosedTrade, Money, Payment, Portfolio};
use crate::results::{EquityCurve, Fill, FillRow, OrderLog};
use crate::strategy::Strategy;
use crate::studies::{GivenBuckets, Studies};

/// How many bars ahead of a symbol's cursor its columns are prefetched, for symbols with
/// a position or orders: their times and four prices are read at each of their bars,
/// with many symbols more streams than the hardware prefetcher follows, so without a
/// hint many reads of a new cache line wait for memory. (A flat symbol's times alone
/// stream well: prefetching them too costs the bare loop more than it saves.)
const PREFETCH_AHEAD: usize = 16;

/// Hint the CPU to load `column[i + PREFETCH_AHEAD]` into cache (nothing past the end).
#[inline(always)]
fn prefetch<T>(column: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = column.get(i + PREFETCH_AHEAD) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint and never faults; the address is in bounds.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(x).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (column, i);
}

pub struct Engine {
    market: Arc<Market>,
    config: Config,
    clock: Clock,
    portfolio: Portfolio,
    book: Book,
    studies: Studies,
    equity: EquityCurve,
    session_end: Option<Vec<bool>>,
    /// The account opens here (ns; `trade_start`): no carrying costs or interest accrue
    /// for the days of a warm-up before it, as a real account earns nothing before it exists.
    account_opens: i64,
    active: Vec<usize>,
    /// Per symbol, its rank in the market's call order; None when that is name order
    /// (the bitmap's own order, nothing to sort).
    call_rank: Option<Vec<usize>>,
    /// Symbols of this tick whose positions or orders need this bar's prices: (symbol, bar).
    touched: Vec<(usize, usize)>,
    started: bool,
    now: i64,
    /// Ticks run so far, over every window (Ctrl-C is checked every 4096).
    ticks_run: u64,
    /// The timelines of a streamed run's windows before the current one, in turn (empty
    /// for a run of one market): where the ticks of its fills stand (`holding_spans`).
    earlier_ticks: Vec<i64>,
    /// How many past bars of a symbol a strategy may read (None: all held).
    history: Option<usize>,
    /// The symbols that stop trading before the run's end (`set_delistings`): (the time
    /// of a symbol's last bar, the symbol), by time and then the call order.
    delistings: Vec<(i64, usize)>,
    /// The first of `delistings` not yet passed.
    next_delisting: usize,
    /// Per symbol, the borrow fee its shorts pay at this day's end, from the borrow
    /// column (`Config::borrow_column`; `borrow_rates_now`).
    borrow_now: Vec<Option<f64>>,
    /// Whether a symbol's maintenance margin may exceed what its position is worth (a
    /// margin per unit above the price: `set_symbol_margin`): then a long account with
    /// cash to spare can still be called, and the margin check runs at every tick held.
    margin_beyond_worth: bool,
}

/// The logs a run writes: its orders, fills and closed trades (see `Engine::swap_logs`).
#[derive(Debug, Default)]
pub(crate) struct Logs {
    pub orders: OrderLog,
    pub fills: Vec<Fill>,
    pub trades: Vec<ClosedTrade>,
}

impl Logs {
    /// Empty, keeping the room (the next run writes over the same memory).
    pub fn clear(&mut self) {
        self.orders.clear();
        self.fills.clear();
        self.trades.clear();
    }
}

/// An engine's pieces, lent to another driver of a whole run (see `Engine::parts`).
pub(crate) struct Parts<'a> {
    pub market: Arc<Market>,
    pub config: &'a Config,
    pub portfolio: &'a mut Portfolio,
    pub book: &'a mut Book,
    pub studies: &'a Studies,
    pub equity: &'a mut EquityCurve,
    pub session_end: Option<&'a [bool]>,
    pub account_opens: i64,
    /// Per symbol, the time of the last bar it trades if it stops trading before the run's
    /// end (`Engine::set_delistings`; `i64::MIN`: it does not), empty when none does.
    pub delisted_at: Vec<i64>,
    /// The latest tick's time (the driver moves it).
    pub now: &'a mut i64,
}

/// The tick context over the engine's fields (disjoint borrows, so the loop may keep
/// reading `active` while a callback holds the context).
macro_rules! tick_context {
    ($e:ident, $active:expr, $current:expr) => {
        TickContext {
            market: &$e.market,
            config: &$e.config,
            clock: &$e.clock,
            active: $active,
            now: $e.now,
            current: $current,
            book: &mut $e.book,
            portfolio: &mut $e.portfolio,
            studies: &mut $e.studies,
            history: $e.history,
        }
    };
}

/// Refuse a column of payments (`option`: `funding_column`, `dividend_column`) the market
/// lacks, or a value of `what` it holds that is not a number (NaN, nothing paid at that
/// bar, is one) or, unless `signed`, is below zero; naming the symbol and the bar's time.
fn check_payments(
    market: &Market,
    column: usize,
    option: &str,
    what: &str,
    signed: bool,
) -> Result<()> {
    let Some(name) = market.columns().get(column) else {
        return Err(EngineError::InvalidConfig(format!(
            "{option}: the market has no extra column {column}"
        )));
    };
    let (allowed, rule) = if signed {
        (f64::NEG_INFINITY, "a finite number")
    } else {
        (0.0, "a finite number, 0 or above")
    };
    for s in 0..market.symbol_count() {
        let bars = market.bars(s);
        let Some(values) = &bars.extra[column] else {
            continue;
        };
        if let Some(j) = (values.iter()).position(|&v| v.is_infinite() || v < allowed) {
            return Err(EngineError::InvalidMarket(format!(
                "symbol '{}': {what} {} in column '{name}' at {}: must be {rule} (NaN: none \
                 at that bar)",
                market.name(s),
                values[j],
                iso_time(bars.ts[j])
            )));
        }
    }
    Ok(())
}

/// Refuse a column of locates (`Config::locate_column`) holding anything but 1 (may be
/// sold short), 0 (may not) or NaN (not quoted), naming the symbol and the bar's time.
fn check_locates(market: &Market, column: usize) -> Result<()> {
    let Some(name) = market.columns().get(column) else {
        return Err(EngineError::InvalidConfig(format!(
            "shortable_column: the market has no extra column {column}"
        )));
    };
    for s in 0..market.symbol_count() {
        let bars = market.bars(s);
        let Some(values) = &bars.extra[column] else {
            continue;
        };
        let wrong = |v: f64| !(v.is_nan() || v == 0.0 || v == 1.0);
        if let Some(j) = values.iter().position(|&v| wrong(v)) {
            return Err(EngineError::InvalidMarket(format!(
                "symbol '{}': {} in column '{name}' at {}: must be 1 (may be sold short then), \
                 0 (may not) or NaN (not quoted)",
                market.name(s),
                values[j],
                iso_time(bars.ts[j])
            )));
        }
    }
    Ok(())
}

/// Refuse the values of the columns the options read (locates, borrow fees, funding,
/// dividends) that their rules do not allow: at the first market and at every streamed
/// window alike.
fn check_quoted_columns(market: &Market, config: &Config) -> Result<()> {
    if let Some(column) = config.locate_column {
        check_locates(market, column)?;
    }
    if let Some(column) = config.borrow_column {
        check_payments(market, column, "borrow_rate_column", "borrow fee", false)?;
    }
    if let Some(column) = config.funding {
        check_payments(market, column, "funding_column", "funding rate", true)?;
    }
    if let Some(column) = config.dividends {
        check_payments(market, column, "dividend_column", "dividend", false)?;
    }
    Ok(())
}

/// Set `symbol`'s entry of a per-symbol option (`Config::by_symbol`, `multipliers`, ...),
/// sized to the market's `symbols` first, `unset` for the symbols not set.
fn set_own<T: Clone>(all: &mut Vec<T>, symbols: usize, unset: T, symbol: usize, value: T) {
    all.resize(symbols, unset);
    all[symbol] = value;
}

/// Refuse a multiplier (`Config::multipliers`) that is not a finite number above 0,
/// naming the symbol.
fn check_multiplier(name: &str, multiplier: f64) -> Result<()> {
    if multiplier.is_finite() && multiplier > 0.0 {
        return Ok(());
    }
    Err(EngineError::InvalidConfig(format!(
        "multiplier of '{name}' = {multiplier}: must be a finite number above 0"
    )))
}

impl Engine {
    pub fn new(market: Arc<Market>, config: Config) -> Result<Self> {
        config.validate()?;
        for (s, &multiplier) in config.multipliers.iter().enumerate() {
            check_multiplier(market.name(s), multiplier)?;
        }
        check_quoted_columns(&market, &config)?;
        let n = market.symbol_count();
        let order = market.call_order();
        let call_rank = (!order.iter().copied().eq(0..n)).then(|| {
            let mut rank = vec![0; n];
            for (r, &s) in order.iter().enumerate() {
                rank[s] = r;
            }
            rank
        });
        let mut book = Book::new(n);
        book.follow_volume(config.volume_limit, config.volume_impact);
        book.fill_limits(config.limit_fill);
        let mut portfolio = Portfolio::new(config.cash, n);
        for (s, &multiplier) in config.multipliers.iter().enumerate().take(n) {
            portfolio.set_multiplier(s, multiplier);
        }
        Ok(Engine {
            call_rank,
            clock: Clock::new(&market),
            portfolio,
            book,
            studies: Studies::default(),
            equity: EquityCurve::default(),
            session_end: None,
            account_opens: i64::MIN,
            active: Vec::with_capacity(n),
            touched: Vec::with_capacity(n),
            started: false,
            now: i64::MIN,
            ticks_run: 0,
            earlier_ticks: Vec::new(),
            history: None,
            delistings: Vec::new(),
            next_delisting: 0,
            borrow_now: Vec::new(),
            margin_beyond_worth: false,
            market,
            config,
        })
    }

    /// Symbols stop trading (`close_delisted`): `times[s]` is the time of symbol `s`'s last
    /// bar when it stops before the run's end (a delisted stock, an expired contract),
    /// `i64::MIN` when it does not. At that bar's close, after the orders of its tick
    /// joined, its working orders are cancelled and its position closed there
    /// (`Book::delist`). Set before the run.
    pub fn set_delistings(&mut self, times: &[i64]) -> Result<()> {
        let n = self.market.symbol_count();
        if times.len() != n {
            return Err(EngineError::InvalidConfig(format!(
                "delistings: {} times for {n} symbols",
                times.len()
            )));
        }
        let rank = |s: usize| self.call_rank.as_ref().map_or(s, |r| r[s]);
        let mut delistings: Vec<(i64, usize)> = (times.iter().enumerate())
            .filter(|&(_, &t)| t != i64::MIN)
            .map(|(s, &t)| (t, s))
            .collect();
        delistings.sort_by_key(|&(t, s)| (t, rank(s)));
        self.delistings = delistings;
        Ok(())
    }

    /// Fills of `symbol` pay `commission` rather than the account's schedule (checked by
    /// its rules, a refusal naming the symbol). Set before the run.
    pub fn set_symbol_commission(&mut self, symbol: usize, commission: Commission) -> Result<()> {
        let name = self.market.name(symbol);
        commission.validate(&format!("commission_by_symbol['{name}']: "))?;
        let n = self.market.symbol_count();
        set_own(
            &mut self.config.by_symbol,
            n,
            None,
            symbol,
            Some(commission),
        );
        Ok(())
    }

    /// Set `symbol`'s multiplier (`Config::multipliers`): the money one unit gains per
    /// point its price rises. Finite and above 0, else refused naming the symbol.
    pub fn set_multiplier(&mut self, symbol: usize, multiplier: f64) -> Result<()> {
        let name = self.market.name(symbol);
        check_multiplier(name, multiplier)?;
        let n = self.market.symbol_count();
        set_own(&mut self.config.multipliers, n, 1.0, symbol, multiplier);
        self.portfolio.set_multiplier(symbol, multiplier);
        Ok(())
    }

    /// `symbol`'s own margin terms (`Config::margins`) rather than the account's: as
    /// fractions of worth, a part not given (None) the account's; or as money per unit,
    /// both parts given and no fraction (checked by their rules, a refusal naming the
    /// symbol). Set before the run.
    pub fn set_symbol_margin(&mut self, symbol: usize, parts: MarginParts) -> Result<()> {
        let name = self.market.name(symbol);
        let what = format!("margin_by_symbol['{name}']: ");
        let margin = match (parts.initial_per_unit, parts.maintenance_per_unit) {
            (None, None) => Margin::OfWorth {
                leverage: parts.leverage.unwrap_or(self.config.leverage),
                maintenance: parts.maintenance.unwrap_or(self.config.maintenance_margin),
            },
            _ if parts.leverage.is_some() || parts.maintenance.is_some() => {
                return Err(EngineError::InvalidConfig(format!(
                    "{what}margin per unit (initial_margin_per_unit, \
                     maintenance_margin_per_unit) or as fractions of worth (leverage, \
                     maintenance_margin), not both"
                )));
            }
            (Some(initial), Some(maintenance)) => Margin::PerUnit {
                initial,
                maintenance,
            },
            (initial, _) => {
                let missing = match initial {
                    None => "initial_margin_per_unit",
                    Some(_) => "maintenance_margin_per_unit",
                };
                return Err(EngineError::InvalidConfig(format!(
                    "{what}{missing} is missing: a margin per unit gives both the initial \
                     and the maintenance margin"
                )));
            }
        };
        margin.validate(&what)?;
        let n = self.market.symbol_count();
        set_own(&mut self.config.margins, n, None, symbol, Some(margin));
        self.margin_beyond_worth = (self.config.margins.iter().flatten())
            .any(|m| matches!(m, Margin::PerUnit { maintenance, .. } if *maintenance > 0.0));
        Ok(())
    }

    /// Market and stop fills of `symbol` slip by `bps` basis points rather than the
    /// account's `slippage_bps` (`Config::slippages`): in [0, 10000), else refused naming
    /// the symbol. Set before the run.
    pub fn set_slippage(&mut self, symbol: usize, bps: f64) -> Result<()> {
        if !basis_points(bps) {
            let name = self.market.name(symbol);
            return Err(EngineError::InvalidConfig(format!(
                "slippage_by_symbol['{name}'] = {bps}: must be basis points in [0, 10000)"
            )));
        }
        let n = self.market.symbol_count();
        set_own(&mut self.config.slippages, n, None, symbol, Some(bps));
        Ok(())
    }

    /// Shorts of `symbol` pay `rate` a year rather than the account's `borrow_rate`
    /// (`Config::borrow_rates`): finite and at least 0, else refused naming the symbol.
    /// Set before the run.
    pub fn set_borrow_rate(&mut self, symbol: usize, rate: f64) -> Result<()> {
        if !(rate.is_finite() && rate >= 0.0) {
            let name = self.market.name(symbol);
            return Err(EngineError::InvalidConfig(format!(
                "borrow_rate_by_symbol['{name}'] = {rate}: must be an annual rate >= 0"
            )));
        }
        let n = self.market.symbol_count();
        set_own(&mut self.config.borrow_rates, n, None, symbol, Some(rate));
        Ok(())
    }

    /// Whether `symbol` may be sold short (`Config::shortable`; every symbol may unless
    /// set). Set before the run.
    pub fn set_shortable(&mut self, symbol: usize, shortable: bool) {
        let n = self.market.symbol_count();
        set_own(&mut self.config.shortable, n, true, symbol, shortable);
    }

    /// Bound the past a strategy may read to the last `bars` bars of each symbol (None:
    /// every bar held). A streamed run keeps that many; a longer request is refused in
    /// both modes alike, so a run gives the same results streamed or not.
    pub fn set_history(&mut self, bars: Option<usize>) {
        self.history = bars;
    }

    /// Clock plans of `ticks` ticks (tests: plans end at many places).
    #[cfg(test)]
    pub(crate) fn set_plan_ticks(&mut self, ticks: usize) {
        self.clock.set_plan_ticks(ticks);
    }

    /// Whether clock plans may be the market's maps (tests: the same either way).
    #[cfg(test)]
    pub(crate) fn allow_market_maps(&mut self, allowed: bool) {
        self.clock.allow_market_maps(allowed);
    }

    /// The instant the account opens (`trade_start` after a warm-up): carrying costs and
    /// interest accrue from the first day end at or after it, never before.
    pub fn set_account_opens(&mut self, ts: i64) {
        self.account_opens = ts;
    }

    /// Mark, per tick of the timeline, the ticks that end a trading day (equity is sampled
    /// there). Without it, days are UTC calendar days.
    pub fn set_session_ends(&mut self, ends: Vec<bool>) -> Result<()> {
        if ends.len() != self.market.timeline().len() {
            return Err(EngineError::InvalidConfig(format!(
                "session ends has {} entries for {} ticks",
                ends.len(),
                self.market.timeline().len()
            )));
        }
        self.session_end = Some(ends);
        Ok(())
    }

    /// The calendar's wall clock (the backtest's timezone), set before the run: each
    /// timeframe reads its bars' spacing on it too (see [`crate::candles`]).
    pub fn set_wall_clock(&mut self, clock: crate::candles::WallClock) {
        self.studies.set_wall_clock(clock);
    }

    /// Make room for about `orders` orders (and fills) and `trades` closed trades before a
    /// run whose strategy can bound them (signals mode): the logs then grow without
    /// copying themselves. Only a hint; results do not depend on it.
    pub fn reserve(&mut self, orders: usize, trades: usize) {
        self.book.reserve(orders);
        let _ = self.portfolio.closed.try_reserve(trades);
    }

    /// Exchange the engine's logs with `logs`: before a run, to lend it empty buffers with
    /// room (a grid thread reuses one set across its runs instead of mapping fresh memory
    /// for each, which costs page faults that do not scale across threads); after it, to
    /// take them back. Only between runs: the book finds an order's record by its id.
    pub(crate) fn swap_logs(&mut self, logs: &mut Logs) {
        self.book.swap_logs(&mut logs.orders, &mut logs.fills);
        std::mem::swap(&mut self.portfolio.closed, &mut logs.trades);
    }

    /// The pieces another driver of a whole run moves: signals mode's sparse driver
    /// (`signals::run_sparse`) visits only the ticks where something can happen, with this
    /// engine's book, portfolio and equity curve and the same rules. Counts as the run (an
    /// engine runs once). Streamed windows are not driven this way.
    pub(crate) fn parts(&mut self) -> Result<Parts<'_>> {
        if self.started {
            return Err(EngineError::State(
                "this engine has already run; build a new one".into(),
            ));
        }
        self.started = true;
        Ok(Parts {
            market: Arc::clone(&self.market),
            config: &self.config,
            portfolio: &mut self.portfolio,
            book: &mut self.book,
            studies: &self.studies,
            equity: &mut self.equity,
            session_end: self.session_end.as_deref(),
            account_opens: self.account_opens,
            delisted_at: match self.delistings.is_empty() {
                true => Vec::new(),
                false => {
                    let mut at = vec![i64::MIN; self.market.symbol_count()];
                    for &(t, s) in &self.delistings {
                        at[s] = t;
                    }
                    at
                }
            },
            now: &mut self.now,
        })
    }

    /// After a run by another driver (`parts`): stop on an amount beyond the account's
    /// exact range, as `run` does.
    pub(crate) fn finish_parts(&self) -> Result<()> {
        self.check_sums()
    }

    /// Replay the whole timeline through `strategy`. An engine runs once.
    pub fn run<S: Strategy>(&mut self, strategy: &mut S) -> Result<()> {
        self.start(strategy)?;
        self.run_window(strategy)
    }

    /// A streamed run, first step: `init()` on the first window's market. Then
    /// `run_window` for it and for each next window given to `next_window`.
    pub fn start<S: Strategy>(&mut self, strategy: &mut S) -> Result<()> {
        if self.started {
            return Err(EngineError::State(
                "this engine has already run; build a new one".into(),
            ));
        }
        self.started = true;
        let mut setup = Setup {
            ctx: tick_context!(self, &[], None),
        };
        strategy.init(&mut setup)
    }

    /// Replace the market by the next window of a streamed run (see `Market::window`) with
    /// its day ends (one per tick of its timeline, the last one decided by the tick after
    /// it). Each symbol's held bars must continue where its processed bars stand.
    /// `given`: for each timeframe whose buckets are given per bar (exchange-aligned
    /// candles, `Studies::given_timeframes`), its labels and ends for `market`'s bars.
    pub fn next_window(
        &mut self,
        market: Arc<Market>,
        ends: Vec<bool>,
        given: Vec<GivenBuckets>,
    ) -> Result<()> {
        if market.names() != self.market.names() {
            return Err(EngineError::InvalidMarket(
                "a window must hold the same symbols, in the same order, as the first".into(),
            ));
        }
        if !self.market.same_columns(&market) {
            return Err(EngineError::InvalidMarket(
                "a window must hold the same extra columns, for the same symbols, as the first"
                    .into(),
            ));
        }
        check_quoted_columns(&market, &self.config)?;
        if ends.len() != market.timeline().len() {
            return Err(EngineError::InvalidConfig(format!(
                "session ends has {} entries for {} ticks",
                ends.len(),
                market.timeline().len()
            )));
        }
        if self.studies.needs_whole_history() {
            return Err(EngineError::State(
                "a precomputed indicator (self.I) needs every bar in memory at init(); run this \
                 strategy without streaming, or use the rolling indicators (sma, ema, ...), which \
                 stream"
                    .into(),
            ));
        }
        let wanted = self.studies.given_timeframes();
        let mut named: Vec<usize> = given.iter().map(|g| g.timeframe).collect();
        named.sort_unstable();
        if named != wanted {
            return Err(EngineError::InvalidConfig(format!(
                "a window needs the buckets of each timeframe given per bar ({wanted:?}), got {named:?}"
            )));
        }

        for s in 0..market.symbol_count() {
            let next = self.clock.current_bar(s).map_or(0, |i| i + 1);
            if market.base(s) > next || market.end(s) < next {
                return Err(EngineError::InvalidMarket(format!(
                    "{}: the window holds bars {}..{} but the run is at bar {next}",
                    market.name(s),
                    market.base(s),
                    market.end(s)
                )));
            }
        }
        let bars: Vec<_> = (0..market.symbol_count()).map(|s| market.bars(s)).collect();
        for g in given {
            self.studies
                .set_given_buckets(g.timeframe, &bars, g.labels, g.ends)?;
        }
        self.earlier_ticks.extend_from_slice(self.market.timeline());
        self.market = market;
        self.session_end = Some(ends);
        Ok(())
    }

    /// Run every tick of the current market's timeline (the whole run, or one window).
    pub fn run_window<S: Strategy>(&mut self, strategy: &mut S) -> Result<()> {
        let market = Arc::clone(&self.market);
        let (bars, ticks) = (strategy.wants_bars(), strategy.wants_ticks());
        let follows = self.studies.follows_bars();
        let mut t = 0;
        self.clock.forget_plan();
        self.reserve_samples(&market);
        let mut more = self.clock.prepare(&market, 0);
        self.compute_ahead(&market);
        // The next tick that ends a trading day (found again after each).
        let mut day_end = next_day_end(market.timeline(), self.session_end.as_deref(), 0);
        while more {
            self.clock.begin(t);
            self.now = market.timeline()[t];
            self.book.expire_before(self.now);
            // Only symbols with working orders or a position need their bar's prices now:
            // when none of this tick's has either (every tick of a run that holds nothing
            // and has no orders), a few words of the sets say so and nothing is visited.
            let priced = self.any_needs_prices();
            let mut active = std::mem::take(&mut self.active);
            // Every symbol with a bar now takes it (its cursor moves onto it); listed when
            // anything below visits them.
            if priced || follows || bars || ticks {
                self.clock.take_bars(&mut active);
                if let Some(rank) = &self.call_rank {
                    active.sort_unstable_by_key(|&s| rank[s]);
                }
            } else {
                self.clock.take_bars_unlisted();
                active.clear();
            }
            self.touched.clear();
            if priced {
                for &s in &active {
                    if self.needs_prices(s) {
                        self.open_bar(&market, s, self.clock.taken_bar(s));
                    }
                }
            }
            // What each bar says of shorting its symbol, before anything fills in it.
            if let Some(column) = self.config.locate_column {
                self.quote_locates(&market, column, &active);
            }
            // Base-bar statistics were computed with the clock's plan (`compute_ahead`):
            // only those of extra columns and timeframes follow each bar here.
            if follows {
                for &s in &active {
                    let i = self.clock.taken_bar(s);
                    self.studies.update(s, market.local(s, i), market.bars(s));
                }
            }
            // Positions held into a bar where their symbol goes ex are paid its dividend at
            // the open, before the bar's fills (a buy there comes too late for it).
            if let Some(column) = self.config.dividends {
                self.settle(&market, column, Payment::Dividend);
            }
            // A batch with no bar to match (no symbol of the tick has orders that can act
            // in its bar) does nothing: no marks at the opens either.
            if self.book.is_matching() {
                self.mark_opens(&market);
                let rules = Rules {
                    config: &self.config,
                    studies: &self.studies,
                };
                self.book.execute_batch(&mut self.portfolio, rules);
            }
            for k in 0..self.touched.len() {
                let (s, i) = self.touched[k];
                self.close_bar(&market, s, i);
            }
            self.book.forget_ranges();
            // Positions held at a bar with a funding rate settle it at the close.
            if let Some(column) = self.config.funding {
                self.settle(&market, column, Payment::Funding);
            }
            // Marked at this tick's closes, the account may be margin called: never while
            // cash is above zero and every position is long at a positive mark, each
            // keeping less than it is worth (the usual run skips the check on two words);
            // a margin per unit may ask more than the position is worth.
            if (self.portfolio.margin_exposed() || self.margin_beyond_worth)
                && self.portfolio.holds_any()
            {
                self.check_margin(&market);
            }
            if bars || ticks {
                let outcome = self.strategy_phase(strategy, &active, bars, ticks);
                if outcome.is_err() {
                    self.active = active;
                    return outcome;
                }
            }
            self.active = active;
            let day_ends = t == day_end;
            if day_ends {
                day_end = next_day_end(market.timeline(), self.session_end.as_deref(), t + 1);
            }
            self.barrier(&market, t, day_ends);
            more = self.clock.prepare(&market, t + 1);
            self.compute_ahead(&market);
            self.ticks_run += 1;
            if self.ticks_run.is_multiple_of(4096) {
                strategy.check_interrupt()?;
                self.check_sums()?;
            }
            t += 1;
        }
        self.check_sums()
    }

    /// Make room in the equity curve for the samples this window records: one per tick
    /// with `record_every_bar`, else one per trading day end (counted from the day ends,
    /// or bounded by the UTC days the timeline spans). Known before the window runs, so
    /// the curve's columns are allocated once instead of regrowing (and copying
    /// themselves) as it runs. Only room: the samples do not depend on it.
    fn reserve_samples(&mut self, market: &Market) {
        let timeline = market.timeline();
        let samples = if self.config.record_every_bar {
            timeline.len()
        } else if let Some(ends) = self.session_end.as_deref() {
            ends.iter().filter(|&&e| e).count()
        } else if let (Some(&first), Some(&last)) = (timeline.first(), timeline.last()) {
            let days = last.div_euclid(NANOS_PER_DAY) - first.div_euclid(NANOS_PER_DAY);
            usize::try_from(days).map_or(0, |d| d.saturating_add(1).min(timeline.len()))
        } else {
            0
        };
        let curve = &mut self.equity;
        curve.ts.reserve(samples);
        for column in [
            &mut curve.equity,
            &mut curve.cash,
            &mut curve.gross_exposure,
        ] {
            column.reserve(samples);
        }
    }

    /// The strategy phase: `on_bar` for each of the tick's symbols (`active`, in the call
    /// order) when the strategy wants bars, then `on_tick` when it wants ticks.
    fn strategy_phase<S: Strategy>(
        &mut self,
        strategy: &mut S,
        active: &[usize],
        bars: bool,
        ticks: bool,
    ) -> Result<()> {
        if bars {
            // One context for the tick's symbols, pointed at each in turn.
            let mut ctx = tick_context!(self, active, None);
            for &s in active {
                ctx.current = Some(s);
                strategy.on_bar(&mut ctx, s)?;
            }
        }
        if ticks {
            let mut ctx = tick_context!(self, active, None);
            strategy.on_tick(&mut ctx)?;
        }
        Ok(())
    }

    /// Stop on an amount beyond the account's exact range. The portfolio flags it as it
    /// happens (and never wraps a sum), so looking every 4,096 ticks and at the end of
    /// each run or window is enough to never hand out a result built on it.
    fn check_sums(&self) -> Result<()> {
        match self.portfolio.out_of_range() {
            Some((symbol, amount)) => Err(self.out_of_range(symbol, amount)),
            None => Ok(()),
        }
    }

    /// After the clock's `prepare`: the base-bar statistics of the bars on a new plan's
    /// ticks (or again after a reset), each symbol's in one pass over its columns.
    #[inline]
    fn compute_ahead(&mut self, market: &Market) {
        if self.studies.needs_computing(self.clock.replanned()) {
            let (next, span) = (self.clock.next_bars(), self.clock.plan_span());
            self.studies.compute_ahead(market, next, span);
        }
    }

    /// Whether `s` (with a bar now) has working orders or a position: its bar's prices are
    /// needed now (`open_bar`). The same as asking the book and the portfolio about `s`;
    /// the sets they keep answer with a bit each.
    #[inline(always)]
    fn needs_prices(&self, s: usize) -> bool {
        self.book.working_symbols().contains(s) || self.portfolio.holding().contains(s)
    }

    /// Whether any symbol with a bar now `needs_prices`: a word of each set per 64 symbols.
    #[inline(always)]
    fn any_needs_prices(&self) -> bool {
        let working = self.book.working_symbols().words();
        let holding = self.portfolio.holding().words();
        let now = self.clock.bitmap();
        now.iter()
            .zip(working)
            .zip(holding)
            .any(|((&now, &w), &h)| now & (w | h) != 0)
    }

    /// Mark `s`'s position to the open of its bar `i` and enter the bar in the book's
    /// batch; for a symbol with a position or working orders only. A flat symbol with no
    /// working orders needs no prices now: its mark is read lazily (`price`), which keeps
    /// the loop off most of the columns' memory.
    #[inline(always)]
    fn open_bar(&mut self, market: &Market, s: usize, i: usize) {
        let (b, j) = (market.bars(s), market.local(s, i));
        prefetch(&b.ts[..], j);
        for column in [&b.open[..], &b.high[..], &b.low[..], &b.close[..]] {
            prefetch(column, j);
        }
        let open = b.open[j];
        if self.book.has_working(s) {
            let bar = Bar {
                open,
                high: b.high[j],
                low: b.low[j],
                close: b.close[j],
            };
            if self.book.reads_volume() {
                self.book.allow_volume(s, i, b.volume[j]);
            }
            self.book.open_bar(s, i, b.ts[j], bar);
        }
        // Without a batch that matches orders the open's mark is skipped (`mark_opens`),
        // unless its value is beyond what the account sums: marked now, the mark stops
        // the run as it always did (in the same order of symbols).
        if !Money::in_range(self.portfolio.position(s).size * open) {
            self.portfolio.mark(s, open);
        }
        self.touched.push((s, i));
    }

    /// Mark the positions of this tick's bars at their opens, before a batch that matches
    /// orders (it reads the account). Without one, a position's term of the account's
    /// exact sums is the same whether or not it passed through the open, so the mark is
    /// skipped (`open_bar` marks an open beyond the account's range).
    fn mark_opens(&mut self, market: &Market) {
        for k in 0..self.touched.len() {
            let (s, i) = self.touched[k];
            let open = market.bars(s).open[market.local(s, i)];
            self.portfolio.mark(s, open);
        }
    }

    /// After the batch: widen the open trades' excursions and mark to the close.
    #[inline(always)]
    fn close_bar(&mut self, market: &Market, s: usize, i: usize) {
        let (b, j) = (market.bars(s), market.local(s, i));
        // (Not the lots of a symbol filled at this close: they took the range before it.)
        if !self.portfolio.position(s).lots.is_empty() && !self.book.ranged_at_close(s) {
            self.portfolio.observe_range(s, b.low[j], b.high[j]);
        }
        self.portfolio.mark(s, b.close[j]);
    }

    /// The positions of this tick's symbols held at a bar with a payment in extra column
    /// `column` settle it (`Portfolio::settle`): funding at the close, a dividend at the
    /// open (called then, before the batch).
    #[inline(never)]
    fn settle(&mut self, market: &Market, column: usize, kind: Payment) {
        for k in 0..self.touched.len() {
            let (s, i) = self.touched[k];
            let size = self.portfolio.position(s).size;
            let bars = market.bars(s);
            if let (true, Some(values)) = (size != 0.0, &bars.extra[column]) {
                let j = market.local(s, i);
                if let Some(value) = Payment::at(values[j]) {
                    self.portfolio.settle(kind, s, size, bars.close[j], value);
                }
            }
        }
    }

    /// The broker's margin call, before the strategy's turn: when equity at this tick's
    /// marks is gone or below the maintenance margin (`Config::margin_called`), every
    /// working order is cancelled and every position closed at its mark (its latest
    /// close), so that the strategy sees the account as the broker left it.
    #[inline(never)]
    fn check_margin(&mut self, market: &Market) {
        let p = &self.portfolio;
        if !self.config.margin_called(p) {
            return;
        }
        let held: Vec<(usize, usize, f64)> = (market.call_order().iter())
            .filter(|&&s| p.position(s).size != 0.0)
            // (A held symbol has filled at a bar, so the clock has one for it.)
            .map(|&s| {
                (
                    s,
                    self.clock.current_bar(s).unwrap_or_default(),
                    p.position(s).mark,
                )
            })
            .collect();
        let rules = Rules {
            config: &self.config,
            studies: &self.studies,
        };
        self.book
            .liquidate(self.now, &held, &mut self.portfolio, rules);
    }

    /// The barrier of tick `t` (`day_ends`: it ends a trading day, by `ends_day`'s rule).
    fn barrier(&mut self, market: &Market, t: usize, day_ends: bool) {
        let ts = market.timeline()[t];
        if self.book.has_pending() {
            self.admit_pending(market, ts);
        }
        if self.next_delisting < self.delistings.len() {
            self.delist_due(market, ts);
        }
        if day_ends && ts >= self.account_opens {
            let own_borrow = match self.config.borrow_column {
                Some(column) => {
                    self.borrow_rates_now(market, column);
                    &self.borrow_now
                }
                None => &self.config.borrow_rates,
            };
            self.portfolio
                .accrue_carry(ts, &self.config.carry, own_borrow);
            self.book.end_day(ts);
        }
        if ts >= self.account_opens {
            self.equity.next_tick_ended(self.portfolio.holds_any());
        }
        if self.config.record_every_bar || day_ends {
            let p = &self.portfolio;
            self.equity
                .push(ts, p.equity(), p.cash(), p.gross_exposure());
        }
    }

    /// What the bars of this tick's symbols (`active`) say of shorting them
    /// (`Config::locate_column`): 1 may, 0 may not, NaN not quoted.
    #[inline(never)]
    fn quote_locates(&mut self, market: &Market, column: usize, active: &[usize]) {
        for &s in active {
            let Some(locates) = market.bars(s).extra(column) else {
                continue;
            };
            let value = locates[market.local(s, self.clock.taken_bar(s))];
            self.book
                .quote_locate(s, (!value.is_nan()).then_some(value != 0.0));
        }
    }

    /// Each symbol's borrow fee at this day's end (`borrow_now`): the borrow column's value
    /// at its latest bar (never a later one), else, where that is NaN or the symbol has no
    /// such column, its own rate or none (the account's).
    #[inline(never)]
    fn borrow_rates_now(&mut self, market: &Market, column: usize) {
        let n = market.symbol_count();
        self.borrow_now.clear();
        for s in 0..n {
            let quoted = match (market.bars(s).extra(column), self.clock.current_bar(s)) {
                (Some(fees), Some(i)) => Some(fees[market.local(s, i)]).filter(|f| !f.is_nan()),
                _ => None,
            };
            let own = self.config.borrow_rates.get(s).copied().flatten();
            self.borrow_now.push(quoted.or(own));
        }
    }

    /// The symbols whose last bar is at `ts` (`set_delistings`) stop trading: their
    /// orders cancelled, their positions closed at that bar's close.
    #[inline(never)]
    fn delist_due(&mut self, market: &Market, ts: i64) {
        while let Some(&(at, s)) = self.delistings.get(self.next_delisting) {
            if at > ts {
                break;
            }
            self.next_delisting += 1;
            // (One passed without a bar of its own at a tick of this run is let go.)
            let Some(i) = self.clock.current_bar(s).filter(|_| at == ts) else {
                continue;
            };
            let close = market.bars(s).close[market.local(s, i)];
            let rules = Rules {
                config: &self.config,
                studies: &self.studies,
            };
            self.book
                .delist(ts, (s, i, close), &mut self.portfolio, rules);
        }
    }

    /// Orders placed during the tick join the book; market orders fill at this bar's
    /// close under `FillAt::Close` (for symbols with a bar now).
    fn admit_pending(&mut self, market: &Market, ts: i64) {
        let clock = &self.clock;
        let at_close = self.config.fill_at == FillAt::Close;
        let delay = self.config.order_delay;
        let rules = Rules {
            config: &self.config,
            studies: &self.studies,
        };
        // Eligible from the symbol's next bar (its first, before it has one), and
        // `order_delay` bars later.
        let first_bar = |s: usize| clock.current_bar(s).map_or(0, |i| i + 1) + delay;
        self.book
            .admit_pending(ts, &mut self.portfolio, rules, first_bar, |s| {
                if !(at_close && clock.has_data(s)) {
                    return None;
                }
                let i = clock.current_bar(s)?;
                let (b, j) = (market.bars(s), market.local(s, i));
                Some((i, b.close[j], b.volume[j]))
            });
    }

    /// The account left the range it sums exactly (`MONEY_LIMIT`): say where and what.
    #[cold]
    fn out_of_range(&self, symbol: Option<usize>, amount: f64) -> EngineError {
        let whose = symbol.map_or_else(
            || "the account's cash".to_string(),
            |s| format!("symbol '{}'", self.market.name(s)),
        );
        EngineError::InvalidMarket(format!(
            "{whose}: an amount of {amount:e} (found by timestamp {} ns UTC) is beyond ±{:.2e}, the range \
             tickstep keeps the account's sums exact in (price × size, a fill, or the cash); \
             check the prices' scale and the order sizes",
            self.now,
            crate::portfolio::MONEY_LIMIT
        ))
    }

    // ---- after (or outside) a run ---------------------------------------------------------

    pub fn market(&self) -> &Arc<Market> {
        &self.market
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Timestamp of the latest tick (`i64::MIN` before the first).
    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn equity(&self) -> f64 {
        self.portfolio.equity()
    }

    pub fn cash(&self) -> f64 {
        self.portfolio.cash()
    }

    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    pub fn studies(&self) -> &Studies {
        &self.studies
    }

    /// How many margin calls closed the account's positions (`Book::liquidate`).
    pub fn margin_calls(&self) -> u32 {
        self.book.margin_calls()
    }

    /// The fills as the book keeps them (an order id and a commission each; the rest is
    /// in the order log, see `OrderLog::fill_row`).
    pub fn fill_log(&self) -> &[Fill] {
        self.book.fills()
    }

    /// Every order placed, as the book keeps them (`OrderLog::row` gives every field).
    pub fn order_log(&self) -> &OrderLog {
        self.book.orders()
    }

    /// Every fill with every field, in the order they were executed.
    pub fn fills(&self) -> Vec<FillRow> {
        let orders = self.book.orders();
        self.book
            .fills()
            .iter()
            .map(|f| orders.fill_row(f))
            .collect()
    }

    /// Every order with every field, in id order.
    pub fn orders(&self) -> Vec<OrderRow> {
        self.book.orders().rows().collect()
    }

    /// What a run's holding spans are read from besides its closed trades
    /// (`holding::HoldingSpans`): its lots still open, its timeline (its windows' in turn)
    /// and where the account opened. Kept with the trades when they are taken
    /// (`swap_logs`), the spans are worked out only when asked for.
    pub fn holding_spans(&self) -> HoldingSpans {
        let positions = self.portfolio.positions();
        let open = positions.iter().enumerate().flat_map(|(s, p)| {
            p.lots.iter().map(move |lot| LotLife {
                symbol: s as u32,
                opened: lot.entry_ts,
                ended: None,
            })
        });
        HoldingSpans {
            open: open.collect(),
            ticks: [&self.earlier_ticks[..], self.market.timeline()].concat(),
            opens: self.account_opens,
            symbols: positions.len(),
        }
    }

    pub fn equity_curve(&self) -> &EquityCurve {
        &self.equity
    }
}
