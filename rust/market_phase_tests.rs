//! The market phase over several symbols: what a strategy reads of the base-bar
//! statistics at every tick (its own bar's and every other symbol's latest) is, bit for
//! bit, what feeding each symbol's bars one at a time gives, whatever the length of the
//! clock's plans, in one run or streamed in windows, with gaps, late and early ends,
//! windows longer than the data and resets.

use std::sync::Arc;

use crate::context::{Setup, TickContext};
use crate::engine::Engine;
use crate::error::Result;
use crate::market::{Market, SymbolBars};
use crate::rolling::{Rolling, RollingKind, Source};
use crate::strategy::Strategy;
use crate::test_draws::draws;
use crate::Config;

/// The means and the sum of the close are computed two at a time (10 with 30, 50 with
/// the sum of 4, which alone would count in another unit), in one pass over it where the
/// CPU gains by it (`Rolling::feed_pair`).
const KINDS: [(RollingKind, Source); 10] = [
    (RollingKind::Mean(10), Source::Close),
    (RollingKind::Mean(30), Source::Close),
    (RollingKind::Mean(50), Source::Close),
    (RollingKind::Sum(4), Source::Close),
    (RollingKind::Sum(3), Source::Volume),
    (RollingKind::Std(5), Source::Close),
    (RollingKind::Max(4), Source::High),
    (RollingKind::Ema(6), Source::Open),
    (RollingKind::Rsi(5), Source::Close),
    (RollingKind::Atr(3), Source::Close),
];

/// (symbol, statistic, bar) after which a statistic is reset: in the strategy phase,
/// before the tick's readings. Either of two statistics computed in one pass is reset
/// (the two then part until their windows hold the same bars again).
const RESETS: [(usize, usize, usize); 7] = [
    (0, 0, 40),
    (0, 0, 41),
    (1, 4, 9),
    (0, 4, 150),
    (2, 1, 20),
    (0, 3, 100),
    (0, 2, 180),
];

const TICKS: i64 = 240;

/// Five symbols over 240 minutes: one missing a pseudo-random ~15% of them, one every 7th
/// minute, one starting at minute 120, one with a single bar, one ending at minute 30.
fn symbols() -> Vec<SymbolBars> {
    let mut next = draws(0x2545_f491_4f6c_dd1d);
    let times: [Vec<i64>; 5] = [
        (0..TICKS).filter(|&t| t % 7 != 3 && t % 11 != 5).collect(),
        (0..TICKS).filter(|&t| t % 7 == 0).collect(),
        (120..TICKS).collect(),
        vec![57],
        (0..30).collect(),
    ];
    times
        .iter()
        .map(|ts| {
            let mut price = 100.0;
            let (mut o, mut h, mut l, mut c, mut v) = (vec![], vec![], vec![], vec![], vec![]);
            for _ in ts {
                let open = price;
                price += ((next() % 201) as f64 - 100.0) / 64.0;
                o.push(open);
                h.push(open.max(price) + 0.25);
                l.push(open.min(price) - 0.5);
                c.push(price);
                v.push(1000.0 + (next() % 500) as f64 * 0.125);
            }
            SymbolBars::from_vecs(ts.iter().map(|t| t * 60).collect(), o, h, l, c, v)
        })
        .collect()
}

/// Per symbol, per statistic, per bar: (value, prev, ready) read after the bar, fed one
/// bar at a time, with the resets.
type Readings = Vec<Vec<Vec<(u64, u64, bool)>>>;

fn reference(bars: &[SymbolBars]) -> Readings {
    bars.iter()
        .enumerate()
        .map(|(s, b)| {
            KINDS
                .iter()
                .enumerate()
                .map(|(k, &(kind, source))| {
                    let mut r = Rolling::new(kind, source).unwrap();
                    (0..b.len())
                        .map(|i| {
                            let (o, h, l, c, v) = b.ohlcv(i);
                            r.update(o, h, l, c, v);
                            if RESETS.contains(&(s, k, i)) {
                                r.reset();
                            }
                            (r.value().to_bits(), r.prev().to_bits(), r.is_ready())
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Declares `KINDS`, resets as `RESETS` says and checks every symbol's readings at
/// every tick against `want`.
struct Check<'a> {
    want: &'a Readings,
    ids: Vec<usize>,
    checked: usize,
}

impl Strategy for Check<'_> {
    fn init(&mut self, e: &mut Setup) -> Result<()> {
        let n = e.market().symbol_count();
        for &(kind, source) in &KINDS {
            let id = e.studies_mut().add_rolling(n, kind, source, None)?;
            self.ids.push(id);
        }
        Ok(())
    }

    fn on_bar(&mut self, e: &mut TickContext, s: usize) -> Result<()> {
        let i = e.bar_index(s).unwrap();
        for (k, &id) in self.ids.iter().enumerate() {
            if RESETS.contains(&(s, k, i)) {
                e.reset_study(id, s)?;
            }
        }
        Ok(())
    }

    fn on_tick(&mut self, e: &mut TickContext) -> Result<()> {
        for s in 0..self.want.len() {
            let bar = e.bar_index(s);
            for (k, &id) in self.ids.iter().enumerate() {
                let st = e.studies();
                let got = (
                    st.value(id, s, bar)?.to_bits(),
                    st.prev(id, s, bar)?.to_bits(),
                    st.is_ready(id, s, bar)?,
                );
                let want = bar.map_or((f64::NAN.to_bits(), f64::NAN.to_bits(), false), |i| {
                    self.want[s][k][i]
                });
                assert_eq!(got, want, "symbol {s} {:?} bar {bar:?}", KINDS[k].0);
                let (value, prev) = st.value_and_prev(id, s, bar).unwrap();
                assert_eq!((value.to_bits(), prev.to_bits()), (want.0, want.1));
                self.checked += 1;
            }
        }
        Ok(())
    }

    fn wants_ticks(&self) -> bool {
        true
    }
}

fn names() -> Vec<String> {
    (0..5).map(|s| format!("S{s}")).collect()
}

#[test]
fn every_reading_is_the_bar_by_bar_one_whatever_the_plan() {
    let bars = symbols();
    let want = reference(&bars);
    let market = Arc::new(Market::new(names(), bars).unwrap());
    for plan in [1, 2, 5, 16, 1024] {
        for maps in [true, false] {
            let mut e = Engine::new(Arc::clone(&market), Config::default()).unwrap();
            e.set_plan_ticks(plan);
            e.allow_market_maps(maps);
            let mut check = Check {
                want: &want,
                ids: Vec::new(),
                checked: 0,
            };
            e.run(&mut check).unwrap();
            assert_eq!(check.checked, market.timeline().len() * 5 * KINDS.len());
        }
    }
}

/// The bars of `b` with times in `from..to` (seconds).
fn between(b: &SymbolBars, from: i64, to: i64) -> SymbolBars {
    let (i, j) = (
        b.ts.partition_point(|&t| t < from),
        b.ts.partition_point(|&t| t < to),
    );
    SymbolBars::from_vecs(
        b.ts[i..j].to_vec(),
        b.open[i..j].to_vec(),
        b.high[i..j].to_vec(),
        b.low[i..j].to_vec(),
        b.close[i..j].to_vec(),
        b.volume[i..j].to_vec(),
    )
}

#[test]
fn a_streamed_run_reads_what_one_run_reads() {
    let bars = symbols();
    let want = reference(&bars);
    // Windows of 1, 13, 50 and 100 minutes (some with no bar of a symbol), keeping 3 or
    // 60 bars of each symbol's past.
    for (cuts, keep) in [
        (vec![0, 1, 14, 64, 164, TICKS], 3),
        (vec![0, 100, TICKS], 60),
    ] {
        for (plan, maps) in [
            (1, true),
            (4, true),
            (4, false),
            (1024, true),
            (1024, false),
        ] {
            let first = |s: &SymbolBars| between(s, cuts[0] * 60, cuts[1] * 60);
            let mut market = Arc::new(
                Market::window(
                    names(),
                    bars.iter().map(first).collect(),
                    Vec::new(),
                    vec![0; 5],
                    0,
                )
                .unwrap(),
            );
            let mut e = Engine::new(Arc::clone(&market), Config::default()).unwrap();
            e.set_plan_ticks(plan);
            e.allow_market_maps(maps);
            let mut check = Check {
                want: &want,
                ids: Vec::new(),
                checked: 0,
            };
            e.start(&mut check).unwrap();
            e.run_window(&mut check).unwrap();
            for w in cuts.windows(2).skip(1) {
                let new: Vec<SymbolBars> = bars
                    .iter()
                    .map(|b| between(b, w[0] * 60, w[1] * 60))
                    .collect();
                market = Arc::new(market.following(keep, &new).unwrap());
                let ends = vec![false; market.timeline().len()];
                e.next_window(Arc::clone(&market), ends, Vec::new())
                    .unwrap();
                e.run_window(&mut check).unwrap();
            }
            let ticks = bars
                .iter()
                .flat_map(|b| b.ts.iter().copied())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            assert_eq!(
                check.checked,
                ticks * 5 * KINDS.len(),
                "{cuts:?} plan {plan}"
            );
        }
    }
}

/// Declares candles whose buckets it gives per bar (as exchange-aligned ones are): hours.
struct Hours;

fn hour_buckets(bars: &[&SymbolBars]) -> (Vec<Vec<i64>>, Vec<Vec<i64>>) {
    let hour = 3_600_000_000_000;
    let labels: Vec<Vec<i64>> = bars
        .iter()
        .map(|b| b.ts.iter().map(|t| t - t.rem_euclid(hour)).collect())
        .collect();
    let ends = labels
        .iter()
        .map(|l| l.iter().map(|t| t + hour).collect())
        .collect();
    (labels, ends)
}

impl Strategy for Hours {
    fn init(&mut self, e: &mut Setup) -> Result<()> {
        let market = Arc::clone(e.market());
        let bars: Vec<_> = (0..market.symbol_count()).map(|s| market.bars(s)).collect();
        let (labels, ends) = hour_buckets(&bars);
        e.studies_mut()
            .add_given_timeframe(&bars, labels, ends, 3)?;
        Ok(())
    }
}

#[test]
fn a_window_must_bring_the_buckets_given_per_bar() {
    use crate::studies::GivenBuckets;

    let bars = symbols();
    let first = |s: &SymbolBars| between(s, 0, 60 * 60);
    let market = Market::window(
        names(),
        bars.iter().map(first).collect(),
        Vec::new(),
        vec![0; 5],
        0,
    );
    let market = Arc::new(market.unwrap());
    let mut e = Engine::new(Arc::clone(&market), Config::default()).unwrap();
    e.start(&mut Hours).unwrap();
    e.run_window(&mut Hours).unwrap();
    let new: Vec<SymbolBars> = bars.iter().map(|b| between(b, 60 * 60, 120 * 60)).collect();
    let next = Arc::new(market.following(3, &new).unwrap());
    let ends = vec![false; next.timeline().len()];
    let held: Vec<_> = (0..next.symbol_count()).map(|s| next.bars(s)).collect();
    // None given, or one bucket short for a symbol: refused, naming what is missing.
    let err = e
        .next_window(Arc::clone(&next), ends.clone(), Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("given per bar ([0])"), "{err}");
    let (mut labels, mut hours_end) = hour_buckets(&held);
    labels[0].pop();
    hours_end[0].pop();
    let short = vec![GivenBuckets {
        timeframe: 0,
        labels,
        ends: hours_end,
    }];
    let err = e
        .next_window(Arc::clone(&next), ends.clone(), short)
        .unwrap_err();
    assert!(err.to_string().contains("one entry per bar"), "{err}");
    let (labels, hours_end) = hour_buckets(&held);
    let given = vec![GivenBuckets {
        timeframe: 0,
        labels,
        ends: hours_end,
    }];
    e.next_window(Arc::clone(&next), ends, given).unwrap();
    e.run_window(&mut Hours).unwrap();
}
