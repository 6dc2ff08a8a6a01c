//! Signals mode for Python: boolean (and stop-price) numpy columns in, native runs (one or
//! a grid) out.

use numpy::{Element, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::engine::{order_columns, trade_stat_columns, PyEngine};
use super::errors::IntoPyResult;
use crate::signals::{
    run_grid, summarise_grid, Conflicts, GridRun, RunSummary, SignalRules, SignalStrategy,
    SizeType, SymbolSignals,
};

/// Per run, per symbol: one optional column.
type Columns<'py, T> = Vec<Vec<Option<PyReadonlyArray1<'py, T>>>>;

/// The columns as slices, checked to be one list per run and one column per symbol.
fn slices<'a, T: Element>(
    name: &str,
    columns: &'a Columns<'_, T>,
    symbols: &[usize],
) -> PyResult<Vec<Vec<Option<&'a [T]>>>> {
    if columns.len() != symbols.len() {
        return Err(PyValueError::new_err(format!(
            "{name}: {} lists of columns for {} engines",
            columns.len(),
            symbols.len()
        )));
    }
    columns
        .iter()
        .zip(symbols)
        .enumerate()
        .map(|(k, (run, &n))| {
            if run.len() != n {
                return Err(PyValueError::new_err(format!(
                    "{name}: {} columns for the {n} symbols of engine {k}",
                    run.len()
                )));
            }
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

/// Run `k`'s spelling of a rule given by its word per run (`None`: not given).
fn reading(given: &Option<Vec<String>>, k: usize) -> Option<&str> {
    given.as_ref().map(|v| v[k].as_str())
}

/// A rule left out: none for each of `n` runs.
fn or_none<T: Clone>(values: Option<Vec<Option<T>>>, n: usize) -> Vec<Option<T>> {
    values.unwrap_or_else(|| vec![None; n])
}

/// One value per run, or a clear refusal.
fn per_run<T: Clone>(name: &str, values: Vec<T>, runs: usize) -> PyResult<Vec<T>> {
    if values.len() != runs {
        return Err(PyValueError::new_err(format!(
            "{name}: {} values for {runs} engines",
            values.len()
        )));
    }
    Ok(values)
}

/// A grid call's columns as slices, per run and symbol: the four signal kinds (entries,
/// exits, short entries, short exits) and the numbers per bar: the two stop prices (sl,
/// tp), the entries' sizes, the three stop fractions (sl, tp, sl_trail), the time exits
/// (exit_after_bars), the limit entries' prices and fractions and the exits' portions.
struct GridColumns<'a> {
    kinds: [Vec<Vec<Option<&'a [bool]>>>; 4],
    numbers: [Vec<Vec<Option<&'a [f64]>>>; 10],
}

impl<'a> GridColumns<'a> {
    /// Each column checked by `slices` against the engines' symbols: the signals, the stop
    /// prices, and the numbers per bar that may be given (sizes, the three stop fractions,
    /// the time exits, the limits, the exits' portions; none of a kind when not).
    fn of(
        engines: &[PyRefMut<'_, PyEngine>],
        signals: [&'a Columns<'_, bool>; 4],
        prices: [&'a Columns<'_, f64>; 2],
        per_bar: [&'a Option<Columns<'_, f64>>; 8],
    ) -> PyResult<Self> {
        let symbols = symbol_counts(engines);
        let [entries, exits, short_entries, short_exits] = signals;
        let [sl_price, tp_price] = prices;
        let per_bar = |name: &str, k: usize| match per_bar[k] {
            Some(columns) => slices(name, columns, &symbols),
            None => Ok(symbols.iter().map(|&n| vec![None; n]).collect()),
        };
        Ok(GridColumns {
            kinds: [
                slices("entries", entries, &symbols)?,
                slices("exits", exits, &symbols)?,
                slices("short_entries", short_entries, &symbols)?,
                slices("short_exits", short_exits, &symbols)?,
            ],
            numbers: [
                slices("sl_price", sl_price, &symbols)?,
                slices("tp_price", tp_price, &symbols)?,
                per_bar("sizes", 0)?,
                per_bar("sl_fraction", 1)?,
                per_bar("tp_fraction", 2)?,
                per_bar("trail_fraction", 3)?,
                per_bar("time_exits", 4)?,
                per_bar("limit_price", 5)?,
                per_bar("limit_fraction", 6)?,
                per_bar("exit_portions", 7)?,
            ],
        })
    }
}

/// A grid call's rules, one per run (those that may be left out: None).
struct RunRules {
    size: Vec<Option<f64>>,
    size_type: Vec<String>,
    sl: Vec<Option<f64>>,
    tp: Vec<Option<f64>>,
    sl_trail: Option<Vec<Option<f64>>>,
    lot_size: Option<Vec<Vec<Option<f64>>>>,
    accumulate: Option<Vec<bool>>,
    exit_after_bars: Option<Vec<Option<usize>>>,
    limit: Option<Vec<Option<f64>>>,
    limit_bars: Option<Vec<Option<usize>>>,
    conflict: Option<Vec<String>>,
    side_conflict: Option<Vec<String>>,
    opposite_entry: Option<Vec<String>>,
    exit_portion: Option<Vec<Option<f64>>>,
    trade_start: Option<i64>,
}

/// The runs of a grid call: per engine, its signals (one per symbol) and its rules (the
/// size type read; the rest checked with the signals, by `SignalStrategy::new`).
fn grid_runs<'e, 'a>(
    py: Python<'_>,
    engines: &'e mut [PyRefMut<'_, PyEngine>],
    columns: &'a GridColumns<'a>,
    rules: RunRules,
) -> PyResult<Vec<GridRun<'a, 'e>>> {
    let n = engines.len();
    let size = per_run("size", rules.size, n)?;
    let size_type = per_run("size_type", rules.size_type, n)?;
    let (sl, tp) = (per_run("sl", rules.sl, n)?, per_run("tp", rules.tp, n)?);
    let sl_trail = per_run("sl_trail", or_none(rules.sl_trail, n), n)?;
    let accumulate = rules.accumulate.unwrap_or_else(|| vec![false; n]);
    let accumulate = per_run("accumulate", accumulate, n)?;
    let exit_after_bars = per_run("exit_after_bars", or_none(rules.exit_after_bars, n), n)?;
    let limit = per_run("limit", or_none(rules.limit, n), n)?;
    let limit_bars = per_run("limit_bars", or_none(rules.limit_bars, n), n)?;
    let exit_portion = per_run("exit_portion", or_none(rules.exit_portion, n), n)?;
    // (Not given: the core's default readings.)
    let spelt = |name, given: Option<Vec<String>>| given.map(|v| per_run(name, v, n)).transpose();
    let conflict = spelt("conflict", rules.conflict)?;
    let side_conflict = spelt("side_conflict", rules.side_conflict)?;
    let opposite_entry = spelt("opposite_entry", rules.opposite_entry)?;
    let trade_start = rules.trade_start;
    let symbols = symbol_counts(engines);
    let lot_size = match rules.lot_size {
        Some(lots) => per_run("lot_size", lots, n)?,
        None => symbols.iter().map(|&m| vec![None; m]).collect(),
    };
    for (k, (lots, &m)) in lot_size.iter().zip(&symbols).enumerate() {
        if lots.len() != m {
            return Err(PyValueError::new_err(format!(
                "lot_size: {} values for the {m} symbols of engine {k}",
                lots.len()
            )));
        }
    }
    let (kinds, numbers) = (&columns.kinds, &columns.numbers);
    let mut runs = Vec::with_capacity(n);
    for (k, engine) in engines.iter_mut().enumerate() {
        let rules = SignalRules {
            size: size[k],
            size_type: SizeType::parse(&size_type[k]).py_err(py)?,
            stop_loss: sl[k],
            take_profit: tp[k],
            stop_loss_trail: sl_trail[k],
            trade_start: trade_start.unwrap_or(i64::MIN),
            accumulate: accumulate[k],
            exit_after_bars: exit_after_bars[k],
            limit: limit[k],
            limit_bars: limit_bars[k],
            conflicts: Conflicts::parse(
                reading(&conflict, k),
                reading(&side_conflict, k),
                reading(&opposite_entry, k),
            )
            .py_err(py)?,
            exit_portion: exit_portion[k],
        };
        let signals = (0..engine.engine.market().symbol_count())
            .map(|s| SymbolSignals {
                entries: kinds[0][k][s],
                exits: kinds[1][k][s],
                short_entries: kinds[2][k][s],
                short_exits: kinds[3][k][s],
                stop_loss: numbers[0][k][s],
                take_profit: numbers[1][k][s],
                size: numbers[2][k][s],
                stop_loss_fraction: numbers[3][k][s],
                take_profit_fraction: numbers[4][k][s],
                trail_fraction: numbers[5][k][s],
                exit_after_bars: numbers[6][k][s],
                limit_price: numbers[7][k][s],
                limit_fraction: numbers[8][k][s],
                exit_portion: numbers[9][k][s],
                lot_size: lot_size[k][s],
            })
            .collect();
        runs.push(GridRun {
            engine: &mut engine.engine,
            signals,
            rules,
        });
    }
    Ok(runs)
}

/// Each engine's number of symbols.
fn symbol_counts(engines: &[PyRefMut<'_, PyEngine>]) -> Vec<usize> {
    engines
        .iter()
        .map(|e| e.engine.market().symbol_count())
        .collect()
}

/// Per run, None or the exception it ended with.
fn errors_of<T>(py: Python<'_>, outcomes: Vec<crate::error::Result<T>>) -> Vec<Option<Py<PyAny>>> {
    outcomes
        .into_iter()
        .map(|o| o.py_err(py).err().map(|e| e.into_value(py).into_any()))
        .collect()
}

/// `units` (>= 0) rounded down to whole lots of `lot_size` (> 0): the core's rule
/// (`orders::round_to_lot`), which `tickstep.sizing.round_to_lot` calls.
#[pyfunction]
pub fn round_to_lot(units: f64, lot_size: f64) -> f64 {
    crate::orders::round_to_lot(units, lot_size)
}

/// Run each engine with its own signals (`entries[k][symbol]`, ..., `sizes[k][symbol]`:
/// entries' sizes per bar; `sl_fraction[k][symbol]`, `tp_fraction`, `trail_fraction`:
/// the symbol's own stop fractions per bar, NaN for none; `time_exits[k][symbol]`: its
/// own time exits per bar, NaN for none; `limit_price[k][symbol]`, `limit_fraction`: its
/// entries' limits per bar, NaN for a market entry; `exit_portions[k][symbol]`: the
/// portion of the position its exit signals close per bar, NaN for all) and rules (`size[k]`: None when sizes are per bar, ...,
/// `sl_trail[k]`: a trailing stop-loss fraction; none when not given; `lot_size[k]
/// [symbol]`: its entries in whole lots, none when not given; `accumulate[k]`: entries
/// add to a position on their side, false when not given; `exit_after_bars[k]`: the time
/// exit, `limit[k]`, `limit_bars[k]`: the limit entries' fraction and bars, none when not
/// given; `conflict[k]`, `side_conflict[k]`, `opposite_entry[k]`: how signals that
/// contradict each other or the position are read, the core's defaults when not given;
/// `exit_portion[k]`: the portion of the position an exit signal closes, all when not
/// given)
/// on `threads` threads (all cores when None), the interpreter released. The engines are
/// ready to read after; returns per engine None, or the exception its run ended with.
///
/// With `on_run`, keeps of each run only what its row of statistics reads: calls
/// ``on_run(k, summary)`` on this thread as run ``k`` ends (in any order), the summary
/// a dict (``equity``: ts, equity, gross_exposure; ``trades``: pnl, return_pct,
/// commission, bars_held, mae, mfe, in the order they closed; ``carrying_costs``;
/// ``dividends``; ``rejected``: the rejected orders, as `Engine.orders` gives its
/// columns; ``margin_calls``) or the exception the run ended with (its signals refused
/// included), and returns None. An exception of ``on_run`` (or Ctrl-C) stops the runs
/// not started yet and is raised. The engines are then spent (their logs read as empty).
#[pyfunction]
#[pyo3(signature = (engines, entries, exits, short_entries, short_exits, *, size, size_type, sl, tp, sl_price, tp_price, sizes=None, sl_fraction=None, tp_fraction=None, trail_fraction=None, time_exits=None, limit_price=None, limit_fraction=None, exit_portions=None, sl_trail=None, lot_size=None, accumulate=None, exit_after_bars=None, limit=None, limit_bars=None, conflict=None, side_conflict=None, opposite_entry=None, exit_portion=None, trade_start=None, threads=None, on_run=None))]
#[allow(clippy::too_many_arguments)]
pub fn run_signals(
    py: Python<'_>,
    mut engines: Vec<PyRefMut<'_, PyEngine>>,
    entries: Columns<'_, bool>,
    exits: Columns<'_, bool>,
    short_entries: Columns<'_, bool>,
    short_exits: Columns<'_, bool>,
    size: Vec<Option<f64>>,
    size_type: Vec<String>,
    sl: Vec<Option<f64>>,
    tp: Vec<Option<f64>>,
    sl_price: Columns<'_, f64>,
    tp_price: Columns<'_, f64>,
    sizes: Option<Columns<'_, f64>>,
    sl_fraction: Option<Columns<'_, f64>>,
    tp_fraction: Option<Columns<'_, f64>>,
    trail_fraction: Option<Columns<'_, f64>>,
    time_exits: Option<Columns<'_, f64>>,
    limit_price: Option<Columns<'_, f64>>,
    limit_fraction: Option<Columns<'_, f64>>,
    exit_portions: Option<Columns<'_, f64>>,
    sl_trail: Option<Vec<Option<f64>>>,
    lot_size: Option<Vec<Vec<Option<f64>>>>,
    accumulate: Option<Vec<bool>>,
    exit_after_bars: Option<Vec<Option<usize>>>,
    limit: Option<Vec<Option<f64>>>,
    limit_bars: Option<Vec<Option<usize>>>,
    conflict: Option<Vec<String>>,
    side_conflict: Option<Vec<String>>,
    opposite_entry: Option<Vec<String>>,
    exit_portion: Option<Vec<Option<f64>>>,
    trade_start: Option<i64>,
    threads: Option<usize>,
    on_run: Option<Py<PyAny>>,
) -> PyResult<Option<Vec<Option<Py<PyAny>>>>> {
    let signals = [&entries, &exits, &short_entries, &short_exits];
    let per_bar = [
        &sizes,
        &sl_fraction,
        &tp_fraction,
        &trail_fraction,
        &time_exits,
        &limit_price,
        &limit_fraction,
        &exit_portions,
    ];
    let columns = GridColumns::of(&engines, signals, [&sl_price, &tp_price], per_bar)?;
    let rules = RunRules {
        size,
        size_type,
        sl,
        tp,
        sl_trail,
        lot_size,
        accumulate,
        exit_after_bars,
        limit,
        limit_bars,
        conflict,
        side_conflict,
        opposite_entry,
        exit_portion,
        trade_start,
    };
    let runs = grid_runs(py, &mut engines, &columns, rules)?;
    match on_run {
        None => run_whole(py, runs, threads).map(Some),
        Some(on_run) => summarise(py, runs, threads, on_run).map(|()| None),
    }
}

/// The runs kept whole (their engines ready to read after): per engine None, or the
/// exception its run ended with.
fn run_whole(
    py: Python<'_>,
    runs: Vec<GridRun<'_, '_>>,
    threads: Option<usize>,
) -> PyResult<Vec<Option<Py<PyAny>>>> {
    let runs = runs
        .into_iter()
        .map(|r| {
            let strategy = SignalStrategy::new(r.engine.market(), r.signals, r.rules);
            strategy.map(|s| (r.engine, s)).py_err(py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    let outcomes = py.detach(|| run_grid(runs, threads)).py_err(py)?;
    Ok(errors_of(py, outcomes))
}

/// The runs kept as their summaries, each handed to `on_run` as it ends.
fn summarise(
    py: Python<'_>,
    runs: Vec<GridRun<'_, '_>>,
    threads: Option<usize>,
    on_run: Py<PyAny>,
) -> PyResult<()> {
    let mut failure: Option<PyErr> = None;
    py.detach(|| {
        summarise_grid(runs, threads, |k, outcome| {
            Python::attach(|py| {
                let handed = py.check_signals().and_then(|()| {
                    let summary = match outcome.py_err(py) {
                        Ok(s) => summary_dict(py, s)?.into_any().unbind(),
                        Err(e) => e.into_value(py).into_any(),
                    };
                    on_run.call1(py, (k, summary))
                });
                handed.map_err(|e| failure = Some(e)).is_ok()
            })
        })
    })
    .py_err(py)?;
    failure.map_or(Ok(()), Err)
}

/// A run's summary as a dict of numpy columns (the vectors handed over, not copied).
fn summary_dict(py: Python<'_>, s: RunSummary) -> PyResult<Bound<'_, PyDict>> {
    let exposure_ticks = s.equity.exposure_ticks();
    let equity = PyDict::new(py);
    equity.set_item("ts", PyArray1::from_vec(py, s.equity.ts))?;
    equity.set_item("equity", PyArray1::from_vec(py, s.equity.equity))?;
    equity.set_item(
        "gross_exposure",
        PyArray1::from_vec(py, s.equity.gross_exposure),
    )?;
    let trade_sums = super::statistics::trade_sums_dict(py, &s.trade_sums)?;
    let trades = trade_stat_columns(py, s.trades)?;
    let d = PyDict::new(py);
    d.set_item("equity", equity)?;
    d.set_item("trades", trades)?;
    d.set_item("trade_sums", trade_sums)?;
    d.set_item("carrying_costs", s.carrying_costs)?;
    d.set_item("dividends", s.dividends)?;
    d.set_item("exposure_ticks", exposure_ticks)?;
    d.set_item("rejected", order_columns(py, &s.rejected)?)?;
    d.set_item("margin_calls", s.margin_calls)?;
    Ok(d)
}
