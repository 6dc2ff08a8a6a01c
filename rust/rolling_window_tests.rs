//! Tests of the window accumulators against naive window recomputation, and of their
//! accuracy over long runs and tiny variances against exact integer arithmetic.

use super::*;

/// xorshift64*: reproducible pseudo-random numbers without a crate.
use crate::test_draws::XorShift;

fn naive_variance(window: &[f64]) -> f64 {
    let n = window.len() as f64;
    let mean = window.iter().sum::<f64>() / n;
    let dev: f64 = window.iter().map(|x| x - mean).sum();
    let sq: f64 = window.iter().map(|x| (x - mean) * (x - mean)).sum();
    // Corrected two-pass (Chan, Golub & LeVeque): removes the mean's rounding error.
    (sq - dev * dev / n) / (n - 1.0)
}

fn close(got: f64, want: f64, rel: f64, scale: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(scale)
}

/// Every accumulator against a naive recomputation of the window, after every push.
#[test]
fn accumulators_match_naive_windows() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let data: Vec<f64> = (0..3000).map(|_| (rng.unit() - 0.5) * 200.0).collect();
    for window in [1, 2, 3, 7, 50, 401, 2999, 3000, 5000] {
        let mut min = WindowExtreme::new(window, false);
        let mut max = WindowExtreme::new(window, true);
        let mut var = WindowVariance::new(window);
        for (i, &x) in data.iter().enumerate() {
            min.push(x);
            max.push(x);
            var.push(x);
            let w = &data[(i + 1).saturating_sub(window)..=i];
            assert_eq!(
                min.extreme(),
                w.iter().cloned().fold(f64::INFINITY, f64::min)
            );
            assert_eq!(
                max.extreme(),
                w.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            );
            if w.len() >= 2 {
                let want = naive_variance(w);
                assert!(
                    close(var.variance(), want, 1e-10, 0.0),
                    "var w={window} i={i}"
                );
            } else {
                assert!(var.variance().is_nan());
            }
        }
    }
}

/// Ties and plateaus must not confuse the monotonic deque.
#[test]
fn extremes_with_repeated_values() {
    let data = [3.0, 3.0, 1.0, 1.0, 1.0, 5.0, 5.0, 2.0, 2.0, 2.0, 2.0, 0.0];
    let mut min = WindowExtreme::new(3, false);
    let mut max = WindowExtreme::new(3, true);
    for (i, &x) in data.iter().enumerate() {
        min.push(x);
        max.push(x);
        let w = &data[(i + 1).saturating_sub(3)..=i];
        assert_eq!(
            min.extreme(),
            w.iter().cloned().fold(f64::INFINITY, f64::min)
        );
        assert_eq!(
            max.extreme(),
            w.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        );
    }
}

/// A window of equal values has variance exactly 0, also after a noisy stretch.
#[test]
fn constant_window_has_zero_variance() {
    let mut var = WindowVariance::new(4);
    for x in [
        10_000.1, 9_999.7, 10_000.3, 10_000.2, 10_000.2, 10_000.2, 10_000.2,
    ] {
        var.push(x);
    }
    assert_eq!(var.variance(), 0.0);
    var.push(10_000.25);
    assert!(var.variance() > 0.0);
}

/// Prices near 5000 moving by ~1e-6: the variance is ~1e-20 of the mean squared,
/// far below what sum-of-squares formulas can see. Values sit on a 2^-30 grid so an
/// exact integer reference exists.
#[test]
fn tiny_variance_around_large_prices() {
    let mut rng = XorShift(7);
    let grid = (2.0f64).powi(-30);
    let mut ticks: i64 = 5000 << 30;
    let mut var = WindowVariance::new(64);
    let mut history = Vec::new();
    for i in 0..20_000 {
        ticks += (rng.next_u64() % 2001) as i64 - 1000;
        if i == 10_000 {
            ticks += 3000 << 30; // a gap, as after a halt
        }
        history.push(ticks);
        var.push(ticks as f64 * grid);
        let w = &history[history.len().saturating_sub(64)..];
        if w.len() >= 2 {
            let want = exact_variance(w) * grid * grid;
            assert!(
                close(var.variance(), want, 1e-9, 0.0),
                "i={i} {} vs {want}",
                var.variance()
            );
        }
    }
}

/// Exact sample variance of integers, rounded once.
fn exact_variance(ticks: &[i64]) -> f64 {
    let n = ticks.len() as i128;
    let s1: i128 = ticks.iter().map(|&t| t as i128).sum();
    let s2: i128 = ticks.iter().map(|&t| (t as i128) * (t as i128)).sum();
    // n·Σt² − (Σt)² is exact in i128 for these magnitudes.
    (n * s2 - s1 * s1) as f64 / (n * (n - 1)) as f64
}

/// A million full-precision prices near 1e4 with small moves: the variance must not
/// drift. Every f64 in [8192, 16384) is an integer multiple of
/// 2^-39, so exact integer window sums serve as the reference at every push.
#[test]
fn no_drift_over_a_million_values() {
    let mut rng = XorShift(42);
    let ulp = (2.0f64).powi(-39);
    let window = 500;
    let mut var = WindowVariance::new(window);
    let mut ring = vec![0i128; window];
    let (mut s1, mut s2): (i128, i128) = (0, 0);
    let mut price = 10_000.0f64;
    for i in 0..1_000_000usize {
        price = (price + (rng.unit() - 0.5) * 0.01).clamp(9_000.0, 11_000.0);
        let ticks = (price / ulp) as i128;
        assert_eq!(ticks as f64 * ulp, price);
        let old = ring[i % window];
        if i >= window {
            s1 -= old;
            s2 -= old * old;
        }
        ring[i % window] = ticks;
        s1 += ticks;
        s2 += ticks * ticks;
        var.push(price);
        let n = (i + 1).min(window) as i128;
        if n >= 2 && i % 97 == 0 {
            let want_var = (n * s2 - s1 * s1) as f64 / (n * (n - 1)) as f64 * ulp * ulp;
            assert!(close(var.variance(), want_var, 1e-10, 0.0), "var i={i}");
        }
    }
}

#[test]
fn clear_forgets_everything() {
    let mut max = WindowExtreme::new(3, true);
    let mut var = WindowVariance::new(3);
    for x in [100.0, 5.0, 7.0, 1.0] {
        max.push(x);
        var.push(x);
    }
    max.clear();
    var.clear();
    assert!(max.extreme().is_nan() && var.variance().is_nan());
    for x in [2.0, 4.0] {
        max.push(x);
        var.push(x);
    }
    assert_eq!((max.extreme(), var.variance()), (4.0, 2.0));
}
