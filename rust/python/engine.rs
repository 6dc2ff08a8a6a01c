//! `Engine` for Python: options in, one run, results out as dicts of numpy columns.

use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::adapter::PyStrategy;
use super::context::PyContext;
use super::errors::{config_error, IntoPyResult};
use super::market::PyMarket;
use crate::broker::LimitFill;
use crate::candles::WallClock;
use crate::config::{Commission, Config, FillAt, MarginParts};
use crate::engine::{Engine, Logs};
use crate::error::EngineError;
use crate::holding::HoldingSpans;
use crate::orders::{OrderRow, Reason};
use crate::portfolio::CarryRates;
use crate::portfolio::ClosedTrade;
use crate::results::{Fill, OrderLog, TradeColumns};
use crate::strategy::Strategy;
use crate::studies::GivenBuckets;

/// The strategy of a window without Python callbacks (see `run_stream`): the core's
/// indicators and working orders only; Ctrl-C still stops the run.
struct Detached;

impl Strategy for Detached {
    fn wants_bars(&self) -> bool {
        false
    }

    fn check_interrupt(&mut self) -> crate::error::Result<()> {
        Python::attach(|py| py.check_signals()).map_err(|e| EngineError::Strategy {
            symbol: None,
            timestamp: i64::MIN,
            source: Box::new(e),
        })
    }
}

#[pyclass(name = "Engine", module = "tickstep._core", unsendable)]
pub struct PyEngine {
    pub(super) engine: Engine,
    market: Py<PyMarket>,
}

fn put<'py, T: numpy::Element>(d: &Bound<'py, PyDict>, key: &str, v: Vec<T>) -> PyResult<()> {
    d.set_item(key, PyArray1::from_vec(d.py(), v))
}

/// A column of an export, as the dict holds it: numbers as a numpy array, reasons as a
/// list of their phrases (one string object per distinct phrase, not one per order).
trait Column {
    fn into_column<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>>;
}

impl<T: numpy::Element> Column for Vec<T> {
    fn into_column<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyArray1::from_vec(py, self).into_any())
    }
}

impl Column for Vec<Reason> {
    fn into_column<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let phrases = Reason::ALL.map(|r| PyString::new(py, r.phrase()));
        let list = PyList::new(py, self.iter().map(|&r| &phrases[r as usize]))?;
        Ok(list.into_any())
    }
}

/// Rows exported per block of this many: a block of any log's rows fits in the cache
/// (orders are the largest, ~130 bytes each).
const BLOCK: usize = 1024;

/// A dict of columns, one per `name: value` of a row `x` of `rows` (an exact-size
/// iterator), each named once: the column `name`, in the order given, of the rows'
/// values. Filled a block of rows at a time: every column reads the block while it is in
/// the cache (a log of 100k rows is larger than the cache, so a whole pass per column
/// would read it from memory once per column; one pass filling every column at once
/// juggles more vectors than there are registers).
macro_rules! columns_of {
    ($py:expr, $rows:expr, |$x:ident| $($name:ident: $value:expr),+ $(,)?) => {{
        let mut rows = $rows;
        let n = rows.len();
        $(let mut $name = Vec::with_capacity(n);)+
        let mut block = Vec::with_capacity(n.min(BLOCK));
        loop {
            block.clear();
            block.extend(rows.by_ref().take(BLOCK));
            if block.is_empty() {
                break;
            }
            $($name.extend(block.iter().map(|$x| $value));)+
        }
        let d = PyDict::new($py);
        $(d.set_item(stringify!($name), Column::into_column($name, $py)?)?;)+
        Ok::<_, PyErr>(d)
    }};
}

/// Some orders' rows as columns, as `Engine.orders` gives them (`order_columns_of`).
pub(super) fn order_columns<'py>(
    py: Python<'py>,
    rows: &[OrderRow],
) -> PyResult<Bound<'py, PyDict>> {
    order_columns_of(py, rows.iter().copied())
}

/// Order rows as columns (`Engine.orders`): order_id, symbol, side, size, limit, stop, sl,
/// tp, role, tag, parent_id, placed_ts, status, closed_ts, reason, filled_size, fill_price,
/// filled_side.
fn order_columns_of<'py>(
    py: Python<'py>,
    rows: impl ExactSizeIterator<Item = OrderRow>,
) -> PyResult<Bound<'py, PyDict>> {
    // As a code of `results._EXECUTED`: 0 nothing, 1 bought, 2 sold.
    let executed = |side: i8| match side {
        1 => 1i8,
        -1 => 2,
        _ => 0,
    };
    columns_of!(py, rows, |x|
        order_id: x.id as i64,
        symbol: x.symbol as i64,
        side: x.side.sign() as i8,
        size: x.size,
        limit: x.limit,
        stop: x.stop,
        sl: x.stop_loss,
        tp: x.take_profit,
        role: x.role as i8,
        tag: x.tag,
        parent_id: x.parent as i64,
        placed_ts: x.placed_ts,
        status: x.status as i8,
        closed_ts: x.closed_ts,
        reason: x.reason,
        filled_size: x.filled_size,
        fill_price: x.fill_price,
        filled_side: executed(x.filled_side),
    )
}

/// Fills as columns (`Engine.fills`): order_id, symbol, ts, side, size, price,
/// commission, role; what a fill row does not keep is read from its order's record.
fn fill_columns<'py>(
    py: Python<'py>,
    f: &[Fill],
    orders: &OrderLog,
) -> PyResult<Bound<'py, PyDict>> {
    columns_of!(py, f.iter().map(|f| orders.fill_row(f)), |x|
        order_id: x.order_id as i64,
        symbol: x.symbol as i64,
        ts: x.ts,
        side: x.direction as i8,
        size: x.size,
        price: x.price,
        commission: x.commission,
        role: x.role as i8,
    )
}

/// Closed trades as columns (`Engine.trades`): trade_id, symbol, direction, size,
/// entry/exit ts and price, pnl, return_pct, commission, bars_held, mae, mfe,
/// entry_order, exit_order, tag; a trade's symbol and side are read from its exit order,
/// its tag from its entry order.
fn trade_columns<'py>(
    py: Python<'py>,
    trades: &[ClosedTrade],
    orders: &OrderLog,
) -> PyResult<Bound<'py, PyDict>> {
    columns_of!(py, trades.iter().map(|t| orders.trade_row(t)), |x|
        trade_id: x.trade_id as i64,
        symbol: x.symbol as i64,
        direction: x.direction as i8,
        size: x.size,
        entry_ts: x.entry_ts,
        exit_ts: x.exit_ts,
        entry_price: x.entry_price,
        exit_price: x.exit_price,
        pnl: x.pnl,
        return_pct: x.return_pct,
        commission: x.commission,
        bars_held: x.bars_held as i64,
        mae: x.mae,
        mfe: x.mfe,
        entry_order: x.entry_order as i64,
        exit_order: x.exit_order as i64,
        tag: x.tag,
    )
}

/// The closed trades' columns the statistics read (`TradeColumns`), as numpy arrays
/// (the vectors handed over, not copied).
pub(super) fn trade_stat_columns(py: Python<'_>, t: TradeColumns) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    put(&d, "pnl", t.pnl)?;
    put(&d, "return_pct", t.return_pct)?;
    put(&d, "commission", t.commission)?;
    put(&d, "bars_held", t.bars_held)?;
    put(&d, "mae", t.mae)?;
    put(&d, "mfe", t.mfe)?;
    put(&d, "duration", t.duration)?;
    Ok(d)
}

/// The order log of a finished run, moved out of its engine (`Engine.take_logs`): a
/// result keeps it and exports its columns only when they are read, as most results
/// never read their orders (100k orders take longer to export than the rest of a result).
#[pyclass(name = "OrderLog", module = "tickstep._core", frozen)]
pub struct PyOrderLog {
    orders: Arc<OrderLog>,
}

#[pymethods]
impl PyOrderLog {
    /// The orders as columns, as `Engine.orders` gives them.
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        order_columns_of(py, self.orders.rows())
    }

    fn __len__(&self) -> usize {
        self.orders.len()
    }
}

/// The fills of a finished run, moved out of its engine (`Engine.take_logs`), exported
/// as columns when read (see `OrderLog`). A fill keeps its order id and commission; the
/// rest is read from the order log, shared with the run's `OrderLog`.
#[pyclass(name = "FillLog", module = "tickstep._core", frozen)]
pub struct PyFillLog {
    fills: Vec<Fill>,
    orders: Arc<OrderLog>,
}

#[pymethods]
impl PyFillLog {
    /// The fills as columns, as `Engine.fills` gives them.
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        fill_columns(py, &self.fills, &self.orders)
    }

    fn __len__(&self) -> usize {
        self.fills.len()
    }
}

/// The closed trades of a finished run, moved out of its engine (`Engine.take_logs`),
/// exported as columns when read (see `OrderLog`): a trade's row joins it with its exit
/// order, read from the run's `OrderLog`, which it shares.
#[pyclass(name = "TradeLog", module = "tickstep._core", frozen)]
pub struct PyTradeLog {
    trades: Vec<ClosedTrade>,
    orders: Arc<OrderLog>,
    /// The rest of what the run's holding spans are read from.
    spans: HoldingSpans,
}

#[pymethods]
impl PyTradeLog {
    /// The closed trades as columns, as `Engine.trades` gives them.
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        trade_columns(py, &self.trades, &self.orders)
    }

    fn __len__(&self) -> usize {
        self.trades.len()
    }

    /// Each symbol's spans of the ticks since the account opened at whose ends it held a
    /// position (`holding::holding_spans`): symbol, from_tick, to_tick (ticks
    /// `from_tick..to_tick`), worked out from the trades and the lots still open.
    fn holding_spans<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let spans = self.spans.of(&self.trades, &self.orders);
        let d = PyDict::new(py);
        put(&d, "symbol", spans.iter().map(|x| i64::from(x.0)).collect())?;
        put(&d, "from_tick", spans.iter().map(|x| x.1 as i64).collect())?;
        put(&d, "to_tick", spans.iter().map(|x| x.2 as i64).collect())?;
        Ok(d)
    }
}

impl PyEngine {
    /// The index of `symbol`, a name a per-symbol option (`option`) gives; refused naming
    /// the option when the market has no such symbol.
    fn symbol_named(&self, py: Python<'_>, option: &str, symbol: &str) -> PyResult<usize> {
        self.engine.market().symbol_index(symbol).ok_or_else(|| {
            config_error(
                py,
                format!("{option}: {symbol:?} is not a symbol of the data"),
            )
        })
    }
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (market, *, cash=10_000.0, commission=0.0, commission_fixed=0.0, commission_per_unit=0.0, commission_min=0.0, commission_cap=None, commission_maker=None, slippage_bps=0.0, fill_at="next_open", limit_fill="touch", leverage=1.0, maintenance_margin=0.0, funding_column=None, dividend_column=None, borrow_rate_column=None, shortable_column=None, volume_limit=None, volume_impact=0.0, record_every_bar=false, exclusive_orders=false, order_delay=0, borrow_rate=0.0, margin_rate=0.0, cash_rate=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        market: Py<PyMarket>,
        cash: f64,
        commission: f64,
        commission_fixed: f64,
        commission_per_unit: f64,
        commission_min: f64,
        commission_cap: Option<f64>,
        commission_maker: Option<f64>,
        slippage_bps: f64,
        fill_at: &str,
        limit_fill: &str,
        leverage: f64,
        maintenance_margin: f64,
        funding_column: Option<&str>,
        dividend_column: Option<&str>,
        borrow_rate_column: Option<&str>,
        shortable_column: Option<&str>,
        volume_limit: Option<f64>,
        volume_impact: f64,
        record_every_bar: bool,
        exclusive_orders: bool,
        order_delay: usize,
        borrow_rate: f64,
        margin_rate: f64,
        cash_rate: f64,
    ) -> PyResult<Self> {
        let m = market.get();
        let column = |option: &str, name: Option<&str>| -> PyResult<Option<usize>> {
            let Some(name) = name else {
                return Ok(None);
            };
            m.inner.column_index(name).map(Some).ok_or_else(|| {
                let columns = m.inner.columns().join(", ");
                let message = format!(
                    "{option}={name:?}: the data has no such column (its extra columns: {})",
                    if columns.is_empty() { "none" } else { &columns }
                );
                config_error(py, message)
            })
        };
        let funding = column("funding_column", funding_column)?;
        let dividends = column("dividend_column", dividend_column)?;
        let borrow_column = column("borrow_rate_column", borrow_rate_column)?;
        let locate_column = column("shortable_column", shortable_column)?;
        let config = Config {
            cash,
            commission: Commission {
                rate: commission,
                fixed: commission_fixed,
                per_unit: commission_per_unit,
                minimum: commission_min,
                cap: commission_cap,
                maker: commission_maker,
            },
            by_symbol: Vec::new(),
            multipliers: Vec::new(),
            margins: Vec::new(),
            shortable: Vec::new(),
            slippage_bps,
            slippages: Vec::new(),
            fill_at: FillAt::parse(fill_at).py_err(py)?,
            limit_fill: LimitFill::parse(limit_fill).py_err(py)?,
            leverage,
            maintenance_margin,
            funding,
            dividends,
            volume_limit,
            volume_impact,
            record_every_bar,
            exclusive_orders,
            order_delay,
            carry: CarryRates {
                borrow: borrow_rate,
                margin: margin_rate,
                cash: cash_rate,
            },
            borrow_rates: Vec::new(),
            borrow_column,
            locate_column,
        };
        let engine = Engine::new(market.get().inner.clone(), config).py_err(py)?;
        Ok(PyEngine { engine, market })
    }

    /// Per tick of the timeline, whether it ends a trading day (equity is sampled there).
    fn set_session_ends(
        &mut self,
        py: Python<'_>,
        ends: PyReadonlyArray1<'_, bool>,
    ) -> PyResult<()> {
        self.engine
            .set_session_ends(ends.as_array().to_vec())
            .py_err(py)
    }

    /// The calendar's wall clock, set before the run: the UTC offset `offsets[k]` (ns,
    /// local minus UTC) in force from instant `starts[k]` (ns UTC, ascending) on, the first
    /// also before it. Timeframes read their bars' spacing on it too.
    fn set_wall_clock(
        &mut self,
        py: Python<'_>,
        starts: PyReadonlyArray1<'_, i64>,
        offsets: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<()> {
        let clock = WallClock::new(starts.as_array().to_vec(), offsets.as_array().to_vec())
            .map_err(|m| config_error(py, m))?;
        self.engine.set_wall_clock(clock);
        Ok(())
    }

    /// Fills of `symbol` (a name of the market) pay this schedule rather than the
    /// account's (the parts as `Engine`'s options); set before the run.
    #[pyo3(signature = (symbol, *, commission=0.0, commission_fixed=0.0, commission_per_unit=0.0, commission_min=0.0, commission_cap=None, commission_maker=None))]
    #[allow(clippy::too_many_arguments)]
    fn set_symbol_commission(
        &mut self,
        py: Python<'_>,
        symbol: &str,
        commission: f64,
        commission_fixed: f64,
        commission_per_unit: f64,
        commission_min: f64,
        commission_cap: Option<f64>,
        commission_maker: Option<f64>,
    ) -> PyResult<()> {
        let s = self.symbol_named(py, "commission_by_symbol", symbol)?;
        let schedule = Commission {
            rate: commission,
            fixed: commission_fixed,
            per_unit: commission_per_unit,
            minimum: commission_min,
            cap: commission_cap,
            maker: commission_maker,
        };
        self.engine.set_symbol_commission(s, schedule).py_err(py)
    }

    /// `symbol` (a name of the market) is worth `multiplier` in money per unit and point
    /// of its price (a futures contract's multiplier); set before the run.
    fn set_multiplier(&mut self, py: Python<'_>, symbol: &str, multiplier: f64) -> PyResult<()> {
        let s = self.symbol_named(py, "multiplier", symbol)?;
        self.engine.set_multiplier(s, multiplier).py_err(py)
    }

    /// `symbol` (a name of the market) has margin terms of its own: its leverage and
    /// maintenance margin (a part not given the account's), or its initial and
    /// maintenance margin per unit; set before the run.
    #[pyo3(signature = (
        symbol, *, leverage=None, maintenance_margin=None, initial_margin_per_unit=None,
        maintenance_margin_per_unit=None
    ))]
    fn set_symbol_margin(
        &mut self,
        py: Python<'_>,
        symbol: &str,
        leverage: Option<f64>,
        maintenance_margin: Option<f64>,
        initial_margin_per_unit: Option<f64>,
        maintenance_margin_per_unit: Option<f64>,
    ) -> PyResult<()> {
        let s = self.symbol_named(py, "margin_by_symbol", symbol)?;
        let parts = MarginParts {
            leverage,
            maintenance: maintenance_margin,
            initial_per_unit: initial_margin_per_unit,
            maintenance_per_unit: maintenance_margin_per_unit,
        };
        self.engine.set_symbol_margin(s, parts).py_err(py)
    }

    /// Market and stop fills of `symbol` (a name of the market) slip by `bps` basis points
    /// rather than the account's slippage; set before the run.
    fn set_slippage(&mut self, py: Python<'_>, symbol: &str, bps: f64) -> PyResult<()> {
        let s = self.symbol_named(py, "slippage_by_symbol", symbol)?;
        self.engine.set_slippage(s, bps).py_err(py)
    }

    /// Shorts of `symbol` (a name of the market) pay `rate` a year rather than the
    /// account's `borrow_rate`; set before the run.
    fn set_borrow_rate(&mut self, py: Python<'_>, symbol: &str, rate: f64) -> PyResult<()> {
        let s = self.symbol_named(py, "borrow_rate_by_symbol", symbol)?;
        self.engine.set_borrow_rate(s, rate).py_err(py)
    }

    /// Whether `symbol` (a name of the market) may be sold short; set before the run.
    fn set_shortable(&mut self, py: Python<'_>, symbol: &str, shortable: bool) -> PyResult<()> {
        let s = self.symbol_named(py, "shortable", symbol)?;
        self.engine.set_shortable(s, shortable);
        Ok(())
    }

    /// Symbols stop trading (`close_delisted`): `times[s]` the time of symbol `s`'s last
    /// bar when it stops before the run's end, `i64::MIN` when not (`Engine::set_delistings`).
    fn set_delistings(&mut self, py: Python<'_>, times: PyReadonlyArray1<'_, i64>) -> PyResult<()> {
        let times = times
            .as_slice()
            .map_err(|e| config_error(py, e.to_string()))?;
        self.engine.set_delistings(times).py_err(py)
    }

    /// The instant (ns) the account opens, after a warm-up: carrying costs and interest
    /// accrue from the first day end at or after it.
    fn set_account_opens(&mut self, ts: i64) {
        self.engine.set_account_opens(ts);
    }

    /// Run the backtest, calling `init()` once, `next(symbol)` per symbol with a bar (or
    /// `next()`, with `next_takes_symbol=False`) and `on_tick()` per tick (each optional).
    /// The context is live only during those calls.
    #[pyo3(signature = (ctx, init=None, next=None, on_tick=None, next_takes_symbol=true))]
    fn run(
        &mut self,
        py: Python<'_>,
        ctx: PyRef<'_, PyContext>,
        init: Option<Bound<'_, PyAny>>,
        next: Option<Bound<'_, PyAny>>,
        on_tick: Option<Bound<'_, PyAny>>,
        next_takes_symbol: bool,
    ) -> PyResult<()> {
        if ctx.names().len() != self.engine.market().symbol_count() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "the context was made for another market (its symbols differ)",
            ));
        }
        let mut strategy = PyStrategy::new(ctx, init, next, on_tick, next_takes_symbol)?;
        self.engine.run(&mut strategy).py_err(py)
    }

    /// A streamed run: `init()` and the ticks of the engine's market (the first window),
    /// then, for each `(market, ends)` that `windows` yields (a `Market.window` and its
    /// day ends), the ticks of that window. Results are those of one run over all of them.
    #[pyo3(signature = (ctx, windows, init=None, next=None, on_tick=None, next_takes_symbol=true))]
    #[allow(clippy::too_many_arguments)] // (Python's keyword arguments, as `run`'s)
    fn run_stream(
        &mut self,
        py: Python<'_>,
        ctx: Bound<'_, PyContext>,
        windows: Bound<'_, PyAny>,
        init: Option<Bound<'_, PyAny>>,
        next: Option<Bound<'_, PyAny>>,
        on_tick: Option<Bound<'_, PyAny>>,
        next_takes_symbol: bool,
    ) -> PyResult<()> {
        let mut strategy = PyStrategy::new(ctx.borrow(), init, next, on_tick, next_takes_symbol)?;
        self.engine.start(&mut strategy).py_err(py)?;
        // Without next() or on_tick() nothing calls Python after init(): each window runs
        // detached from the interpreter, so the thread reading the next window runs
        // meanwhile (attached, the loop would hold it off for the whole window).
        let native = strategy.next.is_none() && strategy.on_tick.is_none();
        let mut run_window = |engine: &mut Engine| {
            if native {
                py.detach(|| engine.run_window(&mut Detached))
            } else {
                engine.run_window(&mut strategy)
            }
        };
        run_window(&mut self.engine).py_err(py)?;
        for item in windows.try_iter()? {
            // (market, day ends, buckets): the buckets of each timeframe given per bar
            // (exchange-aligned candles) for the window's bars, as (timeframe, labels per
            // symbol, ends per symbol).
            type Given<'a> = Vec<(
                usize,
                Vec<PyReadonlyArray1<'a, i64>>,
                Vec<PyReadonlyArray1<'a, i64>>,
            )>;
            let (market, ends, given): (Py<PyMarket>, PyReadonlyArray1<'_, bool>, Given<'_>) =
                item?.extract()?;
            let inner = market.get().inner.clone();
            let given = given
                .into_iter()
                .map(|(timeframe, labels, ends)| GivenBuckets {
                    timeframe,
                    labels: labels.iter().map(|a| a.as_array().to_vec()).collect(),
                    ends: ends.iter().map(|a| a.as_array().to_vec()).collect(),
                })
                .collect();
            self.engine
                .next_window(inner, ends.as_array().to_vec(), given)
                .py_err(py)?;
            ctx.get().set_market(market.clone_ref(py));
            self.market = market;
            run_window(&mut self.engine).py_err(py)?;
        }
        Ok(())
    }

    /// Bound the bars of history a strategy may read per symbol (None: all held).
    fn set_history(&mut self, bars: Option<usize>) {
        self.engine.set_history(bars);
    }

    #[getter]
    fn equity_value(&self) -> f64 {
        self.engine.equity()
    }

    #[getter]
    fn cash(&self) -> f64 {
        self.engine.cash()
    }

    #[getter]
    fn market(&self, py: Python<'_>) -> Py<PyMarket> {
        self.market.clone_ref(py)
    }

    /// Fills as columns: order_id, symbol (index), ts, side (+1/-1), size, price, commission, role.
    fn fills<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        fill_columns(py, self.engine.fill_log(), self.engine.order_log())
    }

    /// Closed trades as columns.
    fn trades<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        trade_columns(py, &self.engine.portfolio().closed, self.engine.order_log())
    }

    /// The closed trades' columns the statistics read: pnl, return_pct, commission,
    /// bars_held, mae, mfe (a result's statistics need no more of its trades).
    fn trade_stat_columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        trade_stat_columns(py, TradeColumns::of(&self.engine.portfolio().closed))
    }

    /// The rejected orders as columns (as `orders` gives them): what the end of a run
    /// reports about them, without exporting every order.
    fn rejected_orders<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let rejected = self.engine.order_log().rejected_rows();
        order_columns(py, &rejected)
    }

    /// The order log, the fills and the closed trades, moved out of the finished engine
    /// (no copy; its `orders`, `fills` and `trades` read as empty after): what a result
    /// keeps, exported when read.
    fn take_logs(&mut self) -> (PyOrderLog, PyFillLog, PyTradeLog) {
        let spans = self.engine.holding_spans();
        let mut taken = Logs::default();
        self.engine.swap_logs(&mut taken);
        let orders = Arc::new(taken.orders);
        (
            PyOrderLog {
                orders: Arc::clone(&orders),
            },
            PyFillLog {
                fills: taken.fills,
                orders: Arc::clone(&orders),
            },
            PyTradeLog {
                trades: taken.trades,
                orders,
                spans,
            },
        )
    }

    /// Every order placed, with where its life ended.
    fn orders<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        order_columns_of(py, self.engine.order_log().rows())
    }

    /// Indicator `id`'s value at each bar of symbol `symbol` (its index) in the market the
    /// engine holds, as the run read it there, computed afresh (`Studies::values_over`);
    /// None for a precomputed series or an indicator reset during the run.
    fn indicator_values<'py>(
        &self,
        py: Python<'py>,
        id: usize,
        symbol: usize,
    ) -> PyResult<Option<Bound<'py, PyArray1<f64>>>> {
        let market = self.engine.market();
        if symbol >= market.symbol_count() {
            return Err(config_error(
                py,
                format!(
                    "symbol index {symbol} out of range: the market has {} symbols",
                    market.symbol_count()
                ),
            ));
        }
        let values = self
            .engine
            .studies()
            .values_over(id, symbol, market.bars(symbol))
            .py_err(py)?;
        Ok(values.map(|v| PyArray1::from_vec(py, v)))
    }

    /// Carrying costs charged over the run (borrow fees and margin interest, net of
    /// interest earned on cash).
    fn carrying_costs(&self) -> f64 {
        self.engine.portfolio().carry_paid
    }

    /// Interest on the account's cash over the run: paid on negative cash, net of that
    /// earned on positive cash (the carrying costs no symbol's position made).
    fn interest(&self) -> f64 {
        self.engine.portfolio().interest
    }

    /// Dividends received over the run, net of those short positions paid.
    fn dividends(&self) -> f64 {
        self.engine.portfolio().dividends
    }

    /// How many margin calls closed the account's positions during the run.
    fn margin_calls(&self) -> u32 {
        self.engine.margin_calls()
    }

    /// Ticks run since the account opened that ended with a position held, and all of
    /// them: (exposed, ticks), what `Exposure Time [%]` is the share of.
    fn exposure_ticks(&self) -> (u64, u64) {
        self.engine.equity_curve().exposure_ticks()
    }

    /// Equity samples: ts, equity, cash, gross_exposure.
    fn equity<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let e = self.engine.equity_curve();
        let d = PyDict::new(py);
        put(&d, "ts", e.ts.clone())?;
        put(&d, "equity", e.equity.clone())?;
        put(&d, "cash", e.cash.clone())?;
        put(&d, "gross_exposure", e.gross_exposure.clone())?;
        Ok(d)
    }

    /// Positions at the end: per symbol size, average entry price and last mark, and
    /// what its positions were paid and charged over the run (`Payments`).
    fn positions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = self.engine.portfolio().positions();
        let d = PyDict::new(py);
        put(&d, "size", p.iter().map(|x| x.size).collect())?;
        put(
            &d,
            "average_price",
            p.iter().map(|x| x.average_price()).collect(),
        )?;
        put(&d, "mark", p.iter().map(|x| x.mark).collect())?;
        let paid = &self.engine.portfolio().payments;
        put(&d, "dividends", paid.iter().map(|x| x.dividends).collect())?;
        put(
            &d,
            "carrying_costs",
            paid.iter().map(|x| x.carrying_costs).collect(),
        )?;
        Ok(d)
    }
}
