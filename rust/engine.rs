//! Engine: one backtest. Each tick is a market phase (native), a strategy phase (the
//! strategy's callbacks) and a barrier, over the union timeline of all symbols.
//!
//! - Market phase, for each symbol with a bar: move its cursor, mark its position to the
//!   open, match its working orders against the bar (see `broker`), then mark to the close.
//! - Strategy phase: `on_bar` for each symbol with a bar, in symbol order, then `on_tick`.
//!   Orders placed here wait in a pending queue.
//! - Barrier: pending orders join the book, so they can fill from the symbol's next bar on
//!   (never at a price of the bar on which they were decided) — except market orders under
//!   `FillAt::Close`, which fill now at this bar's close. Then equity is sampled and the
//!   clock's back bitmap is built and swapped in.
//!
//! Single-threaded and deterministic: the same inputs give the same outputs, bit for bit.

use std::sync::Arc;

use crate::broker::{match_order, slipped, Bar, Moment};
use crate::clock::Clock;
use crate::error::{EngineError, Result};
use crate::market::Market;
use crate::orders::{Order, OrderRecord, OrderRequest, Role, Side, Status};
use crate::portfolio::{Execution, Portfolio, Position};
use crate::results::{EquityCurve, Fill};
use crate::strategy::Strategy;
use crate::studies::Studies;

/// When a market order fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillAt {
    /// At the open of the symbol's next bar (default: no look-ahead).
    NextOpen,
    /// At the close of the bar on which the order was placed.
    Close,
}

/// Engine options. Commission = `commission_rate` × notional + `commission_fixed` per fill.
#[derive(Clone, Debug)]
pub struct Config {
    pub cash: f64,
    pub commission_rate: f64,
    pub commission_fixed: f64,
    /// Basis points against the trader on market and stop fills.
    pub slippage_bps: f64,
    pub fill_at: FillAt,
    /// Gross exposure may reach `leverage` × equity; fills beyond it are rejected.
    pub leverage: f64,
    /// Record equity at every tick, not only at the end of each trading day.
    pub record_every_bar: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cash: 10_000.0,
            commission_rate: 0.0,
            commission_fixed: 0.0,
            slippage_bps: 0.0,
            fill_at: FillAt::NextOpen,
            leverage: 1.0,
            record_every_bar: false,
        }
    }
}

impl Config {
    fn validate(&self) -> Result<()> {
        let bad = |name: &str, v: f64, rule: &str| {
            Err(EngineError::InvalidConfig(format!(
                "{name} = {v}: must be {rule}"
            )))
        };
        if !(self.cash.is_finite() && self.cash > 0.0) {
            return bad("cash", self.cash, "a positive finite amount");
        }
        if !(self.commission_rate.is_finite() && (0.0..1.0).contains(&self.commission_rate)) {
            return bad(
                "commission",
                self.commission_rate,
                "a fraction of notional in [0, 1)",
            );
        }
        if !(self.commission_fixed.is_finite() && self.commission_fixed >= 0.0) {
            return bad("fixed commission", self.commission_fixed, ">= 0");
        }
        if !(self.slippage_bps.is_finite() && (0.0..10_000.0).contains(&self.slippage_bps)) {
            return bad("slippage", self.slippage_bps, "basis points in [0, 10000)");
        }
        if !(self.leverage.is_finite() && self.leverage > 0.0) {
            return bad("leverage", self.leverage, "> 0");
        }
        Ok(())
    }
}

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

pub struct Engine {
    market: Arc<Market>,
    config: Config,
    clock: Clock,
    portfolio: Portfolio,
    /// Working orders per symbol, in id order.
    book: Vec<Vec<Order>>,
    /// Orders placed during this tick's strategy phase.
    pending: Vec<Order>,
    /// Every order ever placed; index = id - 1.
    orders: Vec<OrderRecord>,
    fills: Vec<Fill>,
    equity: EquityCurve,
    session_end: Option<Vec<bool>>,
    current_symbol: Option<usize>,
    active: Vec<usize>,
    started: bool,
    now: i64,
    studies: Studies,
}

impl Engine {
    pub fn new(market: Arc<Market>, config: Config) -> Result<Self> {
        config.validate()?;
        let n = market.symbol_count();
        Ok(Engine {
            clock: Clock::new(&market),
            portfolio: Portfolio::new(config.cash, n),
            book: (0..n).map(|_| Vec::new()).collect(),
            pending: Vec::new(),
            orders: Vec::new(),
            fills: Vec::new(),
            equity: EquityCurve::default(),
            session_end: None,
            current_symbol: None,
            active: Vec::with_capacity(n),
            started: false,
            now: i64::MIN,
            studies: Studies::default(),
            market,
            config,
        })
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

    /// Replay the whole timeline through `strategy`. An engine runs once.
    pub fn run<S: Strategy>(&mut self, strategy: &mut S) -> Result<()> {
        if self.started {
            return Err(EngineError::State(
                "this engine has already run; build a new one".into(),
            ));
        }
        self.started = true;
        strategy.init(self)?;
        let market = Arc::clone(&self.market);
        let (bars, ticks) = (strategy.wants_bars(), strategy.wants_ticks());
        let mut t = 0;
        while self.clock.advance_to(&market, t) {
            self.now = market.timeline()[t];
            let mut active = std::mem::take(&mut self.active);
            active.clear();
            active.extend(self.clock.active());
            let studies = !self.studies.is_empty();
            for &s in &active {
                let i = self.clock.take_bar(s);
                self.market_phase(&market, s, i);
                if studies {
                    self.studies.update(s, i, market.bars(s));
                }
            }
            if bars {
                for &s in &active {
                    self.current_symbol = Some(s);
                    let outcome = strategy.on_bar(self, s);
                    if outcome.is_err() {
                        self.active = active;
                        return outcome;
                    }
                }
                self.current_symbol = None;
            }
            self.active = active;
            if ticks {
                strategy.on_tick(self)?;
            }
            self.barrier(&market, t);
            if t % 4096 == 4095 {
                strategy.check_interrupt()?;
            }
            t += 1;
        }
        Ok(())
    }

    fn market_phase(&mut self, market: &Market, s: usize, i: usize) {
        // A flat symbol with no working orders needs no prices now: its mark is read
        // lazily (`price`), which keeps the loop off most of the columns' memory.
        if self.book[s].is_empty() && self.portfolio.position(s).size == 0.0 {
            return;
        }
        let b = market.bars(s);
        let bar = Bar {
            open: b.open[i],
            high: b.high[i],
            low: b.low[i],
            close: b.close[i],
        };
        self.portfolio.mark(s, bar.open);
        if !self.book[s].is_empty() {
            self.match_book(s, i, b.ts[i], &bar);
        }
        if !self.portfolio.position(s).lots.is_empty() {
            self.portfolio.observe_range(s, bar.low, bar.high);
        }
        self.portfolio.mark(s, bar.close);
    }

    /// Match `s`'s working orders against bar `i`: first what fills at the open, then,
    /// after the open, stop-type orders before limits, repeated for legs created meanwhile.
    fn match_book(&mut self, s: usize, i: usize, ts: i64, bar: &Bar) {
        let mut k = 0;
        while k < self.book[s].len() {
            self.try_fill(s, k, i, ts, bar, Moment::Open, None);
            k += 1;
        }
        // Stops (including legs born during the pass) run to exhaustion; then limits, one
        // at a time: a limit fill that creates new legs sends the new stops back first.
        loop {
            let mut k = 0;
            while k < self.book[s].len() {
                self.try_fill(s, k, i, ts, bar, Moment::Intrabar, Some(true));
                k += 1;
            }
            let mut new_legs = false;
            let mut k = 0;
            while k < self.book[s].len() {
                let before = self.book[s].len();
                self.try_fill(s, k, i, ts, bar, Moment::Intrabar, Some(false));
                k += 1;
                if self.book[s].len() > before {
                    new_legs = true;
                    break;
                }
            }
            if !new_legs {
                break;
            }
        }
        self.book[s].retain(|o| o.live);
    }

    #[allow(clippy::too_many_arguments)]
    fn try_fill(
        &mut self,
        s: usize,
        k: usize,
        i: usize,
        ts: i64,
        bar: &Bar,
        moment: Moment,
        stops: Option<bool>,
    ) {
        let o = &mut self.book[s][k];
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
            Some(price) => self.execute(s, k, price, ts, i, moment),
            None => {
                if o.triggered && !was_triggered {
                    // A stop-limit triggered but not marketable rests from the next bar.
                    o.checked_bar = i;
                    o.eligible_from = i + 1;
                }
            }
        }
    }

    /// Fill the working order at `book[s][k]` at `raw_price` (before slippage).
    fn execute(&mut self, s: usize, k: usize, raw_price: f64, ts: i64, bar: usize, moment: Moment) {
        let order = self.book[s][k].clone();
        self.book[s][k].live = false;
        let price = slipped(&order, raw_price, self.config.slippage_bps);
        let position = self.portfolio.position(s);
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
                match order.trade.and_then(|id| self.portfolio.lot(s, id)) {
                    Some(lot) => (lot.size, -lot.direction),
                    None => {
                        self.finish(order.id, Status::Cancelled, ts, "trade already closed");
                        return;
                    }
                }
            }
        };
        let commission = size * price * self.config.commission_rate + self.config.commission_fixed;
        let (equity_after, gross_after, grows) = self
            .portfolio
            .after_fill(s, direction, size, price, commission);
        if grows
            && (equity_after <= 0.0
                || gross_after > equity_after * self.config.leverage * (1.0 + 1e-12))
        {
            self.finish(order.id, Status::Rejected, ts, "insufficient margin");
            return;
        }
        let effect = self.portfolio.apply(Execution {
            symbol: s,
            direction,
            size,
            price,
            commission,
            ts,
            bar,
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
            self.attach_bracket(&order, lot, bar, ts, moment);
        }
    }

    /// Create the stop-loss / take-profit legs of a freshly opened trade. After an entry at
    /// the open, both legs watch the rest of that bar; after an intrabar entry the stop-loss
    /// still does (conservative), the take-profit from the next bar.
    fn attach_bracket(&mut self, entry: &Order, lot: u64, bar: usize, ts: i64, moment: Moment) {
        let exit_side = entry.side.opposite();
        let leg = |this: &mut Self,
                   role: Role,
                   stop: Option<f64>,
                   limit: Option<f64>,
                   eligible_from: usize| {
            let id = this.next_order_id();
            let o = Order {
                id,
                symbol: entry.symbol,
                side: exit_side,
                size: this
                    .portfolio
                    .lot(entry.symbol, lot)
                    .map_or(0.0, |l| l.size),
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
            this.log_order(&o, entry.tag, ts);
            this.book[entry.symbol].push(o);
            id
        };
        let same_bar = if moment == Moment::Intrabar {
            bar + 1
        } else {
            0
        };
        let sl = entry
            .stop_loss
            .map(|p| leg(self, Role::StopLoss, Some(p), None, 0));
        let tp = entry
            .take_profit
            .map(|p| leg(self, Role::TakeProfit, None, Some(p), same_bar));
        if let Some(l) = self.portfolio.lot_mut(entry.symbol, lot) {
            l.stop_loss = sl;
            l.take_profit = tp;
        }
    }

    fn barrier(&mut self, market: &Market, t: usize) {
        let ts = market.timeline()[t];
        for o in std::mem::take(&mut self.pending) {
            let s = o.symbol;
            let fill_now =
                o.is_market() && self.config.fill_at == FillAt::Close && self.clock.has_data(s);
            self.book[s].push(o);
            if fill_now {
                let i = self
                    .clock
                    .current_bar(s)
                    .expect("symbol with data has a bar");
                let close = market.bars(s).close[i];
                self.portfolio.mark(s, close);
                let k = self.book[s].len() - 1;
                self.execute(s, k, close, ts, i, Moment::Intrabar);
                self.book[s].retain(|o| o.live);
            }
        }
        let timeline = market.timeline();
        let day_ends = match &self.session_end {
            Some(ends) => ends[t],
            None => {
                t + 1 == timeline.len()
                    || timeline[t].div_euclid(NANOS_PER_DAY)
                        != timeline[t + 1].div_euclid(NANOS_PER_DAY)
            }
        };
        if self.config.record_every_bar || day_ends {
            let p = &self.portfolio;
            self.equity.push(ts, p.equity(), p.cash, p.gross_exposure());
        }
    }

    fn next_order_id(&self) -> u64 {
        self.orders.len() as u64 + 1
    }

    fn log_order(&mut self, o: &Order, tag: i64, ts: i64) {
        self.orders.push(OrderRecord {
            id: o.id,
            symbol: o.symbol,
            side: o.side,
            size: o.size,
            limit: o.limit.unwrap_or(f64::NAN),
            stop: o.stop.unwrap_or(f64::NAN),
            stop_loss: o.stop_loss.unwrap_or(f64::NAN),
            take_profit: o.take_profit.unwrap_or(f64::NAN),
            role: o.role,
            tag,
            placed_ts: ts,
            status: Status::Open,
            closed_ts: i64::MIN,
            reason: "",
        });
    }

    fn finish(&mut self, id: u64, status: Status, ts: i64, reason: &'static str) {
        let r = &mut self.orders[(id - 1) as usize];
        r.status = status;
        r.closed_ts = ts;
        r.reason = reason;
    }

    /// Take a working or pending order out of play. Returns false if it was not working.
    fn cancel_working(&mut self, id: u64, ts: i64, reason: &'static str) -> bool {
        let Some(rec) = id.checked_sub(1).and_then(|i| self.orders.get(i as usize)) else {
            return false;
        };
        if rec.status != Status::Open {
            return false;
        }
        let s = rec.symbol;
        if let Some(o) = self.book[s].iter_mut().find(|o| o.id == id && o.live) {
            o.live = false;
        } else if let Some(k) = self.pending.iter().position(|o| o.id == id) {
            self.pending.remove(k);
        } else {
            return false;
        }
        self.finish(id, Status::Cancelled, ts, reason);
        true
    }

    // ---- what a strategy may do -------------------------------------------------------

    /// Place an order; it joins the book at this tick's barrier. Returns its id.
    pub fn submit(&mut self, req: OrderRequest) -> Result<u64> {
        self.check_symbol(req.symbol)?;
        let name = self.market.name(req.symbol).to_string();
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
        let reference = req.limit.or(req.stop).unwrap_or(self.price(req.symbol));
        if reference.is_finite() {
            let long = req.side == Side::Buy;
            if let Some(sl) = req.stop_loss {
                if (long && sl >= reference) || (!long && sl <= reference) {
                    let rel = if long { "below" } else { "above" };
                    return bad(format!(
                        "sl {sl} must be {rel} the entry price {reference} for a {}",
                        side_word(req.side)
                    ));
                }
            }
            if let Some(tp) = req.take_profit {
                if (long && tp <= reference) || (!long && tp >= reference) {
                    let rel = if long { "above" } else { "below" };
                    return bad(format!(
                        "tp {tp} must be {rel} the entry price {reference} for a {}",
                        side_word(req.side)
                    ));
                }
            }
        }
        Ok(self.enqueue(req, Role::Entry))
    }

    /// Flatten `symbol` at the next fill opportunity (size decided at fill time).
    /// Returns `None` when there is no position to close.
    pub fn close_position(&mut self, symbol: usize) -> Result<Option<u64>> {
        self.check_symbol(symbol)?;
        let size = self.portfolio.position(symbol).size;
        if size == 0.0 {
            return Ok(None);
        }
        let side = if size > 0.0 { Side::Sell } else { Side::Buy };
        Ok(Some(self.enqueue(
            OrderRequest::market(symbol, side, size.abs()),
            Role::ClosePosition,
        )))
    }

    fn enqueue(&mut self, req: OrderRequest, role: Role) -> u64 {
        let id = self.next_order_id();
        let o = Order {
            id,
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
        self.log_order(&o, req.tag, self.now);
        self.pending.push(o);
        id
    }

    /// Cancel a working order (also a bracket leg). Returns false if it was not working.
    pub fn cancel(&mut self, id: u64) -> bool {
        let done = self.cancel_working(id, self.now, "cancelled by the strategy");
        if done {
            for book in self.book.iter_mut() {
                book.retain(|o| o.live);
            }
        }
        done
    }

    fn check_symbol(&self, symbol: usize) -> Result<()> {
        if symbol >= self.market.symbol_count() {
            return Err(EngineError::UnknownSymbol(format!(
                "index {symbol} (the market has {} symbols)",
                self.market.symbol_count()
            )));
        }
        Ok(())
    }

    // ---- what a strategy may read -----------------------------------------------------

    pub fn market(&self) -> &Arc<Market> {
        &self.market
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Timestamp of the current tick (`i64::MIN` before the first).
    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn tick_index(&self) -> usize {
        self.clock.tick()
    }

    #[inline]
    pub fn has_data(&self, symbol: usize) -> bool {
        symbol < self.market.symbol_count() && self.clock.has_data(symbol)
    }

    /// The symbols with a bar at this tick, ascending.
    pub fn active_symbols(&self) -> &[usize] {
        &self.active
    }

    /// One bit per symbol for this tick.
    pub fn bitmap(&self) -> &[u64] {
        self.clock.bitmap()
    }

    /// The symbol whose `on_bar` is running, if any.
    #[inline]
    pub fn current_symbol(&self) -> Option<usize> {
        self.current_symbol
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
            Some(i) => self.market.bars(symbol).close[i],
            None => f64::NAN,
        }
    }

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
        self.portfolio.cash
    }

    pub fn gross_exposure(&self) -> f64 {
        self.portfolio.gross_exposure()
    }

    /// Indicators and timeframes (declare them in `init`; values follow the ticks).
    pub fn studies(&self) -> &Studies {
        &self.studies
    }

    pub fn studies_mut(&mut self) -> &mut Studies {
        &mut self.studies
    }

    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    /// Symbols now flat with an entry order working or pending: positions on their way.
    pub fn pending_entry_count(&self) -> usize {
        let mut count = 0;
        for (s, book) in self.book.iter().enumerate() {
            if self.portfolio.position(s).size != 0.0 {
                continue;
            }
            let entry = |o: &Order| o.live && o.role == Role::Entry && o.symbol == s;
            if book.iter().any(entry) || self.pending.iter().any(entry) {
                count += 1;
            }
        }
        count
    }

    /// Ids of `symbol`'s working and pending orders.
    pub fn open_orders(&self, symbol: usize) -> Vec<u64> {
        let working = self.book[symbol].iter().filter(|o| o.live).map(|o| o.id);
        let pending = self
            .pending
            .iter()
            .filter(|o| o.symbol == symbol)
            .map(|o| o.id);
        working.chain(pending).collect()
    }

    // ---- results ---------------------------------------------------------------------

    pub fn fills(&self) -> &[Fill] {
        &self.fills
    }

    pub fn orders(&self) -> &[OrderRecord] {
        &self.orders
    }

    pub fn equity_curve(&self) -> &EquityCurve {
        &self.equity
    }
}

fn side_word(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}
