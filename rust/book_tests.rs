//! The book's rules at the Rust level: a `Book` and a `Portfolio` driven bar by bar by
//! hand, without the loop. Every expected price is worked out in the comment beside it.

use super::*;
use crate::orders::Role;

fn placing(studies: &Studies, price: f64, now: i64) -> Placing<'_> {
    Placing {
        name: "X",
        price,
        now,
        next_bar: (now + 1) as usize,
        symbol: 0,
        bar: None,
        studies,
    }
}

const X: usize = 0;

struct Desk {
    book: Book,
    portfolio: Portfolio,
    config: Config,
    studies: Studies,
    bar: usize,
    /// The latest close (NaN before the first bar).
    last: f64,
}

fn desk(config: Config) -> Desk {
    Desk {
        book: Book::new(1),
        portfolio: Portfolio::new(config.cash, 1),
        config,
        studies: Studies::default(),
        bar: 0,
        last: f64::NAN,
    }
}

/// The book's fills with every field.
fn fill_rows(book: &Book) -> Vec<crate::results::FillRow> {
    let orders = book.orders();
    book.fills().iter().map(|f| orders.fill_row(f)).collect()
}

fn bar(open: f64, high: f64, low: f64, close: f64) -> Bar {
    Bar {
        open,
        high,
        low,
        close,
    }
}

impl Desk {
    fn order(&mut self, side: Side, size: f64, f: impl FnOnce(&mut OrderRequest)) -> u64 {
        let mut r = OrderRequest::market(X, side, size);
        f(&mut r);
        let at = placing(&self.studies, self.last, self.bar as i64);
        let id = self.book.submit(r, &at).unwrap();
        self.admit();
        id
    }

    fn admit(&mut self) {
        let rules = Rules {
            config: &self.config,
            studies: &self.studies,
        };
        self.book
            .admit_pending(self.bar as i64, &mut self.portfolio, rules, |_| 0, |_| None);
    }

    fn close(&mut self) -> Option<u64> {
        let held = self.portfolio.position(X).size;
        let id = self
            .book
            .close_position(X, held, 1.0, self.bar as i64)
            .unwrap();
        self.admit();
        id
    }

    /// The next bar: marks, matches, marks to the close.
    fn next(&mut self, b: Bar) {
        self.bar += 1;
        self.portfolio.mark(X, b.open);
        self.book.open_bar(X, self.bar, self.bar as i64, b);
        let rules = Rules {
            config: &self.config,
            studies: &self.studies,
        };
        self.book.execute_batch(&mut self.portfolio, rules);
        self.last = b.close;
        self.portfolio.mark(X, b.close);
    }

    fn prices(&self) -> Vec<(u64, f64, f64)> {
        fill_rows(&self.book)
            .iter()
            .map(|f| (f.order_id, f.direction * f.size, f.price))
            .collect()
    }

    fn status(&self, id: u64) -> (Status, &'static str) {
        let r = self.book.orders().row(id);
        (r.status, r.reason.phrase())
    }
}

#[test]
fn market_order_fills_at_the_next_open() {
    let mut d = desk(Config::default());
    let id = d.order(Side::Buy, 3.0, |_| {});
    d.next(bar(101.0, 103.0, 99.0, 102.0));
    assert_eq!(d.prices(), vec![(id, 3.0, 101.0)]);
    assert_eq!(d.status(id), (Status::Filled, ""));
}

#[test]
fn limit_fills_at_its_price_or_a_better_open() {
    let mut d = desk(Config::default());
    let inside = d.order(Side::Buy, 1.0, |r| r.limit = Some(98.0));
    let gapped = d.order(Side::Buy, 1.0, |r| r.limit = Some(102.0));
    let missed = d.order(Side::Buy, 1.0, |r| r.limit = Some(90.0));
    // Opens at 100: the 102 limit fills at the better open, the 98 limit when the low
    // (97) reaches it, the 90 limit never.
    d.next(bar(100.0, 101.0, 97.0, 99.0));
    assert_eq!(d.prices(), vec![(gapped, 1.0, 100.0), (inside, 1.0, 98.0)]);
    assert_eq!(d.status(missed).0, Status::Open);
}

#[test]
fn stop_fills_at_its_price_or_the_worse_open_and_slips() {
    let mut d = desk(Config {
        slippage_bps: 10.0,
        ..Config::default()
    });
    d.order(Side::Buy, 10.0, |_| {});
    d.next(bar(100.0, 100.0, 100.0, 100.0)); // long 10 at 100 × 1.001 = 100.1
    let stop = d.order(Side::Sell, 10.0, |r| r.stop = Some(97.0));
    // Gap down to 95 through the 97 stop: filled at the open, slipped 95 × 0.999 = 94.905.
    d.next(bar(95.0, 96.0, 94.0, 95.5));
    let (id, units, price) = d.prices()[1];
    assert_eq!((id, units), (stop, -10.0));
    assert!((price - 94.905).abs() < 1e-12, "{price}");
}

#[test]
fn stop_limit_rests_as_a_limit_when_the_trigger_is_not_marketable() {
    let mut d = desk(Config::default());
    let id = d.order(Side::Buy, 1.0, |r| {
        r.stop = Some(99.0);
        r.limit = Some(98.0);
    });
    // Opens at 100 through the stop at 99, above the 98 limit: triggered, not filled.
    d.next(bar(100.0, 100.5, 97.0, 99.0));
    assert!(d.prices().is_empty());
    // Next bar it is a plain limit at 98: the low 97.5 reaches it.
    d.next(bar(99.0, 99.5, 97.5, 98.0));
    assert_eq!(d.prices(), vec![(id, 1.0, 98.0)]);
}

#[test]
fn bracket_stop_loss_wins_when_both_legs_are_inside_one_bar() {
    let mut d = desk(Config::default());
    d.order(Side::Buy, 2.0, |r| {
        r.stop_loss = Some(95.0);
        r.take_profit = Some(110.0);
    });
    d.next(bar(100.0, 100.0, 100.0, 100.0));
    d.next(bar(100.0, 112.0, 94.0, 100.0));
    let exit = fill_rows(&d.book)[1];
    assert_eq!(
        (exit.role, exit.price, exit.size),
        (Role::StopLoss, 95.0, 2.0)
    );
    let tp = d
        .book
        .orders()
        .rows()
        .find(|o| o.role == Role::TakeProfit)
        .unwrap();
    assert_eq!(
        (tp.status, tp.reason.phrase()),
        (Status::Cancelled, "its trade was closed")
    );
    assert_eq!(d.portfolio.position(X).size, 0.0);
}

#[test]
fn entry_at_the_open_lets_both_legs_watch_the_same_bar() {
    let mut d = desk(Config::default());
    d.order(Side::Buy, 1.0, |r| r.take_profit = Some(104.0));
    // Entry at the open 100, the high 105 reaches the take-profit in that bar.
    d.next(bar(100.0, 105.0, 99.0, 101.0));
    let exit = fill_rows(&d.book)[1];
    assert_eq!((exit.role, exit.price), (Role::TakeProfit, 104.0));
}

#[test]
fn close_is_sized_when_it_fills_and_cancelled_when_flat() {
    let mut d = desk(Config::default());
    d.order(Side::Sell, 4.0, |_| {});
    d.next(bar(50.0, 50.0, 50.0, 50.0));
    let close = d.close().unwrap();
    d.next(bar(45.0, 46.0, 44.0, 45.0));
    assert_eq!(d.prices()[1], (close, 4.0, 45.0));
    assert_eq!(d.portfolio.closed[0].pnl, 20.0);
    assert_eq!(d.close(), None);
}

#[test]
fn increases_beyond_buying_power_are_rejected_with_a_reason() {
    let mut d = desk(Config {
        cash: 1_000.0,
        ..Config::default()
    });
    let id = d.order(Side::Buy, 11.0, |_| {});
    d.next(bar(100.0, 100.0, 100.0, 100.0));
    assert!(d.prices().is_empty());
    assert_eq!(d.status(id), (Status::Rejected, "insufficient margin"));
    assert_eq!(d.portfolio.equity(), 1_000.0);
}

#[test]
fn cancel_takes_a_working_order_out_once() {
    let mut d = desk(Config::default());
    let id = d.order(Side::Buy, 1.0, |r| r.limit = Some(90.0));
    assert_eq!(d.book.open_orders(X), vec![id]);
    assert!(d.book.cancel(id, 1));
    assert!(!d.book.cancel(id, 1));
    assert_eq!(
        d.status(id),
        (Status::Cancelled, "cancelled by the strategy")
    );
    d.next(bar(80.0, 80.0, 80.0, 80.0));
    assert!(d.prices().is_empty());
}

#[test]
fn orders_with_bad_values_are_refused_naming_the_rule() {
    let mut d = desk(Config::default());
    let mut r = OrderRequest::market(X, Side::Buy, 1.0);
    r.stop_loss = Some(105.0);
    let err = d
        .book
        .submit(r, &placing(&d.studies, 100.0, 0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sl 105 must be below the entry price 100"),
        "{err}"
    );
    let err = d
        .book
        .submit(
            OrderRequest::market(X, Side::Buy, -1.0),
            &placing(&d.studies, 100.0, 0),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("size must be a positive number"), "{err}");
}

#[test]
fn reductions_of_any_symbol_execute_before_increases_of_any_symbol() {
    // Two symbols, one account of 1,000. Symbol 1 holds 9 units at 100. On one tick the
    // strategy buys 9 of symbol 0 (placed first) and sells symbol 1's 9. Both bars open
    // at 100: the sale executes first (cash 1,000, nothing held), then the buy fits.
    let config = Config {
        cash: 1_000.0,
        ..Config::default()
    };
    let studies = Studies::default();
    let rules = Rules {
        config: &config,
        studies: &studies,
    };
    let mut book = Book::new(2);
    let mut portfolio = Portfolio::new(config.cash, 2);
    let hundred = bar(100.0, 100.0, 100.0, 100.0);
    let mut at = placing(&studies, f64::NAN, 0);
    at.symbol = 1;
    book.submit(OrderRequest::market(1, Side::Buy, 9.0), &at)
        .unwrap();
    book.admit_pending(0, &mut portfolio, rules, |_| 0, |_| None);
    for s in 0..2 {
        portfolio.mark(s, 100.0);
        book.open_bar(s, 1, 1, hundred);
    }
    book.execute_batch(&mut portfolio, rules);
    let buy = book
        .submit(
            OrderRequest::market(0, Side::Buy, 9.0),
            &placing(&studies, 100.0, 1),
        )
        .unwrap();
    let sell = book.close_position(1, 9.0, 1.0, 1).unwrap().unwrap();
    book.admit_pending(1, &mut portfolio, rules, |_| 0, |_| None);
    for s in 0..2 {
        book.open_bar(s, 2, 2, hundred);
    }
    book.execute_batch(&mut portfolio, rules);
    let executed: Vec<u64> = book.fills().iter().skip(1).map(|f| f.order_id).collect();
    assert_eq!(executed, vec![sell, buy]);
    assert_eq!(book.orders().row(buy).status, Status::Filled);
    assert_eq!(portfolio.position(0).size, 9.0);
    assert_eq!(portfolio.position(1).size, 0.0);
}

#[test]
fn a_close_after_a_flip_in_the_same_bar_executes_on_the_other_side_and_slips_there() {
    let mut d = desk(Config {
        slippage_bps: 10.0,
        ..Config::default()
    });
    d.order(Side::Buy, 10.0, |_| {});
    d.next(bar(100.0, 100.0, 100.0, 100.0));
    let flip = d.order(Side::Sell, 20.0, |_| {});
    let close = d.close().unwrap();
    d.next(bar(120.0, 120.0, 120.0, 120.0));
    // The flip sells 20 at 120 × 0.999; the close then buys the short 10 at 120 × 1.001.
    let fills = d.prices();
    assert_eq!((fills[1].0, fills[1].1), (flip, -20.0));
    assert!((fills[1].2 - 119.88).abs() < 1e-12);
    assert_eq!((fills[2].0, fills[2].1), (close, 10.0));
    assert!((fills[2].2 - 120.12).abs() < 1e-12);
    let rec = d.book.orders().row(close);
    assert_eq!(
        (rec.side, rec.filled_side, rec.filled_size),
        (Side::Sell, 1, 10.0)
    );
}

#[test]
fn increases_of_one_batch_execute_in_placement_order_whichever_bar_is_reached_last() {
    // Two symbols, one account of 1,000; both bars open at 100. Symbol 0's buy of 6 is
    // placed first, symbol 1's buy of 6 second: only one fits. Symbol 0's bar is walked
    // first, so its increase waits in the queue while symbol 1's bar — the last of the
    // batch — reaches its own: that one must queue behind it, not execute at once.
    let config = Config {
        cash: 1_000.0,
        ..Config::default()
    };
    let studies = Studies::default();
    let rules = Rules {
        config: &config,
        studies: &studies,
    };
    let mut book = Book::new(2);
    let mut portfolio = Portfolio::new(config.cash, 2);
    let first = book
        .submit(
            OrderRequest::market(0, Side::Buy, 6.0),
            &placing(&studies, 100.0, 0),
        )
        .unwrap();
    let mut at = placing(&studies, 100.0, 0);
    at.symbol = 1;
    let second = book
        .submit(OrderRequest::market(1, Side::Buy, 6.0), &at)
        .unwrap();
    book.admit_pending(0, &mut portfolio, rules, |_| 0, |_| None);
    for s in 0..2 {
        portfolio.mark(s, 100.0);
        book.open_bar(s, 1, 1, bar(100.0, 100.0, 100.0, 100.0));
    }
    book.execute_batch(&mut portfolio, rules);
    assert_eq!(book.orders().row(first).status, Status::Filled);
    let refused = book.orders().row(second);
    assert_eq!(
        (refused.status, refused.reason.phrase()),
        (Status::Rejected, "insufficient margin")
    );
    assert_eq!(
        (portfolio.position(0).size, portfolio.position(1).size),
        (6.0, 0.0)
    );

    // The same two orders placed the other way round: symbol 1's now comes first.
    let mut book = Book::new(2);
    let mut portfolio = Portfolio::new(config.cash, 2);
    let first = book
        .submit(OrderRequest::market(1, Side::Buy, 6.0), &at)
        .unwrap();
    book.submit(
        OrderRequest::market(0, Side::Buy, 6.0),
        &placing(&studies, 100.0, 0),
    )
    .unwrap();
    book.admit_pending(0, &mut portfolio, rules, |_| 0, |_| None);
    for s in 0..2 {
        portfolio.mark(s, 100.0);
        book.open_bar(s, 1, 1, bar(100.0, 100.0, 100.0, 100.0));
    }
    book.execute_batch(&mut portfolio, rules);
    assert_eq!(book.orders().row(first).status, Status::Filled);
    assert_eq!(
        (portfolio.position(0).size, portfolio.position(1).size),
        (0.0, 6.0)
    );
}

#[test]
fn a_market_order_carrying_any_one_thing_more_is_held_to_that_things_rules() {
    // A plain market order is checked for its size alone; each single addition below
    // brings its own rule back (the other rules apply to what an order carries).
    let studies = Studies::default();
    let refused = |f: &dyn Fn(&mut OrderRequest), price: f64| {
        let mut book = Book::new(1);
        let mut r = OrderRequest::market(X, Side::Buy, 1.0);
        f(&mut r);
        book.submit(r, &placing(&studies, price, 5))
            .unwrap_err()
            .to_string()
    };
    type Addition = Box<dyn Fn(&mut OrderRequest)>;
    let cases: Vec<(Addition, &str)> = vec![
        (
            Box::new(|r| r.limit = Some(-1.0)),
            "limit price must be positive",
        ),
        (
            Box::new(|r| r.stop = Some(f64::NAN)),
            "stop price must be positive",
        ),
        (
            Box::new(|r| r.stop_loss = Some(120.0)),
            "sl 120 must be below",
        ),
        (
            Box::new(|r| r.take_profit = Some(80.0)),
            "tp 80 must be above",
        ),
        (
            Box::new(|r| r.trail = Some(Trail::Fraction(1.5))),
            "trail: a trailing percentage must be above 0%",
        ),
        (
            Box::new(|r| r.stop_loss_trail = Some(Trail::Distance(0.0))),
            "sl_trail: a trailing distance must be a positive",
        ),
        (Box::new(|r| r.oco = Some(7)), "oco=7: no such order"),
        (
            Box::new(|r| r.time_in_force = TimeInForce::Until(5)),
            "is not after the current time",
        ),
        (
            Box::new(|r| r.time_in_force = TimeInForce::Bars(0)),
            "valid=0 bars",
        ),
        (
            Box::new(|r| r.time_in_force = TimeInForce::ImmediateOrCancel),
            "immediate-or-cancel applies to limit orders only",
        ),
    ];
    for (f, rule) in &cases {
        let err = refused(f.as_ref(), 100.0);
        assert!(err.contains(rule), "{rule}: {err}");
    }
    let err = refused(&|r| r.trail = Some(Trail::Distance(1.0)), f64::NAN);
    assert!(err.contains("needs a price to trail from"), "{err}");
    // And the plain order itself is accepted, logged as placed.
    let mut book = Book::new(1);
    let id = book
        .submit(
            OrderRequest::market(X, Side::Sell, 2.5),
            &placing(&studies, 100.0, 5),
        )
        .unwrap();
    let rec = book.orders().row(id);
    assert_eq!(
        (rec.side, rec.size, rec.status, rec.placed_ts),
        (Side::Sell, 2.5, Status::Open, 5)
    );
    assert!(rec.limit.is_nan() && rec.stop.is_nan() && rec.stop_loss.is_nan());
}

#[test]
fn a_good_till_date_order_expires_after_its_time_and_fills_before_it() {
    let mut d = desk(Config::default());
    let until = d.order(Side::Buy, 1.0, |r| {
        r.limit = Some(90.0);
        r.time_in_force = TimeInForce::Until(2);
    });
    // Bar 1 (ts 1): not reached. At ts 3 the order's time has passed: expired first.
    d.next(bar(100.0, 100.0, 95.0, 100.0));
    d.book.expire_before(3);
    assert_eq!(
        d.status(until),
        (Status::Expired, "good till date: its time passed")
    );
    d.next(bar(80.0, 80.0, 80.0, 80.0));
    assert!(d.prices().is_empty());
    // Another, good till 5, fills on a bar stamped before then.
    let filled = d.order(Side::Buy, 1.0, |r| {
        r.limit = Some(90.0);
        r.time_in_force = TimeInForce::Until(5);
    });
    d.book.expire_before(3);
    d.next(bar(85.0, 85.0, 85.0, 85.0));
    assert_eq!(d.status(filled).0, Status::Filled);
}

#[test]
fn an_order_placed_during_a_tick_works_only_from_its_barrier_on() {
    // Orders sit in the working orders from the moment they are placed, but until the
    // barrier no bar may fill or end them: here a bar of the symbol is played before the
    // barrier (as the first tick's market phase follows orders placed in `init`). A
    // market order, a limit the bar reaches and an immediate-or-cancel limit whose one
    // bar this would be: none fills, none expires, all are still open. After the barrier
    // the next bar fills the market order and the limit.
    let mut d = desk(Config::default());
    let at = placing(&d.studies, 100.0, 0);
    let market = d
        .book
        .submit(OrderRequest::market(X, Side::Buy, 1.0), &at)
        .unwrap();
    let mut limit = OrderRequest::market(X, Side::Buy, 1.0);
    limit.limit = Some(99.0);
    let limit = d.book.submit(limit, &at).unwrap();
    let mut ioc = OrderRequest::market(X, Side::Buy, 1.0);
    (ioc.limit, ioc.time_in_force) = (Some(99.0), TimeInForce::ImmediateOrCancel);
    let ioc = d.book.submit(ioc, &at).unwrap();
    assert_eq!(d.book.open_orders(X), vec![market, limit, ioc]);
    assert!(d.book.has_pending());
    // Bar 1 (the immediate-or-cancel's `next_bar`), played before the barrier.
    d.next(bar(98.0, 99.0, 97.0, 98.0));
    assert!(d.book.fills().is_empty());
    for id in [market, limit, ioc] {
        assert_eq!(d.status(id), (Status::Open, ""));
    }
    d.admit();
    assert!(!d.book.has_pending());
    d.next(bar(98.0, 99.0, 97.0, 98.0));
    let filled: Vec<u64> = d.book.fills().iter().map(|f| f.order_id).collect();
    assert_eq!(filled[..2], [market, limit]);
}

#[test]
fn at_a_barrier_filling_at_the_close_orders_join_one_by_one() {
    // Trade-on-close, long 1 unit. In one tick: a market sell of it (A), a sell limit (B)
    // joining A's one-cancels-other group, and a buy limit (C) of no group. At the barrier
    // A joins and fills at the close as it joins; its fill cancels B, which had not joined
    // yet (a group's fill cancels all of it); C joins after them and stays working.
    let mut d = desk(Config::default());
    let studies = Studies::default();
    let rules = |config| Rules {
        config,
        studies: &studies,
    };
    let at = placing(&studies, 100.0, 0);
    d.book
        .submit(OrderRequest::market(X, Side::Buy, 1.0), &at)
        .unwrap();
    d.book.admit_pending(
        0,
        &mut d.portfolio,
        rules(&d.config),
        |_| 0,
        |_| Some((0, 100.0, 1.0)),
    );
    assert_eq!(d.portfolio.position(X).size, 1.0);
    let at = placing(&studies, 101.0, 1);
    let sell = d
        .book
        .submit(OrderRequest::market(X, Side::Sell, 1.0), &at)
        .unwrap();
    let mut limit = OrderRequest::market(X, Side::Sell, 1.0);
    (limit.limit, limit.oco) = (Some(120.0), Some(sell));
    let limit = d.book.submit(limit, &at).unwrap();
    let mut other = OrderRequest::market(X, Side::Buy, 1.0);
    other.limit = Some(90.0);
    let other = d.book.submit(other, &at).unwrap();
    d.book.admit_pending(
        1,
        &mut d.portfolio,
        rules(&d.config),
        |_| 0,
        |_| Some((1, 101.0, 1.0)),
    );
    assert_eq!(d.portfolio.position(X).size, 0.0);
    assert_eq!(d.status(sell), (Status::Filled, ""));
    assert_eq!(
        d.status(limit),
        (Status::Cancelled, "its one-cancels-other group filled")
    );
    assert_eq!(d.status(other), (Status::Open, ""));
    let working: Vec<u64> = d.book.working(X).iter().map(|o| o.id).collect();
    assert_eq!(working, vec![other]);
    assert!(d.book.working(X).iter().all(|o| o.eligible_from == 0));
    assert!(!d.book.has_pending());
}

impl Desk {
    /// The open trades' ids, oldest first.
    fn trade_ids(&self) -> Vec<u64> {
        let lots = self.portfolio.position(X).lots.iter();
        lots.map(|l| l.id).collect()
    }

    fn set_exit(&mut self, trade: u64, role: Role, price: Option<f64>) -> Option<u64> {
        let now = self.bar as i64;
        let leg = (self.book)
            .set_trade_exit(&mut self.portfolio, X, trade, role, price, now)
            .unwrap();
        self.admit();
        leg
    }
}

#[test]
fn a_trades_own_exit_closes_that_trade_and_moves_in_place() {
    let mut d = desk(Config::default());
    d.order(Side::Buy, 10.0, |_| {});
    d.next(bar(100.0, 101.0, 99.0, 100.0)); // long 10 at 100
    d.order(Side::Buy, 5.0, |_| {});
    d.next(bar(102.0, 103.0, 101.0, 102.0)); // 5 more at 102
    let [older, newer] = d.trade_ids()[..] else {
        panic!("two trades")
    };
    let sl = d.set_exit(newer, Role::StopLoss, Some(95.0)).unwrap();
    // Moved in place: the same order, at 100.5 from the next bar.
    assert_eq!(d.set_exit(newer, Role::StopLoss, Some(100.5)), Some(sl));
    // Opens at 101, the low 100 reaches the stop: the newer trade's 5 units at 100.5.
    d.next(bar(101.0, 101.5, 100.0, 100.8));
    assert_eq!(d.prices().last(), Some(&(sl, -5.0, 100.5)));
    assert_eq!(d.trade_ids(), vec![older]);
    let closed = &d.portfolio.closed[0];
    assert_eq!((closed.trade_id, closed.entry_price), (newer, 102.0));
}

#[test]
fn a_trades_exit_taken_away_or_gone_with_its_trade() {
    let mut d = desk(Config::default());
    d.order(Side::Sell, 4.0, |_| {});
    d.next(bar(100.0, 101.0, 99.0, 100.0)); // short 4 at 100
    let [trade] = d.trade_ids()[..] else {
        panic!("one trade")
    };
    let tp = d.set_exit(trade, Role::TakeProfit, Some(90.0)).unwrap();
    let sl = d.set_exit(trade, Role::StopLoss, Some(110.0)).unwrap();
    assert_eq!(d.set_exit(trade, Role::TakeProfit, None), None);
    assert_eq!(
        d.status(tp),
        (Status::Cancelled, "cancelled by the strategy")
    );
    // The position closed by hand: its trade's stop-loss goes with it.
    d.close();
    d.next(bar(99.0, 100.0, 98.0, 99.0));
    assert_eq!(d.status(sl), (Status::Cancelled, "its trade was closed"));
    assert!(d.trade_ids().is_empty());
    // A closed trade's exit cannot be set.
    let now = d.bar as i64;
    let err = (d.book)
        .set_trade_exit(&mut d.portfolio, X, trade, Role::StopLoss, Some(1.0), now)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("trade {trade} is not open")),
        "{err}"
    );
}

#[test]
fn a_close_of_one_trade_takes_a_portion_of_it_alone() {
    let mut d = desk(Config::default());
    d.order(Side::Buy, 10.0, |_| {});
    d.next(bar(100.0, 101.0, 99.0, 100.0)); // 10 at 100
    d.order(Side::Buy, 6.0, |_| {});
    d.next(bar(102.0, 103.0, 101.0, 102.0)); // 6 at 102
    let newer = d.trade_ids()[1];
    let now = d.bar as i64;
    let id = d
        .book
        .close_trade(&d.portfolio, X, newer, 0.5, now)
        .unwrap();
    d.admit();
    d.next(bar(104.0, 105.0, 103.0, 104.0)); // half the newer at the open, 104
    assert_eq!(d.prices().last(), Some(&(id, -3.0, 104.0)));
    let closed = &d.portfolio.closed[0];
    assert_eq!(
        (closed.trade_id, closed.size, closed.entry_price),
        (newer, 3.0, 102.0)
    );
    let sizes: Vec<f64> = d
        .portfolio
        .position(X)
        .lots
        .iter()
        .map(|l| l.size)
        .collect();
    assert_eq!(sizes, vec![10.0, 3.0]);
}
