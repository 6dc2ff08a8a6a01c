//! `Context`: the one reusable object through which a Python strategy talks to the engine
//! while it runs. It points at the engine only for the duration of a callback.

use std::cell::Cell;
use std::ptr;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use super::errors::{IntoPyResult, UnknownSymbolError};
use super::market::{view_column, PyMarket};
use crate::engine::Engine;
use crate::orders::{OrderRequest, Side};

#[pyclass(name = "Context", module = "tickstep._core", unsendable)]
pub struct PyContext {
    engine: Cell<*mut Engine>,
    market: Py<PyMarket>,
}

/// Clears the context's engine pointer when a callback returns (or unwinds).
pub struct Attached<'a>(&'a PyContext);

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        self.0.engine.set(ptr::null_mut());
    }
}

impl PyContext {
    /// Let Python reach `engine` until the returned guard drops. The caller must not use
    /// `engine` itself while the guard lives (Python holds the only way in).
    pub fn attach(&self, engine: &mut Engine) -> Attached<'_> {
        self.engine.set(engine as *mut Engine);
        Attached(self)
    }

    fn engine(&self) -> PyResult<&mut Engine> {
        let p = self.engine.get();
        if p.is_null() {
            return Err(PyRuntimeError::new_err(
                "the strategy context is only usable inside init(), next() and on_tick() of a running backtest",
            ));
        }
        // SAFETY: `p` was set by `attach` from a live `&mut Engine` whose owner is blocked
        // in a call into Python until the guard clears it; this class is unsendable, and no
        // method here calls back into Python while holding the reference.
        Ok(unsafe { &mut *p })
    }

    /// Symbol index from Python: -1 means the symbol whose `next()` is running.
    fn symbol(e: &Engine, symbol: isize) -> PyResult<usize> {
        if symbol < 0 {
            return e.current_symbol().ok_or_else(|| {
                UnknownSymbolError::new_err("no current symbol here (init() or on_tick()): pass the symbol explicitly")
            });
        }
        let s = symbol as usize;
        if s >= e.market().symbol_count() {
            return Err(UnknownSymbolError::new_err(format!("symbol index {s} out of range")));
        }
        Ok(s)
    }
}

#[pymethods]
impl PyContext {
    #[new]
    fn new(market: Py<PyMarket>) -> Self {
        PyContext { engine: Cell::new(ptr::null_mut()), market }
    }

    /// Whether a backtest is currently attached.
    fn is_running(&self) -> bool {
        !self.engine.get().is_null()
    }

    /// Timestamp (int ns UTC) of the current tick.
    fn now(&self) -> PyResult<i64> {
        Ok(self.engine()?.now())
    }

    /// Index of the symbol whose `next()` is running, or -1.
    fn current(&self) -> PyResult<isize> {
        Ok(self.engine()?.current_symbol().map_or(-1, |s| s as isize))
    }

    fn has_data(&self, symbol: isize) -> PyResult<bool> {
        let e = self.engine()?;
        let s = Self::symbol(e, symbol)?;
        Ok(e.has_data(s))
    }

    /// Indices of the symbols with a bar at this tick, ascending.
    fn active(&self) -> PyResult<Vec<usize>> {
        Ok(self.engine()?.active_symbols().to_vec())
    }

    /// Latest close (NaN before the symbol's first bar).
    fn price(&self, symbol: isize) -> PyResult<f64> {
        let e = self.engine()?;
        Ok(e.price(Self::symbol(e, symbol)?))
    }

    /// Index of the symbol's latest bar, -1 before its first.
    fn bar_index(&self, symbol: isize) -> PyResult<isize> {
        let e = self.engine()?;
        Ok(e.bar_index(Self::symbol(e, symbol)?).map_or(-1, |i| i as isize))
    }

    /// The symbol's latest bar as (ts, open, high, low, close, volume).
    fn bar(&self, symbol: isize) -> PyResult<Option<(i64, f64, f64, f64, f64, f64)>> {
        let e = self.engine()?;
        let s = Self::symbol(e, symbol)?;
        Ok(e.bar_index(s).map(|i| {
            let b = e.market().bars(s);
            (b.ts[i], b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i])
        }))
    }

    /// The last `count` values of a column up to and including the latest bar: a read-only
    /// view, never reaching past the current tick.
    fn history<'py>(&self, py: Python<'py>, symbol: isize, column: &str, count: usize) -> PyResult<Bound<'py, PyAny>> {
        let e = self.engine()?;
        let s = Self::symbol(e, symbol)?;
        let stop = e.bar_index(s).map_or(0, |i| i + 1);
        view_column(self.market.bind(py), s, column, stop.saturating_sub(count), stop)
    }

    /// Signed position size in units.
    fn position(&self, symbol: isize) -> PyResult<f64> {
        let e = self.engine()?;
        Ok(e.position(Self::symbol(e, symbol)?).size)
    }

    /// Volume-weighted entry price of the open position (NaN when flat).
    fn average_price(&self, symbol: isize) -> PyResult<f64> {
        let e = self.engine()?;
        Ok(e.position(Self::symbol(e, symbol)?).average_price())
    }

    /// Open trades of a symbol: (trade id, direction, size, entry price, entry ts, sl order, tp order).
    #[allow(clippy::type_complexity)]
    fn trades(&self, symbol: isize) -> PyResult<Vec<(u64, f64, f64, f64, i64, Option<u64>, Option<u64>)>> {
        let e = self.engine()?;
        let s = Self::symbol(e, symbol)?;
        Ok(e.position(s)
            .lots
            .iter()
            .map(|l| (l.id, l.direction, l.size, l.entry_price, l.entry_ts, l.stop_loss, l.take_profit))
            .collect())
    }

    fn equity(&self) -> PyResult<f64> {
        Ok(self.engine()?.equity())
    }

    fn cash(&self) -> PyResult<f64> {
        Ok(self.engine()?.cash())
    }

    fn gross_exposure(&self) -> PyResult<f64> {
        Ok(self.engine()?.gross_exposure())
    }

    fn open_position_count(&self) -> PyResult<usize> {
        Ok(self.engine()?.portfolio().open_position_count())
    }

    /// Place an order; returns its id. It can fill from the symbol's next bar on.
    #[pyo3(signature = (symbol, buy, size, limit=None, stop=None, sl=None, tp=None, tag=0))]
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
    ) -> PyResult<u64> {
        let e = self.engine()?;
        let s = Self::symbol(e, symbol)?;
        let side = if buy { Side::Buy } else { Side::Sell };
        let req = OrderRequest { symbol: s, side, size, limit, stop, stop_loss: sl, take_profit: tp, tag };
        e.submit(req).py_err(py)
    }

    /// Flatten the symbol's position at its next fill; None if already flat.
    fn close_position(&self, py: Python<'_>, symbol: isize) -> PyResult<Option<u64>> {
        let e = self.engine()?;
        let s = Self::symbol(e, symbol)?;
        e.close_position(s).py_err(py)
    }

    /// Cancel a working order; False if it had already filled or ended.
    fn cancel(&self, order_id: u64) -> PyResult<bool> {
        Ok(self.engine()?.cancel(order_id))
    }

    /// Ids of the symbol's working and pending orders.
    fn open_orders(&self, symbol: isize) -> PyResult<Vec<u64>> {
        let e = self.engine()?;
        let s = Self::symbol(e, symbol)?;
        Ok(e.open_orders(s))
    }
}
