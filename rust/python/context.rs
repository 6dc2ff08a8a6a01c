//! `Context`: the one reusable object through which a Python strategy talks to the core
//! while it runs. It points at the core's tick context (`crate::context`) only for the
//! duration of a callback — never at the engine — so Python reaches exactly what a Rust
//! strategy may reach: orders, portfolio reads, studies reads, market views; and study
//! declarations only during `init()`.

use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyKeyError;
use pyo3::types::PyDict;

use pyo3::prelude::*;

use super::errors::{config_error, order_error, state_error, unknown_symbol, IntoPyResult};
use super::market::{view_column, PyMarket};
use crate::candles::Candle;
use crate::context::{Setup, TickContext};
use crate::orders::{OrderRequest, Side, TimeInForce, Trail};
use crate::studies::{self, Studies};

/// (ts, open, high, low, close, volume) as handed to Python.
type BarTuple = (i64, f64, f64, f64, f64, f64);

/// (ts, end, open, high, low, close, volume) as handed to Python.
type CandleTuple = (i64, i64, f64, f64, f64, f64, f64);

/// A trail as Python gives it: (kind, value, study).
fn to_trail(py: Python<'_>, (kind, value, study): (String, f64, Option<usize>)) -> PyResult<Trail> {
    match (kind.as_str(), study) {
        ("distance", None) => Ok(Trail::Distance(value)),
        ("fraction", None) => Ok(Trail::Fraction(value)),
        ("atr", Some(study)) => Ok(Trail::Atr {
            study,
            multiple: value,
        }),
        _ => Err(order_error(
            py,
            format!("trail kind {kind:?}: must be 'distance', 'fraction' or 'atr' (with its ATR)"),
        )),
    }
}

fn candle_tuple(c: Candle) -> CandleTuple {
    (c.ts, c.end, c.open, c.high, c.low, c.close, c.volume)
}

// Frozen (no borrow flag on every call): the module runs under the GIL (`gil_used`) and no
// method releases it, so calls into a context never overlap.
#[pyclass(name = "Context", module = "tickstep._core", frozen)]
pub struct PyContext {
    /// The tick context of the running `next()`/`on_tick()`, else null.
    tick: AtomicPtr<TickContext<'static>>,
    /// The set-up context of the running `init()`, else null.
    setup: AtomicPtr<Setup<'static>>,
    /// The market views are cut from: the engine's, replaced by each window of a
    /// streamed run (`set_market`).
    market: Mutex<Py<PyMarket>>,
    index: HashMap<String, usize>,
}

/// Clears the context's pointers when a callback returns (or unwinds).
pub struct Attached<'a>(&'a PyContext);

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        self.0.tick.store(ptr::null_mut(), Ordering::Relaxed);
        self.0.setup.store(ptr::null_mut(), Ordering::Relaxed);
    }
}

const OUTSIDE: &str =
    "the strategy context is only usable inside init(), next() and on_tick() of a running backtest";

impl PyContext {
    /// The market views are cut from now.
    pub fn current_market(&self, py: Python<'_>) -> Py<PyMarket> {
        self.market
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone_ref(py)
    }

    /// A streamed run moved to its next window: views come from it from now on (views
    /// handed out before keep their window alive).
    pub fn set_market(&self, market: Py<PyMarket>) {
        *self.market.lock().unwrap_or_else(|e| e.into_inner()) = market;
    }

    /// Let Python reach `ctx` until the returned guard drops. The caller must not use
    /// `ctx` itself while the guard lives (Python holds the only way in).
    pub fn attach<'a>(&'a self, ctx: &mut TickContext<'_>) -> Attached<'a> {
        let p: *mut TickContext<'static> = (ctx as *mut TickContext<'_>).cast();
        self.tick.store(p, Ordering::Relaxed);
        Attached(self)
    }

    /// As `attach`, for `init()`: studies may be declared through it.
    pub fn attach_setup<'a>(&'a self, setup: &mut Setup<'_>) -> Attached<'a> {
        let p: *mut Setup<'static> = (setup as *mut Setup<'_>).cast();
        self.setup.store(p, Ordering::Relaxed);
        Attached(self)
    }

    // The context is the one path into the core while a callback runs (see `attach`).
    #[allow(clippy::mut_from_ref)]
    fn context(&self) -> PyResult<&mut TickContext<'static>> {
        let setup = self.setup.load(Ordering::Relaxed);
        if !setup.is_null() {
            // SAFETY: as for `tick` below (set by `attach_setup`).
            return Ok(unsafe { &mut (*setup).ctx });
        }
        let p = self.tick.load(Ordering::Relaxed);
        if p.is_null() {
            return Err(Python::attach(|py| state_error(py, OUTSIDE)));
        }
        // SAFETY: `p` was set by `attach` from a live `&mut TickContext` whose owner (the
        // engine's loop) is blocked in a call into Python until the guard clears it; every
        // call holds the GIL for its whole length, and no method here calls back into
        // Python while holding the reference. The 'static lifetime never leaves this
        // module: each method uses the reference only for the length of its own call.
        Ok(unsafe { &mut *p })
    }

    /// The studies to declare into: only while `init()` runs.
    #[allow(clippy::mut_from_ref)]
    fn declare(&self, py: Python<'_>, what: &str) -> PyResult<&mut Studies> {
        let setup = self.setup.load(Ordering::Relaxed);
        if setup.is_null() {
            if self.tick.load(Ordering::Relaxed).is_null() {
                return Err(state_error(py, OUTSIDE));
            }
            return Err(state_error(
                py,
                format!(
                    "{what} must be declared in init(), not in next() or on_tick(): declare it once in init() (e.g. self.fast = self.sma(10)) and read it in next()"
                ),
            ));
        }
        // SAFETY: `setup` was set by `attach_setup` from a live `&mut Setup` under the
        // same rules as `context` above.
        Ok(unsafe { (*setup).studies_mut() })
    }

    /// A symbol given by name (str) or index (int) from Python.
    pub fn resolve(&self, obj: &Bound<'_, PyAny>) -> PyResult<isize> {
        if let Ok(name) = obj.extract::<&str>() {
            return self
                .index
                .get(name)
                .map(|&i| i as isize)
                .ok_or_else(|| unknown_symbol(obj.py(), format!("unknown symbol {name:?}")));
        }
        obj.extract::<isize>()
    }

    /// A symbol argument given as a name, an index or None (the current symbol).
    fn symbol_arg(
        &self,
        e: &TickContext<'_>,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let i = match symbol {
            None => -1,
            Some(obj) => self.resolve(obj)?,
        };
        Self::symbol(e, i)
    }

    /// Symbol index from Python: -1 means the symbol whose `next()` is running.
    fn symbol(e: &TickContext<'_>, symbol: isize) -> PyResult<usize> {
        if symbol < 0 {
            return e.current_symbol().ok_or_else(|| {
                Python::attach(|py| {
                    unknown_symbol(
                        py,
                        "no current symbol here (init() or on_tick()): pass the symbol explicitly",
                    )
                })
            });
        }
        let s = symbol as usize;
        if s >= e.market().symbol_count() {
            return Err(Python::attach(|py| {
                unknown_symbol(py, format!("symbol index {s} out of range"))
            }));
        }
        Ok(s)
    }
}

#[pymethods]
impl PyContext {
    #[new]
    fn new(market: Py<PyMarket>) -> Self {
        let index = market
            .get()
            .inner
            .names()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        PyContext {
            tick: AtomicPtr::new(ptr::null_mut()),
            setup: AtomicPtr::new(ptr::null_mut()),
            market: Mutex::new(market),
            index,
        }
    }

    /// The market this context reads (its columns, extra columns included).
    #[getter]
    fn market(&self, py: Python<'_>) -> Py<PyMarket> {
        self.current_market(py)
    }

    /// Whether a backtest is currently attached.
    fn is_running(&self) -> bool {
        !(self.tick.load(Ordering::Relaxed).is_null()
            && self.setup.load(Ordering::Relaxed).is_null())
    }

    /// Timestamp (int ns UTC) of the current tick.
    fn now(&self) -> PyResult<i64> {
        Ok(self.context()?.now())
    }

    /// Index of the symbol whose `next()` is running, or -1.
    fn current(&self) -> PyResult<isize> {
        Ok(self.context()?.current_symbol().map_or(-1, |s| s as isize))
    }

    fn has_data(&self, symbol: isize) -> PyResult<bool> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        Ok(e.has_data(s))
    }

    /// Indices of the symbols with a bar at this tick, ascending.
    fn active(&self) -> PyResult<Vec<usize>> {
        Ok(self.context()?.active_symbols().to_vec())
    }

    /// Latest close (NaN before the symbol's first bar).
    fn price(&self, symbol: isize) -> PyResult<f64> {
        let e = self.context()?;
        Ok(e.price(Self::symbol(e, symbol)?))
    }

    /// Index of the symbol's latest bar, -1 before its first.
    fn bar_index(&self, symbol: isize) -> PyResult<isize> {
        let e = self.context()?;
        Ok(e.bar_index(Self::symbol(e, symbol)?)
            .map_or(-1, |i| i as isize))
    }

    /// The symbol's latest bar as (ts, open, high, low, close, volume).
    fn bar(&self, symbol: isize) -> PyResult<Option<BarTuple>> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        Ok(e.bar_index(s).map(|i| {
            let b = e.market().bars(s);
            let i = e.market().local(s, i);
            (
                b.ts[i],
                b.open[i],
                b.high[i],
                b.low[i],
                b.close[i],
                b.volume[i],
            )
        }))
    }

    /// The symbol's value of extra column `column` (an index into `Market.columns`) at its
    /// latest bar, NaN before the first; never a later bar's.
    fn value(&self, column: usize, symbol: isize) -> PyResult<f64> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        e.column_value(s, column).ok_or_else(|| {
            let market = e.market();
            let name = market.columns().get(column).map_or("?", |c| c.as_str());
            PyKeyError::new_err(format!(
                "symbol {:?} has no column {name:?} (its data did not hold it)",
                market.name(s)
            ))
        })
    }

    /// The last `count` values of a column up to and including the latest bar: a read-only
    /// view, never reaching past the current tick.
    fn history<'py>(
        &self,
        py: Python<'py>,
        symbol: isize,
        column: &str,
        count: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        let window = e.history_window(s, count).py_err(py)?;
        let market = self.current_market(py);
        view_column(market.bind(py), s, column, window.start, window.end)
    }

    /// Signed position size in units.
    fn position(&self, symbol: isize) -> PyResult<f64> {
        let e = self.context()?;
        Ok(e.position(Self::symbol(e, symbol)?).size)
    }

    /// Volume-weighted entry price of the open position (NaN when flat).
    fn average_price(&self, symbol: isize) -> PyResult<f64> {
        let e = self.context()?;
        Ok(e.position(Self::symbol(e, symbol)?).average_price())
    }

    /// Open trades of a symbol: (trade id, direction, size, entry price, entry ts, sl order, tp order).
    #[allow(clippy::type_complexity)]
    fn trades(
        &self,
        symbol: isize,
    ) -> PyResult<Vec<(u64, f64, f64, f64, i64, Option<u64>, Option<u64>)>> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        Ok(e.position(s)
            .lots
            .iter()
            .map(|l| {
                (
                    l.id,
                    l.direction,
                    l.size,
                    l.entry_price,
                    l.entry_ts,
                    l.stop_loss,
                    l.take_profit,
                )
            })
            .collect())
    }

    fn equity(&self) -> PyResult<f64> {
        Ok(self.context()?.equity())
    }

    fn cash(&self) -> PyResult<f64> {
        Ok(self.context()?.cash())
    }

    fn gross_exposure(&self) -> PyResult<f64> {
        Ok(self.context()?.gross_exposure())
    }

    fn open_position_count(&self) -> PyResult<usize> {
        Ok(self.context()?.portfolio().open_position_count())
    }

    /// Flat symbols with an entry order working or pending.
    fn pending_entry_count(&self) -> PyResult<usize> {
        Ok(self.context()?.pending_entry_count())
    }

    /// Place an order; returns its id. It can fill from the symbol's next bar on.
    /// `tif`: "gtc" | "day" | "ioc"; `valid_bars` / `valid_until` (ns) make it good till
    /// then. `trail` / `sl_trail`: (kind, value, study) with kind "distance" | "fraction"
    /// | "atr" (value = the ATR multiple, study = the ATR's id).
    #[pyo3(signature = (symbol, buy, size, limit=None, stop=None, sl=None, tp=None, tag=0, tif="gtc", valid_bars=None, valid_until=None, trail=None, sl_trail=None, oco=None))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        symbol: isize,
        buy: bool,
        size: f64,
        limit: Option<f64>,
        stop: Option<f64>,
        sl: Option<f64>,
        tp: Option<f64>,
        tag: i64,
        tif: &str,
        valid_bars: Option<usize>,
        valid_until: Option<i64>,
        trail: Option<(String, f64, Option<usize>)>,
        sl_trail: Option<(String, f64, Option<usize>)>,
        oco: Option<u64>,
    ) -> PyResult<u64> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        let side = if buy { Side::Buy } else { Side::Sell };
        let time_in_force = match (tif, valid_bars, valid_until) {
            ("gtc", None, None) => TimeInForce::GoodTillCancelled,
            ("gtc", Some(n), None) => TimeInForce::Bars(n),
            ("gtc", None, Some(ts)) => TimeInForce::Until(ts),
            ("day", None, None) => TimeInForce::Day,
            ("ioc", None, None) => TimeInForce::ImmediateOrCancel,
            (other, ..) if !matches!(other, "gtc" | "day" | "ioc") => {
                return Err(order_error(
                    py,
                    format!("tif={other:?}: must be 'gtc', 'day' or 'ioc'"),
                ))
            }
            _ => {
                return Err(order_error(
                    py,
                    "valid= makes an order good till a date: it goes with tif='gtc' only",
                ))
            }
        };
        let req = OrderRequest {
            symbol: s,
            side,
            size,
            limit,
            stop,
            stop_loss: sl,
            take_profit: tp,
            tag,
            time_in_force,
            trail: trail.map(|t| to_trail(py, t)).transpose()?,
            stop_loss_trail: sl_trail.map(|t| to_trail(py, t)).transpose()?,
            oco,
        };
        e.submit(req).py_err(py)
    }

    /// Flatten the symbol's position (or `portion` of it, oldest trades first) at its next
    /// fill; None if already flat.
    #[pyo3(signature = (symbol, portion=1.0))]
    fn close_position(&self, py: Python<'_>, symbol: isize, portion: f64) -> PyResult<Option<u64>> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        e.close_portion(s, portion).py_err(py)
    }

    /// Change a working order's limit, stop or size from the next bar on.
    #[pyo3(signature = (order_id, limit=None, stop=None, size=None))]
    fn modify(
        &self,
        py: Python<'_>,
        order_id: u64,
        limit: Option<f64>,
        stop: Option<f64>,
        size: Option<f64>,
    ) -> PyResult<()> {
        self.context()?
            .modify(order_id, limit, stop, size)
            .py_err(py)
    }

    /// Cancel a working order; False if it had already filled or ended.
    fn cancel(&self, order_id: u64) -> PyResult<bool> {
        Ok(self.context()?.cancel(order_id))
    }

    /// Ids of the symbol's working and pending orders.
    fn open_orders(&self, symbol: isize) -> PyResult<Vec<u64>> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        Ok(e.open_orders(s))
    }

    // ---- indicators and timeframes: declared in `init()`, read in O(1) per call ----

    /// Declare a rolling statistic (sum, mean, min, max, std, ema, rsi, atr) of `source`
    /// over `window` base bars, or over a timeframe's completed candles.
    #[pyo3(signature = (kind, window, source="close", timeframe=None))]
    fn add_rolling(
        &self,
        py: Python<'_>,
        kind: &str,
        window: usize,
        source: &str,
        timeframe: Option<usize>,
    ) -> PyResult<usize> {
        let n = self.context()?.market().symbol_count();
        let studies = self.declare(py, "an indicator")?;
        let kind = studies::rolling_kind(kind, window).py_err(py)?;
        let market = self.current_market(py);
        if let Some(column) = market.get().inner.column_index(source) {
            if timeframe.is_some() {
                return Err(config_error(py, format!(
                    "source {source:?} is an extra column: candles of a timeframe carry open, high, low, close and volume only; use it on base bars (no timeframe) or through self.I"
                )));
            }
            return studies.add_rolling_on_column(n, kind, column).py_err(py);
        }
        let source = studies::source(source).map_err(|err| {
            let extra = market.get().inner.columns().join(", ");
            if extra.is_empty() {
                err
            } else {
                crate::error::EngineError::InvalidConfig(format!(
                    "{err} or an extra column ({extra})"
                ))
            }
        });
        studies
            .add_rolling(n, kind, source.py_err(py)?, timeframe)
            .py_err(py)
    }

    /// Declare clock-aligned candles of `period` ns from `origin` ns.
    fn add_clock_timeframe(
        &self,
        py: Python<'_>,
        period: i64,
        origin: i64,
        history: usize,
    ) -> PyResult<usize> {
        let n = self.context()?.market().symbol_count();
        self.declare(py, "a timeframe")?
            .add_clock_timeframe(n, period, origin, history)
            .py_err(py)
    }

    /// Declare candles whose buckets (label, end per base bar; label = int64 min skips
    /// the bar) were computed by the caller.
    fn add_given_timeframe(
        &self,
        py: Python<'_>,
        labels: Vec<PyReadonlyArray1<'_, i64>>,
        ends: Vec<PyReadonlyArray1<'_, i64>>,
        history: usize,
    ) -> PyResult<usize> {
        let market = self.context()?.market().clone();
        let studies = self.declare(py, "a timeframe")?;
        let bars: Vec<_> = (0..market.symbol_count()).map(|s| market.bars(s)).collect();
        let labels = labels.iter().map(|a| a.as_array().to_vec()).collect();
        let ends = ends.iter().map(|a| a.as_array().to_vec()).collect();
        studies
            .add_given_timeframe(&bars, labels, ends, history)
            .py_err(py)
    }

    /// Declare a precomputed series (one float per base bar per symbol), revealed bar by bar.
    fn add_series(
        &self,
        py: Python<'_>,
        values: Vec<PyReadonlyArray1<'_, f64>>,
    ) -> PyResult<usize> {
        let market = self.context()?.market().clone();
        let studies = self.declare(py, "an indicator (self.I)")?;
        let bars: Vec<_> = (0..market.symbol_count()).map(|s| market.bars(s)).collect();
        let values = values.iter().map(|a| a.as_array().to_vec()).collect();
        studies.add_series(&bars, values).py_err(py)
    }

    fn study_value(&self, py: Python<'_>, id: usize, symbol: isize) -> PyResult<f64> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        e.studies().value(id, s, e.bar_index(s)).py_err(py)
    }

    fn study_prev(&self, py: Python<'_>, id: usize, symbol: isize) -> PyResult<f64> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        e.studies().prev(id, s, e.bar_index(s)).py_err(py)
    }

    fn study_ready(&self, py: Python<'_>, id: usize, symbol: isize) -> PyResult<bool> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        e.studies().is_ready(id, s, e.bar_index(s)).py_err(py)
    }

    fn study_reset(&self, py: Python<'_>, id: usize, symbol: isize) -> PyResult<()> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        e.reset_study(id, s).py_err(py)
    }

    /// The last `count` completed candles (oldest first) as a dict of numpy columns
    /// (ts, end, open, high, low, close, volume); with `forming`, the forming one appended.
    #[pyo3(signature = (timeframe, symbol, count, forming=false))]
    fn candles<'py>(
        &self,
        py: Python<'py>,
        timeframe: usize,
        symbol: Option<&Bound<'_, PyAny>>,
        count: usize,
        forming: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let e = self.context()?;
        let s = self.symbol_arg(e, symbol)?;
        let c = e
            .studies()
            .candles(timeframe, s)
            .py_err(py)?
            .columns(count, forming);
        let d = PyDict::new(py);
        d.set_item("ts", PyArray1::from_vec(py, c.ts))?;
        d.set_item("end", PyArray1::from_vec(py, c.end))?;
        d.set_item("open", PyArray1::from_vec(py, c.open))?;
        d.set_item("high", PyArray1::from_vec(py, c.high))?;
        d.set_item("low", PyArray1::from_vec(py, c.low))?;
        d.set_item("close", PyArray1::from_vec(py, c.close))?;
        d.set_item("volume", PyArray1::from_vec(py, c.volume))?;
        for (_, v) in d.iter() {
            v.cast::<numpy::PyUntypedArray>()?
                .call_method1("setflags", (false,))?;
        }
        Ok(d)
    }

    /// Number of candles completed so far (changes exactly when a new one completes).
    #[pyo3(signature = (timeframe, symbol=None))]
    fn candle_count(
        &self,
        py: Python<'_>,
        timeframe: usize,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let e = self.context()?;
        let s = self.symbol_arg(e, symbol)?;
        Ok(e.studies()
            .candles(timeframe, s)
            .py_err(py)?
            .total_completed())
    }

    /// The latest completed candle as (ts, end, open, high, low, close, volume), or None.
    #[pyo3(signature = (timeframe, symbol=None))]
    fn last_candle(
        &self,
        py: Python<'_>,
        timeframe: usize,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<CandleTuple>> {
        let e = self.context()?;
        let s = self.symbol_arg(e, symbol)?;
        let c = e
            .studies()
            .candles(timeframe, s)
            .py_err(py)?
            .last_completed();
        Ok(c.map(candle_tuple))
    }

    /// The completed candle whose bucket contains `ts` (or the latest before it), by
    /// binary search over the retained candles.
    fn candle_at(
        &self,
        py: Python<'_>,
        timeframe: usize,
        symbol: Option<&Bound<'_, PyAny>>,
        ts: i64,
    ) -> PyResult<Option<CandleTuple>> {
        let e = self.context()?;
        let s = self.symbol_arg(e, symbol)?;
        let series = e.studies().candles(timeframe, s).py_err(py)?;
        let c = series.index_at(ts).and_then(|i| series.get(i));
        Ok(c.map(candle_tuple))
    }
}

/// A handle on one declared indicator: reads the current symbol's value in O(1).
#[pyclass(name = "Indicator", module = "tickstep._core", frozen)]
pub struct PyIndicator {
    ctx: Py<PyContext>,
    #[pyo3(get)]
    id: usize,
    #[pyo3(get)]
    name: String,
}

impl PyIndicator {
    fn symbol(&self, _py: Python<'_>, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<isize> {
        match symbol {
            None => Ok(-1),
            Some(obj) => self.ctx.get().resolve(obj),
        }
    }
}

#[pymethods]
impl PyIndicator {
    #[new]
    fn new(ctx: Py<PyContext>, id: usize, name: String) -> Self {
        PyIndicator { ctx, id, name }
    }

    /// Value for the symbol whose `next()` is running (NaN until ready).
    #[getter]
    fn value(&self, py: Python<'_>) -> PyResult<f64> {
        self.ctx.get().study_value(py, self.id, -1)
    }

    /// The value one update earlier.
    #[getter]
    fn prev(&self, py: Python<'_>) -> PyResult<f64> {
        self.ctx.get().study_prev(py, self.id, -1)
    }

    /// Value for another symbol (by name or index).
    #[pyo3(signature = (symbol=None))]
    fn get(&self, py: Python<'_>, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let s = self.symbol(py, symbol)?;
        self.ctx.get().study_value(py, self.id, s)
    }

    #[pyo3(signature = (symbol=None))]
    fn previous(&self, py: Python<'_>, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let s = self.symbol(py, symbol)?;
        self.ctx.get().study_prev(py, self.id, s)
    }

    /// True once the window is full (or the series has left its warm-up NaNs).
    #[pyo3(signature = (symbol=None))]
    fn is_ready(&self, py: Python<'_>, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let s = self.symbol(py, symbol)?;
        self.ctx.get().study_ready(py, self.id, s)
    }

    /// Restart the statistic for a symbol: it refills from its next input.
    #[pyo3(signature = (symbol=None))]
    fn reset(&self, py: Python<'_>, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let s = self.symbol(py, symbol)?;
        self.ctx.get().study_reset(py, self.id, s)
    }

    fn __float__(&self, py: Python<'_>) -> PyResult<f64> {
        self.value(py)
    }

    fn __repr__(&self) -> String {
        format!("Indicator({})", self.name)
    }
}
