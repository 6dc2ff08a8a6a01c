//! The sets of symbols the market phase reads instead of each symbol's orders and
//! position (`Book::working_symbols`, `Portfolio::holding`), checked against the plain
//! per-symbol tests after every step of random sequences: orders of every kind placed,
//! admitted (filled at the close or not), matched and filled bar by bar with their
//! bracket legs, cancelled, expired (day, good-till-date, bars, immediate-or-cancel),
//! and positions closed whole or in part. The same sequences check the closed trades as
//! the compact log gives them back (`OrderLog::trade_row`).

use super::Working;
use crate::book::matching;
use crate::book::{Book, Placing, Rules};
use crate::broker::Bar;
use crate::config::Config;
use crate::orders::{Order, OrderRequest, Role, Side, Status, TimeInForce, Trail};
use crate::portfolio::Portfolio;
use crate::studies::Studies;
use crate::test_draws::draws;

/// 70 symbols: the sets take two words, the second one partly used.
const SYMBOLS: usize = 70;

struct Desk {
    book: Book,
    portfolio: Portfolio,
    config: Config,
    studies: Studies,
    /// Per symbol, how many bars it has had and its latest close (NaN before the first).
    bars: Vec<usize>,
    last: Vec<f64>,
    now: i64,
    state: u64,
}

impl Desk {
    fn new(seed: u64) -> Self {
        let config = Config {
            cash: 1e6,
            ..Config::default()
        };
        Desk {
            book: Book::new(SYMBOLS),
            portfolio: Portfolio::new(config.cash, SYMBOLS),
            config,
            studies: Studies::default(),
            bars: vec![0; SYMBOLS],
            last: vec![f64::NAN; SYMBOLS],
            now: 0,
            state: seed | 1,
        }
    }

    fn random(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.random() % 100 < percent
    }

    /// The sets hold exactly the symbols with working orders, and with a position.
    fn check(&self, step: &str) {
        for s in 0..SYMBOLS {
            let working = !self.book.working(s).is_empty();
            assert_eq!(
                self.book.working_symbols().contains(s),
                working,
                "{step}: symbol {s}'s orders"
            );
            let held = self.portfolio.position(s).size != 0.0;
            assert_eq!(
                self.portfolio.holding().contains(s),
                held,
                "{step}: symbol {s}'s position"
            );
        }
    }

    /// A random order of a random kind for a random symbol (refused ones are fine).
    fn place(&mut self) {
        let s = (self.random() % SYMBOLS as u64) as usize;
        let side = if self.chance(50) {
            Side::Buy
        } else {
            Side::Sell
        };
        let size = 1.0 + (self.random() % 5) as f64;
        let price = if self.last[s].is_nan() {
            100.0
        } else {
            self.last[s]
        };
        let off = |d: &mut Desk| price * (1.0 + ((d.random() % 41) as f64 - 20.0) * 1e-3);
        let mut r = OrderRequest::market(s, side, size);
        match self.random() % 5 {
            0 => {}
            1 => r.limit = Some(off(self)),
            2 => r.stop = Some(off(self)),
            3 => (r.limit, r.stop) = (Some(off(self)), Some(off(self))),
            _ => r.trail = Some(Trail::Fraction(0.01)),
        }
        if self.chance(30) {
            let sign = if side == Side::Buy { 1.0 } else { -1.0 };
            r.stop_loss = Some(price * (1.0 - sign * 0.01));
            r.take_profit = Some(price * (1.0 + sign * 0.01));
        }
        r.time_in_force = match self.random() % 6 {
            0 => TimeInForce::Day,
            1 => TimeInForce::ImmediateOrCancel,
            2 => TimeInForce::Bars(1 + (self.random() % 3) as usize),
            3 => TimeInForce::Until(self.now + (self.random() % 4) as i64),
            _ => TimeInForce::GoodTillCancelled,
        };
        let at = Placing {
            name: "X",
            price: self.last[s],
            now: self.now,
            next_bar: self.bars[s],
            symbol: s,
            bar: self.bars[s].checked_sub(1),
            studies: &self.studies,
        };
        let _ = self.book.submit(r, &at);
    }

    /// The barrier: pending orders join; market orders of some symbols with a bar now
    /// fill at its close (as under `FillAt::Close`).
    fn admit(&mut self, at_close: &[bool]) {
        let rules = Rules {
            config: &self.config,
            studies: &self.studies,
        };
        let (bars, last) = (&self.bars, &self.last);
        self.book.admit_pending(
            self.now,
            &mut self.portfolio,
            rules,
            |_| 0,
            |s| (at_close[s] && bars[s] > 0).then(|| (bars[s] - 1, last[s], 1.0)),
        );
    }

    /// A tick: orders past their time expire, some symbols have a bar (matched as one
    /// batch as the engine does), then they are marked to the close.
    fn tick(&mut self) -> Vec<bool> {
        self.now += 1;
        self.book.expire_before(self.now);
        self.check("expiry");
        let with_bar: Vec<bool> = (0..SYMBOLS).map(|_| self.chance(70)).collect();
        let mut touched = Vec::new();
        for s in (0..SYMBOLS).filter(|&s| with_bar[s]) {
            let was = if self.last[s].is_nan() {
                100.0
            } else {
                self.last[s]
            };
            let open = was * (1.0 + ((self.random() % 21) as f64 - 10.0) * 1e-3);
            let close = open * (1.0 + ((self.random() % 21) as f64 - 10.0) * 1e-3);
            let bar = Bar {
                open,
                high: open.max(close) * 1.004,
                low: open.min(close) * 0.996,
                close,
            };
            let i = self.bars[s];
            self.bars[s] += 1;
            self.last[s] = close;
            self.portfolio.mark(s, open);
            self.book.open_bar(s, i, self.now, bar);
            touched.push((s, bar));
        }
        let rules = Rules {
            config: &self.config,
            studies: &self.studies,
        };
        self.book.execute_batch(&mut self.portfolio, rules);
        self.check("a batch of fills");
        for (s, bar) in touched {
            self.portfolio.observe_range(s, bar.low, bar.high);
            self.portfolio.mark(s, bar.close);
        }
        with_bar
    }
}

#[test]
fn the_sets_of_symbols_follow_every_fill_cancel_expiry_and_close() {
    for seed in [1u64, 0x5eed, 0xdead_beef, 0x1234_5678_9abc] {
        let mut d = Desk::new(seed);
        d.check("start");
        let (mut filled, mut cancelled, mut expired, mut closes) = (0, 0, 0, 0);
        for _ in 0..400 {
            let with_bar = d.tick();
            for _ in 0..d.random() % 12 {
                match d.random() % 10 {
                    0..=4 => d.place(),
                    5..=7 => {
                        // One of a random symbol's open orders (a bracket leg too).
                        let s = (d.random() % SYMBOLS as u64) as usize;
                        let open = d.book.open_orders(s);
                        if !open.is_empty() {
                            let id = open[(d.random() % open.len() as u64) as usize];
                            cancelled += usize::from(d.book.cancel(id, d.now));
                            d.check("a cancel");
                        }
                    }
                    _ => {
                        let s = (d.random() % SYMBOLS as u64) as usize;
                        let held = d.portfolio.position(s).size;
                        let portion = if d.chance(50) { 1.0 } else { 0.5 };
                        closes += usize::from(matches!(
                            d.book.close_position(s, held, portion, d.now),
                            Ok(Some(_))
                        ));
                    }
                }
            }
            let at_close: Vec<bool> = with_bar.iter().map(|&b| b && d.chance(20)).collect();
            d.admit(&at_close);
            d.check("the barrier");
            if d.chance(10) {
                d.book.end_day(d.now);
                d.check("a day's end");
            }
            filled = d.book.fills().len();
            expired = d
                .book
                .orders()
                .records()
                .iter()
                .filter(|o| o.status == Status::Expired)
                .count();
        }
        // The sequences did what they are for: many fills, cancels, expiries, closes.
        assert!(filled > 500, "seed {seed}: {filled} fills");
        assert!(cancelled > 40, "seed {seed}: {cancelled} cancels");
        assert!(expired > 50, "seed {seed}: {expired} expiries");
        assert!(closes > 100, "seed {seed}: {closes} closes");
    }
}

/// Every open lot's symbol and side, by trade id.
fn open_lots(p: &Portfolio) -> std::collections::HashMap<u64, (usize, f64)> {
    let mut lots = std::collections::HashMap::new();
    for (s, position) in p.positions().iter().enumerate() {
        for lot in &position.lots {
            lots.insert(lot.id, (s, lot.direction));
        }
    }
    lots
}

/// A closed trade keeps neither its symbol, nor its side, nor its exit time: its exit
/// order's record says them. Read back, they are those of the lot it closed (as it was
/// open before the step that closed it) and the time of that step, for every trade.
#[test]
fn closed_trades_read_back_the_symbol_side_and_exit_time_they_were_booked_with() {
    for seed in [7u64, 0xfeed, 0x0bad_cafe] {
        let mut d = Desk::new(seed);
        let (mut checked, mut fresh, mut shorts) = (0, 0, 0);
        let mut booked = 0;
        let mut check = |d: &Desk, before: &std::collections::HashMap<u64, (usize, f64)>| {
            let log = d.book.orders();
            for t in &d.portfolio.closed[booked..] {
                let row = log.trade_row(t);
                assert_eq!(row.exit_ts, d.now, "trade {}", t.trade_id);
                assert_eq!((row.trade_id, row.exit_order), (t.trade_id, t.exit_order));
                assert_eq!(
                    row.return_pct,
                    t.pnl / (t.entry_price * t.size + t.commission)
                );
                // A lot opened in the same step is not in the snapshot (it is counted).
                match before.get(&t.trade_id) {
                    Some(&(s, direction)) => {
                        assert_eq!((row.symbol, row.direction), (s, direction));
                        checked += 1;
                        shorts += usize::from(direction < 0.0);
                    }
                    None => fresh += 1,
                }
            }
            booked = d.portfolio.closed.len();
        };
        for _ in 0..400 {
            let before = open_lots(&d.portfolio);
            let with_bar = d.tick();
            check(&d, &before);
            for _ in 0..d.random() % 12 {
                if d.chance(60) {
                    d.place();
                } else {
                    let s = (d.random() % SYMBOLS as u64) as usize;
                    let held = d.portfolio.position(s).size;
                    let _ = d.book.close_position(s, held, 0.5, d.now);
                }
            }
            let before = open_lots(&d.portfolio);
            let at_close: Vec<bool> = with_bar.iter().map(|&b| b && d.chance(20)).collect();
            d.admit(&at_close);
            check(&d, &before);
        }
        assert!(
            checked > 300 && shorts > 100,
            "seed {seed}: {checked} ({shorts} short)"
        );
        assert!(
            checked > 4 * fresh,
            "seed {seed}: {checked} checked, {fresh} not"
        );
    }
}

/// `Working` alone: each way of adding an order (to an empty list or not), of dropping
/// dead ones (one symbol, every symbol) and of killing an order through the lent slice
/// leaves the set holding exactly the symbols whose list is not empty.
#[test]
fn the_set_of_working_symbols_follows_each_list() {
    let mut w = Working::new(SYMBOLS);
    let mut random = draws(0x2545_f491_4f6c_dd1d);
    for id in 1..3000u64 {
        let s = (random() % SYMBOLS as u64) as usize;
        match random() % 6 {
            0 => w.push(Order::new(id, s, Side::Buy, 1.0, Role::Entry)),
            1 => w.push(Order::new(id, s, Side::Sell, 1.0, Role::ClosePosition)),
            2 => {
                if let Some(o) = w[s].first_mut() {
                    o.live = false;
                }
            }
            3 => w.retain_live(s),
            4 if random().is_multiple_of(20) => w.retain_live_everywhere(),
            _ => {
                for o in w[s].iter_mut() {
                    o.live = random().is_multiple_of(2);
                }
            }
        }
        for k in 0..SYMBOLS {
            assert_eq!(
                w.symbols().contains(k),
                !w[k].is_empty(),
                "step {id}: symbol {k}"
            );
        }
    }
}

/// A symbol's summary (`Working::may_act`) answers as the walk over its list does
/// (`matching::is_quiet`) after every change: orders of every kind added, changed through
/// the lent slice (prices moved, trails added, killed, made eligible later), dropped; some
/// good for a few bars.
#[test]
fn each_symbols_summary_follows_its_list() {
    const FEW: usize = 3;
    let mut w = Working::new(FEW);
    let mut random = draws(0x1f83_d9ab_fb41_bd6b);
    // Bars trade about 100; orders are placed out of their reach (a buy limit or a sell
    // stop below 90 to 100, the others above) and moved anywhere from 90 to 110.
    let price = |random: &mut dyn FnMut() -> u64| 90.0 + (random() % 2000) as f64 / 100.0;
    let away = |random: &mut dyn FnMut() -> u64, below: bool| {
        let d = (random() % 1000) as f64 / 100.0;
        if below {
            100.0 - d
        } else {
            100.0 + d
        }
    };
    let (mut quiet, mut loud) = (0, 0);
    for id in 1..5_000u64 {
        let s = (random() % FEW as u64) as usize;
        match random() % 8 {
            // (A few orders a list, most often more than are walked rather than summed up:
            // many would rarely leave a bar with none reached.)
            0..=2 if w[s].len() >= 9 => w[s][0].live = false,
            0..=2 => {
                let side = if random().is_multiple_of(2) {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let mut o = Order::new(id, s, side, 1.0, Role::Entry);
                // Mostly plain stops and limits, whose summary is their prices: a
                // stop-limit or a market order plays at every bar until dropped.
                let buy = side == Side::Buy;
                match random() % 30 {
                    0 => {
                        o.limit = Some(price(&mut random));
                        o.stop = Some(price(&mut random));
                    }
                    1 => {}
                    2..=15 => o.limit = Some(away(&mut random, buy)),
                    _ => o.stop = Some(away(&mut random, !buy)),
                }
                o.eligible_from = (random() % 3) as usize;
                if random().is_multiple_of(10) {
                    o.last_bar = Some((random() % 4) as usize);
                }
                w.push(o);
            }
            3 => {
                let k = random() as usize;
                let n = w[s].len();
                if n > 0 {
                    let level = price(&mut random);
                    let o = &mut w[s][k % n];
                    match random() % 10 {
                        0..=5 if o.limit.is_some() => o.limit = Some(level),
                        0..=5 if o.stop.is_some() => o.stop = Some(level),
                        6 => o.trail = Some(Trail::Distance(1.0)),
                        7 => o.eligible_from = 5,
                        _ => o.live = false,
                    }
                }
            }
            4 | 5 => w.retain_live(s),
            6 if random().is_multiple_of(10) => w.retain_live_everywhere(),
            _ => {}
        }
        for k in 0..FEW {
            let a = 98.5 + (random() % 300) as f64 / 100.0;
            let b = a + (random() % 100) as f64 / 100.0 - 0.5;
            let prices = Bar {
                open: a,
                high: a.max(b),
                low: a.min(b),
                close: b,
            };
            let bar = (random() % 4) as usize;
            let walked = matching::is_quiet(&w[k], bar, &prices);
            let acts = !w[k].is_empty() && !walked;
            assert_eq!(w.may_act(k, bar, &prices), acts, "step {id}: symbol {k}");
            if !w[k].is_empty() {
                *if walked { &mut quiet } else { &mut loud } += 1;
            }
        }
    }
    assert!(quiet > 1_000 && loud > 1_000, "{quiet} quiet, {loud} not");
}
