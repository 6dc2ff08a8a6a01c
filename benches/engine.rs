//! Criterion benches of the core, inputs built outside the timed part.
//!
//! Workloads:
//! - `tick_loop/{1,20,100,1000}`: the whole tick loop with a Rust no-op strategy over
//!   minute bars with ~5% of minutes missing per symbol (20 symbols × 144,000 bars is the
//!   issue's reference workload; the others keep ~2.9M symbol-bars in total).
//!   Throughput is in symbol-bars.
//! - `bitmaps/20`: building and swapping the "who has a bar" bitmaps alone.
//! - `resting_orders/500`: order matching with 500 resting limit orders per symbol.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tickstep::clock::Clock;
use tickstep::{Config, Engine, Market, NoOp, OrderRequest, Side, Strategy, SymbolBars};

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
        let mut b = SymbolBars::default();
        let mut price = 100.0;
        for m in 0..minutes {
            if next() % 100 < 5 {
                continue;
            }
            let step = ((next() % 2001) as f64 - 1000.0) * 1e-6;
            let open = price;
            price *= 1.0 + step;
            b.ts.push(1_700_000_000_000_000_000 + m as i64 * 60_000_000_000);
            b.open.push(open);
            b.high.push(open.max(price) * 1.0005);
            b.low.push(open.min(price) * 0.9995);
            b.close.push(price);
            b.volume.push(100.0 + (next() % 1000) as f64);
        }
        names.push(format!("S{s:04}"));
        all.push(b);
    }
    Market::new(names, all).unwrap()
}

fn tick_loop(c: &mut Criterion) {
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

fn bitmaps(c: &mut Criterion) {
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
    fn on_bar(&mut self, e: &mut Engine, s: usize) -> tickstep::Result<()> {
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

fn resting_orders(c: &mut Criterion) {
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

criterion_group!(benches, tick_loop, bitmaps, resting_orders);
criterion_main!(benches);
