//! Criterion benches of the core, inputs built outside the timed part.
//!
//! Workloads:
//! - `tick_loop/{1,20,100,1000}`: the whole tick loop with a Rust no-op strategy over
//!   minute bars with ~5% of minutes missing per symbol (20 symbols × 144,000 bars is the
//!   issue's reference workload; the others keep ~2.9M symbol-bars in total).
//!   Throughput is in symbol-bars.
//! - `bitmaps/20`: building and swapping the "who has a bar" bitmaps alone.
//! - `resting_orders/500`: order matching with 500 resting limit orders per symbol.
//! - `order_types/trailing+oco`: 200 trailing stops (40% away, ratcheting every bar) and
//!   100 one-cancels-other pairs of far-away stops per symbol, 20 symbols × 14,400 minutes.
//! - `rolling/{mean,std,max,ema,rsi,atr}`: rolling-cache updates alone, one `Rolling` per
//!   symbol (window 30, RSI/ATR 14) fed every bar of 20 symbols × 144,000 minutes.
//! - `candles/{5m,4h}`: higher-timeframe candle building alone, one `CandleSeries` per
//!   symbol (clock buckets from the epoch, 500 candles kept), same bars;
//!   `candles/5m+mean12` also feeds each completed candle to a rolling mean of volume
//!   (what the Fakeout strategy declares).
//! - `tick_loop_studies/{1,20,100}`: the tick loop with a no-op strategy and two rolling
//!   means declared (the market phase of an SMA(10)/SMA(30) crossover), same sizes as
//!   `tick_loop`.
//! - `first_run/{no_studies,two_means}/20`: `tick_loop/20` and `tick_loop_studies/20` on a
//!   market no engine has run on yet (built outside the timed part): what a single run
//!   costs, with the market's maps of who has a bar at each tick made during it (later
//!   runs on the same market read them, as the two benches above do after their first).
//! - `sma_cross_native/{1,20,100}`: the same with a Rust SMA(10)/SMA(30) crossover strategy
//!   reading the engine's rolling means and trading 1 unit: the native ceiling of the
//!   Python `sma_cross` workload in `benches/workloads.py`.
//! - `signals/{sma_cross,no_signals,held}`: signals mode (`tickstep::signals`) over 20 ×
//!   144,000 minutes: SMA(10)/SMA(30) cross entries and exits (made before timing), each
//!   entry 4% of equity; no signal at all (the bare cost of the mode); one entry per
//!   symbol on its first bar, held to the end (the cost of a bar with a position).

use std::sync::Arc;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tickstep::candles::{clock_bucket, CandleSeries};
use tickstep::clock::Clock;
use tickstep::orders::Trail;
use tickstep::rolling::{Rolling, RollingKind, Source};
use tickstep::{
    Config, Engine, Market, NoOp, OrderRequest, Setup, Side, Strategy, SymbolBars, TickContext,
};

/// What the benches time: wall time, or with `TICKSTEP_BENCH_CPU=1` the CPU time of the
/// benchmarking thread (from `/proc/thread-self/schedstat`, Linux), which a busy machine
/// disturbs far less. Figures are nanoseconds either way.
pub struct Timer {
    cpu: bool,
    wall: WallTime,
}

impl Timer {
    fn from_env() -> Self {
        let cpu = std::env::var("TICKSTEP_BENCH_CPU").is_ok_and(|v| v == "1");
        Timer {
            cpu,
            wall: WallTime,
        }
    }

    fn thread_cpu_ns() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
            .expect("TICKSTEP_BENCH_CPU=1 needs Linux's /proc/thread-self/schedstat");
        stat.split_whitespace()
            .next()
            .and_then(|ns| ns.parse().ok())
            .expect("schedstat starts with the thread's CPU time in ns")
    }
}

impl Measurement for Timer {
    type Intermediate = (std::time::Instant, u64);
    type Value = u64;

    fn start(&self) -> Self::Intermediate {
        let cpu = if self.cpu { Self::thread_cpu_ns() } else { 0 };
        (std::time::Instant::now(), cpu)
    }

    fn end(&self, (wall, cpu): Self::Intermediate) -> u64 {
        if self.cpu {
            Self::thread_cpu_ns() - cpu
        } else {
            wall.elapsed().as_nanos() as u64
        }
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

type Bench = Criterion<Timer>;

/// Deterministic minute bars: `symbols` × `minutes`, each symbol missing ~5% of minutes.
pub fn minute_market(symbols: usize, minutes: usize) -> Market {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut names = Vec::new();
    let mut all = Vec::new();
    for s in 0..symbols {
        let (mut ts, mut o, mut h, mut l, mut c, mut v) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut price = 100.0;
        for m in 0..minutes {
            if next() % 100 < 5 {
                continue;
            }
            let step = ((next() % 2001) as f64 - 1000.0) * 1e-6;
            let open = price;
            price *= 1.0 + step;
            ts.push(1_700_000_000_000_000_000 + m as i64 * 60_000_000_000);
            o.push(open);
            h.push(open.max(price) * 1.0005);
            l.push(open.min(price) * 0.9995);
            c.push(price);
            v.push(100.0 + (next() % 1000) as f64);
        }
        names.push(format!("S{s:04}"));
        all.push(SymbolBars::from_vecs(ts, o, h, l, c, v));
    }
    Market::new(names, all).unwrap()
}

fn tick_loop(c: &mut Bench) {
    let mut g = c.benchmark_group("tick_loop");
    g.sample_size(10);
    for (symbols, minutes) in [(1, 2_880_000), (20, 144_000), (100, 28_800), (1000, 2_880)] {
        let market = Arc::new(minute_market(symbols, minutes));
        g.throughput(Throughput::Elements(market.bar_count() as u64));
        g.bench_function(format!("{symbols}"), |b| {
            b.iter_batched(
                || Engine::new(Arc::clone(&market), Config::default()).unwrap(),
                |mut e| e.run(&mut NoOp).unwrap(),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bitmaps(c: &mut Bench) {
    let market = minute_market(20, 144_000);
    let mut g = c.benchmark_group("bitmaps");
    g.sample_size(10);
    g.throughput(Throughput::Elements(market.bar_count() as u64));
    g.bench_function("20", |b| {
        b.iter(|| {
            let mut clock = Clock::new(&market);
            let mut t = 0;
            let mut seen = 0usize;
            while clock.advance_to(&market, t) {
                let active: Vec<usize> = clock.active().collect();
                for s in active {
                    clock.take_bar(s);
                    seen += 1;
                }
                t += 1;
            }
            seen
        })
    });
    g.finish();
}

/// Places `per_symbol` far-away limit orders on each symbol's first bar, then only watches.
struct RestingLimits {
    per_symbol: usize,
}

impl Strategy for RestingLimits {
    fn on_bar(&mut self, e: &mut TickContext, s: usize) -> tickstep::Result<()> {
        if e.bar_index(s) == Some(0) {
            let p = e.price(s);
            for k in 0..self.per_symbol {
                let mut r = OrderRequest::market(s, Side::Buy, 1.0);
                r.limit = Some(p * (0.5 - k as f64 * 1e-4));
                e.submit(r)?;
            }
        }
        Ok(())
    }
}

fn resting_orders(c: &mut Bench) {
    let market = Arc::new(minute_market(20, 14_400));
    let mut g = c.benchmark_group("resting_orders");
    g.sample_size(10);
    g.throughput(Throughput::Elements(market.bar_count() as u64));
    g.bench_function("500", |b| {
        b.iter_batched(
            || Engine::new(Arc::clone(&market), Config::default()).unwrap(),
            |mut e| e.run(&mut RestingLimits { per_symbol: 500 }).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// On each symbol's first bar: `trailing` trailing stops and `pairs` OCO pairs of stops,
/// all far from the price (they work, ratchet and are matched every bar, never fill).
struct TrailsAndGroups {
    trailing: usize,
    pairs: usize,
}

impl Strategy for TrailsAndGroups {
    fn on_bar(&mut self, e: &mut TickContext, s: usize) -> tickstep::Result<()> {
        if e.bar_index(s) == Some(0) {
            let p = e.price(s);
            for k in 0..self.trailing {
                let side = if k % 2 == 0 { Side::Sell } else { Side::Buy };
                let mut r = OrderRequest::market(s, side, 1.0);
                r.trail = Some(Trail::Fraction(0.4 + k as f64 * 1e-4));
                e.submit(r)?;
            }
            for k in 0..self.pairs {
                let mut up = OrderRequest::market(s, Side::Buy, 1.0);
                up.stop = Some(p * (2.0 + k as f64 * 1e-4));
                let first = e.submit(up)?;
                let mut down = OrderRequest::market(s, Side::Sell, 1.0);
                down.stop = Some(p * (0.5 - k as f64 * 1e-4));
                down.oco = Some(first);
                e.submit(down)?;
            }
        }
        Ok(())
    }
}

fn order_types(c: &mut Bench) {
    let market = Arc::new(minute_market(20, 14_400));
    let mut g = c.benchmark_group("order_types");
    g.sample_size(10);
    g.throughput(Throughput::Elements(market.bar_count() as u64));
    g.bench_function("trailing+oco", |b| {
        b.iter_batched(
            || Engine::new(Arc::clone(&market), Config::default()).unwrap(),
            |mut e| {
                e.run(&mut TrailsAndGroups {
                    trailing: 200,
                    pairs: 100,
                })
                .unwrap()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

const MINUTE: i64 = 60_000_000_000;

fn rolling(c: &mut Bench) {
    let market = minute_market(20, 144_000);
    let mut g = c.benchmark_group("rolling");
    g.sample_size(10);
    g.throughput(Throughput::Elements(market.bar_count() as u64));
    let kinds = [
        ("mean", RollingKind::Mean(30)),
        ("std", RollingKind::Std(30)),
        ("max", RollingKind::Max(30)),
        ("ema", RollingKind::Ema(30)),
        ("rsi", RollingKind::Rsi(14)),
        ("atr", RollingKind::Atr(14)),
    ];
    for (name, kind) in kinds {
        g.bench_function(name, |b| {
            b.iter_batched(
                || vec![Rolling::new(kind, Source::Close).unwrap(); market.symbol_count()],
                |mut caches| {
                    let mut acc = 0.0;
                    for (s, cache) in caches.iter_mut().enumerate() {
                        let bars = market.bars(s);
                        for i in 0..bars.ts.len() {
                            let (o, h, l, c, v) = bars.ohlcv(i);
                            cache.update(o, h, l, c, v);
                        }
                        acc += cache.value();
                    }
                    std::hint::black_box(acc)
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn candles(c: &mut Bench) {
    let market = minute_market(20, 144_000);
    let mut g = c.benchmark_group("candles");
    g.sample_size(10);
    g.throughput(Throughput::Elements(market.bar_count() as u64));
    for (name, period, volume_mean) in [
        ("5m", 5 * MINUTE, false),
        ("4h", 240 * MINUTE, false),
        ("5m+mean12", 5 * MINUTE, true),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let n = market.symbol_count();
                    let volume = Rolling::new(RollingKind::Mean(12), Source::Volume).unwrap();
                    (vec![CandleSeries::new(500); n], vec![volume; n])
                },
                |(mut series, mut means)| {
                    let mut completed = 0u64;
                    for (s, candles) in series.iter_mut().enumerate() {
                        let bars = market.bars(s);
                        for i in 0..bars.ts.len() {
                            let ts = bars.ts[i];
                            let (label, end) = clock_bucket(ts, period, 0);
                            let (o, h, l, c, v) = bars.ohlcv(i);
                            let done = candles.update(ts, label, end, o, h, l, c, v);
                            if volume_mean {
                                for candle in done.iter() {
                                    candle.feed(&mut means[s]);
                                }
                            }
                        }
                        completed += candles.total_completed();
                    }
                    std::hint::black_box((completed, means))
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Declares SMA(10) and SMA(30) of the close in `init`; with `trade`, buys 1 unit on a
/// golden cross when flat and closes on a death cross (the shipped Python `SmaCross`).
struct SmaCross {
    trade: bool,
    ids: (usize, usize),
}

impl Strategy for SmaCross {
    fn init(&mut self, e: &mut Setup) -> tickstep::Result<()> {
        let n = e.market().symbol_count();
        let fast = e
            .studies_mut()
            .add_rolling(n, RollingKind::Mean(10), Source::Close, None)?;
        let slow = e
            .studies_mut()
            .add_rolling(n, RollingKind::Mean(30), Source::Close, None)?;
        self.ids = (fast, slow);
        Ok(())
    }

    fn on_bar(&mut self, e: &mut TickContext, s: usize) -> tickstep::Result<()> {
        let bar = e.bar_index(s);
        let st = e.studies();
        let (f, sl) = (st.value(self.ids.0, s, bar)?, st.value(self.ids.1, s, bar)?);
        let (fb, sb) = (st.prev(self.ids.0, s, bar)?, st.prev(self.ids.1, s, bar)?);
        let size = e.position(s).size;
        if fb <= sb && f > sl && size == 0.0 {
            e.submit(OrderRequest::market(s, Side::Buy, 1.0))?;
        } else if fb >= sb && f < sl && size > 0.0 {
            e.close_position(s)?;
        }
        Ok(())
    }

    fn wants_bars(&self) -> bool {
        self.trade
    }
}

fn studies_loop(c: &mut Bench) {
    let sizes = [(1, 2_880_000), (20, 144_000), (100, 28_800)];
    let markets: Vec<_> = sizes
        .iter()
        .map(|&(symbols, minutes)| (symbols, Arc::new(minute_market(symbols, minutes))))
        .collect();
    for (group, trade) in [("tick_loop_studies", false), ("sma_cross_native", true)] {
        let mut g = c.benchmark_group(group);
        g.sample_size(10);
        for (symbols, market) in &markets {
            g.throughput(Throughput::Elements(market.bar_count() as u64));
            g.bench_function(format!("{symbols}"), |b| {
                b.iter_batched(
                    || Engine::new(Arc::clone(market), Config::default()).unwrap(),
                    |mut e| {
                        e.run(&mut SmaCross { trade, ids: (0, 0) }).unwrap();
                        e
                    },
                    criterion::BatchSize::LargeInput,
                )
            });
        }
        g.finish();
    }
}

/// A run on a market fresh from its columns (no maps of who has a bar at each tick yet),
/// with nothing declared and with the two rolling means.
fn first_run(c: &mut Bench) {
    let market = minute_market(20, 144_000);
    let fresh = || {
        let bars = (0..market.symbol_count())
            .map(|s| market.bars(s).clone())
            .collect();
        Arc::new(Market::new(market.names().to_vec(), bars).unwrap())
    };
    let mut g = c.benchmark_group("first_run");
    g.sample_size(10);
    g.throughput(Throughput::Elements(market.bar_count() as u64));
    g.bench_function("no_studies/20", |b| {
        b.iter_batched(
            || Engine::new(fresh(), Config::default()).unwrap(),
            |mut e| {
                e.run(&mut NoOp).unwrap();
                e
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("two_means/20", |b| {
        b.iter_batched(
            || Engine::new(fresh(), Config::default()).unwrap(),
            |mut e| {
                e.run(&mut SmaCross {
                    trade: false,
                    ids: (0, 0),
                })
                .unwrap();
                e
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Entries where the mean of the last `fast` closes crosses above that of the last
/// `slow`, exits where it crosses below (both means over complete windows only).
fn sma_cross_signals(close: &[f64], fast: usize, slow: usize) -> (Vec<bool>, Vec<bool>) {
    let mean = |n: usize, i: usize| close[i + 1 - n..=i].iter().sum::<f64>() / n as f64;
    let (mut entries, mut exits) = (vec![false; close.len()], vec![false; close.len()]);
    let mut before = 0i8;
    for i in slow - 1..close.len() {
        let (f, s) = (mean(fast, i), mean(slow, i));
        let now = if f > s {
            1
        } else if f < s {
            -1
        } else {
            0
        };
        entries[i] = now == 1 && before != 1;
        exits[i] = now == -1 && before != -1;
        before = now;
    }
    (entries, exits)
}

fn signals(c: &mut Bench) {
    use tickstep::signals::{Conflicts, SignalRules, SignalStrategy, SizeType, SymbolSignals};
    let market = Arc::new(minute_market(20, 144_000));
    let n = market.symbol_count();
    let cross: Vec<_> = (0..n)
        .map(|s| sma_cross_signals(&market.bars(s).close, 10, 30))
        .collect();
    let none: Vec<Vec<bool>> = (0..n)
        .map(|s| vec![false; market.bars(s).close.len()])
        .collect();
    let first: Vec<Vec<bool>> = none
        .iter()
        .map(|v| {
            let mut v = v.clone();
            v[0] = true;
            v
        })
        .collect();
    let rules = SignalRules {
        size: Some(0.04),
        size_type: SizeType::Percent,
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
    };
    let mut g = c.benchmark_group("signals");
    g.sample_size(10);
    g.throughput(Throughput::Elements(market.bar_count() as u64));
    // Per workload, per symbol: (entries, exits).
    type Workload<'a> = (&'a str, Vec<(&'a [bool], &'a [bool])>);
    let workloads: [Workload; 3] = [
        (
            "sma_cross",
            cross.iter().map(|(e, x)| (&e[..], &x[..])).collect(),
        ),
        (
            "no_signals",
            none.iter().map(|v| (&v[..], &v[..])).collect(),
        ),
        (
            "held",
            first
                .iter()
                .zip(&none)
                .map(|(e, x)| (&e[..], &x[..]))
                .collect(),
        ),
    ];
    for (name, columns) in &workloads {
        g.bench_function(*name, |b| {
            b.iter_batched(
                || Engine::new(Arc::clone(&market), Config::default()).unwrap(),
                |mut e| {
                    let sig = columns
                        .iter()
                        .map(|&(en, ex)| SymbolSignals {
                            entries: Some(en),
                            exits: Some(ex),
                            ..Default::default()
                        })
                        .collect();
                    let mut strategy = SignalStrategy::new(&market, sig, rules).unwrap();
                    tickstep::signals::run(&mut e, &mut strategy).unwrap();
                    e
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(
    name = benches;
    config = Criterion::default().with_measurement(Timer::from_env());
    targets = tick_loop, bitmaps, resting_orders, order_types, signals
);
criterion_group!(
    name = studies;
    config = Criterion::default().with_measurement(Timer::from_env());
    targets = rolling, candles, studies_loop, first_run
);
criterion_main!(benches, studies);
