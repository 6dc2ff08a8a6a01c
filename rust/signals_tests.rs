//! Hand-computed signal runs, and a grid equal to its runs alone.

use std::sync::Arc;

use super::*;
use crate::config::{Commission, Config};
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

/// What `SignalStrategy::new` says when it refuses `signals` with `rules` (it must).
fn refusal(m: &Market, signals: Vec<SymbolSignals<'_>>, rules: SignalRules) -> String {
    SignalStrategy::new(m, signals, rules)
        .err()
        .expect("refused")
        .to_string()
}

fn rules(size: f64, size_type: SizeType) -> SignalRules {
    SignalRules {
        size: Some(size),
        size_type,
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
fn a_trailing_stop_loss_follows_the_best_price_since_the_fill() {
    // Opens equal closes, highs 1 above, lows 1 below. The entry decided on bar 0 fills
    // at bar 1's open 100; its stop trails 10% below the best price reached: bar 2's high
    // 121 puts it at 108.9 for bar 3 on; bar 3 (low 114) leaves it, bar 4's low 108.5
    // reaches it inside the bar. A fixed 10% stop would sit at 90 and not fill.
    let m = market(&[100.0, 100.0, 120.0, 115.0, 109.5, 109.5]);
    let entries = [true, false, false, false, false, false];
    let sig = SymbolSignals {
        entries: Some(&entries),
        ..Default::default()
    };
    let mut r = rules(1.0, SizeType::Amount);
    r.stop_loss_trail = Some(0.1);
    for sparse in [false, true] {
        let mut e = Engine::new(m.clone(), Config::default()).unwrap();
        let mut s = SignalStrategy::new(&m, vec![sig], r).unwrap();
        if sparse {
            run(&mut e, &mut s).unwrap();
        } else {
            e.run(&mut s).unwrap();
        }
        let f = e.fills();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].ts, f[0].price), (1, 100.0));
        assert_eq!(
            (f[1].ts, f[1].price, f[1].role),
            (4, 121.0 - 121.0 * 0.1, Role::StopLoss)
        );
    }
    // With a fixed stop-loss, or not a fraction in (0, 1): refused by name.
    r.stop_loss = Some(0.1);
    let err = refusal(&m, vec![sig], r);
    assert!(err.contains("sl or sl_trail"), "{err}");
    r.stop_loss = None;
    r.stop_loss_trail = Some(1.5);
    let err = refusal(&m, vec![sig], r);
    assert!(err.contains("sl_trail = 1.5"), "{err}");
}

#[test]
fn misaligned_signals_and_bad_rules_are_refused_by_name() {
    let m = market(&[100.0, 101.0, 102.0]);
    let short = [true, false];
    let sig = SymbolSignals {
        exits: Some(&short),
        ..Default::default()
    };
    let err = refusal(&m, vec![sig], rules(1.0, SizeType::Amount));
    assert!(err.contains("exits of X: 2 values for its 3 bars"), "{err}");
    let mut r = rules(1.0, SizeType::Amount);
    r.stop_loss = Some(1.5);
    let err = refusal(&m, vec![SymbolSignals::default()], r);
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
    let err = refusal(&m, vec![sig], r);
    assert!(
        err.contains("sl of X: give sl as a fraction or as prices per bar, not both"),
        "{err}"
    );
    let short = [1.0; 2];
    let bad = SymbolSignals {
        take_profit: Some(&short),
        ..Default::default()
    };
    let err = refusal(&m, vec![bad], rules(1.0, SizeType::Amount));
    assert!(
        err.contains("tp_price of X: 2 values for its 5 bars"),
        "{err}"
    );
}

#[test]
fn stop_fractions_per_bar_stand_for_the_rules_and_are_refused_by_bar() {
    // Closes 100, 100, 100, 94, 94: entries on bars 0 and 2.
    let m = market(&[100.0, 100.0, 100.0, 94.0, 94.0]);
    let entries = [true, false, true, false, false];
    let exits = [false, true, false, false, false];
    // The symbol's own stop-loss of 3% on bar 0 (97), none on bar 2 (NaN); a take-profit
    // of 25% on bar 2 (125). The rules' 1% is not used: the symbol has its own.
    let sl = [0.03, f64::NAN, f64::NAN, f64::NAN, f64::NAN];
    let tp = [f64::NAN, f64::NAN, 0.25, f64::NAN, f64::NAN];
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        stop_loss_fraction: Some(&sl),
        take_profit_fraction: Some(&tp),
        ..Default::default()
    };
    let mut r = rules(1.0, SizeType::Amount);
    r.stop_loss = Some(0.01);
    let mut e = Engine::new(m.clone(), Config::default()).unwrap();
    let mut s = SignalStrategy::new(&m, vec![sig], r).unwrap();
    e.run(&mut s).unwrap();
    let entered: Vec<_> = e
        .orders()
        .into_iter()
        .filter(|o| o.role == Role::Entry)
        .collect();
    assert_eq!(
        (entered[0].stop_loss, entered[0].take_profit.is_nan()),
        (97.0, true)
    );
    assert_eq!(
        (entered[1].stop_loss.is_nan(), entered[1].take_profit),
        (true, 125.0)
    );
    // No stop-loss on the second entry: the drop to 94 does not close it.
    assert_eq!(e.portfolio().position(0).size, 1.0);
    // A trailing stop of the symbol's own, with the rules' stop-loss: one or the other.
    let trail = [0.05; 5];
    let both = SymbolSignals {
        entries: Some(&entries),
        trail_fraction: Some(&trail),
        ..Default::default()
    };
    let mut r = rules(1.0, SizeType::Amount);
    r.stop_loss = Some(0.1);
    let err = refusal(&m, vec![both], r);
    assert!(
        err.contains("sl of X: give sl or sl_trail, not both"),
        "{err}"
    );
    // A fraction its stop does not take, by its bar.
    let bad = [f64::NAN, f64::NAN, 1.0, f64::NAN, f64::NAN];
    let refused = SymbolSignals {
        entries: Some(&entries),
        stop_loss_fraction: Some(&bad),
        ..Default::default()
    };
    let err = refusal(&m, vec![refused], rules(1.0, SizeType::Amount));
    assert!(
        err.contains("sl of X on the bar at ")
            && err.contains("(its bar 2) = 1: must be a fraction"),
        "{err}"
    );
}

/// The engines of one symbol's `sig` with rules `r` run by the engine's loop, then by the
/// sparse driver.
fn both_runs(m: &Arc<Market>, sig: SymbolSignals<'_>, r: SignalRules) -> [Engine; 2] {
    [false, true].map(|sparse| {
        let mut e = Engine::new(m.clone(), Config::default()).unwrap();
        let mut s = SignalStrategy::new(m, vec![sig], r).unwrap();
        match sparse {
            true => run(&mut e, &mut s).unwrap(),
            false => e.run(&mut s).unwrap(),
        }
        e
    })
}

#[test]
fn time_exits_per_bar_are_kept_from_the_opening_entry_and_refused_by_bar() {
    // Opens equal closes: 100, 101, ..., 109. Entries on bars 0, 1 (adding: pyramiding)
    // and 5; the symbol's own time exits 2 on bar 0, 1 on bar 1 (the added entry's, not
    // used), NaN on bar 5 (none). The rules' 1 bar is not used: the symbol has its own.
    let m = market(&(0..10).map(|i| 100.0 + i as f64).collect::<Vec<_>>());
    let entries = [
        true, true, false, false, false, true, false, false, false, false,
    ];
    let nan = f64::NAN;
    let counts = [2.0, 1.0, nan, nan, nan, nan, 1.0, nan, nan, nan];
    let sig = SymbolSignals {
        entries: Some(&entries),
        exit_after_bars: Some(&counts),
        ..Default::default()
    };
    let mut r = rules(1.0, SizeType::Amount);
    r.exit_after_bars = Some(1);
    r.accumulate = true;
    // (The event-driven run and the sparse driver alike.)
    let fills = |sig: SymbolSignals<'_>, r: SignalRules| {
        let runs = both_runs(&m, sig, r).map(|e| {
            (e.fills().iter())
                .map(|f| (f.role, f.price, f.size))
                .collect::<Vec<_>>()
        });
        assert_eq!(runs[0], runs[1]);
        runs[0].clone()
    };
    // Bought at bar 1's open (101) and at bar 2's (102, added); opened at bar 1, the
    // position is due at bar 3 and sold at bar 4's open (104). Bar 5's entry opens again
    // at 106 with no time exit: held to the end.
    assert_eq!(
        fills(sig, r),
        vec![
            (Role::Entry, 101.0, 1.0),
            (Role::Entry, 102.0, 1.0),
            (Role::ClosePosition, 104.0, 2.0),
            (Role::Entry, 106.0, 1.0),
        ]
    );
    // Not a whole number of bars >= 1, by its bar.
    for bad in [0.0, 2.5, f64::INFINITY, -1.0] {
        let counts = [nan, nan, nan, bad, nan, nan, nan, nan, nan, nan];
        let refused = SymbolSignals {
            entries: Some(&entries),
            exit_after_bars: Some(&counts),
            ..Default::default()
        };
        let err = refusal(&m, vec![refused], rules(1.0, SizeType::Amount));
        assert!(
            err.contains("exit_after_bars of X on the bar at ")
                && err.contains(&format!("(its bar 3) = {bad}: must be a whole number")),
            "{err}"
        );
    }
}

#[test]
fn conflicting_signals_are_read_as_the_rules_say() {
    // Every price 100 (lows 99, highs 101); 5 units an entry, filled at the next open.
    let m = market(&[100.0; 9]);
    let on = |bars: &[usize]| (0..9).map(|i| bars.contains(&i)).collect::<Vec<bool>>();
    let fills = |sig: SymbolSignals<'_>, conflict: &str, sides: &str, opposite: &str| {
        let mut r = rules(5.0, SizeType::Amount);
        r.conflicts = Conflicts::parse(Some(conflict), Some(sides), Some(opposite)).unwrap();
        let [event, sparse] = both_runs(&m, sig, r).map(|e| {
            let held = e.portfolio().position(0).size;
            let f = e.fills().into_iter().map(|f| (f.ts, f.direction * f.size));
            (f.collect::<Vec<_>>(), held)
        });
        assert_eq!(event, sparse, "{conflict} {sides} {opposite}");
        event
    };
    // An entry and an exit together on bars 2 and 5 (long on bar 2, flat on bar 5).
    let (entries, exits) = (on(&[0, 2, 5]), on(&[2, 4, 5]));
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        ..Default::default()
    };
    // The exit wins: out at bar 3's open; bar 4's exit and bar 5 find it flat.
    let exit = fills(sig, "exit", "ignore", "reverse");
    assert_eq!(exit, (vec![(1, 5.0), (3, -5.0)], 0.0));
    // The entry wins: bar 2's entry adds nothing (no pyramiding), bar 4's exit sells at
    // bar 5's open, bar 5's entry buys at bar 6's.
    let entry = fills(sig, "entry", "ignore", "reverse");
    assert_eq!(entry, (vec![(1, 5.0), (5, -5.0), (6, 5.0)], 5.0));
    // Neither: held to bar 4's exit, and bar 5 does nothing.
    let neither = fills(sig, "ignore", "ignore", "reverse");
    assert_eq!(neither, (vec![(1, 5.0), (5, -5.0)], 0.0));

    // A long and a short entry together on bar 0; both exits on bar 2.
    let (entries, shorts, exits) = (on(&[0]), on(&[0]), on(&[2]));
    let sig = SymbolSignals {
        entries: Some(&entries),
        short_entries: Some(&shorts),
        exits: Some(&exits),
        short_exits: Some(&exits),
        ..Default::default()
    };
    assert_eq!(fills(sig, "exit", "ignore", "reverse"), (vec![], 0.0));
    let long = fills(sig, "exit", "long", "reverse");
    assert_eq!(long, (vec![(1, 5.0), (3, -5.0)], 0.0));
    let short = fills(sig, "exit", "short", "reverse");
    assert_eq!(short, (vec![(1, -5.0), (3, 5.0)], 0.0));

    // Long from bar 0; a short entry on bar 2 reverses, closes, or is ignored; bar 6
    // exits either side.
    let (entries, shorts, exits) = (on(&[0]), on(&[2]), on(&[6]));
    let sig = SymbolSignals {
        entries: Some(&entries),
        short_entries: Some(&shorts),
        exits: Some(&exits),
        short_exits: Some(&exits),
        ..Default::default()
    };
    let reverse = fills(sig, "exit", "ignore", "reverse");
    assert_eq!(
        reverse,
        (vec![(1, 5.0), (3, -5.0), (3, -5.0), (7, 5.0)], 0.0)
    );
    let close = fills(sig, "exit", "ignore", "close");
    assert_eq!(close, (vec![(1, 5.0), (3, -5.0)], 0.0));
    let ignore = fills(sig, "exit", "ignore", "ignore");
    assert_eq!(ignore, (vec![(1, 5.0), (7, -5.0)], 0.0));
    // A time exit is the rules' own: two bars after the fill at bar 1 it exits the long on
    // bar 3 whatever the readings, and beats a long entry there even where the entry
    // wins over exit signals (a short entry there then reverses, closes nothing more, or
    // is ignored).
    let (entries, shorts) = (on(&[0, 3]), on(&[3]));
    let sig = SymbolSignals {
        entries: Some(&entries),
        short_entries: Some(&shorts),
        ..sig
    };
    let timed = |opposite| {
        let mut r = rules(5.0, SizeType::Amount);
        r.exit_after_bars = Some(2);
        r.conflicts = Conflicts::parse(Some("entry"), Some("ignore"), Some(opposite)).unwrap();
        let [event, sparse] = both_runs(&m, sig, r).map(|e| {
            let f = e.fills().into_iter().map(|f| (f.ts, f.direction * f.size));
            f.collect::<Vec<_>>()
        });
        assert_eq!(event, sparse);
        event
    };
    assert_eq!(timed("close"), vec![(1, 5.0), (4, -5.0)]);
    assert_eq!(timed("ignore"), vec![(1, 5.0), (4, -5.0)]);
    let reverse = vec![(1, 5.0), (4, -5.0), (4, -5.0), (7, 5.0)];
    assert_eq!(timed("reverse"), reverse);

    // Each option refuses what it does not take, by name.
    let refused = |a, b, c| {
        let parsed = Conflicts::parse(Some(a), Some(b), Some(c));
        parsed.unwrap_err().to_string()
    };
    assert!(refused("exits", "ignore", "reverse")
        .contains("conflict = \"exits\": must be 'exit', 'entry' or 'ignore'"));
    assert!(refused("exit", "both", "reverse")
        .contains("side_conflict = \"both\": must be 'ignore', 'long' or 'short'"));
    assert!(refused("exit", "ignore", "flip")
        .contains("opposite_entry = \"flip\": must be 'reverse', 'close' or 'ignore'"));
}

#[test]
fn limit_entries_fill_at_their_limit_and_are_cancelled_or_expire() {
    // Opens equal closes: 100, 100, 99, 97, 100, 102, 102, 102; lows 1 below. Bar 0's
    // entry is a buy limit 2% below its close, 98: 980 of cash buys 10 units (at the
    // limit); bar 1's low 99 misses it, bar 2's 98 reaches it. The exit on bar 4 sells at
    // bar 5's open, 102. Bar 5's entry (limit 99.96) works two bars, 6 and 7 (lows 101),
    // and expires.
    let m = market(&[100.0, 100.0, 99.0, 97.0, 100.0, 102.0, 102.0, 102.0]);
    let on = |bars: &[usize]| (0..8).map(|i| bars.contains(&i)).collect::<Vec<bool>>();
    let (entries, exits) = (on(&[0, 5]), on(&[4]));
    let mut r = rules(980.0, SizeType::Value);
    r.limit = Some(0.02);
    r.limit_bars = Some(2);
    let orders = |exits: &[bool]| {
        let sig = SymbolSignals {
            entries: Some(&entries),
            exits: Some(exits),
            ..Default::default()
        };
        let runs = both_runs(&m, sig, r).map(|e| {
            (e.orders().iter())
                .map(|o| (o.role, o.limit, o.status, o.fill_price, o.filled_size))
                .collect::<Vec<_>>()
        });
        assert_eq!(format!("{:?}", runs[0]), format!("{:?}", runs[1]));
        runs[0].clone()
    };
    use crate::orders::Status;
    let got = orders(&exits);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        (got[0].0, got[0].1, got[0].2),
        (Role::Entry, 98.0, Status::Filled)
    );
    assert_eq!((got[0].3, got[0].4), (98.0, 10.0));
    assert_eq!(
        (got[1].0, got[1].2, got[1].3),
        (Role::ClosePosition, Status::Filled, 102.0)
    );
    assert_eq!((got[2].0, got[2].2), (Role::Entry, Status::Expired));
    assert!((got[2].1 - 99.96).abs() < 1e-9 && got[2].4 == 0.0);
    assert!(got[1].1.is_nan()); // (the close is a market order)
                                // An exit on bar 1 cancels bar 0's entry before it fills: nothing is bought then.
    let got = orders(&on(&[1]));
    assert_eq!((got[0].0, got[0].2), (Role::Entry, Status::Cancelled));
    assert_eq!(got[0].4, 0.0);
}

#[test]
fn sizes_per_bar_size_each_entry_and_nan_or_zero_sets_none() {
    // Closes (= next opens) 100, 110, 120, 90, 95, 100, 105.
    let m = market(&[100.0, 110.0, 120.0, 90.0, 95.0, 100.0, 105.0]);
    let entries = [true, false, true, false, true, false, true];
    let exits = [false, true, false, true, false, true, false];
    // Bar 0: 1 000 of cash; bar 2: NaN and bar 4: 0 (no entry either); bar 6: 2 100. The
    // exits on bars 1, 3 and 5 act whatever the sizes (nothing is held at 3 and 5).
    let sizes = [1_000.0, 5.0, f64::NAN, 7.0, 0.0, 9.0, 2_100.0];
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        size: Some(&sizes),
        ..Default::default()
    };
    let per_bar = |size_type| SignalRules {
        size: None,
        ..rules(1.0, size_type)
    };
    let mut e = Engine::new(m.clone(), Config::default()).unwrap();
    let mut s = SignalStrategy::new(&m, vec![sig], per_bar(SizeType::Value)).unwrap();
    e.run(&mut s).unwrap();
    let f = e.fills();
    // 1 000 / close 100 = 10 units at bar 1's open 110, closed at bar 2's open 120; bar 6's
    // entry (2 100 / 105 = 20 units) has no next bar to fill on.
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!((f[0].ts, f[0].size, f[0].price), (1, 10.0, 110.0));
    assert_eq!((f[1].ts, f[1].size, f[1].price), (2, 10.0, 120.0));
    assert_eq!(e.equity(), 10_000.0 + 100.0);
    // As amounts, by the sparse driver: 1 000 units bought at 110 cost more than the cash
    // (rejected); the exits find nothing held.
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        size: Some(&sizes),
        ..Default::default()
    };
    let mut a = Engine::new(m.clone(), Config::default()).unwrap();
    let mut s = SignalStrategy::new(&m, vec![sig], per_bar(SizeType::Amount)).unwrap();
    run(&mut a, &mut s).unwrap();
    let sizes_asked: Vec<f64> = a.orders().iter().map(|o| o.size).collect();
    assert_eq!(sizes_asked, [1_000.0, 2_100.0]);
    assert!(a.fills().is_empty());
}

#[test]
fn entries_in_whole_lots_round_down_and_targets_towards_zero() {
    // The rule: down to whole lots, forgiving a quotient a hair below a whole number.
    assert_eq!(crate::orders::round_to_lot(135.135, 10.0), 130.0);
    assert_eq!(crate::orders::round_to_lot(0.3, 0.1), 0.30000000000000004);
    assert_eq!(crate::orders::round_to_lot(9.99, 10.0), 0.0);
    // Closes (and opens) 37, then 40; half the equity each entry, in lots of 10.
    let m = market(&[37.0, 40.0, 40.0, 40.0]);
    let entries = [true, false, false, false];
    let shorts = [false, false, true, false];
    let sig = SymbolSignals {
        entries: Some(&entries),
        short_entries: Some(&shorts),
        lot_size: Some(10.0),
        ..Default::default()
    };
    let mut e = Engine::new(m.clone(), Config::default()).unwrap();
    let r = rules(0.5, SizeType::TargetPercent);
    run(&mut e, &mut SignalStrategy::new(&m, vec![sig], r).unwrap()).unwrap();
    let f = e.fills();
    // 0.5 x 10 000 / 37 = 135.1 -> 130 units, bought at bar 1's open 40; then a target
    // of -0.5 x 10 000 / 40 = -125 -> -120 (towards zero): one sell of 250.
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!((f[0].ts, f[0].size, f[0].price), (1, 130.0, 40.0));
    assert_eq!((f[1].ts, f[1].size, f[1].direction), (3, 250.0, -1.0));
    assert_eq!(e.portfolio().position(0).size, -120.0);
    let bad = SymbolSignals {
        entries: Some(&entries),
        lot_size: Some(0.0),
        ..Default::default()
    };
    let err = refusal(&m, vec![bad], r);
    assert!(
        err.contains("lot_size of X = 0: must be a finite number of units > 0"),
        "{err}"
    );
}

#[test]
fn sizes_per_bar_must_cover_every_symbol_with_entries() {
    let m = market(&[100.0, 110.0, 120.0]);
    let entries = [true, false, false];
    let r = SignalRules {
        size: None,
        ..rules(1.0, SizeType::Amount)
    };
    let sig = SymbolSignals {
        entries: Some(&entries),
        ..Default::default()
    };
    let err = refusal(&m, vec![sig], r);
    assert!(
        err.contains("size: sizes are given per bar, but none for X, which has entry signals"),
        "{err}"
    );
    let short = [1.0; 2];
    let sig = SymbolSignals {
        entries: Some(&entries),
        size: Some(&short),
        ..Default::default()
    };
    let err = refusal(&m, vec![sig], r);
    assert!(err.contains("size of X: 2 values for its 3 bars"), "{err}");
}

// ---- the sparse driver against the event-driven run -------------------------------------

/// A deterministic stream of numbers (xorshift; no rand dependency in the core).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// One random case: symbols with their own (sparse, late, early-ending) bars on a minute
/// timeline spanning several days, random signals, stops, sizes and options.
#[derive(Clone)]
struct Case {
    market: Arc<Market>,
    /// Per symbol: entries, exits, short entries, short exits (None: not given).
    signals: Vec<[Option<Vec<bool>>; 4]>,
    /// Per symbol: stop-loss and take-profit prices per bar, when given as prices.
    prices: Vec<[Option<Vec<f64>>; 2]>,
    /// Per symbol: the entries' sizes per bar, when given so.
    sizes: Vec<Option<Vec<f64>>>,
    /// Per symbol: its own stop-loss, take-profit and trailing fractions per bar (NaN:
    /// none on that bar), when given so.
    fractions: Vec<[Option<Vec<f64>>; 3]>,
    /// Per symbol: its own time exits per bar (NaN: none on that bar), when given so.
    time_exits: Vec<Option<Vec<f64>>>,
    /// Per symbol: its entries' limit prices or limit fractions per bar (NaN: a market
    /// entry on that bar), when given so.
    limits: Vec<[Option<Vec<f64>>; 2]>,
    /// Per symbol: its lot size, if any.
    lot_size: Vec<Option<f64>>,
    /// Per symbol: the portions of the position its exit signals close per bar (NaN: all
    /// of it), when given so.
    portions: Vec<Option<Vec<f64>>>,
    rules: SignalRules,
    config: Config,
    session_ends: Option<Vec<bool>>,
    account_opens: Option<i64>,
    /// Per symbol, the time of its last bar when it stops trading before the run's end
    /// (`Engine::set_delistings`; `i64::MIN`: it does not); empty: none does.
    delisted: Vec<i64>,
}

fn random_case(seed: u64) -> Case {
    let mut d = Draw(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = 1 + d.below(5) as usize;
    let ticks = 20 + d.below(400) as i64;
    // Minutes, several per "day" (a day is 60 minutes here, in ns), so day ends are many.
    let minute = 60_000_000_000i64;
    let day = 86_400_000_000_000i64;
    let per_day = 5 + d.below(40) as i64;
    let stamp = |k: i64| (k / per_day) * day + (k % per_day) * minute;
    let mut names = Vec::new();
    let mut bars = Vec::new();
    let mut signals = Vec::new();
    let mut prices = Vec::new();
    let shorts = d.chance(0.5);
    let price_stops = d.chance(0.3);
    let density = [0.02, 0.1, 0.3][d.below(3) as usize];
    for s in 0..n {
        let keep = [1.0, 0.9, 0.5, 0.15][d.below(4) as usize];
        let (start, stop) = (
            d.below(ticks as u64 / 3) as i64,
            ticks - d.below(ticks as u64 / 3) as i64,
        );
        let ts: Vec<i64> = (start..stop)
            .filter(|_| d.chance(keep))
            .map(stamp)
            .collect();
        let ts = if ts.is_empty() {
            vec![stamp(start)]
        } else {
            ts
        };
        let m = ts.len();
        let mut close = 50.0 + d.unit() * 100.0;
        let (mut o, mut h, mut l, mut c) = (vec![], vec![], vec![], vec![]);
        for _ in 0..m {
            // Now and then a gap at the open (the batch reads positions marked there).
            let gap = if d.chance(0.2) { 0.2 } else { 0.02 };
            let open = close * (1.0 + (d.unit() - 0.5) * gap);
            close = open * (1.0 + (d.unit() - 0.5) * 0.06);
            let high = open.max(close) * (1.0 + d.unit() * 0.02);
            let low = open.min(close) * (1.0 - d.unit() * 0.02);
            o.push(open);
            h.push(high);
            l.push(low);
            c.push(close);
        }
        let mut column = |p: f64| Some((0..m).map(|_| d.chance(p)).collect::<Vec<bool>>());
        let mut kinds = [column(density), column(density), None, None];
        if shorts {
            kinds[2] = column(density);
            kinds[3] = column(density);
        }
        if d.chance(0.2) {
            kinds[1] = None;
        }
        signals.push(kinds);
        let mut stops = [None, None];
        if price_stops {
            // Only long entries then (a long's stop below its close, its target above).
            signals.last_mut().unwrap()[2] = None;
            for (k, toward) in [(0, -1.0), (1, 1.0)] {
                if d.chance(0.7) {
                    stops[k] = Some(
                        c.iter()
                            .map(|&x| {
                                if d.chance(0.2) {
                                    f64::NAN
                                } else {
                                    x * (1.0 + toward * (0.002 + d.unit() * 0.05))
                                }
                            })
                            .collect(),
                    );
                }
            }
        }
        prices.push(stops);
        names.push(format!("S{s}"));
        bars.push(SymbolBars::from_vecs(ts, o, h, l, c, vec![1.0; m]));
    }
    let mut order: Vec<usize> = (0..n).collect();
    for k in (1..n).rev() {
        order.swap(k, d.below(k as u64 + 1) as usize);
    }
    let market = Market::new(names, bars)
        .unwrap()
        .with_call_order(order)
        .unwrap();
    let size_type = [
        SizeType::Amount,
        SizeType::Value,
        SizeType::Percent,
        SizeType::TargetPercent,
    ][d.below(4) as usize];
    let size = match size_type {
        SizeType::Amount => 1.0 + d.unit() * 60.0,
        SizeType::Value => 500.0 + d.unit() * 8_000.0,
        _ => 0.05 + d.unit() * 0.9,
    };
    let fraction = |d: &mut Draw, max: f64| d.chance(0.5).then(|| 0.005 + d.unit() * max);
    // A trailing stop-loss instead of a fixed one now and then (never with stop prices).
    let trailing = !price_stops && d.chance(0.3);
    let mut rules = SignalRules {
        size: Some(size),
        size_type,
        stop_loss: if price_stops || trailing {
            None
        } else {
            fraction(&mut d, 0.1)
        },
        stop_loss_trail: trailing.then(|| 0.005 + d.unit() * 0.08),
        take_profit: if price_stops {
            None
        } else {
            fraction(&mut d, 0.1)
        },
        trade_start: if d.chance(0.3) {
            stamp(ticks / 4)
        } else {
            i64::MIN
        },
        accumulate: false,
        exit_after_bars: None,
        limit: None,
        limit_bars: None,
        conflicts: Conflicts::default(),
        exit_portion: None,
    };
    let config = Config {
        // Low cash now and then, so increases are rejected for margin.
        cash: [10_000.0, 2_000.0, 300.0][d.below(3) as usize],
        commission: Commission {
            rate: [0.0, 0.001][d.below(2) as usize],
            fixed: [0.0, 1.0][d.below(2) as usize],
            ..Commission::default()
        },
        by_symbol: Vec::new(),
        multipliers: Vec::new(),
        margins: Vec::new(),
        shortable: Vec::new(),
        slippages: Vec::new(),
        slippage_bps: [0.0, 5.0][d.below(2) as usize],
        fill_at: if d.chance(0.3) {
            crate::config::FillAt::Close
        } else {
            crate::config::FillAt::NextOpen
        },
        leverage: [1.0, 2.0][d.below(2) as usize],
        maintenance_margin: 0.0,
        funding: None,
        dividends: None,
        volume_limit: None,
        volume_impact: 0.0,
        record_every_bar: d.chance(0.5),
        // The signal rules close before an opposite entry themselves (Python refuses the
        // option for signals mode).
        exclusive_orders: false,
        order_delay: 0,
        carry: crate::portfolio::CarryRates {
            borrow: [0.0, 0.05][d.below(2) as usize],
            margin: [0.0, 0.08][d.below(2) as usize],
            cash: [0.0, 0.03][d.below(2) as usize],
        },
        borrow_rates: Vec::new(),
        limit_fill: crate::broker::LimitFill::Touch,
        borrow_column: None,
        locate_column: None,
    };
    let timeline_len = market.timeline().len();
    let session_ends = d
        .chance(0.3)
        .then(|| (0..timeline_len).map(|_| d.chance(0.1)).collect());
    let account_opens = d.chance(0.3).then(|| stamp(ticks / 3));
    // Sizes per bar now and then (drawn last: the draws before stay those of each seed),
    // around the rules' size, with bars of no entry (NaN or 0) among them.
    let per_bar = d.chance(0.3);
    let sizes = (0..n)
        .map(|s| {
            let bars = market.bars(s).ts.len();
            per_bar.then(|| {
                (0..bars)
                    .map(|_| match d.below(10) {
                        0 => f64::NAN,
                        1 => 0.0,
                        _ => size * (0.2 + d.unit() * 1.6),
                    })
                    .collect()
            })
        })
        .collect();
    if per_bar {
        rules.size = None;
    }
    // Pyramiding now and then (not with target percent, which re-sizes instead).
    rules.accumulate = size_type != SizeType::TargetPercent && d.chance(0.3);
    // A time exit now and then, one to eight bars after the entry.
    rules.exit_after_bars = d.chance(0.3).then(|| 1 + d.below(8) as usize);
    // Lot sizes now and then, per symbol (some without), for any size type.
    let lots = d.chance(0.3);
    let lot_size: Vec<Option<f64>> = (0..n)
        .map(|_| (lots && d.chance(0.7)).then(|| [0.5, 1.0, 3.0][d.below(3) as usize]))
        .collect();
    let mut config = config;
    schedule_now_and_then(&mut d, &mut config.commission);
    // More leverage and a maintenance margin now and then (drawn after the rest), so
    // that accounts are margin called: longs and shorts, positions parked at the call or
    // not, calls again after the strategy enters anew.
    if d.chance(0.4) {
        config.leverage = [1.0, 2.0, 4.0, 8.0][d.below(4) as usize];
        config.maintenance_margin = [0.0, 0.1, 0.3][d.below(3) as usize];
    }
    // Some symbols' own schedules now and then (drawn last).
    if d.chance(0.3) {
        config.by_symbol = (0..n).map(|_| own_schedule(&mut d)).collect();
    }
    // Contracts' multipliers now and then (drawn last), some symbols' 1.
    if d.chance(0.3) {
        config.multipliers = (0..n)
            .map(|_| [1.0, 50.0, 0.1, 12.5][d.below(4) as usize])
            .collect();
    }
    // Symbols that may not be sold short now and then (drawn last).
    if d.chance(0.2) {
        config.shortable = (0..n).map(|_| d.chance(0.5)).collect();
    }
    // Some symbols' own slippage now and then (drawn last), the others the account's.
    if d.chance(0.35) {
        config.slippages = (0..n)
            .map(|_| d.chance(0.6).then(|| [0.0, 5.0, 40.0][d.below(3) as usize]))
            .collect();
    }
    // A funding column now and then (drawn last): a rate at one bar in eight or so, of
    // either sign, some of them 0; some symbols without the column.
    let market = if d.chance(0.3) {
        config.funding = Some(0);
        with_funding(&market, &mut d)
    } else {
        market
    };
    // A dividend column now and then (drawn after the funding one): dividends at one
    // bar in twelve or so, some of them 0; some symbols without the column.
    let market = if d.chance(0.3) {
        config.dividends = Some(market.columns().len());
        with_dividends(&market, &mut d)
    } else {
        market
    };
    // A volume limit and a market impact now and then (drawn last), on volumes of the
    // order of the orders' sizes (some bars none), so that orders fill in part and their
    // rests work on, and fills pay for their share of the volume.
    let market = if d.chance(0.3) {
        config.volume_limit = [None, Some(0.1), Some(0.5), Some(1.0)][d.below(4) as usize];
        config.volume_impact = [0.0, 0.1, 2.0][d.below(3) as usize];
        with_volumes(&market, &mut d)
    } else {
        market
    };
    // Symbols whose bars end before the run's close their positions there, now and then
    // (drawn last).
    let delisted = match d.chance(0.3) {
        true => {
            let end = *market.timeline().last().unwrap();
            (0..n)
                .map(|s| *market.bars(s).ts.last().unwrap())
                .map(|last| if last < end { last } else { i64::MIN })
                .collect()
        }
        false => Vec::new(),
    };
    // Limits filled only through their price now and then (drawn last): the take-profits'.
    if d.chance(0.3) {
        config.limit_fill = crate::broker::LimitFill::Through;
    }
    // Some symbols' own stop fractions per bar now and then (drawn last; not with stop
    // prices): a stop-loss or a trail, whichever the rules do not give, and a take-profit,
    // NaN on some bars.
    let fractions = (0..n)
        .map(|s| {
            let mut own = [None, None, None];
            if price_stops || !d.chance(0.25) {
                return own;
            }
            let bars = market.bars(s).len();
            let column = |d: &mut Draw, max: f64| {
                let v = (0..bars).map(|_| match d.chance(0.2) {
                    true => f64::NAN,
                    false => 0.003 + d.unit() * max,
                });
                Some(v.collect::<Vec<f64>>())
            };
            let trail = match (rules.stop_loss, rules.stop_loss_trail) {
                (None, None) => d.chance(0.5),
                (_, trail) => trail.is_some(),
            };
            own[if trail { 2 } else { 0 }] = column(&mut d, 0.08);
            if d.chance(0.5) {
                own[1] = column(&mut d, 0.1);
            }
            own
        })
        .collect();
    // Some symbols' own time exits per bar now and then (drawn last): one to eight bars,
    // NaN (none) on some bars.
    let own_time_exits = d.chance(0.3);
    let time_exits = (0..n)
        .map(|s| {
            if !own_time_exits || d.chance(0.3) {
                return None;
            }
            let bars = market.bars(s).len();
            let v = (0..bars).map(|_| match d.chance(0.2) {
                true => f64::NAN,
                false => (1 + d.below(8)) as f64,
            });
            Some(v.collect::<Vec<f64>>())
        })
        .collect();
    // Limit entries now and then (drawn last; not with stop prices, which a limit below
    // them would make refused): the rules' fraction (up to 3%
    // better than the close), or some symbols' own fractions or prices per bar (NaN on
    // some bars: market entries there; prices on either side of the close), working a
    // few bars or until cancelled.
    let mut limits = vec![[None, None]; n];
    if !price_stops && d.chance(0.35) {
        if d.chance(0.4) {
            rules.limit = Some(d.unit() * 0.03);
        } else {
            for (s, own) in limits.iter_mut().enumerate() {
                if d.chance(0.3) {
                    continue;
                }
                let close = &market.bars(s).close;
                let prices = d.chance(0.5);
                let v = close.iter().map(|&x| match (d.chance(0.2), prices) {
                    (true, _) => f64::NAN,
                    (false, true) => x * (1.0 + (d.unit() - 0.7) * 0.05),
                    (false, false) => d.unit() * 0.03,
                });
                own[usize::from(!prices)] = Some(v.collect::<Vec<f64>>());
            }
        }
        rules.limit_bars = d.chance(0.5).then(|| 1 + d.below(5) as usize);
    }
    // Other readings of conflicting signals now and then (drawn after the rest: a seed's
    // other draws stay its own).
    if d.chance(0.5) {
        let pick = |d: &mut Draw, of: [&'static str; 3]| of[d.below(3) as usize];
        let same_side = pick(&mut d, ["exit", "entry", "ignore"]);
        let sides = pick(&mut d, ["ignore", "long", "short"]);
        let opposite = pick(&mut d, ["reverse", "close", "ignore"]);
        rules.conflicts = Conflicts::parse(Some(same_side), Some(sides), Some(opposite)).unwrap();
    }
    // Exits that close a portion of the position now and then (drawn last; not with lot
    // sizes, which refuse them): the rules' one, or some symbols' own per bar (NaN: all).
    let mut portions = vec![None; n];
    if lot_size.iter().all(Option::is_none) && d.chance(0.45) {
        let portion = |d: &mut Draw| [0.25, 0.5, 0.7, 1.0][d.below(4) as usize];
        if d.chance(0.5) {
            rules.exit_portion = Some(portion(&mut d));
        } else {
            for (s, own) in portions.iter_mut().enumerate() {
                if d.chance(0.3) {
                    continue;
                }
                let v = (0..market.bars(s).len()).map(|_| match d.chance(0.2) {
                    true => f64::NAN,
                    false => portion(&mut d),
                });
                *own = Some(v.collect::<Vec<f64>>());
            }
        }
    }
    Case {
        market: Arc::new(market),
        signals,
        prices,
        sizes,
        fractions,
        time_exits,
        limits,
        lot_size,
        portions,
        rules,
        config,
        session_ends,
        account_opens,
        delisted,
    }
}

/// A broker's schedule now and then (drawn after the rest: a seed's other draws stay
/// its own): a fee per unit, a minimum per fill, a cap, a maker's rate or rebate
/// (take-profits filled at their limits), on top of the rate and the fixed part drawn
/// before. The minimum and the fee per unit are of the order of the fills of
/// these prices (about 100), so they bind on some fills and not on others.
fn schedule_now_and_then(d: &mut Draw, commission: &mut Commission) {
    if d.chance(0.4) {
        commission.per_unit = [0.0, 0.01, 0.05][d.below(3) as usize];
        commission.minimum = [0.0, 1.0, 5.0][d.below(3) as usize];
        commission.cap = [None, Some(0.002), Some(0.01)][d.below(3) as usize];
        commission.maker = [None, Some(0.0), Some(0.0005), Some(-0.0002)][d.below(4) as usize];
    }
}

/// `market` with each symbol's bars changed by `change` (in symbol order), and a new
/// extra column `column` after its own when given (which `change` pushes).
fn redrawn(
    market: &Market,
    column: Option<&str>,
    mut change: impl FnMut(&mut crate::market::SymbolBars),
) -> Market {
    let n = market.symbol_count();
    let names = (0..n).map(|s| market.name(s).to_string()).collect();
    let bars = (0..n)
        .map(|s| {
            let mut bars = market.bars(s).clone();
            change(&mut bars);
            bars
        })
        .collect();
    let mut columns = market.columns().to_vec();
    columns.extend(column.map(str::to_string));
    Market::with_columns(names, bars, columns)
        .unwrap()
        .with_call_order(market.call_order().to_vec())
        .unwrap()
}

/// `market` with an extra column "funding" of rates per bar (NaN: none), for most symbols.
fn with_funding(market: &Market, d: &mut Draw) -> Market {
    redrawn(market, Some("funding"), |bars| {
        let rates = d.chance(0.8).then(|| {
            (0..bars.ts.len())
                .map(|_| match d.below(16) {
                    0 => 0.0,
                    1 => 0.0005 + d.unit() * 0.003,
                    2 => -(0.0005 + d.unit() * 0.003),
                    _ => f64::NAN,
                })
                .collect::<Vec<f64>>()
                .into()
        });
        bars.extra.push(rates);
    })
}

/// `market` with an extra column "dividends" after its own, of cash dividends per unit
/// at some bars (NaN: none), for most symbols.
fn with_dividends(market: &Market, d: &mut Draw) -> Market {
    redrawn(market, Some("dividends"), |bars| {
        let dividends = d.chance(0.8).then(|| {
            (0..bars.ts.len())
                .map(|_| match d.below(12) {
                    0 => 0.0,
                    1 => 0.2 + d.unit() * 1.8,
                    _ => f64::NAN,
                })
                .collect::<Vec<f64>>()
                .into()
        });
        bars.extra.push(dividends);
    })
}

/// `market` with volumes drawn per bar: 0 at one bar in ten, else up to 400 units.
fn with_volumes(market: &Market, d: &mut Draw) -> Market {
    redrawn(market, None, |bars| {
        let volume: Vec<f64> = (0..bars.ts.len())
            .map(|_| match d.below(10) {
                0 => 0.0,
                _ => (d.unit() * 400.0).round(),
            })
            .collect();
        bars.volume = volume.into();
    })
}

/// A symbol's own schedule, half the time: a rate and a fixed part, and a broker's
/// schedule now and then.
fn own_schedule(d: &mut Draw) -> Option<Commission> {
    d.chance(0.5).then(|| {
        let mut own = Commission {
            rate: [0.0, 0.002][d.below(2) as usize],
            fixed: [0.0, 0.5][d.below(2) as usize],
            ..Commission::default()
        };
        schedule_now_and_then(d, &mut own);
        own
    })
}

/// Everything a run leaves behind, as exact text (f64's Debug form round-trips).
fn outcome(e: &Engine) -> Vec<String> {
    let p = e.portfolio();
    let positions: Vec<String> = p
        .positions()
        .iter()
        .map(|x| format!("{} {} {:?}", x.size, x.mark, x.lots))
        .collect();
    vec![
        format!("{:?}", e.fills()),
        format!("{:?}", e.orders()),
        format!("{:?}", p.closed),
        format!("{:?}", e.equity_curve()),
        format!("{:?}", spans_of(e)),
        format!("{positions:?}"),
        format!(
            "{} {} {} {} {}",
            e.equity(),
            e.cash(),
            p.gross_exposure(),
            p.carry_paid,
            p.dividends
        ),
    ]
}

/// The run's holding spans, as its trade log works them out when asked.
fn spans_of(e: &Engine) -> Vec<(u32, u64, u64)> {
    e.holding_spans().of(&e.portfolio().closed, e.order_log())
}

/// Each symbol's spans, read from its lots after the run (`Engine::holding_spans`), cover
/// the very ticks the loop counted as ending with a position held, none past the run's.
/// (The sparse driver's are the same: `outcome` compares them.)
fn spans_cover_the_ticks_counted(e: &Engine, seed: u64) {
    let (exposed, ticks) = e.equity_curve().exposure_ticks();
    let mut held = vec![false; ticks as usize];
    for (_, from, to) in spans_of(e) {
        held[from as usize..to as usize].fill(true);
    }
    let covered = held.iter().filter(|&&h| h).count() as u64;
    assert_eq!(
        covered, exposed,
        "seed {seed}: the spans against the ticks counted"
    );
}

fn case_engine(c: &Case) -> Engine {
    engine_of(c, c.config.clone())
}

/// The engine of case `c` under `config` instead of its own.
fn engine_of(c: &Case, config: Config) -> Engine {
    let mut e = Engine::new(c.market.clone(), config).unwrap();
    if let Some(ends) = &c.session_ends {
        e.set_session_ends(ends.clone()).unwrap();
    }
    if let Some(ts) = c.account_opens {
        e.set_account_opens(ts);
    }
    if !c.delisted.is_empty() {
        e.set_delistings(&c.delisted).unwrap();
    }
    e
}

fn case_strategy(c: &Case) -> SignalStrategy<'_> {
    let sig = c
        .signals
        .iter()
        .zip(&c.prices)
        .zip(&c.sizes)
        .zip(&c.lot_size)
        .zip(&c.fractions)
        .zip(&c.time_exits)
        .zip(&c.limits)
        .zip(&c.portions)
        .map(
            |(((((((k, p), z), &lot_size), f), t), l), x)| SymbolSignals {
                entries: k[0].as_deref(),
                exits: k[1].as_deref(),
                short_entries: k[2].as_deref(),
                short_exits: k[3].as_deref(),
                stop_loss: p[0].as_deref(),
                take_profit: p[1].as_deref(),
                size: z.as_deref(),
                lot_size,
                stop_loss_fraction: f[0].as_deref(),
                take_profit_fraction: f[1].as_deref(),
                trail_fraction: f[2].as_deref(),
                exit_after_bars: t.as_deref(),
                limit_price: l[0].as_deref(),
                limit_fraction: l[1].as_deref(),
                exit_portion: x.as_deref(),
            },
        )
        .collect();
    SignalStrategy::new(&c.market, sig, c.rules).unwrap()
}

#[test]
fn the_sparse_driver_gives_the_event_driven_run_bit_for_bit() {
    let (mut fills, mut rejected, mut stops, mut trailed) = (0, 0, 0, 0);
    let (mut sized_per_bar, mut in_lots, mut added, mut timed) = (0, 0, 0, 0);
    let (mut called, mut called_quiet, mut funded, mut paid) = (0, 0, 0, 0);
    let (mut in_part, mut moved, mut multiplied, mut delisted) = (0, 0, 0, 0);
    let (mut unshortable, mut own_slippage, mut own_stops, mut own_timed) = (0, 0, 0, 0);
    let (mut limit_filled, mut limit_cancelled, mut limit_expired, mut portioned) = (0, 0, 0, 0);
    for seed in 0..400 {
        let c = random_case(seed);
        let mut event = case_engine(&c);
        event.run(&mut case_strategy(&c)).unwrap();
        let mut sparse = case_engine(&c);
        run(&mut sparse, &mut case_strategy(&c)).unwrap();
        let (a, b) = (outcome(&event), outcome(&sparse));
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(x == y, "seed {seed}, part {k}:\nevent  {x}\nsparse {y}");
        }
        spans_cover_the_ticks_counted(&event, seed);
        fills += event.fills().len();
        called += event.margin_calls();
        // Cases where an option changed the run (against the same without it).
        let changes = |without: Config| {
            let mut engine = engine_of(&c, without);
            engine.run(&mut case_strategy(&c)).unwrap();
            usize::from(outcome(&engine) != a)
        };
        if c.config.funding.is_some() {
            funded += changes(Config {
                funding: None,
                ..c.config.clone()
            });
        }
        // Sales refused as they would have sold short.
        unshortable += (event.orders().iter())
            .filter(|o| o.reason == crate::orders::Reason::NotShortable)
            .count();
        // Positions closed and orders cancelled as their symbols stopped trading.
        delisted += (event.orders().iter())
            .filter(|o| o.reason == crate::orders::Reason::Delisted)
            .count();
        // Orders filled in part, their rests working on.
        in_part += (event.orders().iter())
            .filter(|o| o.reason == crate::orders::Reason::PartFilledRestWorksOn)
            .count();
        if c.config.volume_impact > 0.0 {
            moved += changes(Config {
                volume_impact: 0.0,
                ..c.config.clone()
            });
        }
        if c.config.dividends.is_some() {
            paid += changes(Config {
                dividends: None,
                ..c.config.clone()
            });
        }
        if !c.config.slippages.is_empty() {
            own_slippage += changes(Config {
                slippages: Vec::new(),
                ..c.config.clone()
            });
        }
        if !c.config.multipliers.is_empty() {
            multiplied += changes(Config {
                multipliers: Vec::new(),
                ..c.config.clone()
            });
        }
        // Positions closed by a call that had no other fill at the call's tick: ones
        // the sparse driver had left alone there (parked, or waiting for a later event).
        let orders = event.orders();
        let calls = orders.iter().filter(|o| {
            o.reason == crate::orders::Reason::MarginCall
                && o.status == crate::orders::Status::Filled
        });
        called_quiet += calls
            .filter(|o| {
                !(event.fills().iter())
                    .any(|f| f.symbol == o.symbol && f.ts == o.closed_ts && f.order_id != o.id)
            })
            .count();
        if c.rules.size.is_none() {
            sized_per_bar += event.fills().len();
        }
        if c.rules.exit_after_bars.is_some() {
            // Cases where the time exit changed the run (against the same without it).
            let mut without = case_engine(&c);
            let mut rules = c.rules;
            rules.exit_after_bars = None;
            let mut strategy = case_strategy(&c);
            strategy.rules = rules;
            without.run(&mut strategy).unwrap();
            timed += usize::from(outcome(&without) != a);
        }
        if c.time_exits.iter().any(Option::is_some) {
            // Cases where symbols' own time exits changed the run (against none of them).
            let mut without = case_engine(&c);
            let none = Case {
                time_exits: vec![None; c.time_exits.len()],
                ..c.clone()
            };
            without.run(&mut case_strategy(&none)).unwrap();
            own_timed += usize::from(outcome(&without) != a);
        }
        if c.rules.exit_portion.is_some() || c.portions.iter().any(Option::is_some) {
            // Cases where exits closing a portion changed the run (against all of it).
            let mut without = case_engine(&c);
            let whole = Case {
                portions: vec![None; c.portions.len()],
                rules: SignalRules {
                    exit_portion: None,
                    ..c.rules
                },
                ..c.clone()
            };
            without.run(&mut case_strategy(&whole)).unwrap();
            portioned += usize::from(outcome(&without) != a);
        }
        if c.rules.accumulate {
            // Entries filled while the position was already on their side.
            let mut held = vec![0.0; c.market.symbol_count()];
            for f in event.fills() {
                if f.role == Role::Entry && held[f.symbol] * f.direction > 0.0 {
                    added += 1;
                }
                held[f.symbol] += f.direction * f.size;
            }
        }
        in_lots += event
            .fills()
            .iter()
            .filter(|f| f.role == Role::Entry && c.lot_size[f.symbol].is_some())
            .count();
        // Limit entries filled, cancelled by a later signal, expired after their bars.
        for o in (event.orders().iter()).filter(|o| o.role == Role::Entry && !o.limit.is_nan()) {
            match (o.status, o.reason) {
                (crate::orders::Status::Filled, _) => limit_filled += 1,
                (_, crate::orders::Reason::CancelledByStrategy) => limit_cancelled += 1,
                (crate::orders::Status::Expired, _) => limit_expired += 1,
                _ => {}
            }
        }
        rejected += event
            .orders()
            .iter()
            .filter(|o| o.status == crate::orders::Status::Rejected)
            .count();
        stops += event
            .fills()
            .iter()
            .filter(|f| matches!(f.role, Role::StopLoss | Role::TakeProfit))
            .count();
        let own_trails = c.fractions.iter().any(|f| f[2].is_some());
        own_stops += (event.fills().iter())
            .filter(|f| matches!(f.role, Role::StopLoss | Role::TakeProfit))
            .filter(|f| c.fractions[f.symbol].iter().any(Option::is_some))
            .count();
        if c.rules.stop_loss_trail.is_some() || own_trails {
            trailed += event
                .fills()
                .iter()
                .filter(|f| f.role == Role::StopLoss)
                .count();
        }
    }
    // The cases reach what they are meant to: fills, margin rejections, stops, entries
    // sized per bar, entries in lots.
    let reached = [
        fills,
        rejected,
        stops,
        trailed,
        sized_per_bar,
        in_lots,
        added,
        timed,
        called as usize,
        called_quiet,
        funded,
        paid,
        in_part,
        moved,
        multiplied,
        delisted,
        unshortable,
        own_slippage,
        own_stops,
        own_timed,
        limit_filled,
        limit_cancelled,
        limit_expired,
        portioned,
    ];
    eprintln!("{reached:?}");
    assert!(
        fills > 2_000
            && rejected > 50
            && stops > 200
            && trailed > 50
            && sized_per_bar > 500
            && in_lots > 300
            && added > 200
            && timed > 40
            && called > 30
            && called_quiet > 30
            && funded > 30
            && paid > 30
            && in_part > 300
            && moved > 30
            && multiplied > 60
            && delisted > 30
            && unshortable > 30
            && limit_filled > 300
            && limit_cancelled > 50
            && limit_expired > 50
            && own_slippage > 30
            && own_stops > 50
            && own_timed > 30
            && portioned > 30,
        "{reached:?}"
    );
}

/// Many symbols entering on the same ticks with percent sizing that spends about all the
/// cash (exactly all of it, a little more or a little less; with and without fees and
/// slippage), longs only: the increases at the edge of the buying power are where the
/// sparse driver may skip reading its parked positions (when the cash surely covers the
/// batch) and must read them otherwise. Every run equals the event-driven one.
#[test]
fn same_tick_entries_at_the_edge_of_the_cash_fill_and_reject_as_event_driven() {
    let (mut fills, mut rejected) = (0, 0);
    for seed in 0..120u64 {
        let mut d = Draw(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
        let n = 2 + d.below(7) as usize;
        let ticks = 60 + d.below(200) as usize;
        let mut names = Vec::new();
        let mut bars = Vec::new();
        let mut signals = Vec::new();
        for s in 0..n {
            let mut close = 20.0 + d.unit() * 80.0;
            let (mut o, mut h, mut l, mut c) = (vec![], vec![], vec![], vec![]);
            for _ in 0..ticks {
                // Gaps at the open now and then: held positions are worth another amount
                // at the open than at the close before.
                let gap = if d.chance(0.2) { 0.4 } else { 0.04 };
                let open = close * (1.0 + (d.unit() - 0.5) * gap);
                close = open * (1.0 + (d.unit() - 0.5) * 0.04);
                o.push(open);
                h.push(open.max(close) * 1.01);
                l.push(open.min(close) * 0.99);
                c.push(close);
            }
            // Entries on common ticks (every symbol at once), exits here and there.
            let every = 3 + (seed % 5) as usize;
            let entries: Vec<bool> = (0..ticks).map(|i| i % every == 0).collect();
            let exits: Vec<bool> = (0..ticks).map(|_| d.chance(0.2)).collect();
            signals.push([Some(entries), Some(exits), None, None]);
            names.push(format!("S{s}"));
            let ts = (0..ticks as i64).map(|k| k * 60_000_000_000).collect();
            bars.push(SymbolBars::from_vecs(ts, o, h, l, c, vec![1.0; ticks]));
        }
        let market = Market::new(names, bars).unwrap();
        // All symbols' entries together cost about all the buying power: a little under,
        // exactly or a little over (beyond the cash with leverage above 1).
        let leverage = [1.0, 1.0, 1.5, 2.0][d.below(4) as usize];
        let edge = leverage * [0.9, 0.999, 1.0, 1.001, 1.2][d.below(5) as usize];
        let rules = SignalRules {
            size: Some(edge / n as f64),
            size_type: SizeType::Percent,
            stop_loss: d.chance(0.3).then_some(0.05),
            take_profit: d.chance(0.3).then_some(0.05),
            stop_loss_trail: None,
            trade_start: i64::MIN,
            accumulate: false,
            exit_after_bars: None,
            limit: None,
            limit_bars: None,
            conflicts: Conflicts::default(),
            exit_portion: None,
        };
        let config = Config {
            commission: Commission {
                rate: [0.0, 0.001][d.below(2) as usize],
                fixed: [0.0, 0.5][d.below(2) as usize],
                ..Commission::default()
            },
            slippage_bps: [0.0, 3.0][d.below(2) as usize],
            leverage,
            record_every_bar: d.chance(0.5),
            ..Config::default()
        };
        let mut config = config;
        schedule_now_and_then(&mut d, &mut config.commission);
        if d.chance(0.3) {
            config.by_symbol = (0..n).map(|_| own_schedule(&mut d)).collect();
        }
        let case = Case {
            market: Arc::new(market),
            signals,
            prices: vec![[None, None]; n],
            sizes: vec![None; n],
            fractions: vec![[None, None, None]; n],
            time_exits: vec![None; n],
            limits: vec![[None, None]; n],
            lot_size: vec![None; n],
            portions: vec![None; n],
            rules,
            config,
            session_ends: None,
            account_opens: None,
            delisted: Vec::new(),
        };
        let mut event = case_engine(&case);
        event.run(&mut case_strategy(&case)).unwrap();
        let mut sparse = case_engine(&case);
        run(&mut sparse, &mut case_strategy(&case)).unwrap();
        let (a, b) = (outcome(&event), outcome(&sparse));
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(x == y, "seed {seed}, part {k}:\nevent  {x}\nsparse {y}");
        }
        spans_cover_the_ticks_counted(&event, seed);
        fills += event.fills().len();
        rejected += event
            .orders()
            .iter()
            .filter(|o| o.status == crate::orders::Status::Rejected)
            .count();
    }
    assert!(fills > 5_000 && rejected > 500, "{fills} {rejected}");
}

#[test]
fn signal_bars_find_each_next_signal_and_its_signals_and_count_entries_and_exits() {
    // Random columns (some not given) of lengths around the 64-bar blocks, against the
    // plain scan: each bar with a signal in order, what is set on it, the counts, and the
    // next one from any bar. Every other round has sizes per bar, some not above 0 (an
    // entry there is not set at all).
    let mut d = Draw(0x5EED);
    for len in [1usize, 7, 63, 64, 65, 127, 128, 130, 1_000] {
        for round in 0..8 {
            let column = |d: &mut Draw, p: f64| (0..len).map(|_| d.chance(p)).collect::<Vec<_>>();
            let p = [0.05, 0.5, 0.01, 0.9][round % 4];
            let cols = [
                column(&mut d, p),
                column(&mut d, p / 2.0),
                column(&mut d, p / 3.0),
                column(&mut d, p),
            ];
            let given: Vec<bool> = (0..4).map(|k| round < 4 || k != round % 4).collect();
            let pick = |k: usize| given[k].then(|| &cols[k][..]);
            let sizes: Vec<f64> = (0..len)
                .map(|_| [1.0, 0.0, f64::NAN, -2.0, 3.5][d.below(5) as usize])
                .collect();
            let sized = round % 2 == 1;
            // An entry and an exit of one side on one bar: read as each round says.
            let same_side = [SameSide::Exit, SameSide::Entry, SameSide::Ignore][round % 3];
            let sig = SymbolSignals {
                entries: pick(0),
                exits: pick(1),
                short_entries: pick(2),
                short_exits: pick(3),
                size: sized.then_some(&sizes[..]),
                ..Default::default()
            };
            let bars = SignalBars::new(&sig, len, same_side);
            let entry = |k: usize| k.is_multiple_of(2);
            let raw = |k: usize, i: usize| {
                let above_zero = sizes[i] > 0.0;
                given[k] && cols[k][i] && !(sized && entry(k) && !above_zero)
            };
            let set = |k: usize, i: usize| match (raw(k & !1, i) && raw(k | 1, i), same_side) {
                (false, _) => raw(k, i),
                (true, SameSide::Exit) => !entry(k),
                (true, SameSide::Entry) => entry(k),
                (true, SameSide::Ignore) => false,
            };
            let count = |k: usize| (0..len).filter(|&i| set(k, i)).count();
            assert_eq!(bars.entries, count(0) + count(2));
            assert_eq!(bars.exits, count(1) + count(3));
            let plain: Vec<(usize, u64)> = (0..len)
                .map(|i| (i, (0..4).fold(0, |m, k| m | u64::from(set(k, i)) << k)))
                .filter(|&(_, m)| m != 0)
                .collect();
            let got: Vec<(usize, u64)> = bars
                .marks
                .iter()
                .map(|&m| ((m >> KIND_BITS) as usize, m & 15))
                .collect();
            assert_eq!(got, plain, "len {len}, round {round}");
            for from in 0..=len + 1 {
                let naive = plain
                    .iter()
                    .position(|&(i, _)| i >= from)
                    .unwrap_or(plain.len());
                assert_eq!(bars.next_from(0, from), naive, "len {len}, from {from}");
                let mut due = Due::new(&sig, len, same_side);
                due.advance(from);
                let (bar, kinds) = plain.get(naive).copied().unwrap_or((usize::MAX, 0));
                assert_eq!((due.bar, due.kinds), (bar, kinds), "len {len}, from {from}");
            }
        }
    }
}

#[test]
fn a_time_exit_of_zero_bars_is_refused() {
    let m = market(&[100.0, 110.0, 120.0]);
    let entries = [true, false, false];
    let sig = SymbolSignals {
        entries: Some(&entries),
        ..Default::default()
    };
    let r = SignalRules {
        exit_after_bars: Some(0),
        ..rules(1.0, SizeType::Amount)
    };
    let err = refusal(&m, vec![sig], r);
    assert!(
        err.contains("exit_after_bars = 0: must be a whole number of bars >= 1"),
        "{err}"
    );
}

#[test]
fn one_value_for_all_a_symbols_bars_is_that_value_on_each_bar() {
    // A symbol's own sizes, stop fractions, time exits and limits given as one value (a
    // number per symbol, as Python hands it over) run as a column of that value on every
    // bar.
    let mut changed = 0;
    for seed in 0..300 {
        let c = random_case(seed);
        let first = |v: &Option<Vec<f64>>| {
            v.as_ref()
                .and_then(|v| v.iter().copied().find(|x| !x.is_nan()))
        };
        let (mut one, mut whole) = (c.clone(), c.clone());
        for s in 0..c.market.symbol_count() {
            let bars = c.market.bars(s).len();
            let set = |columns: [&mut Option<Vec<f64>>; 2], value: Option<f64>| {
                let [one, whole] = columns;
                *one = value.map(|x| vec![x]);
                *whole = value.map(|x| vec![x; bars]);
            };
            for k in 0..3 {
                let value = first(&c.fractions[s][k]);
                set(
                    [&mut one.fractions[s][k], &mut whole.fractions[s][k]],
                    value,
                );
            }
            let value = first(&c.time_exits[s]);
            set([&mut one.time_exits[s], &mut whole.time_exits[s]], value);
            let value = first(&c.sizes[s]);
            set([&mut one.sizes[s], &mut whole.sizes[s]], value);
            let value = first(&c.limits[s][1]);
            set([&mut one.limits[s][1], &mut whole.limits[s][1]], value);
        }
        let runs = [&one, &whole].map(|c| {
            let mut e = case_engine(c);
            run(&mut e, &mut case_strategy(c)).unwrap();
            outcome(&e)
        });
        assert!(runs[0] == runs[1], "seed {seed}");
        let mut per_bar = case_engine(&c);
        run(&mut per_bar, &mut case_strategy(&c)).unwrap();
        changed += usize::from(outcome(&per_bar) != runs[0]);
    }
    // (The cases with columns of their own: many differ from their first value alone.)
    assert!(changed > 30, "{changed}");
}

#[test]
fn an_exit_signal_closes_its_portion_of_the_position() {
    // Every price 100 (lows 99, highs 101); 8 units an entry, filled at the next open.
    let m = market(&[100.0; 10]);
    let on = |bars: &[usize]| (0..10).map(|i| bars.contains(&i)).collect::<Vec<bool>>();
    let run = |sig: SymbolSignals<'_>, r: SignalRules| {
        let [event, sparse] = both_runs(&m, sig, r).map(|e| {
            let f = e.fills().into_iter().map(|f| (f.ts, f.direction * f.size));
            let closed = e
                .portfolio()
                .closed
                .iter()
                .map(|t| (t.entry_ts, t.exit_ts, t.size));
            (
                f.collect::<Vec<_>>(),
                closed.collect::<Vec<_>>(),
                e.portfolio().position(0).size,
            )
        });
        assert_eq!(event, sparse);
        event
    };
    let with = |portion: Option<f64>| SignalRules {
        exit_portion: portion,
        ..rules(8.0, SizeType::Amount)
    };
    // Long from bar 0; exits on bars 2, 4 and 6 close half of what is left each time.
    let (entries, exits) = (on(&[0]), on(&[2, 4, 6]));
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        ..Default::default()
    };
    let (fills, closed, held) = run(sig, with(Some(0.5)));
    assert_eq!(fills, vec![(1, 8.0), (3, -4.0), (5, -2.0), (7, -1.0)]);
    assert_eq!(closed, vec![(1, 3, 4.0), (1, 5, 2.0), (1, 7, 1.0)]);
    assert_eq!(held, 1.0);
    // The whole position, as before, with none given or 1.
    let all = run(sig, with(Some(1.0)));
    assert_eq!(all, run(sig, with(None)));
    assert_eq!(all.0, vec![(1, 8.0), (3, -8.0)]);

    // The symbol's own portions per bar (NaN: all of it): a quarter on bar 2, then all.
    let portions = [f64::NAN, 0.9, 0.25, 0.9, f64::NAN, 0.9, 0.9, 0.9, 0.9, 0.9];
    let own = SymbolSignals {
        exit_portion: Some(&portions),
        ..sig
    };
    let (fills, _, held) = run(own, with(None));
    assert_eq!(fills, vec![(1, 8.0), (3, -2.0), (5, -6.0)]);
    assert_eq!(held, 0.0);

    // Pyramiding: 8 units on bars 0 and 1, three quarters closed on bar 3, the oldest
    // trade first: all of the first, half of the second.
    let (entries, exits) = (on(&[0, 1]), on(&[3]));
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        ..Default::default()
    };
    let adding = SignalRules {
        accumulate: true,
        ..with(Some(0.75))
    };
    let (fills, closed, held) = run(sig, adding);
    assert_eq!(fills, vec![(1, 8.0), (2, 8.0), (4, -12.0)]);
    assert_eq!(closed, vec![(1, 4, 8.0), (2, 4, 4.0)]);
    assert_eq!(held, 4.0);

    // A time exit closes all that is left: filled at bar 1, due 3 bars on (bar 4); bar 2's
    // exit closes half before.
    let (entries, exits) = (on(&[0]), on(&[2]));
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        ..Default::default()
    };
    let timed = SignalRules {
        exit_after_bars: Some(3),
        ..with(Some(0.5))
    };
    assert_eq!(run(sig, timed).0, vec![(1, 8.0), (3, -4.0), (5, -4.0)]);
    // So does a time exit on the exit's own bar (filled at bar 1, due on bar 2).
    let timed = SignalRules {
        exit_after_bars: Some(1),
        ..with(Some(0.5))
    };
    assert_eq!(run(sig, timed).0, vec![(1, 8.0), (3, -8.0)]);

    // An exit and a short entry on bar 2: the entry against the position reverses it or
    // closes it, all of it; ignored, the exit closes its half.
    let shorts = on(&[2]);
    let both = SymbolSignals {
        short_entries: Some(&shorts),
        ..sig
    };
    let reading = |opposite: &str| SignalRules {
        conflicts: Conflicts::parse(None, None, Some(opposite)).unwrap(),
        ..with(Some(0.5))
    };
    let reverse = run(both, reading("reverse"));
    assert_eq!(reverse.0, vec![(1, 8.0), (3, -8.0), (3, -8.0)]);
    assert_eq!(run(both, reading("close")).0, vec![(1, 8.0), (3, -8.0)]);
    assert_eq!(run(both, reading("ignore")).0, vec![(1, 8.0), (3, -4.0)]);

    // A short's exit buys back its portion; with `TargetPercent`, too (then flat is the
    // target only of an entry).
    let short_exits = on(&[2]);
    let short = SymbolSignals {
        short_entries: Some(&entries),
        short_exits: Some(&short_exits),
        ..Default::default()
    };
    assert_eq!(run(short, with(Some(0.25))).0, vec![(1, -8.0), (3, 2.0)]);
    let target = SignalRules {
        exit_portion: Some(0.25),
        ..rules(0.08, SizeType::TargetPercent)
    };
    // 8% of 10 000 at 100: 8 units short.
    assert_eq!(run(short, target).0, vec![(1, -8.0), (3, 2.0)]);
}

#[test]
fn exit_portions_out_of_range_or_with_lot_sizes_are_refused() {
    let m = market(&[100.0, 110.0, 120.0]);
    let (entries, exits) = ([true, false, false], [false, true, true]);
    let sig = SymbolSignals {
        entries: Some(&entries),
        exits: Some(&exits),
        ..Default::default()
    };
    let with = |portion| SignalRules {
        exit_portion: Some(portion),
        ..rules(1.0, SizeType::Amount)
    };
    for x in [0.0, -0.5, 1.5, f64::NAN] {
        let err = refusal(&m, vec![sig], with(x));
        assert!(
            err.contains(&format!(
                "exit_portion = {x}: must be a portion of the position in (0, 1]"
            )),
            "{err}"
        );
    }
    let portions = [0.5, f64::NAN, 2.0];
    let own = SymbolSignals {
        exit_portion: Some(&portions),
        ..sig
    };
    let err = refusal(&m, vec![own], rules(1.0, SizeType::Amount));
    assert!(
        err.contains("exit_portion of X on the bar at ")
            && err.contains("(its bar 2) = 2: must be a portion of the position in (0, 1] (0.5: half of it, 1: all); NaN on a bar: all of it"),
        "{err}"
    );
    let lots = SymbolSignals {
        lot_size: Some(10.0),
        ..sig
    };
    let err = refusal(&m, vec![lots], with(0.5));
    assert!(
        err.contains("exit_portion of X with lot_size = 10: a portion of the position below 1"),
        "{err}"
    );
    // All of it goes with lots.
    assert!(SignalStrategy::new(&m, vec![lots], with(1.0)).is_ok());
}
