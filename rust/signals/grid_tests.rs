//! A grid's summaries equal the runs alone, whatever thread ran them after which run.

use std::sync::Arc;

use super::*;
use crate::config::{Commission, Config};
use crate::market::{Market, SymbolBars};
use crate::signals::{Conflicts, SignalRules, SizeType, SymbolSignals};

fn market(symbols: usize, bars: usize) -> Arc<Market> {
    let data = (0..symbols)
        .map(|s| {
            let close: Vec<f64> = (0..bars)
                .map(|i| 100.0 + 10.0 * ((i * (s + 3)) as f64 * 0.37).sin())
                .collect();
            SymbolBars::from_vecs(
                (0..bars as i64).map(|i| i * 3_600_000_000_000).collect(),
                close.clone(),
                close.iter().map(|c| c + 1.0).collect(),
                close.iter().map(|c| c - 1.0).collect(),
                close,
                vec![1.0; bars],
            )
        })
        .collect();
    let names = (0..symbols).map(|s| format!("S{s}")).collect();
    Arc::new(Market::new(names, data).unwrap())
}

/// Per symbol, entries every `k` bars and exits every `k + 2`.
fn signals(symbols: usize, bars: usize, k: usize) -> Vec<(Vec<bool>, Vec<bool>)> {
    (0..symbols)
        .map(|s| {
            let entries = (0..bars).map(|i| (i + s) % k == 0).collect();
            let exits = (0..bars).map(|i| (i + s) % (k + 2) == 1).collect();
            (entries, exits)
        })
        .collect()
}

fn symbol_signals(c: &[(Vec<bool>, Vec<bool>)]) -> Vec<SymbolSignals<'_>> {
    c.iter()
        .map(|(en, ex)| SymbolSignals {
            entries: Some(&en[..]),
            exits: Some(&ex[..]),
            ..Default::default()
        })
        .collect()
}

fn rules(size: f64) -> SignalRules {
    SignalRules {
        size: Some(size),
        size_type: SizeType::Value,
        stop_loss: None,
        take_profit: None,
        stop_loss_trail: None,
        trade_start: i64::MIN,
        accumulate: false,
        exit_after_bars: None,
        limit: None,
        limit_bars: None,
        conflicts: Conflicts::default(),
        exit_portion: None,
    }
}

fn strategy<'a>(m: &Market, c: &'a [(Vec<bool>, Vec<bool>)], size: f64) -> SignalStrategy<'a> {
    SignalStrategy::new(m, symbol_signals(c), rules(size)).unwrap()
}

fn grid_run<'a, 'e>(
    e: &'e mut Engine,
    c: &'a [(Vec<bool>, Vec<bool>)],
    size: f64,
) -> GridRun<'a, 'e> {
    GridRun {
        engine: e,
        signals: symbol_signals(c),
        rules: rules(size),
    }
}

/// The summaries of a grid, by run (each handed over once).
fn summaries(runs: Vec<GridRun<'_, '_>>, threads: usize) -> Vec<Result<RunSummary>> {
    let mut out: Vec<Option<Result<RunSummary>>> = (0..runs.len()).map(|_| None).collect();
    summarise_grid(runs, Some(threads), |k, r| {
        assert!(out[k].replace(r).is_none());
        true
    })
    .unwrap();
    out.into_iter().map(Option::unwrap).collect()
}

fn same(a: &RunSummary, b: &RunSummary) {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(a.equity.ts, b.equity.ts);
    assert_eq!(bits(&a.equity.equity), bits(&b.equity.equity));
    assert_eq!(
        bits(&a.equity.gross_exposure),
        bits(&b.equity.gross_exposure)
    );
    let (x, y) = (&a.trades, &b.trades);
    for (p, q) in [
        (&x.pnl, &y.pnl),
        (&x.return_pct, &y.return_pct),
        (&x.commission, &y.commission),
        (&x.mae, &y.mae),
        (&x.mfe, &y.mfe),
    ] {
        assert_eq!(bits(p), bits(q));
    }
    assert_eq!(x.bars_held, y.bars_held);
    assert_eq!(a.carrying_costs.to_bits(), b.carrying_costs.to_bits());
    let ids = |r: &[OrderRow]| r.iter().map(|o| (o.id, o.reason)).collect::<Vec<_>>();
    assert_eq!(ids(&a.rejected), ids(&b.rejected));
}

#[test]
fn summaries_equal_runs_alone_on_one_thread_and_on_two() {
    let (symbols, bars) = (3, 400);
    let m = market(symbols, bars);
    let config = Config {
        commission: Commission {
            rate: 0.001,
            ..Commission::default()
        },
        ..Config::default()
    };
    // Dense and sparse signals in turn (a thread's buffers hold a longer run's logs
    // before a shorter run); 9 000 a trade overdraws the account: rejections.
    let sets: Vec<_> = [2, 40, 3, 7, 2, 90]
        .iter()
        .map(|&k| signals(symbols, bars, k))
        .collect();
    let sizes = [1_000.0, 2_000.0, 9_000.0, 500.0, 3_000.0, 1_000.0];
    let alone: Vec<RunSummary> = sets
        .iter()
        .zip(sizes)
        .map(|(c, size)| {
            let mut e = Engine::new(m.clone(), config.clone()).unwrap();
            run(&mut e, &mut strategy(&m, c, size)).unwrap();
            RunSummary::of(&e)
        })
        .collect();
    assert!(alone.iter().any(|s| !s.rejected.is_empty()));
    assert!(alone.iter().all(|s| !s.trades.pnl.is_empty()));
    for threads in [1, 2] {
        let mut engines: Vec<Engine> = sets
            .iter()
            .map(|_| Engine::new(m.clone(), config.clone()).unwrap())
            .collect();
        let runs = engines
            .iter_mut()
            .zip(sets.iter().zip(sizes))
            .map(|(e, (c, size))| grid_run(e, c, size))
            .collect();
        let got = summaries(runs, threads);
        assert_eq!(got.len(), alone.len());
        for (got, want) in got.iter().zip(&alone) {
            same(got.as_ref().unwrap(), want);
        }
        // The engines are spent: their logs went back to the threads.
        assert!(engines.iter().all(|e| e.orders().is_empty()));
    }
}

#[test]
fn a_failing_run_returns_its_error_in_its_place_and_the_others_finish() {
    let m = market(2, 100);
    let c = signals(2, 100, 5);
    let mut spent = Engine::new(m.clone(), Config::default()).unwrap();
    run(&mut spent, &mut strategy(&m, &c, 1_000.0)).unwrap();
    let mut fresh = Engine::new(m.clone(), Config::default()).unwrap();
    let mut after = Engine::new(m.clone(), Config::default()).unwrap();
    let mut refused = Engine::new(m.clone(), Config::default()).unwrap();
    let short: Vec<_> = c
        .iter()
        .map(|(en, ex)| (en[..50].to_vec(), ex.clone()))
        .collect();
    let runs = vec![
        grid_run(&mut fresh, &c, 1_000.0),
        grid_run(&mut spent, &c, 1_000.0),
        grid_run(&mut refused, &short, 1_000.0),
        grid_run(&mut after, &c, 1_000.0),
    ];
    let out = summaries(runs, 1);
    assert!(out[0].is_ok() && out[3].is_ok());
    let err = out[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("already run"), "{err}");
    let err = out[2].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("entries of S0: 50 values for its 100 bars"),
        "{err}"
    );
    same(out[0].as_ref().unwrap(), out[3].as_ref().unwrap());
    // The failed engine kept its own logs (lent and taken back unchanged).
    assert!(!spent.orders().is_empty());
}

#[test]
fn the_caller_stops_the_grid_and_runs_not_started_are_left_intact() {
    let m = market(2, 100);
    let c = signals(2, 100, 5);
    let mut engines: Vec<Engine> = (0..16)
        .map(|_| Engine::new(m.clone(), Config::default()).unwrap())
        .collect();
    let runs = engines
        .iter_mut()
        .map(|e| grid_run(e, &c, 1_000.0))
        .collect();
    let mut seen = Vec::new();
    summarise_grid(runs, Some(1), |k, r| {
        seen.push((k, r.is_ok()));
        false
    })
    .unwrap();
    // Nothing more is handed over; runs under way when it stopped finish, the others
    // are not started (which ones depends on timing): each of those runs now as alone.
    assert_eq!(seen, [(0, true)]);
    let mut alone = Engine::new(m.clone(), Config::default()).unwrap();
    run(&mut alone, &mut strategy(&m, &c, 1_000.0)).unwrap();
    for e in &mut engines[1..] {
        match run(e, &mut strategy(&m, &c, 1_000.0)) {
            Ok(()) => same(&RunSummary::of(e), &RunSummary::of(&alone)),
            Err(err) => assert!(err.to_string().contains("already run"), "{err}"),
        }
    }
}
