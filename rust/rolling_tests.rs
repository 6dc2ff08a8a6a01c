//! Tests of [`super::Rolling`]: every kind against its definition written out naively
//! (recomputed from all bars so far), readiness, errors and reset.

use super::*;

use crate::test_draws::XorShift;

#[derive(Clone, Copy)]
struct Bar {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

/// A random walk of plausible bars: gaps between close and next open, wicks, volume.
fn random_bars(seed: u64, len: usize) -> Vec<Bar> {
    let mut rng = XorShift(seed);
    let mut close = 100.0;
    (0..len)
        .map(|_| {
            let open = close + (rng.unit() - 0.5) * 0.5;
            close = open + (rng.unit() - 0.5) * 2.0;
            let high = open.max(close) + rng.unit();
            let low = open.min(close) - rng.unit();
            // Some unchanged closes, so Rsi sees zero changes.
            if rng.unit() < 0.05 {
                close = open;
            }
            Bar {
                open,
                high,
                low,
                close,
                volume: (rng.unit() * 1000.0).floor(),
            }
        })
        .collect()
}

fn column(bars: &[Bar], source: Source) -> Vec<f64> {
    bars.iter()
        .map(|b| source.pick(b.open, b.high, b.low, b.close, b.volume))
        .collect()
}

/// Wilder average of `xs` written out from scratch: NaN before n inputs.
fn naive_wilder(xs: &[f64], n: usize) -> f64 {
    if xs.len() < n {
        return f64::NAN;
    }
    let mut avg = xs[..n].iter().sum::<f64>() / n as f64;
    for &x in &xs[n..] {
        avg = (avg * (n - 1) as f64 + x) / n as f64;
    }
    avg
}

/// The statistic over `bars` (all bars so far), recomputed from nothing.
fn naive(kind: RollingKind, source: Source, bars: &[Bar]) -> f64 {
    let xs = column(bars, source);
    let n = kind.window();
    let last = &xs[xs.len().saturating_sub(n)..];
    let full = xs.len() >= n;
    match kind {
        RollingKind::Sum(_) if full => last.iter().sum(),
        RollingKind::Mean(_) if full => last.iter().sum::<f64>() / n as f64,
        RollingKind::Min(_) if full => last.iter().cloned().fold(f64::INFINITY, f64::min),
        RollingKind::Max(_) if full => last.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        RollingKind::Std(_) if full => {
            let mean = last.iter().sum::<f64>() / n as f64;
            let sq: f64 = last.iter().map(|x| (x - mean) * (x - mean)).sum();
            (sq / (n - 1) as f64).sqrt()
        }
        RollingKind::Ema(_) if full => {
            // pandas' adjust=False weights, written out: (1-α)^t·x0 + Σ α(1-α)^(t-i)·xi.
            let alpha = 2.0 / (n as f64 + 1.0);
            let t = xs.len() - 1;
            let mut y = (1.0 - alpha).powi(t as i32) * xs[0];
            for (i, x) in xs.iter().enumerate().skip(1) {
                y += alpha * (1.0 - alpha).powi((t - i) as i32) * x;
            }
            y
        }
        RollingKind::Rsi(_) => {
            let changes: Vec<f64> = xs.windows(2).map(|w| w[1] - w[0]).collect();
            let gains: Vec<f64> = changes.iter().map(|d| d.max(0.0)).collect();
            let losses: Vec<f64> = changes.iter().map(|d| (-d).max(0.0)).collect();
            let (gain, loss) = (naive_wilder(&gains, n), naive_wilder(&losses, n));
            if gain.is_nan() {
                f64::NAN
            } else if loss == 0.0 {
                if gain == 0.0 {
                    50.0
                } else {
                    100.0
                }
            } else {
                100.0 - 100.0 / (1.0 + gain / loss)
            }
        }
        RollingKind::Atr(_) => {
            let ranges: Vec<f64> = bars
                .iter()
                .enumerate()
                .map(|(i, b)| match i {
                    0 => b.high - b.low,
                    _ => {
                        let pc = bars[i - 1].close;
                        (b.high - b.low)
                            .max((b.high - pc).abs())
                            .max((b.low - pc).abs())
                    }
                })
                .collect();
            naive_wilder(&ranges, n)
        }
        _ => f64::NAN,
    }
}

fn all_kinds(n: usize) -> Vec<RollingKind> {
    let mut kinds = vec![
        RollingKind::Sum(n),
        RollingKind::Mean(n),
        RollingKind::Min(n),
        RollingKind::Max(n),
        RollingKind::Ema(n),
        RollingKind::Rsi(n),
        RollingKind::Atr(n),
    ];
    if n >= 2 {
        kinds.push(RollingKind::Std(n));
    }
    kinds
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn every_kind_matches_its_naive_definition() {
    let bars = random_bars(1, 600);
    for n in [1, 2, 3, 14, 50, 599, 600, 601, 1000] {
        for kind in all_kinds(n) {
            for source in [Source::Close, Source::High, Source::Volume] {
                let mut rolling = Rolling::new(kind, source).unwrap();
                let mut before = f64::NAN;
                for (i, b) in bars.iter().enumerate() {
                    rolling.update(b.open, b.high, b.low, b.close, b.volume);
                    let want = naive(kind, source, &bars[..=i]);
                    let got = rolling.value();
                    assert!(
                        same(got, want),
                        "{kind:?} {source:?} bar {i}: {got} vs {want}"
                    );
                    assert_eq!(rolling.is_ready(), !want.is_nan(), "{kind:?} bar {i}");
                    assert_eq!(rolling.prev().to_bits(), before.to_bits());
                    assert_eq!(rolling.count(), i + 1);
                    before = got;
                }
            }
        }
    }
}

#[test]
fn readiness_follows_the_documented_counts() {
    let bars = random_bars(2, 10);
    // Bars fed when the statistic first became ready; its `prev` is still NaN then.
    let first_ready = |kind| {
        let mut rolling = Rolling::new(kind, Source::Close).unwrap();
        for b in &bars {
            rolling.update(b.open, b.high, b.low, b.close, b.volume);
            if rolling.is_ready() {
                assert!(rolling.prev().is_nan() && !rolling.value().is_nan());
                return Some(rolling.count());
            }
        }
        None
    };
    for kind in [
        RollingKind::Sum(4),
        RollingKind::Std(4),
        RollingKind::Ema(4),
        RollingKind::Atr(4),
    ] {
        assert_eq!(first_ready(kind), Some(4), "{kind:?}");
    }
    assert_eq!(first_ready(RollingKind::Rsi(4)), Some(5));
    assert_eq!(first_ready(RollingKind::Max(11)), None);
}

#[test]
fn windows_too_small_are_refused_with_the_rule() {
    for kind in all_kinds(0) {
        let err = Rolling::new(kind, Source::Close).unwrap_err();
        assert!(
            err.contains(kind.name()) && err.contains("at least 1"),
            "{err}"
        );
    }
    let err = Rolling::new(RollingKind::Std(1), Source::Close).unwrap_err();
    assert!(
        err.contains("Std") && err.contains("at least 2") && err.contains("ddof"),
        "{err}"
    );
    assert!(Rolling::new(RollingKind::Std(2), Source::Close).is_ok());
}

#[test]
fn reset_mid_stream_behaves_as_new() {
    let bars = random_bars(3, 300);
    for kind in all_kinds(20) {
        let mut reused = Rolling::new(kind, Source::Low).unwrap();
        for b in &bars[..137] {
            reused.update(b.open, b.high, b.low, b.close, b.volume);
        }
        reused.reset();
        assert!(reused.value().is_nan() && reused.prev().is_nan() && reused.count() == 0);
        let mut fresh = Rolling::new(kind, Source::Low).unwrap();
        for b in &bars[137..] {
            reused.update(b.open, b.high, b.low, b.close, b.volume);
            fresh.update(b.open, b.high, b.low, b.close, b.volume);
            assert_eq!(
                reused.value().to_bits(),
                fresh.value().to_bits(),
                "{kind:?}"
            );
            assert_eq!(reused.prev().to_bits(), fresh.prev().to_bits(), "{kind:?}");
            assert_eq!(reused.is_ready(), fresh.is_ready());
        }
    }
}

#[test]
fn rsi_extremes() {
    let rsi_of = |closes: &[f64]| {
        let mut rsi = Rolling::new(RollingKind::Rsi(3), Source::Close).unwrap();
        for &c in closes {
            rsi.update(c, c, c, c, 0.0);
        }
        rsi.value()
    };
    assert_eq!(rsi_of(&[5.0, 5.0, 5.0, 5.0]), 50.0);
    assert_eq!(rsi_of(&[1.0, 2.0, 3.0, 4.0]), 100.0);
    assert_eq!(rsi_of(&[4.0, 3.0, 2.0, 1.0]), 0.0);
    assert!(rsi_of(&[1.0, 2.0, 3.0]).is_nan());
}
