//! `Engine` for Python: options in, one run, results out as dicts of numpy columns.

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::adapter::PyStrategy;
use super::context::PyContext;
use super::errors::IntoPyResult;
use super::market::PyMarket;
use crate::config::{Config, FillAt};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::orders::OrderRecord;
use crate::portfolio::CarryRates;
use crate::strategy::Strategy;

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

/// Order records as columns (`Engine.orders`): order_id, symbol, side, size, limit, stop, sl,
/// tp, role, tag, placed_ts, status, closed_ts, reason, filled_size, fill_price, filled_side.
pub(super) fn order_columns<'py>(
    py: Python<'py>,
    o: &[OrderRecord],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    put(&d, "order_id", o.iter().map(|x| x.id as i64).collect())?;
    put(&d, "symbol", o.iter().map(|x| x.symbol as i64).collect())?;
    put(&d, "side", o.iter().map(|x| x.side.sign() as i8).collect())?;
    put(&d, "size", o.iter().map(|x| x.size).collect())?;
    put(&d, "limit", o.iter().map(|x| x.limit).collect())?;
    put(&d, "stop", o.iter().map(|x| x.stop).collect())?;
    put(&d, "sl", o.iter().map(|x| x.stop_loss).collect())?;
    put(&d, "tp", o.iter().map(|x| x.take_profit).collect())?;
    put(&d, "role", o.iter().map(|x| x.role as i8).collect())?;
    put(&d, "tag", o.iter().map(|x| x.tag).collect())?;
    put(&d, "placed_ts", o.iter().map(|x| x.placed_ts).collect())?;
    put(&d, "status", o.iter().map(|x| x.status as i8).collect())?;
    put(&d, "closed_ts", o.iter().map(|x| x.closed_ts).collect())?;
    // One string object per distinct phrase (a handful), not one per order; a phrase
    // is a `&'static str`, so the one of the order before is known by its address.
    let mut phrases: Vec<(&'static str, Bound<'py, PyString>)> = Vec::new();
    let mut last: Option<usize> = None;
    let mut picked = Vec::with_capacity(o.len());
    for x in o {
        let same = |p: &str| std::ptr::eq(p, x.reason) || p == x.reason;
        let at = match last {
            Some(i) if same(phrases[i].0) => i,
            _ => match phrases.iter().position(|(p, _)| same(p)) {
                Some(i) => i,
                None => {
                    phrases.push((x.reason, PyString::new(py, x.reason)));
                    phrases.len() - 1
                }
            },
        };
        last = Some(at);
        picked.push(at);
    }
    let reasons = PyList::new(py, picked.iter().map(|&i| &phrases[i].1))?;
    d.set_item("reason", reasons)?;
    put(&d, "filled_size", o.iter().map(|x| x.filled_size).collect())?;
    put(&d, "fill_price", o.iter().map(|x| x.fill_price).collect())?;
    // As a code of `results._EXECUTED`: 0 nothing, 1 bought, 2 sold.
    let executed = |side: i8| match side {
        1 => 1i8,
        -1 => 2,
        _ => 0,
    };
    put(
        &d,
        "filled_side",
        o.iter().map(|x| executed(x.filled_side)).collect(),
    )?;
    Ok(d)
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (market, *, cash=10_000.0, commission=0.0, commission_fixed=0.0, slippage_bps=0.0, fill_at="next_open", leverage=1.0, record_every_bar=false, borrow_rate=0.0, margin_rate=0.0, cash_rate=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        market: Py<PyMarket>,
        cash: f64,
        commission: f64,
        commission_fixed: f64,
        slippage_bps: f64,
        fill_at: &str,
        leverage: f64,
        record_every_bar: bool,
        borrow_rate: f64,
        margin_rate: f64,
        cash_rate: f64,
    ) -> PyResult<Self> {
        let config = Config {
            cash,
            commission_rate: commission,
            commission_fixed,
            slippage_bps,
            fill_at: FillAt::parse(fill_at).py_err(py)?,
            leverage,
            record_every_bar,
            carry: CarryRates {
                borrow: borrow_rate,
                margin: margin_rate,
                cash: cash_rate,
            },
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

    /// The instant (ns) the account opens, after a warm-up: carrying costs and interest
    /// accrue from the first day end at or after it.
    fn set_account_opens(&mut self, ts: i64) {
        self.engine.set_account_opens(ts);
    }

    /// Run the backtest, calling `init()` once, `next(symbol)` per symbol with a bar and
    /// `on_tick()` per tick (each optional). The context is live only during those calls.
    #[pyo3(signature = (ctx, init=None, next=None, on_tick=None))]
    fn run(
        &mut self,
        py: Python<'_>,
        ctx: PyRef<'_, PyContext>,
        init: Option<Bound<'_, PyAny>>,
        next: Option<Bound<'_, PyAny>>,
        on_tick: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if ctx.names().len() != self.engine.market().symbol_count() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "the context was made for another market (its symbols differ)",
            ));
        }
        let mut strategy = PyStrategy::new(ctx, init, next, on_tick)?;
        self.engine.run(&mut strategy).py_err(py)
    }

    /// A streamed run: `init()` and the ticks of the engine's market (the first window),
    /// then, for each `(market, ends)` that `windows` yields (a `Market.window` and its
    /// day ends), the ticks of that window. Results are those of one run over all of them.
    #[pyo3(signature = (ctx, windows, init=None, next=None, on_tick=None))]
    fn run_stream(
        &mut self,
        py: Python<'_>,
        ctx: Bound<'_, PyContext>,
        windows: Bound<'_, PyAny>,
        init: Option<Bound<'_, PyAny>>,
        next: Option<Bound<'_, PyAny>>,
        on_tick: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut strategy = PyStrategy::new(ctx.borrow(), init, next, on_tick)?;
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
            let (market, ends): (Py<PyMarket>, PyReadonlyArray1<'_, bool>) = item?.extract()?;
            let inner = market.get().inner.clone();
            self.engine
                .next_window(inner, ends.as_array().to_vec())
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
        let f = self.engine.fills();
        let d = PyDict::new(py);
        put(
            &d,
            "order_id",
            f.iter().map(|x| x.order_id as i64).collect(),
        )?;
        put(&d, "symbol", f.iter().map(|x| x.symbol as i64).collect())?;
        put(&d, "ts", f.iter().map(|x| x.ts).collect())?;
        put(&d, "side", f.iter().map(|x| x.direction as i8).collect())?;
        put(&d, "size", f.iter().map(|x| x.size).collect())?;
        put(&d, "price", f.iter().map(|x| x.price).collect())?;
        put(&d, "commission", f.iter().map(|x| x.commission).collect())?;
        put(&d, "role", f.iter().map(|x| x.role as i8).collect())?;
        Ok(d)
    }

    /// Closed trades as columns.
    fn trades<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = &self.engine.portfolio().closed;
        let d = PyDict::new(py);
        put(
            &d,
            "trade_id",
            t.iter().map(|x| x.trade_id as i64).collect(),
        )?;
        put(&d, "symbol", t.iter().map(|x| x.symbol as i64).collect())?;
        put(
            &d,
            "direction",
            t.iter().map(|x| x.direction as i8).collect(),
        )?;
        put(&d, "size", t.iter().map(|x| x.size).collect())?;
        put(&d, "entry_ts", t.iter().map(|x| x.entry_ts).collect())?;
        put(&d, "exit_ts", t.iter().map(|x| x.exit_ts).collect())?;
        put(&d, "entry_price", t.iter().map(|x| x.entry_price).collect())?;
        put(&d, "exit_price", t.iter().map(|x| x.exit_price).collect())?;
        put(&d, "pnl", t.iter().map(|x| x.pnl).collect())?;
        put(&d, "return_pct", t.iter().map(|x| x.return_pct).collect())?;
        put(&d, "commission", t.iter().map(|x| x.commission).collect())?;
        put(
            &d,
            "bars_held",
            t.iter().map(|x| x.bars_held as i64).collect(),
        )?;
        put(&d, "mae", t.iter().map(|x| x.mae).collect())?;
        put(&d, "mfe", t.iter().map(|x| x.mfe).collect())?;
        put(
            &d,
            "exit_order",
            t.iter().map(|x| x.exit_order as i64).collect(),
        )?;
        Ok(d)
    }

    /// Every order placed, with where its life ended.
    fn orders<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        order_columns(py, self.engine.orders())
    }

    /// Carrying costs charged over the run (borrow fees and margin interest, net of
    /// interest earned on cash).
    fn carrying_costs(&self) -> f64 {
        self.engine.portfolio().carry_paid
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

    /// Positions at the end: per symbol size, average entry price and last mark.
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
        Ok(d)
    }
}
