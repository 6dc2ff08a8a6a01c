//! Signals mode for Python: boolean numpy columns in, native runs (one or a grid) out.

use numpy::PyReadonlyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::engine::PyEngine;
use super::errors::IntoPyResult;
use crate::signals::{run_grid, SignalRules, SignalStrategy, SizeType, SymbolSignals};

/// Per run, per symbol: one optional boolean column.
type Columns<'py> = Vec<Vec<Option<PyReadonlyArray1<'py, bool>>>>;

fn slices<'a>(
    name: &str,
    columns: &'a Columns<'_>,
    runs: usize,
) -> PyResult<Vec<Vec<Option<&'a [bool]>>>> {
    if columns.len() != runs {
        return Err(PyValueError::new_err(format!(
            "{name}: {} lists of columns for {runs} engines",
            columns.len()
        )));
    }
    columns
        .iter()
        .map(|run| {
            run.iter()
                .map(|c| match c {
                    None => Ok(None),
                    Some(a) => a.as_slice().map(Some).map_err(|_| {
                        PyValueError::new_err(format!("{name}: columns must be contiguous"))
                    }),
                })
                .collect()
        })
        .collect()
}

/// Run each engine with its own signals (`entries[k][symbol]`, ...) on `threads` threads
/// (all cores when None), the interpreter released. The engines are ready to read after.
#[pyfunction]
#[pyo3(signature = (engines, entries, exits, short_entries, short_exits, *, size, size_type, sl=None, tp=None, trade_start=None, threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn run_signals(
    py: Python<'_>,
    mut engines: Vec<PyRefMut<'_, PyEngine>>,
    entries: Columns<'_>,
    exits: Columns<'_>,
    short_entries: Columns<'_>,
    short_exits: Columns<'_>,
    size: f64,
    size_type: &str,
    sl: Option<f64>,
    tp: Option<f64>,
    trade_start: Option<i64>,
    threads: Option<usize>,
) -> PyResult<()> {
    let rules = SignalRules {
        size,
        size_type: SizeType::parse(size_type).py_err(py)?,
        stop_loss: sl,
        take_profit: tp,
        trade_start: trade_start.unwrap_or(i64::MIN),
    };
    let n = engines.len();
    let kinds = [
        slices("entries", &entries, n)?,
        slices("exits", &exits, n)?,
        slices("short_entries", &short_entries, n)?,
        slices("short_exits", &short_exits, n)?,
    ];
    let mut runs = Vec::with_capacity(n);
    for (k, engine) in engines.iter_mut().enumerate() {
        let symbols = engine.engine.market().symbol_count();
        for (name, kind) in ["entries", "exits", "short_entries", "short_exits"]
            .iter()
            .zip(&kinds)
        {
            if kind[k].len() != symbols {
                return Err(PyValueError::new_err(format!(
                    "{name}: {} columns for the {symbols} symbols of engine {k}",
                    kind[k].len()
                )));
            }
        }
        let column = |kind: usize, s: usize| kinds[kind][k][s];
        let signals = (0..symbols)
            .map(|s| SymbolSignals {
                entries: column(0, s),
                exits: column(1, s),
                short_entries: column(2, s),
                short_exits: column(3, s),
            })
            .collect();
        let strategy = SignalStrategy::new(engine.engine.market(), signals, rules).py_err(py)?;
        runs.push((&mut engine.engine, strategy));
    }
    py.detach(|| run_grid(runs, threads)).py_err(py)
}
