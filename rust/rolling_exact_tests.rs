//! The exact window sum: every reading equals the exact sum of the window rounded once
//! (Shewchuk's expansion, checked itself on known cases and against exact integers),
//! whichever representation holds the window and however the values were pushed.

use super::*;

/// xorshift64*: reproducible pseudo-random numbers without a crate.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn exact_sum_rounds_the_exact_sum_once() {
    assert_eq!(exact_sum([0.1; 10].into_iter()), 1.0);
    assert_eq!(exact_sum([1e100, 1.0, -1e100].into_iter()), 1.0);
    // The 1e-16 makes 1 closer to 2 than to 0 in the last digit: ties need all partials.
    assert_eq!(
        exact_sum([1e-16, 1.0, 1e16].into_iter()),
        10000000000000002.0
    );
    assert_eq!(
        exact_sum([2.0f64.powi(-1074), 1e308, -1e308].into_iter()),
        2.0f64.powi(-1074)
    );
    assert_eq!(exact_sum(std::iter::empty()).to_bits(), 0.0f64.to_bits());
    assert_eq!(
        exact_sum([-0.0, 3.0, -3.0].into_iter()).to_bits(),
        0.0f64.to_bits()
    );
    // Against exact integers: multiples of 2^-40 summed in i128, rounded once.
    let mut rng = XorShift(5);
    let unit = 2.0f64.powi(-40);
    for _ in 0..2000 {
        let ticks: Vec<i64> = (0..(1 + rng.next_u64() % 60))
            .map(|_| (rng.next_u64() >> 10) as i64 - (1 << 53))
            .collect();
        let values = ticks.iter().map(|&t| t as f64 * unit);
        let exact: i128 = ticks.iter().map(|&t| i128::from(t)).sum();
        assert_eq!(exact_sum(values), exact as f64 * unit);
    }
}

#[test]
fn counts_round_like_the_conversion_of_the_standard_library() {
    let mut rng = XorShift(11);
    for _ in 0..100_000 {
        let v = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) as i128;
        let v = v >> (rng.next_u64() % 127);
        assert_eq!(v.round().to_bits(), (v as f64).to_bits(), "{v}");
    }
    for v in [
        i128::MAX,
        i128::MIN + 1,
        (1 << 64) + 1,
        -(1 << 63) - 1,
        (1 << 117) + (1 << 63),
    ] {
        assert_eq!(v.round().to_bits(), (v as f64).to_bits(), "{v}");
    }
}

/// Series of the kinds rolling sums see, and ones that force every representation.
fn series(name: &str, len: usize) -> Vec<f64> {
    let mut rng = XorShift(name.len() as u64 * 7919 + 3);
    let mut price = 100.0f64;
    (0..len)
        .map(|i| match name {
            // Two-decimal prices wandering across binades (ties, zeros of the cents).
            "cents" => {
                price = (price + (rng.unit() - 0.5) * 3.0).max(0.01);
                (price * 100.0).round() / 100.0
            }
            // Full-precision prices falling from 100 to ~3 and back: the unit moves.
            "drift" => 100.0 * (1.0 + 0.99 * (i as f64 / 300.0).sin()) * (1.0 + rng.unit() * 1e-3),
            // Fractional volumes over six orders of magnitude: 128-bit counts.
            "volume" => (rng.unit() * 20.0 - 10.0).exp2(),
            // Now and then a value far from the others: the window goes broad or wide, then back.
            "outliers" => match i % 97 {
                0 => 1e-30 * rng.unit(),
                25 => 1e-9 * (1.0 + rng.unit()),
                50 => 1e25 * (1.0 + rng.unit()),
                _ => (rng.unit() - 0.5) * 200.0,
            },
            // Signs, zeros, huge and tiny values together.
            "wild" => {
                let sign = if rng.next_u64().is_multiple_of(2) {
                    1.0
                } else {
                    -1.0
                };
                match rng.next_u64() % 5 {
                    0 => 0.0,
                    1 => sign * rng.unit() * 1e300,
                    2 => sign * rng.unit() * 1e-300,
                    3 => sign * 2.0f64.powi(-1074) * (rng.next_u64() % 9) as f64,
                    _ => sign * rng.unit(),
                }
            }
            _ => unreachable!(),
        })
        .collect()
}

const SERIES: [&str; 5] = ["cents", "drift", "volume", "outliers", "wild"];

/// After every push, the reading is the exact sum of the window rounded once (over the
/// divisor); pushed one by one or in blocks of any length, the same bits.
#[test]
fn every_reading_is_the_exact_window_sum_rounded_once() {
    for name in SERIES {
        let data = series(name, 1500);
        for window in [1, 2, 3, 10, 30, 257, 1000] {
            for divisor in [1.0, window as f64] {
                let mut one = WindowSum::new(window, divisor);
                let mut blocks = WindowSum::new(window, divisor);
                let mut got = vec![0.0; data.len()];
                let mut at = 0;
                let mut lengths = [1usize, 7, 300, 64, 1, 2, 513].into_iter().cycle();
                while at < data.len() {
                    let end = (at + lengths.next().unwrap()).min(data.len());
                    blocks.push_all(&data[at..end], &mut got[at..end]);
                    at = end;
                }
                for (i, &x) in data.iter().enumerate() {
                    one.push(x);
                    let w = &data[(i + 1).saturating_sub(window)..=i];
                    let want = exact_sum(w.iter().copied()) / divisor;
                    let what = format!("{name} window {window} divisor {divisor} value {i}");
                    assert_eq!(one.reading().to_bits(), want.to_bits(), "{what}");
                    assert_eq!(got[i].to_bits(), want.to_bits(), "{what} (blocks)");
                }
            }
        }
    }
}

/// The representations the series above are meant to reach are reached (so the test
/// covers each), and a window that went wide comes back to 64-bit counts.
#[test]
fn each_representation_is_used_and_left() {
    let kind = |w: &WindowSum| match w.counts {
        Counts::Narrow(_) => "narrow",
        Counts::Broad(_) => "broad",
        Counts::Wide(_) => "wide",
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut sum = WindowSum::new(30, 30.0);
    for x in series("outliers", 2000) {
        sum.push(x);
        seen.insert(kind(&sum));
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    for x in series("cents", 100) {
        sum.push(x);
    }
    assert_eq!(kind(&sum), "narrow");
    let mut volume = WindowSum::new(20, 20.0);
    for x in series("volume", 500) {
        volume.push(x);
    }
    assert_eq!(kind(&volume), "broad");
}

/// A million full-precision prices near 1e4 with small moves: every reading is the
/// exact window sum (multiples of 2^-39 summed in i128) rounded once — no drift.
#[test]
fn no_drift_over_a_million_values() {
    let mut rng = XorShift(42);
    let ulp = 2.0f64.powi(-39);
    let window = 500;
    let mut sum = WindowSum::new(window, 1.0);
    let mut ring = vec![0i128; window];
    let mut exact: i128 = 0;
    let mut price = 10_000.0f64;
    for i in 0..1_000_000usize {
        price = (price + (rng.unit() - 0.5) * 0.01).clamp(9_000.0, 11_000.0);
        let ticks = (price / ulp) as i128;
        exact += ticks - ring[i % window];
        ring[i % window] = ticks;
        sum.push(price);
        assert_eq!(sum.reading(), exact as f64 * ulp, "value {i}");
    }
}

#[test]
fn clear_forgets_everything() {
    let mut sum = WindowSum::new(3, 1.0);
    for x in [1e30, 5.0, 7.0, 1.0] {
        sum.push(x);
    }
    sum.clear();
    assert_eq!(sum.reading(), 0.0);
    for x in [2.0, 4.0] {
        sum.push(x);
    }
    assert_eq!(sum.reading(), 6.0);
}
