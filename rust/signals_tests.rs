//! Hand-computed signal runs, and a grid equal to its runs alone.

use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::market::{Market, SymbolBars};
use crate::orders::Role;

fn closes(values: &[f64]) -> SymbolBars {
    let n = values.len();
    SymbolBars::from_vecs(
        (0..n as i64).collect(),
        values.to_vec(),
        values.iter().map(|c| c + 1.0).collect(),
        values.iter().map(|c| c - 1.0).collect(),
        values.to_vec(),
        vec![1.0; n],
    )
}

fn market(values: &[f64]) -> Arc<Market> {
    Arc::new(Market::new(vec!["X".into()], vec![closes(values)]).unwrap())
}

fn rules(size: f64, size_type: SizeType) -> SignalRules {
    SignalRules {
        size,
        size_type,
        stop_loss: None,
        take_profit: None,
        trade_start: i64::MIN,
    }
}

#[test]
fn entry_fills_next_open_exit_closes_and_value_sizing() {
    // Opens equal closes: 100, 110, 120, 90, 95.
    let m = market(&[100.0, 110.0, 120.0, 90.0, 95.0]);
    let entries = [true, false, false, false, false];
    let exits = [false, false, true, false, false];
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        ..Default::default()
    };
    let mut e = Engine::new(m.clone(), Config::default()).unwrap();
    let mut s = SignalStrategy::new(&m, vec![sig], rules(1_000.0, SizeType::Value)).unwrap();
    e.run(&mut s).unwrap();
    let f = e.fills();
    // 1 000 of cash at bar 0's close 100 = 10 units, filled at bar 1's open 110; the exit
    // decided on bar 2 fills at bar 3's open 90.
    assert_eq!(f.len(), 2);
    assert_eq!((f[0].ts, f[0].size, f[0].price), (1, 10.0, 110.0));
    assert_eq!(
        (f[1].ts, f[1].size, f[1].price, f[1].role),
        (3, 10.0, 90.0, Role::ClosePosition)
    );
    assert_eq!(e.equity(), 10_000.0 - 200.0);
}

#[test]
fn reversal_closes_then_enters_short_in_one_batch_and_conflicts_are_ignored() {
    let m = market(&[100.0, 100.0, 100.0, 100.0, 100.0]);
    let entries = [true, true, false, true, false];
    let shorts = [false, true, true, true, false];
    let exits = [false, false, false, false, false];
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        short_entries: Some(&shorts),
        ..Default::default()
    };
    let mut e = Engine::new(m.clone(), Config::default()).unwrap();
    let mut s = SignalStrategy::new(&m, vec![sig], rules(5.0, SizeType::Amount)).unwrap();
    e.run(&mut s).unwrap();
    let f: Vec<(i64, f64, f64)> = e
        .fills()
        .iter()
        .map(|f| (f.ts, f.direction, f.size))
        .collect();
    // Bar 0: buy 5 (fills at 1). Bar 1: long + short entry together: ignored. Bar 2: short
    // entry while long: close and sell 5 (both at 3). Bar 3: both again: ignored.
    assert_eq!(f, vec![(1, 1.0, 5.0), (3, -1.0, 5.0), (3, -1.0, 5.0)]);
    assert_eq!(e.portfolio().position(0).size, -5.0);
}

#[test]
fn stops_are_fractions_of_the_decision_close() {
    // Bar 2's low (119 - 1) does not reach the stop 90; bar 3's low 79 does.
    let m = market(&[100.0, 110.0, 119.0, 80.0, 80.0]);
    let entries = [true, false, false, false, false];
    let sig = SymbolSignals {
        entries: Some(&entries),
        ..Default::default()
    };
    let mut r = rules(1.0, SizeType::Amount);
    r.stop_loss = Some(0.1);
    let mut e = Engine::new(m.clone(), Config::default()).unwrap();
    let mut s = SignalStrategy::new(&m, vec![sig], r).unwrap();
    e.run(&mut s).unwrap();
    let o = &e.orders()[0];
    assert_eq!(o.stop_loss, 90.0);
    let exit = e.fills()[1];
    // The stop at 90 is gapped through: the bar opens at 80, so it fills at the open.
    assert_eq!((exit.ts, exit.price, exit.role), (3, 80.0, Role::StopLoss));
}

#[test]
fn misaligned_signals_and_bad_rules_are_refused_by_name() {
    let m = market(&[100.0, 101.0, 102.0]);
    let short = [true, false];
    let sig = SymbolSignals {
        exits: Some(&short),
        ..Default::default()
    };
    let err = SignalStrategy::new(&m, vec![sig], rules(1.0, SizeType::Amount))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("exits of X: 2 values for its 3 bars"), "{err}");
    let mut r = rules(1.0, SizeType::Amount);
    r.stop_loss = Some(1.5);
    let err = SignalStrategy::new(&m, vec![SymbolSignals::default()], r)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("sl = 1.5"), "{err}");
    let err = SizeType::parse("shares").unwrap_err().to_string();
    assert!(err.contains("size_type = \"shares\""), "{err}");
}

#[test]
fn a_grid_gives_each_run_its_own_result() {
    let prices: Vec<f64> = (0..200).map(|i| 100.0 + ((i * 37) % 23) as f64).collect();
    let m = market(&prices);
    let columns: Vec<(Vec<bool>, Vec<bool>)> = (2..8)
        .map(|k| {
            let entries = (0..200).map(|i| i % k == 0).collect();
            let exits = (0..200).map(|i| i % (k + 3) == 1).collect();
            (entries, exits)
        })
        .collect();
    fn strategy<'a>(m: &Market, c: &'a (Vec<bool>, Vec<bool>)) -> SignalStrategy<'a> {
        let sig = SymbolSignals {
            entries: Some(&c.0[..]),
            exits: Some(&c.1[..]),
            ..Default::default()
        };
        SignalStrategy::new(m, vec![sig], rules(0.5, SizeType::Percent)).unwrap()
    }
    let alone: Vec<Engine> = columns
        .iter()
        .map(|c| {
            let mut e = Engine::new(m.clone(), Config::default()).unwrap();
            e.run(&mut strategy(&m, c)).unwrap();
            e
        })
        .collect();
    let mut engines: Vec<Engine> = columns
        .iter()
        .map(|_| Engine::new(m.clone(), Config::default()).unwrap())
        .collect();
    let runs = engines
        .iter_mut()
        .zip(columns.iter().map(|c| strategy(&m, c)))
        .collect();
    for outcome in run_grid(runs, Some(2)).unwrap() {
        outcome.unwrap();
    }
    for (a, b) in alone.iter().zip(&engines) {
        assert!(!a.fills().is_empty());
        assert_eq!(a.fills(), b.fills());
        assert_eq!(a.equity().to_bits(), b.equity().to_bits());
    }
}

#[test]
fn target_percent_resizes_to_the_target_and_reverses_in_one_order() {
    // Opens equal closes: 100, 100, 200, 200, 100.
    let m = market(&[100.0, 100.0, 200.0, 200.0, 100.0]);
    let entries = [true, false, true, false, false];
    let shorts = [false, false, false, true, false];
    let sig = SymbolSignals {
        entries: Some(&entries),
        short_entries: Some(&shorts),
        ..Default::default()
    };
    let mut e = Engine::new(m.clone(), Config::default()).unwrap();
    let mut s = SignalStrategy::new(&m, vec![sig], rules(0.5, SizeType::TargetPercent)).unwrap();
    e.run(&mut s).unwrap();
    let f: Vec<(i64, f64, f64)> = e
        .fills()
        .iter()
        .map(|f| (f.ts, f.direction, f.size))
        .collect();
    // Bar 0: 0.5 x 10 000 / 100 = 50 units. Bar 2 (close 200): equity 5 000 + 50 x 200 =
    // 15 000, target 37.5: sell 12.5. Bar 3: equity 7 500 + 37.5 x 200 = 15 000, target
    // -37.5: one sell of 75 (37.5 closes the long, 37.5 opens the short).
    assert_eq!(f, vec![(1, 1.0, 50.0), (3, -1.0, 12.5), (4, -1.0, 75.0)]);
    assert_eq!(e.portfolio().position(0).size, -37.5);
}

#[test]
fn stop_prices_per_bar_and_refusals_of_both_forms() {
    let m = market(&[100.0, 100.0, 100.0, 94.0, 94.0]);
    let entries = [true, false, true, false, false];
    let exits = [false, true, false, false, false];
    let sl = [97.0, f64::NAN, f64::NAN, f64::NAN, f64::NAN];
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        stop_loss: Some(&sl),
        ..Default::default()
    };
    let mut e = Engine::new(m.clone(), Config::default()).unwrap();
    let mut s = SignalStrategy::new(&m, vec![sig], rules(1.0, SizeType::Amount)).unwrap();
    e.run(&mut s).unwrap();
    // The first entry carries the stop at 97 (its leg is cancelled by the exit); the second
    // (NaN on its bar) none, so the drop to 94 does not close it.
    let o = e.orders();
    assert_eq!(o[0].stop_loss, 97.0);
    assert_eq!(o[1].role, Role::StopLoss);
    let second = o.iter().filter(|r| r.role == Role::Entry).nth(1).unwrap();
    assert!(second.stop_loss.is_nan());
    assert_eq!(e.portfolio().position(0).size, 1.0);
    let mut r = rules(1.0, SizeType::Amount);
    r.stop_loss = Some(0.1);
    let err = SignalStrategy::new(&m, vec![sig], r)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("sl of X: give sl as a fraction or as prices per bar, not both"),
        "{err}"
    );
    let short = [1.0; 2];
    let bad = SymbolSignals {
        take_profit: Some(&short),
        ..Default::default()
    };
    let err = SignalStrategy::new(&m, vec![bad], rules(1.0, SizeType::Amount))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tp of X: 2 values for its 5 bars"), "{err}");
}
