//! Hand-computed scenarios for the tick loop and the fill rules.

use std::sync::Arc;

use crate::config::{Commission, Config, FillAt, MarginParts};
use crate::context::TickContext;
use crate::engine::Engine;
use crate::error::Result;
use crate::market::{Market, SymbolBars};
use crate::orders::{OrderRequest, Role, Side, Status};
use crate::strategy::Strategy;

/// A strategy made of a closure called on every bar with (engine, symbol, bar index).
struct Script<F: FnMut(&mut TickContext, usize, usize)>(F);

impl<F: FnMut(&mut TickContext, usize, usize)> Strategy for Script<F> {
    fn on_bar(&mut self, e: &mut TickContext, s: usize) -> Result<()> {
        let i = e.bar_index(s).unwrap();
        (self.0)(e, s, i);
        Ok(())
    }
}

/// Bars from (open, high, low, close) rows at timestamps 0, 1, 2, ...
fn bars(rows: &[(f64, f64, f64, f64)]) -> SymbolBars {
    SymbolBars::from_vecs(
        (0..rows.len() as i64).collect(),
        rows.iter().map(|r| r.0).collect(),
        rows.iter().map(|r| r.1).collect(),
        rows.iter().map(|r| r.2).collect(),
        rows.iter().map(|r| r.3).collect(),
        vec![1.0; rows.len()],
    )
}

fn engine(rows: &[(f64, f64, f64, f64)], config: Config) -> Engine {
    let m = Market::new(vec!["X".into()], vec![bars(rows)]).unwrap();
    Engine::new(Arc::new(m), config).unwrap()
}

const FLAT: (f64, f64, f64, f64) = (100.0, 101.0, 99.0, 100.0);

#[test]
fn market_order_fills_at_next_open_never_at_decision_bar() {
    let rows = [FLAT, (102.0, 103.0, 101.0, 102.5), FLAT];
    let mut e = engine(&rows, Config::default());
    e.run(&mut Script(|e: &mut TickContext, s, i| {
        if i == 0 {
            e.submit(OrderRequest::market(s, Side::Buy, 10.0)).unwrap();
        }
    }))
    .unwrap();
    let f = e.fills()[0];
    assert_eq!((f.ts, f.price, f.size), (1, 102.0, 10.0));
    // Marked at the last close: 10 000 - 1 020 + 10 × 100.
    assert_eq!(e.equity(), 9_980.0);
}

#[test]
fn fill_at_close_uses_the_decision_bar_close() {
    let rows = [(100.0, 101.0, 99.0, 100.5), FLAT];
    let mut e = engine(
        &rows,
        Config {
            fill_at: FillAt::Close,
            ..Config::default()
        },
    );
    e.run(&mut Script(|e: &mut TickContext, s, i| {
        if i == 0 {
            e.submit(OrderRequest::market(s, Side::Buy, 1.0)).unwrap();
        }
    }))
    .unwrap();
    assert_eq!((e.fills()[0].ts, e.fills()[0].price), (0, 100.5));
}

#[test]
fn stop_loss_gapped_through_fills_at_the_open_and_cancels_take_profit() {
    let rows = [FLAT, FLAT, (90.0, 92.0, 89.0, 91.0)];
    let mut e = engine(&rows, Config::default());
    e.run(&mut Script(|e: &mut TickContext, s, i| {
        if i == 0 {
            let mut r = OrderRequest::market(s, Side::Buy, 10.0);
            r.stop_loss = Some(95.0);
            r.take_profit = Some(110.0);
            e.submit(r).unwrap();
        }
    }))
    .unwrap();
    let exit = e.fills()[1];
    assert_eq!((exit.ts, exit.price, exit.role), (2, 90.0, Role::StopLoss));
    let tp = e
        .orders()
        .into_iter()
        .find(|o| o.role == Role::TakeProfit)
        .unwrap();
    assert_eq!(tp.status, Status::Cancelled);
    let t = &e.portfolio().closed[0];
    assert_eq!(t.pnl, -100.0);
    assert_eq!(t.bars_held, 1);
}

#[test]
fn stop_loss_wins_when_both_legs_lie_inside_one_bar() {
    let rows = [FLAT, FLAT, (100.0, 112.0, 94.0, 100.0)];
    let mut e = engine(&rows, Config::default());
    e.run(&mut Script(|e: &mut TickContext, s, i| {
        if i == 0 {
            let mut r = OrderRequest::market(s, Side::Buy, 1.0);
            r.stop_loss = Some(95.0);
            r.take_profit = Some(110.0);
            e.submit(r).unwrap();
        }
    }))
    .unwrap();
    assert_eq!(e.fills().len(), 2);
    assert_eq!(
        (e.fills()[1].price, e.fills()[1].role),
        (95.0, Role::StopLoss)
    );
}

#[test]
fn symbol_without_a_bar_is_not_called_and_does_not_fill() {
    let a = SymbolBars {
        ts: vec![0, 1, 2].into(),
        ..bars(&[FLAT, FLAT, FLAT])
    };
    let b = SymbolBars {
        ts: vec![0, 2].into(),
        ..bars(&[FLAT, (105.0, 106.0, 104.0, 105.0)])
    };
    let m = Market::new(vec!["A".into(), "B".into()], vec![a, b]).unwrap();
    let mut e = Engine::new(Arc::new(m), Config::default()).unwrap();
    let mut calls = Vec::new();
    e.run(&mut Script(|e: &mut TickContext, s, _| {
        calls.push((e.now(), s));
        if s == 1 && e.now() == 0 {
            e.submit(OrderRequest::market(1, Side::Buy, 1.0)).unwrap();
        }
    }))
    .unwrap();
    assert_eq!(calls, vec![(0, 0), (0, 1), (1, 0), (2, 0), (2, 1)]);
    assert_eq!((e.fills()[0].ts, e.fills()[0].price), (2, 105.0));
}

/// The tick's bar calls: one per symbol with a bar, in the market's call order, each with
/// the context's current symbol at it.
#[test]
fn each_bar_call_runs_in_the_call_order_with_its_symbol_current() {
    let a = SymbolBars {
        ts: vec![0, 1, 2].into(),
        ..bars(&[FLAT, FLAT, FLAT])
    };
    let b = SymbolBars {
        ts: vec![0, 2].into(),
        ..bars(&[FLAT, FLAT])
    };
    let m = Market::new(vec!["A".into(), "B".into()], vec![a, b])
        .unwrap()
        .with_call_order(vec![1, 0])
        .unwrap();
    let mut e = Engine::new(Arc::new(m), Config::default()).unwrap();
    let mut calls = Vec::new();
    e.run(&mut Script(|e: &mut TickContext, s, _| {
        calls.push((e.now(), s, e.current_symbol(), e.active_symbols().to_vec()));
    }))
    .unwrap();
    let both = vec![1, 0];
    assert_eq!(
        calls,
        vec![
            (0, 1, Some(1), both.clone()),
            (0, 0, Some(0), both.clone()),
            (1, 0, Some(0), vec![0]),
            (2, 1, Some(1), both.clone()),
            (2, 0, Some(0), both),
        ]
    );
}

#[test]
fn orders_beyond_margin_are_rejected_not_filled() {
    let mut e = engine(
        &[FLAT, FLAT],
        Config {
            cash: 1_000.0,
            ..Config::default()
        },
    );
    e.run(&mut Script(|e: &mut TickContext, s, i| {
        if i == 0 {
            e.submit(OrderRequest::market(s, Side::Buy, 11.0)).unwrap();
        }
    }))
    .unwrap();
    assert!(e.fills().is_empty());
    assert_eq!(e.orders()[0].status, Status::Rejected);
    assert_eq!(e.equity(), 1_000.0);
}

#[test]
fn commission_and_slippage_arithmetic() {
    let rows = [FLAT, FLAT, (120.0, 121.0, 119.0, 120.0)];
    let cfg = Config {
        commission: Commission {
            rate: 0.001,
            fixed: 1.0,
            ..Commission::default()
        },
        slippage_bps: 10.0,
        ..Config::default()
    };
    let mut e = engine(&rows, cfg);
    e.run(&mut Script(|e: &mut TickContext, s, i| match i {
        0 => {
            e.submit(OrderRequest::market(s, Side::Buy, 10.0)).unwrap();
        }
        1 => {
            e.close_position(s).unwrap();
        }
        _ => {}
    }))
    .unwrap();
    // Buy 10 at 100 × 1.001 = 100.1, commission 1.001 + 1; sell at 120 × 0.999 = 119.88,
    // commission 1.1988 + 1. P&L = (119.88 - 100.1) × 10 - 4.1998 = 193.6002.
    let t = &e.portfolio().closed[0];
    assert!((t.entry_price - 100.1).abs() < 1e-9);
    assert!((t.exit_price - 119.88).abs() < 1e-9);
    assert!((t.pnl - 193.6002).abs() < 1e-9, "{}", t.pnl);
    assert!((e.equity() - 10_193.600_2).abs() < 1e-9);
}

#[test]
fn stop_loss_born_intrabar_is_matched_before_later_limits() {
    // Buy limit 98 with sl 95 fills intrabar; a separate sell limit 102 is also in range.
    // Stops go before limits after the open, so the new stop-loss (low 94) fills first.
    let rows = [FLAT, (100.0, 103.0, 94.0, 100.0), FLAT];
    let mut e = engine(&rows, Config::default());
    e.run(&mut Script(|e: &mut TickContext, s, i| {
        if i == 0 {
            let mut entry = OrderRequest::market(s, Side::Buy, 10.0);
            entry.limit = Some(98.0);
            entry.stop_loss = Some(95.0);
            e.submit(entry).unwrap();
            let mut exit = OrderRequest::market(s, Side::Sell, 10.0);
            exit.limit = Some(102.0);
            e.submit(exit).unwrap();
        }
    }))
    .unwrap();
    let t = &e.portfolio().closed[0];
    assert_eq!((t.entry_price, t.exit_price), (98.0, 95.0));
    assert_eq!(t.pnl, -30.0);
}

#[test]
fn the_range_check_of_an_open_is_the_one_money_conversion_makes() {
    use crate::portfolio::{Money, MONEY_LIMIT};
    let limit = MONEY_LIMIT;
    let mut amounts = vec![
        0.0,
        -0.0,
        1e-300,
        1.0,
        123.456,
        2f64.powi(62),
        2f64.powi(62) * 1.5,
        limit,
        limit * (1.0 - f64::EPSILON),
        limit * (1.0 + f64::EPSILON),
        limit * 2.0,
        f64::MAX,
        f64::INFINITY,
        f64::NAN,
        f64::MIN_POSITIVE,
    ];
    // Every binary exponent around the limit, just below, at and just above each power.
    for e in 50..80 {
        let p = 2f64.powi(e);
        amounts.extend([
            p,
            p * (1.0 - f64::EPSILON),
            p * (1.0 + f64::EPSILON),
            p * 1.75,
        ]);
    }
    for x in amounts {
        for x in [x, -x] {
            assert_eq!(Money::in_range(x), Money::from_f64(x).is_some(), "{x:e}");
        }
    }
}

/// The equity curve has room for every sample of the run before it starts (one per tick
/// with `record_every_bar`, else one per day end): its columns are allocated once, never
/// regrown (amortised growth would leave them at a power of two).
#[test]
fn the_equity_curve_is_allocated_once_for_its_samples() {
    const HOUR: i64 = 3_600 * 1_000_000_000;
    let ticks = 10 * 24;
    let ts: Vec<i64> = (0..ticks).map(|k| k * HOUR).collect();
    let n = ts.len();
    let bars = SymbolBars::from_vecs(
        ts,
        vec![100.0; n],
        vec![101.0; n],
        vec![99.0; n],
        vec![100.0; n],
        vec![1.0; n],
    );
    let market = Arc::new(Market::new(vec!["X".into()], vec![bars]).unwrap());
    for (every_bar, samples) in [(false, 10), (true, ticks as usize)] {
        let config = Config {
            record_every_bar: every_bar,
            ..Config::default()
        };
        let mut e = Engine::new(Arc::clone(&market), config).unwrap();
        e.run(&mut crate::strategy::NoOp).unwrap();
        let curve = e.equity_curve();
        assert_eq!(curve.ts.len(), samples);
        for capacity in [
            curve.ts.capacity(),
            curve.equity.capacity(),
            curve.cash.capacity(),
            curve.gross_exposure.capacity(),
        ] {
            assert_eq!(capacity, samples, "record_every_bar={every_bar}");
        }
    }
}

/// A funding column the market lacks, or an infinite rate in it, is refused by name
/// (the data's door refuses the rate first; a market built in Rust meets this rule).
#[test]
fn a_funding_column_is_checked_when_the_engine_is_made() {
    let rows = [(100.0, 100.0, 100.0, 100.0); 3];
    let mut b = bars(&rows);
    b.extra = vec![Some(vec![0.0, f64::INFINITY, f64::NAN].into())];
    let m = Market::with_columns(vec!["X".into()], vec![b], vec!["funding".into()]).unwrap();
    let m = Arc::new(m);
    let config = |column| Config {
        funding: Some(column),
        ..Config::default()
    };
    let bad = Engine::new(m.clone(), config(0)).err().unwrap().to_string();
    assert!(
        bad.contains("symbol 'X': funding rate inf in column 'funding' at 1970-01-01"),
        "{bad}"
    );
    let missing = Engine::new(m, config(1)).err().unwrap().to_string();
    assert!(
        missing.contains("funding_column: the market has no extra column 1"),
        "{missing}"
    );
}

/// A dividend below zero (or infinite) is refused by name; NaN and 0 are no dividend.
#[test]
fn a_dividend_column_is_checked_when_the_engine_is_made() {
    let rows = [(100.0, 100.0, 100.0, 100.0); 3];
    let column = |values: Vec<f64>| {
        let mut b = bars(&rows);
        b.extra = vec![Some(values.into())];
        let m = Market::with_columns(vec!["X".into()], vec![b], vec!["dividend".into()]);
        Arc::new(m.unwrap())
    };
    let config = Config {
        dividends: Some(0),
        ..Config::default()
    };
    let negative = column(vec![0.0, f64::NAN, -0.5]);
    let bad = Engine::new(negative, config.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(
        bad.contains("symbol 'X': dividend -0.5 in column 'dividend' at 1970-01-01"),
        "{bad}"
    );
    assert!(
        bad.contains("must be a finite number, 0 or above (NaN: none at that bar)"),
        "{bad}"
    );
    assert!(Engine::new(column(vec![0.0, f64::NAN, 0.5]), config).is_ok());
}

/// A futures contract at its own margin beside a stock at the account's: the margin
/// required is Σ worth / leverage, each position at its own terms, and a margin call
/// comes when equity falls below Σ maintenance × worth.
#[test]
fn symbols_own_margin_terms_sum_into_the_accounts_margin() {
    let flat = |p: f64| (p, p + 1.0, p - 1.0, p);
    let stock = bars(&[flat(100.0); 5]);
    let future = bars(&[flat(100.0), flat(100.0), flat(85.0), flat(84.0), flat(84.0)]);
    let m = Market::new(vec!["A".into(), "F".into()], vec![stock, future]).unwrap();
    let mut e = Engine::new(Arc::new(m), Config::default()).unwrap();
    let terms = MarginParts {
        leverage: Some(10.0),
        maintenance: Some(0.05),
        ..MarginParts::default()
    };
    e.set_symbol_margin(1, terms).unwrap();
    e.run(&mut Script(|e: &mut TickContext, s, i| {
        if i == 0 && s == 1 {
            // 500 F at 100 require 5,000 of the 10,000; then 60 A would take 6,000 more
            // (11,000 > 10,000: rejected), 40 A take 4,000 (9,000: filled).
            e.submit(OrderRequest::market(1, Side::Buy, 500.0)).unwrap();
            e.submit(OrderRequest::market(0, Side::Buy, 60.0)).unwrap();
            e.submit(OrderRequest::market(0, Side::Buy, 40.0)).unwrap();
        }
    }))
    .unwrap();
    let statuses: Vec<Status> = e.orders().iter().map(|o| o.status).collect();
    assert_eq!(
        &statuses[..3],
        &[Status::Filled, Status::Rejected, Status::Filled]
    );
    // At 85, equity 10,000 - 500 × 15 = 2,500 against 0.05 × 42,500 = 2,125 required
    // (A's maintenance the account's 0): kept. At 84, 2,000 against 2,100: called, both
    // positions closed at their closes.
    assert_eq!(e.margin_calls(), 1);
    let closes: Vec<(i64, usize, f64, f64)> = (e.fills().iter())
        .filter(|f| f.direction < 0.0)
        .map(|f| (f.ts, f.symbol, f.size, f.price))
        .collect();
    assert_eq!(closes, vec![(3, 0, 40.0, 100.0), (3, 1, 500.0, 84.0)]);
    assert_eq!(e.equity(), 10_000.0 - 500.0 * 16.0);
}

#[test]
fn a_symbols_margin_terms_are_checked_naming_it() {
    let m = Market::new(vec!["ES".into()], vec![bars(&[FLAT])]).unwrap();
    let mut e = Engine::new(Arc::new(m), Config::default()).unwrap();
    let message = e
        .set_symbol_margin(0, fractions(Some(0.0), None))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("margin_by_symbol['ES']: leverage = 0: must be finite and > 0"),
        "{message}"
    );
    let message = e
        .set_symbol_margin(0, fractions(Some(2.0), Some(1.0)))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("margin_by_symbol['ES']: maintenance_margin = 1"),
        "{message}"
    );
    let refused = |parts: MarginParts| {
        let mut e = Engine::new(e.market().clone(), Config::default()).unwrap();
        e.set_symbol_margin(0, parts).unwrap_err().to_string()
    };
    let both = MarginParts {
        leverage: Some(2.0),
        ..per_unit(Some(1_000.0), Some(900.0))
    };
    assert!(refused(both).contains("margin_by_symbol['ES']: margin per unit"));
    assert!(
        refused(per_unit(Some(1_000.0), None)).contains("maintenance_margin_per_unit is missing")
    );
    assert!(refused(per_unit(None, Some(900.0))).contains("initial_margin_per_unit is missing"));
    let message = refused(per_unit(Some(1_000.0), Some(1_100.0)));
    assert!(
        message.contains("maintenance_margin_per_unit = 1100: must be an amount of money"),
        "{message}"
    );
    assert!(refused(per_unit(Some(0.0), Some(0.0))).contains("initial_margin_per_unit = 0"));
}

fn fractions(leverage: Option<f64>, maintenance: Option<f64>) -> MarginParts {
    MarginParts {
        leverage,
        maintenance,
        ..MarginParts::default()
    }
}

fn per_unit(initial: Option<f64>, maintenance: Option<f64>) -> MarginParts {
    MarginParts {
        initial_per_unit: initial,
        maintenance_per_unit: maintenance,
        ..MarginParts::default()
    }
}

/// A contract at an exchange's margin per unit, whatever its price: 10 contracts of 50 a
/// point at 4,000 (worth 2,000,000) require 10 × 12,000 to open and 10 × 11,000 to keep.
#[test]
fn a_margin_per_unit_holds_each_contract_at_its_money() {
    let flat = |p: f64| (p, p + 1.0, p - 1.0, p);
    let prices = [4_000.0, 4_000.0, 3_970.0, 3_955.0, 3_955.0];
    let future = bars(&prices.map(flat));
    let m = Market::new(vec!["ES".into()], vec![future]).unwrap();
    let config = Config {
        cash: 130_000.0,
        ..Config::default()
    };
    let mut e = Engine::new(Arc::new(m), config).unwrap();
    e.set_multiplier(0, 50.0).unwrap();
    e.set_symbol_margin(0, per_unit(Some(12_000.0), Some(11_000.0)))
        .unwrap();
    e.run(&mut Script(|e: &mut TickContext, _, i| {
        if i == 0 {
            // 11 contracts would require 132,000 of the 130,000: rejected; 10 take 120,000.
            e.submit(OrderRequest::market(0, Side::Buy, 11.0)).unwrap();
            e.submit(OrderRequest::market(0, Side::Buy, 10.0)).unwrap();
        }
        if i == 1 {
            // 120,000 held, 10,000 free: 10,000 / 12,000 of a contract worth 200,000.
            let expected = 10_000.0 / 12_000.0 * 200_000.0;
            assert!(
                (e.buying_power(0) - expected).abs() < 1e-6,
                "{}",
                e.buying_power(0)
            );
            assert_eq!(e.margin_used(), 120_000.0);
        }
    }))
    .unwrap();
    let statuses: Vec<Status> = e.orders().iter().map(|o| o.status).collect();
    assert_eq!(&statuses[..2], &[Status::Rejected, Status::Filled]);
    // At 3,970 equity is 130,000 - 10 × 30 × 50 = 115,000 against 10 × 11,000 = 110,000
    // (whatever the contracts are worth): kept. At 3,955, 107,500: called at that close.
    assert_eq!(e.margin_calls(), 1);
    let sold: Vec<(i64, f64, f64)> = (e.fills().iter())
        .filter(|f| f.direction < 0.0)
        .map(|f| (f.ts, f.size, f.price))
        .collect();
    assert_eq!(sold, vec![(3, 10.0, 3_955.0)]);
    assert_eq!(e.equity(), 130_000.0 - 10.0 * 45.0 * 50.0);
}
