//! `Market` for Python: columns copied in once; read-only numpy views handed out.

use std::any::Any;
use std::sync::Arc;

use numpy::ndarray::ArrayView1;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;

use super::errors::IntoPyResult;
use crate::market::{Column, Market, SymbolBars};

/// Immutable market data shared by any number of engine runs.
#[pyclass(name = "Market", module = "tickstep._core", frozen, weakref)]
pub struct PyMarket {
    pub inner: Arc<Market>,
}

/// The core's column for a numpy array: the buffer itself when the caller vouches that it
/// is immutable (`adopt`) and it is contiguous, else a copy.
fn column<T: numpy::Element + Copy + Send + Sync + 'static>(
    a: &PyReadonlyArray1<'_, T>,
    adopt: bool,
) -> Column<T> {
    match a.as_slice() {
        Ok(values) if adopt => {
            let owner: Arc<dyn Any + Send + Sync> = Arc::new(a.as_any().clone().unbind());
            // SAFETY: contiguous, aligned numpy buffer; the caller guarantees nobody writes
            // it, and the array object (kept in `owner`) keeps the memory alive.
            unsafe { Column::adopt(values.as_ptr(), values.len(), owner) }
        }
        Ok(values) => values.to_vec().into(),
        Err(_) => a.as_array().to_vec().into(),
    }
}

type Prices<'a, 'py> = &'a [PyReadonlyArray1<'py, f64>];

/// Each symbol's core columns from its arrays (`prices`: open, high, low, close, volume;
/// `extra[k][symbol]`: extra column `k`, None where the symbol lacks it), adopted or
/// copied per `adopt`. One array and one flag per symbol, or a refusal.
fn symbol_bars(
    ts: &[PyReadonlyArray1<'_, i64>],
    prices: [Prices<'_, '_>; 5],
    adopt: &[bool],
    extra: &[Vec<Option<PyReadonlyArray1<'_, f64>>>],
) -> PyResult<Vec<SymbolBars>> {
    let n = ts.len();
    if adopt.len() != n || prices.iter().any(|p| p.len() != n) {
        return Err(PyValueError::new_err("one column array (and adopt flag) per symbol is required for each of ts/open/high/low/close/volume"));
    }
    let [open, high, low, close, volume] = prices;
    Ok((0..n)
        .map(|s| SymbolBars {
            ts: column(&ts[s], adopt[s]),
            open: column(&open[s], adopt[s]),
            high: column(&high[s], adopt[s]),
            low: column(&low[s], adopt[s]),
            close: column(&close[s], adopt[s]),
            volume: column(&volume[s], adopt[s]),
            extra: extra
                .iter()
                .map(|per_symbol| per_symbol[s].as_ref().map(|a| column(a, adopt[s])))
                .collect(),
        })
        .collect())
}

type ExtraArrays<'py> = Vec<Vec<Option<PyReadonlyArray1<'py, f64>>>>;

/// The extra columns' names and arrays (none when not given): for each name, one array
/// (or None) per symbol of `n`.
fn extra_columns<'py>(
    n: usize,
    columns: Option<Vec<String>>,
    extra: Option<ExtraArrays<'py>>,
) -> PyResult<(Vec<String>, ExtraArrays<'py>)> {
    let columns = columns.unwrap_or_default();
    let extra = extra.unwrap_or_default();
    if extra.len() != columns.len() || extra.iter().any(|per_symbol| per_symbol.len() != n) {
        return Err(PyValueError::new_err(
            "extra must hold, for each name in columns, one array (or None) per symbol",
        ));
    }
    Ok((columns, extra))
}

#[pymethods]
impl PyMarket {
    /// Per-symbol columns for the core: `ts` int64 ns UTC, the rest float64. A symbol whose
    /// `adopt` flag is true has immutable arrays (the caller guarantees it): the core reads
    /// their buffers in place; the others are copied once. `columns` names the extra
    /// columns and `extra[k][symbol]` holds column `k` of a symbol (None: it has none).
    /// `order` lists the symbol indices in the order the user gave the symbols in: the
    /// order the engine visits them within a tick (name order by default).
    #[new]
    #[pyo3(signature = (symbols, ts, open, high, low, close, volume, adopt=None, columns=None, extra=None, order=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        symbols: Vec<String>,
        ts: Vec<PyReadonlyArray1<'_, i64>>,
        open: Vec<PyReadonlyArray1<'_, f64>>,
        high: Vec<PyReadonlyArray1<'_, f64>>,
        low: Vec<PyReadonlyArray1<'_, f64>>,
        close: Vec<PyReadonlyArray1<'_, f64>>,
        volume: Vec<PyReadonlyArray1<'_, f64>>,
        adopt: Option<Vec<bool>>,
        columns: Option<Vec<String>>,
        extra: Option<Vec<Vec<Option<PyReadonlyArray1<'_, f64>>>>>,
        order: Option<Vec<usize>>,
    ) -> PyResult<Self> {
        let n = symbols.len();
        let adopt = adopt.unwrap_or_else(|| vec![false; n]);
        let (columns, extra) = extra_columns(n, columns, extra)?;
        let bars = symbol_bars(&ts, [&open, &high, &low, &close, &volume], &adopt, &extra)?;
        let inner = py
            .detach(|| {
                let market = Market::with_columns(symbols, bars, columns)?;
                match order {
                    Some(order) => market.with_call_order(order),
                    None => Ok(market),
                }
            })
            .py_err(py)?;
        Ok(PyMarket {
            inner: Arc::new(inner),
        })
    }

    /// One window of a streamed run (see the core's `Market::window`): per symbol the
    /// bars held (kept past, then the window's new bars; maybe none), `base` the run index
    /// of its first held bar, `start` the window's first instant (ns). Columns are copied
    /// unless `adopt` vouches that they are immutable. `order`, `columns` and `extra` as
    /// for `Market(...)`; an engine keeps the order of its first window, and every window
    /// holds the same extra columns for the same symbols.
    #[staticmethod]
    #[pyo3(signature = (symbols, ts, open, high, low, close, volume, base, start, adopt=None, order=None, columns=None, extra=None))]
    #[allow(clippy::too_many_arguments)]
    fn window(
        py: Python<'_>,
        symbols: Vec<String>,
        ts: Vec<PyReadonlyArray1<'_, i64>>,
        open: Vec<PyReadonlyArray1<'_, f64>>,
        high: Vec<PyReadonlyArray1<'_, f64>>,
        low: Vec<PyReadonlyArray1<'_, f64>>,
        close: Vec<PyReadonlyArray1<'_, f64>>,
        volume: Vec<PyReadonlyArray1<'_, f64>>,
        base: Vec<usize>,
        start: i64,
        adopt: Option<Vec<bool>>,
        order: Option<Vec<usize>>,
        columns: Option<Vec<String>>,
        extra: Option<Vec<Vec<Option<PyReadonlyArray1<'_, f64>>>>>,
    ) -> PyResult<Self> {
        let n = symbols.len();
        let adopt = adopt.unwrap_or_else(|| vec![false; n]);
        let (columns, extra) = extra_columns(n, columns, extra)?;
        let bars = symbol_bars(&ts, [&open, &high, &low, &close, &volume], &adopt, &extra)?;
        let inner = py
            .detach(|| {
                let market = Market::window(symbols, bars, columns, base, start)?;
                match order {
                    Some(order) => market.with_call_order(order),
                    None => Ok(market),
                }
            })
            .py_err(py)?;
        Ok(PyMarket {
            inner: Arc::new(inner),
        })
    }

    /// The next window of a streamed run (see the core's `Market::following`): per
    /// symbol, the last `keep` bars this window holds followed by its new bars (maybe
    /// none), which come after them; `extra[k][symbol]` as for `Market(...)`, for this
    /// window's columns. The joining runs without the interpreter: immutable arrays
    /// (`adopt`) are read in place, others copied first.
    #[pyo3(signature = (keep, ts, open, high, low, close, volume, adopt=None, extra=None))]
    #[allow(clippy::too_many_arguments)]
    fn following(
        &self,
        py: Python<'_>,
        keep: usize,
        ts: Vec<PyReadonlyArray1<'_, i64>>,
        open: Vec<PyReadonlyArray1<'_, f64>>,
        high: Vec<PyReadonlyArray1<'_, f64>>,
        low: Vec<PyReadonlyArray1<'_, f64>>,
        close: Vec<PyReadonlyArray1<'_, f64>>,
        volume: Vec<PyReadonlyArray1<'_, f64>>,
        adopt: Option<Vec<bool>>,
        extra: Option<ExtraArrays<'_>>,
    ) -> PyResult<Self> {
        let n = ts.len();
        let adopt = adopt.unwrap_or_else(|| vec![false; n]);
        let columns = self.inner.columns().to_vec();
        let (_, extra) = extra_columns(n, Some(columns), extra)?;
        let new = symbol_bars(&ts, [&open, &high, &low, &close, &volume], &adopt, &extra)?;
        let previous = Arc::clone(&self.inner);
        let inner = py.detach(|| previous.following(keep, &new)).py_err(py)?;
        // The new columns (which may hold arrays) are let go here, with the interpreter.
        drop(new);
        Ok(PyMarket {
            inner: Arc::new(inner),
        })
    }

    /// Run index of `symbol`'s first held bar (0 unless this is a streamed window).
    fn base(&self, symbol: usize) -> PyResult<usize> {
        if symbol >= self.inner.symbol_count() {
            return Err(PyValueError::new_err(format!(
                "symbol index {symbol} out of range"
            )));
        }
        Ok(self.inner.base(symbol))
    }

    #[getter]
    fn symbols(&self) -> Vec<String> {
        self.inner.names().to_vec()
    }

    /// Symbol indices in the order the engine visits them within a tick (the order the
    /// user gave the symbols in).
    #[getter]
    fn call_order(&self) -> Vec<usize> {
        self.inner.call_order().to_vec()
    }

    /// The union timeline (read-only view).
    fn timeline<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let m = Arc::clone(&slf.get().inner);
        readonly_view(m.timeline(), slf.clone().into_any())
    }

    fn bar_count(&self) -> usize {
        self.inner.bar_count()
    }

    /// Each symbol's last bar's time (ns UTC), in symbol order (`i64::MIN` for a symbol
    /// with no bar).
    fn last_times<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let m = &self.inner;
        let last = (0..m.symbol_count()).map(|s| m.bars(s).ts.last().copied().unwrap_or(i64::MIN));
        PyArray1::from_iter(py, last)
    }

    /// Names of the extra columns (beside OHLCV).
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.inner.columns().to_vec()
    }

    /// Whether symbol `symbol` (index) has the extra column `name`.
    fn has_column(&self, symbol: usize, name: &str) -> bool {
        self.inner.column_index(name).is_some_and(|k| {
            symbol < self.inner.symbol_count() && self.inner.bars(symbol).extra(k).is_some()
        })
    }

    fn __len__(&self) -> usize {
        self.inner.symbol_count()
    }

    /// Column `name` (ts, open, high, low, close, volume or an extra column) of `symbol`,
    /// bars `[start, stop)`, as a read-only view into the core's memory.
    fn column<'py>(
        slf: &Bound<'py, Self>,
        symbol: usize,
        name: &str,
        start: usize,
        stop: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        view_column(slf, symbol, name, start, stop)
    }

    fn __repr__(&self) -> String {
        format!(
            "Market({} symbols, {} bars, {} ticks)",
            self.inner.symbol_count(),
            self.inner.bar_count(),
            self.inner.timeline().len()
        )
    }
}

/// A read-only numpy view of `data`, kept alive by `owner` (which must own `data`).
pub fn readonly_view<'py, T: numpy::Element>(
    data: &[T],
    owner: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<T>>> {
    let view = ArrayView1::from(data);
    // SAFETY: `data` lives inside an immutable `Market` behind an `Arc` held by `owner`
    // (a frozen pyclass): its columns, owned or adopted, never move or change.
    let array = unsafe { PyArray1::borrow_from_array(&view, owner) };
    array.readwrite().make_nonwriteable();
    Ok(array)
}

pub fn view_column<'py>(
    market: &Bound<'py, PyMarket>,
    symbol: usize,
    name: &str,
    start: usize,
    stop: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let m = &market.get().inner;
    if symbol >= m.symbol_count() {
        return Err(PyValueError::new_err(format!(
            "symbol index {symbol} out of range"
        )));
    }
    // `start`/`stop` are run indices; a streamed window holds the symbol's bars from
    // `base(symbol)` on (earlier ones are no longer held: the view starts there).
    let b = m.bars(symbol);
    let base = m.base(symbol);
    let stop = stop.min(m.end(symbol)).saturating_sub(base);
    let start = start.saturating_sub(base).min(stop);
    let owner = market.clone().into_any();
    Ok(match name {
        "ts" => readonly_view(&b.ts[start..stop], owner)?.into_any(),
        "open" => readonly_view(&b.open[start..stop], owner)?.into_any(),
        "high" => readonly_view(&b.high[start..stop], owner)?.into_any(),
        "low" => readonly_view(&b.low[start..stop], owner)?.into_any(),
        "close" => readonly_view(&b.close[start..stop], owner)?.into_any(),
        "volume" => readonly_view(&b.volume[start..stop], owner)?.into_any(),
        other => match m.column_index(other) {
            Some(k) => match b.extra(k) {
                Some(values) => readonly_view(&values[start..stop], owner)?.into_any(),
                None => {
                    return Err(PyKeyError::new_err(format!(
                        "symbol {:?} has no column {other:?} (its data did not hold it)",
                        m.name(symbol)
                    )))
                }
            },
            None => {
                let extra = m.columns();
                return Err(PyKeyError::new_err(format!(
                    "unknown column {other:?}: the bars have ts, open, high, low, close, volume{}",
                    if extra.is_empty() {
                        String::new()
                    } else {
                        format!(" and {}", extra.join(", "))
                    }
                )));
            }
        },
    })
}
