//! The tick context: what a strategy may use while its callbacks run, and nothing more.
//!
//! `TickContext` borrows from the engine only the pieces a callback needs — the book (to
//! place, cancel and list orders), the portfolio (read only, but for the links from a
//! trade to the exit orders the book places for it), the studies (read, and reset
//! a statistic), the market and the clock (read only) — so a callback cannot reach the
//! loop, the equity log or the clock's cursors. `Setup` is the same context during
//! `init()`, plus the one thing only `init()` may do: declare studies. A declaration in
//! `next()`/`on_tick()` cannot be written, because a `TickContext` has no way to it.

use std::ops::{Deref, DerefMut, Range};
use std::sync::Arc;

use crate::book::{Book, Placing};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::market::Market;
use crate::orders::{Order, OrderRequest, Role, ShareAtFill, TimeInForce};
use crate::portfolio::{worth, Lot, Portfolio, Position};
use crate::results::TradeRow;
use crate::studies::Studies;

pub struct TickContext<'a> {
    pub(crate) market: &'a Arc<Market>,
    pub(crate) config: &'a Config,
    pub(crate) clock: &'a Clock,
    pub(crate) active: &'a [usize],
    pub(crate) now: i64,
    pub(crate) current: Option<usize>,
    pub(crate) book: &'a mut Book,
    /// Read only but for a trade's links to its exit orders, which the book writes when
    /// the strategy sets them (`set_trade_exit`).
    pub(crate) portfolio: &'a mut Portfolio,
    pub(crate) studies: &'a mut Studies,
    /// How many past bars of a symbol may be read (None: all the market holds).
    pub(crate) history: Option<usize>,
}

impl TickContext<'_> {
    // ---- the market and the clock -------------------------------------------------------

    pub fn market(&self) -> &Arc<Market> {
        self.market
    }

    pub fn config(&self) -> &Config {
        self.config
    }

    /// Timestamp of the current tick (`i64::MIN` in `init`, before the first).
    #[inline]
    pub fn now(&self) -> i64 {
        self.now
    }

    /// Index of the current tick in the timeline (`usize::MAX` before the first).
    pub fn tick_index(&self) -> usize {
        self.clock.tick()
    }

    #[inline]
    pub fn has_data(&self, symbol: usize) -> bool {
        symbol < self.market.symbol_count() && self.clock.has_data(symbol)
    }

    /// The symbols with a bar at this tick, in the market's call order (the order the
    /// user gave the symbols in; see `Market::with_call_order`).
    pub fn active_symbols(&self) -> &[usize] {
        self.active
    }

    /// One bit per symbol for this tick.
    pub fn bitmap(&self) -> &[u64] {
        self.clock.bitmap()
    }

    /// The symbol whose `on_bar` is running, if any.
    #[inline]
    pub fn current_symbol(&self) -> Option<usize> {
        self.current
    }

    /// Index of `symbol`'s latest bar seen so far.
    #[inline]
    pub fn bar_index(&self, symbol: usize) -> Option<usize> {
        self.clock.current_bar(symbol)
    }

    /// Latest close of `symbol` (NaN before its first bar).
    #[inline]
    pub fn price(&self, symbol: usize) -> f64 {
        match self.clock.current_bar(symbol) {
            Some(i) => self.market.bars(symbol).close[self.market.local(symbol, i)],
            None => f64::NAN,
        }
    }

    /// What one unit of `symbol` is worth at its latest close: the close times its
    /// multiplier (`portfolio::worth`; NaN before its first bar). Sizing in money buys
    /// units of it.
    #[inline]
    pub fn unit_value(&self, symbol: usize) -> f64 {
        worth(1.0, self.price(symbol), self.position(symbol).multiplier)
    }

    /// `symbol`'s value of the market's extra column `column` at its latest bar (NaN
    /// before its first bar); `None` when the symbol has no such column. Like `price`,
    /// never a value of a bar after the current tick.
    #[inline]
    pub fn column_value(&self, symbol: usize, column: usize) -> Option<f64> {
        let values = self.market.bars(symbol).extra(column)?;
        Some(
            self.clock
                .current_bar(symbol)
                .map_or(f64::NAN, |i| values[self.market.local(symbol, i)]),
        )
    }

    /// The bars of `symbol` a strategy may see now: the last `count` up to and including
    /// its latest bar (never one after the current tick: the no-look-ahead window), as run
    /// indices. More than the history bound (`Engine::set_history`) is refused whether or
    /// not the bars happen to be held, so a run never depends on how it was streamed.
    pub fn history_window(&self, symbol: usize, count: usize) -> Result<Range<usize>> {
        if let Some(kept) = self.history {
            if count > kept {
                let asked = if count >= 1 << 62 {
                    "every bar so far".to_string()
                } else {
                    format!("{count} bars")
                };
                return Err(EngineError::State(format!(
                    "{}: the strategy read {asked} of history, but only the last {kept} bars of \
                     each symbol are kept (history={kept}); pass history=N to Backtest with N at \
                     least the longest count read (self.data(symbol, count=N))",
                    self.market.name(symbol)
                )));
            }
        }
        let stop = self.clock.current_bar(symbol).map_or(0, |i| i + 1);
        let start = stop.saturating_sub(count).max(self.market.base(symbol));
        Ok(start..stop)
    }

    // ---- the portfolio (read only) -------------------------------------------------------

    #[inline]
    pub fn position(&self, symbol: usize) -> &Position {
        self.portfolio.position(symbol)
    }

    #[inline]
    pub fn equity(&self) -> f64 {
        self.portfolio.equity()
    }

    #[inline]
    pub fn cash(&self) -> f64 {
        self.portfolio.cash()
    }

    pub fn gross_exposure(&self) -> f64 {
        self.portfolio.gross_exposure()
    }

    /// The initial margin the positions hold (`Config::margin_used`).
    pub fn margin_used(&self) -> f64 {
        self.config.margin_used(self.portfolio)
    }

    /// How much more of `symbol` the account may hold, in money (`Config::buying_power`).
    pub fn buying_power(&self, symbol: usize) -> f64 {
        (self.config).buying_power(self.portfolio, symbol, self.unit_value(symbol))
    }

    pub fn portfolio(&self) -> &Portfolio {
        self.portfolio
    }

    // ---- studies: read, or restart a statistic ------------------------------------------

    /// Indicators and timeframes declared in `init` (values follow the ticks).
    pub fn studies(&self) -> &Studies {
        self.studies
    }

    /// Restart a rolling statistic for one symbol: it refills from its next input.
    pub fn reset_study(&mut self, id: usize, symbol: usize) -> Result<()> {
        self.check_symbol(symbol)?;
        self.studies
            .reset(id, symbol, self.clock.current_bar(symbol))
    }

    // ---- orders ----------------------------------------------------------------------------

    /// Entry `id`, just placed, is sized when it fills (`Book::size_at_fill`).
    pub fn size_at_fill(&mut self, id: u64, share: ShareAtFill) {
        self.book.size_at_fill(id, share);
    }

    /// Place an order; it joins the book at this tick's barrier. Returns its id. With
    /// `exclusive_orders`, the symbol's entry orders still working are cancelled and its
    /// position is closed first (the close fills before the order, in the same batch, at
    /// the same moment for an order at the open or the close).
    pub fn submit(&mut self, req: OrderRequest) -> Result<u64> {
        self.check_symbol(req.symbol)?;
        let s = req.symbol;
        let bar = self.clock.current_bar(s);
        if self.config.exclusive_orders {
            self.book.cancel_entries(s, self.now);
            // One close suffices (sized when it fills): not one more per order placed.
            if !self.book.closing(s) {
                let close = self.close_position(s)?;
                if let (Some(id), TimeInForce::AtTheOpen | TimeInForce::AtTheClose) =
                    (close, req.time_in_force)
                {
                    let last_bar = self.first_fill_bar(s, bar);
                    self.book
                        .close_at_moment(s, id, req.time_in_force, last_bar);
                }
            }
        }
        let placing = Placing {
            name: self.market.name(s),
            price: self.price(s),
            now: self.now,
            next_bar: self.first_fill_bar(s, bar),
            symbol: s,
            bar,
            studies: self.studies,
        };
        self.book.submit(req, &placing)
    }

    /// The first bar of `symbol` an order placed now can fill on: the first after the
    /// barrier it joins the book at, and `Config::order_delay` bars more.
    fn first_fill_bar(&self, symbol: usize, bar: Option<usize>) -> usize {
        self.first_bar_after_barrier(symbol, bar) + self.config.order_delay
    }

    /// The first bar of `symbol` after the barrier an order placed now joins. Orders join
    /// the book at the barrier of the tick they are placed in, after that tick's bars: the
    /// bar after the symbol's latest. Before the first tick (in `init`) the barrier they join at is
    /// the first tick's, so a symbol with a bar at that tick starts at its second bar (an
    /// immediate-or-cancel or `valid=n` order counts its bars from there, not from a bar
    /// it could never fill on).
    fn first_bar_after_barrier(&self, symbol: usize, bar: Option<usize>) -> usize {
        match bar {
            Some(i) => i + 1,
            None => {
                let joins_at = self
                    .market
                    .timeline()
                    .first()
                    .map_or(self.now, |&t| t.max(self.now));
                let first = self.market.bars(symbol).ts.first();
                usize::from(first.is_some_and(|&t| t <= joins_at))
            }
        }
    }

    /// Flatten `symbol` at its next fill (size decided at fill time). `None` when flat.
    pub fn close_position(&mut self, symbol: usize) -> Result<Option<u64>> {
        self.close_portion(symbol, 1.0)
    }

    /// Close `portion` (0 < portion <= 1) of `symbol`'s position at its next fill, the
    /// oldest trades first (FIFO); sized when it fills. `None` when flat.
    pub fn close_portion(&mut self, symbol: usize, portion: f64) -> Result<Option<u64>> {
        self.check_symbol(symbol)?;
        let held = self.portfolio.position(symbol).size;
        let name = self.market.name(symbol);
        (self.book)
            .close_position(symbol, held, portion, self.now)
            .map_err(|e| named_order_error(name, e))
    }

    /// Close `portion` (0 < portion <= 1) of `symbol`'s open trade `trade` at its next
    /// fill (sized then: that portion of what is left of it).
    pub fn close_trade(&mut self, symbol: usize, trade: u64, portion: f64) -> Result<u64> {
        self.check_symbol(symbol)?;
        let name = self.market.name(symbol);
        (self.book)
            .close_trade(self.portfolio, symbol, trade, portion, self.now)
            .map_err(|e| named_order_error(name, e))
    }

    /// Set `symbol`'s open trade `trade`'s stop-loss (`Role::StopLoss`) or take-profit
    /// (`Role::TakeProfit`) at `price`, or take it away (None); see
    /// `Book::set_trade_exit`. Returns the exit order's id.
    pub fn set_trade_exit(
        &mut self,
        symbol: usize,
        trade: u64,
        role: Role,
        price: Option<f64>,
    ) -> Result<Option<u64>> {
        self.check_symbol(symbol)?;
        let name = self.market.name(symbol);
        (self.book)
            .set_trade_exit(self.portfolio, symbol, trade, role, price, self.now)
            .map_err(|e| named_order_error(name, e))
    }

    /// Where `symbol`'s exit order `id` (a trade's stop-loss or take-profit) would close
    /// its trade: its stop or limit price now. None once it no longer works.
    pub fn exit_price(&self, symbol: usize, id: u64) -> Option<f64> {
        self.book.exit_price(symbol, id)
    }

    /// `symbol`'s open trade `trade` (None once it has closed, or never opened).
    pub fn open_trade(&self, symbol: usize, trade: u64) -> Option<&Lot> {
        self.portfolio.lot(symbol, trade)
    }

    /// The price of `symbol`'s open trade `trade`'s exit of `role` (its stop-loss or
    /// take-profit) working now, a trailing one where it has moved to; None without one,
    /// or once the trade has closed.
    pub fn trade_exit(&self, symbol: usize, trade: u64, role: Role) -> Option<f64> {
        let lot = self.open_trade(symbol, trade)?;
        let leg = match role {
            Role::TakeProfit => lot.take_profit,
            _ => lot.stop_loss,
        };
        leg.and_then(|id| self.exit_price(symbol, id))
    }

    /// Order `id`'s tag (the strategy's; 0 without one): of a trade, its entry order's.
    pub fn order_tag(&self, id: u64) -> i64 {
        self.book.orders().tag(id)
    }

    /// How many trades (parts) have closed so far.
    pub fn closed_count(&self) -> usize {
        self.portfolio.closed.len()
    }

    /// The trades closed so far from the `from`-th on (each closing fill's part of a
    /// trade is one), in the order they closed, with every field of the results' table.
    pub fn closed_trades(&self, from: usize) -> impl Iterator<Item = TradeRow> + '_ {
        let log = self.book.orders();
        let closed = self.portfolio.closed.get(from..).unwrap_or(&[]);
        closed.iter().map(move |t| log.trade_row(t))
    }

    /// Change a working order's `limit`, `stop` or `size` from the next bar on.
    pub fn modify(
        &mut self,
        id: u64,
        limit: Option<f64>,
        stop: Option<f64>,
        size: Option<f64>,
    ) -> Result<()> {
        self.book.modify(id, limit, stop, size)
    }

    /// Cancel a working order (also a bracket leg). Returns false if it was not working.
    pub fn cancel(&mut self, id: u64) -> bool {
        self.book.cancel(id, self.now)
    }

    /// Ids of `symbol`'s working and pending orders.
    pub fn open_orders(&self, symbol: usize) -> Vec<u64> {
        self.book.open_orders(symbol)
    }

    /// The symbols a read that names none is about: the running one inside `next`, every
    /// symbol where none runs (`on_tick`, `init`).
    pub fn symbols_in_view(&self) -> Range<usize> {
        match self.current_symbol() {
            Some(s) => s..s + 1,
            None => 0..self.market.symbol_count(),
        }
    }

    /// `symbol`'s working and pending orders themselves, in id order.
    pub fn working_orders(&self, symbol: usize) -> impl Iterator<Item = &Order> {
        self.book.working(symbol).iter().filter(|o| o.live)
    }

    /// The order whose fill made order `id` (a bracket leg's entry, the order a rest is
    /// the rest of); 0 for none.
    pub fn order_parent(&self, id: u64) -> u64 {
        self.book.orders().parent(id)
    }

    /// Symbols now flat with an entry order working or pending: positions on their way.
    pub fn pending_entry_count(&self) -> usize {
        self.book.pending_entry_count(self.portfolio)
    }

    pub fn check_symbol(&self, symbol: usize) -> Result<()> {
        if symbol >= self.market.symbol_count() {
            return Err(EngineError::UnknownSymbol(format!(
                "index {symbol} (the market has {} symbols)",
                self.market.symbol_count()
            )));
        }
        Ok(())
    }
}

/// An order refused by the book, its message led by the symbol's name.
fn named_order_error(name: &str, e: EngineError) -> EngineError {
    match e {
        EngineError::InvalidOrder(m) => EngineError::InvalidOrder(format!("{name}: {m}")),
        other => other,
    }
}

/// The context of `init()`: a tick context that may also declare studies.
pub struct Setup<'a> {
    pub(crate) ctx: TickContext<'a>,
}

impl Setup<'_> {
    /// Declare indicators and timeframes (only here: they are maintained from the first
    /// tick on, so a study declared later would have missed bars).
    pub fn studies_mut(&mut self) -> &mut Studies {
        self.ctx.studies
    }
}

impl<'a> Deref for Setup<'a> {
    type Target = TickContext<'a>;

    fn deref(&self) -> &TickContext<'a> {
        &self.ctx
    }
}

impl<'a> DerefMut for Setup<'a> {
    fn deref_mut(&mut self) -> &mut TickContext<'a> {
        &mut self.ctx
    }
}
