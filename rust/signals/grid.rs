//! The native grid of signals mode: many independent backtests (engines, each with its
//! own signals and rules) on a pool of threads sharing one market, which is only read.
//!
//! Each result is the one its engine gives alone: runs share nothing but the market. A
//! free thread takes the next run in the given order, so threads stay busy to the end
//! whatever each run costs. One run's error is returned in its place; the others finish.
//!
//! `run_grid` leaves each engine's logs in it for the caller to read. `summarise_grid`
//! keeps of each run only what its row of statistics reads (`RunSummary`: the equity
//! samples, the closed trades' columns the statistics use, the carrying costs and the
//! rejected orders) and lends all the runs of a thread the same log buffers: the logs
//! of a busy grid are tens of megabytes per run, and memory mapped fresh for each run
//! costs page faults (the kernel zeroing pages, under a lock the threads share) that do
//! not scale across threads, where written-over memory costs nothing more. It hands each
//! summary to the caller's thread as soon as its run ends, so the caller's work on it
//! (the statistics) overlaps the runs still going; and each run's strategy (its signals
//! checked and their bits packed) is made by the thread that runs it, not beforehand.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use super::{run, SignalRules, SignalStrategy, SymbolSignals};
use crate::engine::{Engine, Logs};
use crate::error::{EngineError, Result};
use crate::orders::OrderRow;
use crate::results::{EquityCurve, TradeColumns, TradeSums};

/// What a row of statistics reads of a finished run, as the engine's own accessors give
/// it (`equity_curve`, `portfolio().closed`, `carry_paid`, `dividends`, the orders with status
/// rejected): the rest of its logs is not kept.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub equity: EquityCurve,
    pub trades: TradeColumns,
    /// The trades' exact sums (what most trade statistics read), made by the run's thread
    /// rather than the one that makes the rows.
    pub trade_sums: TradeSums,
    pub carrying_costs: f64,
    /// Dividends received, net of those paid on shorts.
    pub dividends: f64,
    /// The orders the broker rejected, in id order (their count and the first few are
    /// reported).
    pub rejected: Vec<OrderRow>,
    /// How many margin calls the run had.
    pub margin_calls: u32,
}

impl RunSummary {
    /// The summary of `engine`'s finished run.
    pub fn of(engine: &Engine) -> Self {
        let trades = TradeColumns::of(&engine.portfolio().closed);
        RunSummary {
            equity: engine.equity_curve().clone(),
            trade_sums: TradeSums::of_columns(&trades),
            trades,
            carrying_costs: engine.portfolio().carry_paid,
            dividends: engine.portfolio().dividends,
            rejected: engine.order_log().rejected_rows(),
            margin_calls: engine.margin_calls(),
        }
    }
}

/// Run each engine with its own signal strategy, on `threads` threads (all cores when
/// `None`). Each result is the one the engine would give alone, and one run's error
/// (returned in its place) leaves the others to finish. The engines keep their logs.
pub fn run_grid(
    runs: Vec<(&mut Engine, SignalStrategy<'_>)>,
    threads: Option<usize>,
) -> Result<Vec<Result<()>>> {
    let mut done: Vec<Option<Result<()>>> = (0..runs.len()).map(|_| None).collect();
    on_threads(
        runs,
        threads,
        || (),
        |_, (engine, mut strategy)| run(engine, &mut strategy),
        |k, result| {
            done[k] = Some(result);
            true
        },
    )?;
    Ok(done.into_iter().flatten().collect())
}

/// One run of a summarised grid: its engine, its signals (one per symbol) and its
/// rules. The thread that runs it makes its strategy (`SignalStrategy::new`).
pub struct GridRun<'a, 'e> {
    pub engine: &'e mut Engine,
    pub signals: Vec<SymbolSignals<'a>>,
    pub rules: SignalRules,
}

/// Run each engine with its own signals and rules as `run_grid` does, and hand each
/// run's `RunSummary` (or the error it ended with, its signals' refusal included) to
/// `each` with the run's index, on the calling thread, as the runs end (in any order).
/// `each` returning false stops the grid: runs not started yet are not run. The
/// engines are spent: their logs are the threads' buffers, taken back after each run
/// (they read as empty).
pub fn summarise_grid(
    runs: Vec<GridRun<'_, '_>>,
    threads: Option<usize>,
    each: impl FnMut(usize, Result<RunSummary>) -> bool,
) -> Result<()> {
    on_threads(
        runs,
        threads,
        Logs::default,
        |logs, r| {
            let market = r.engine.market().clone();
            let mut strategy = SignalStrategy::new(&market, r.signals, r.rules)?;
            logs.clear();
            r.engine.swap_logs(logs);
            let outcome = run(r.engine, &mut strategy).map(|()| RunSummary::of(r.engine));
            r.engine.swap_logs(logs);
            outcome
        },
        each,
    )
}

/// Do `work` on each job on a pool of `threads` threads (all cores when `None`), each
/// thread with its own `scratch` (made once) and taking the next job when free; each
/// result goes to `done` (with its job's index) on the calling thread as it comes.
/// `done` returning false stops the threads from taking more jobs. A single job runs on
/// the calling thread.
fn on_threads<J, R, S>(
    jobs: Vec<J>,
    threads: Option<usize>,
    scratch: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, J) -> R + Sync,
    mut done: impl FnMut(usize, R) -> bool,
) -> Result<()>
where
    J: Send,
    R: Send,
{
    if jobs.len() < 2 {
        // A single run (`run_signals`) runs here, on the calling thread: a pool would start
        // a thread for it and hand its result back, tens of microseconds a call, several
        // percent of a one-symbol run. (With more jobs, `done` on this thread overlaps
        // the workers' next jobs, even with one worker.)
        let mut own = scratch();
        for (k, job) in jobs.into_iter().enumerate() {
            done(k, work(&mut own, job));
        }
        return Ok(());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| EngineError::State(format!("cannot start the grid's threads: {e}")))?;
    let n = jobs.len();
    let workers = pool.current_num_threads().clamp(1, n.max(1));
    // A job is taken once (by its index); a lock poisoned by a panicking job still
    // hands out the others (the panic itself reaches the caller).
    let jobs: Vec<Mutex<Option<J>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (sender, results) = mpsc::channel::<(usize, R)>();
    let (jobs, next, stop, scratch, work) = (&jobs, &next, &stop, &scratch, &work);
    // The calling thread is not one of the pool's: it receives while they run.
    pool.in_place_scope(|scope| {
        for _ in 0..workers {
            let sender = sender.clone();
            scope.spawn(move |_| {
                let mut own = scratch();
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = jobs.get(k) else { break };
                    let job = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(job) = job {
                        if sender.send((k, work(&mut own, job))).is_err() {
                            break;
                        }
                    }
                }
            });
        }
        drop(sender);
        for (k, result) in results.iter() {
            if !done(k, result) {
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    });
    Ok(())
}

#[cfg(test)]
#[path = "grid_tests.rs"]
mod tests;
