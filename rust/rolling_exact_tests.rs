//! The exact window sum: every reading equals the exact sum of the window rounded once
//! (Shewchuk's expansion, checked itself on known cases and against exact integers),
//! whichever representation holds the window and however the values were pushed.

use super::*;

/// xorshift64*: reproducible pseudo-random numbers without a crate.
use crate::test_draws::XorShift;

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

/// A sweep's readings are `total as f64 / per` whichever path runs (on a CPU with wide
/// vectors, lanes proven without a division and lanes divided): random totals and
/// divisors, quotients at and next to powers of two, totals a hair from a tie between two
/// quotients, zeros, and every length of tail. With a window of 1 each total is the
/// count that entered; longer windows are covered by the tests of `WindowSum` below.
#[test]
fn readings_are_the_rounded_total_over_the_divisor() {
    let mut rng = XorShift(23);
    let check = |totals: &[i64], per: f64| {
        let counts: Vec<i64> = std::iter::once(7).chain(totals.iter().copied()).collect();
        let mut slots = vec![f64::NAN; totals.len()];
        let last = i64::sweep(&counts, 1, 7, &mut slots, per);
        assert_eq!(last, *totals.last().unwrap_or(&7));
        for (&t, got) in totals.iter().zip(&slots) {
            let want = t as f64 / per;
            assert_eq!(got.to_bits(), want.to_bits(), "total {t} over {per}");
        }
    };
    for round in 0..3000 {
        let n = match round % 4 {
            0 => 1 + rng.next_u64() % 40,
            1 => 1 + rng.next_u64() % 100_000,
            2 => 1 << (rng.next_u64() % 20),
            _ => 3,
        };
        let per = n as f64 * 2f64.powi((rng.next_u64() % 1001) as i32);
        let len = (rng.next_u64() % 40) as usize;
        let totals: Vec<i64> = (0..len)
            .map(|_| match rng.next_u64() % 4 {
                0 => 0,
                1 => (rng.next_u64() >> (2 + rng.next_u64() % 62)) as i64,
                2 => -((rng.next_u64() >> (2 + rng.next_u64() % 62)) as i64),
                _ => {
                    // A total next to `per` times a power of two, or to a midpoint
                    // between two quotients (the hard cases for a reciprocal).
                    let e = (rng.next_u64() % 40) as i32;
                    let q = 2f64.powi(e) * (1.0 + (rng.next_u64() % 8) as f64 * f64::EPSILON / 2.0);
                    let x = (q * per / 2f64.powi((rng.next_u64() % 1001) as i32)).min(4e18);
                    x as i64 + (rng.next_u64() % 5) as i64 - 2
                }
            })
            .collect();
        check(&totals, per);
    }
    // Midpoints exactly: x / 10 halfway between two floats needs x of 54 bits, so the
    // nearest totals that are floats sit just beside it.
    for m in [
        (1u64 << 52) + 1,
        (1 << 53) - 1,
        1 << 52,
        123_456_789_012_345,
    ] {
        let x = (m as f64 + 0.5) * 10.0;
        check(
            &[x as i64, x as i64 + 1, x as i64 - 1, x.next_up() as i64],
            10.0,
        );
    }
}

/// The plain loops (what a CPU without wide vectors runs) and the dispatching ones (wide
/// vectors where the CPU has them) give the same counts, fit verdicts, totals and
/// readings, equal to `Count::of` value by value and to the running sum step by step.
#[test]
fn plain_and_wide_loops_agree() {
    let mut rng = XorShift(31);
    for round in 0..400 {
        let len = (rng.next_u64() % 300) as usize;
        let k = (rng.next_u64() % 60) as i32;
        let scale = 2f64.powi(k);
        let window = 1 + (rng.next_u64() % 40) as usize;
        // As a window's unit allows: `window` counts of `bits` bits sum without overflow.
        let bits = 20 + (rng.next_u64() % (i64::value_bits(window) - 19) as u64) as i32;
        let xs: Vec<f64> = (0..len)
            .map(|i| {
                let v = (rng.next_u64() >> (64 - bits + (round % 3))) as f64;
                let x = if i % 2 == 0 { v } else { -v } / scale;
                // Now and then a value that does not fit (a finer digit, too large, far
                // too large, not a number), or a zero of either sign (they fit).
                match rng.next_u64() % 500 {
                    0 => x + 0.5 / scale,
                    1 => 2f64.powi(bits) / scale,
                    2 => -0.0,
                    3 => 0.0,
                    4 => -(2f64.powi(63)) / scale,
                    5 => 1e300,
                    6 => f64::NAN,
                    _ => x,
                }
            })
            .collect();
        let (mut plain, mut wide) = (vec![0i64; len], vec![0i64; len]);
        let fits = narrow_counts(&xs, &mut plain, scale, bits);
        assert_eq!(i64::of_all(&xs, &mut wide, k, scale, bits), fits);
        let each: Vec<Option<i64>> = xs.iter().map(|&x| i64::of(x, k, scale, bits)).collect();
        assert_eq!(fits, each.iter().all(Option::is_some));
        if !fits {
            continue;
        }
        assert_eq!(plain, wide);
        assert_eq!(plain, each.into_iter().flatten().collect::<Vec<_>>());
        let steps = len.saturating_sub(window);
        let per = (window as f64) * scale;
        let (mut a, mut b) = (vec![0.0; steps], vec![0.0; steps]);
        let total: i64 = plain[..window.min(len)].iter().sum();
        let ta = narrow_sweep(&plain, window, total, &mut a, per);
        let tb = i64::sweep(&plain, window, total, &mut b, per);
        assert_eq!(ta, tb);
        let mut running = total;
        for j in 0..steps {
            running += plain[window + j] - plain[j];
            assert_eq!(a[j].to_bits(), (running as f64 / per).to_bits());
            assert_eq!(a[j].to_bits(), b[j].to_bits());
        }
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

thread_local! {
    /// Chunks two sums fed together counted once (`WindowSum::push_all_pair`).
    pub(super) static SHARED_CHUNKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Two sums fed the same values together (one pass where they can share it) read, after
/// every value, the exact sum of each one's window rounded once — whichever window is
/// the longer, in blocks of any length, when one of them forgets its window in between
/// (the two then differ until the shorter one's values are the longer one's last again),
/// and when each alone would count in another unit. The pass is shared (most chunks of
/// the prices), also where the shorter window had to be moved to the longer one's unit.
#[test]
fn two_sums_fed_together_read_what_each_reads_alone() {
    let unit = |w: &WindowSum| match &w.counts {
        Counts::Narrow(f) => Some(f.k),
        _ => None,
    };
    for name in SERIES {
        let data = series(name, 1500);
        for (wa, wb) in [(10, 30), (30, 10), (10, 50), (1, 1000), (7, 7), (257, 3)] {
            let (da, db) = (wa as f64, 1.0);
            let (mut a, mut b) = (WindowSum::new(wa, da), WindowSum::new(wb, db));
            let (mut got_a, mut got_b) = (vec![0.0; data.len()], vec![0.0; data.len()]);
            // Where each forgets its window (after the value at that index).
            let (clears_a, clears_b) = ([200usize, 201, 900], [450usize, 1100]);
            let (mut from_a, mut from_b) = (0, 0);
            let mut lengths = [300usize, 1, 7, 513, 64, 2].into_iter().cycle();
            let before = SHARED_CHUNKS.with(|n| n.get());
            let mut at = 0;
            while at < data.len() {
                let mut end = (at + lengths.next().unwrap()).min(data.len());
                // A block ends at each clear.
                if let Some(&c) = clears_a.iter().chain(&clears_b).filter(|&&c| c >= at).min() {
                    end = end.min(c + 1);
                }
                let (out_a, out_b) = (&mut got_a[at..end], &mut got_b[at..end]);
                WindowSum::push_all_pair(&mut a, &mut b, &data[at..end], out_a, out_b);
                if clears_a.contains(&(end - 1)) {
                    a.clear();
                    from_a = end;
                }
                if clears_b.contains(&(end - 1)) {
                    b.clear();
                    from_b = end;
                }
                at = end;
            }
            let shared = SHARED_CHUNKS.with(|n| n.get()) - before;
            let mut expected_from = (0, 0);
            for i in 0..data.len() {
                for (window, divisor, got, from, label) in [
                    (wa, da, &got_a, &mut expected_from.0, "a"),
                    (wb, db, &got_b, &mut expected_from.1, "b"),
                ] {
                    let clears = if label == "a" {
                        &clears_a[..]
                    } else {
                        &clears_b[..]
                    };
                    if i > 0 && clears.contains(&(i - 1)) {
                        *from = i;
                    }
                    let w = &data[(i + 1).saturating_sub(window).max(*from)..=i];
                    let want = exact_sum(w.iter().copied()) / divisor;
                    let what = format!("{name} windows {wa}/{wb}: {label} at value {i}");
                    assert_eq!(got[i].to_bits(), want.to_bits(), "{what}");
                }
            }
            assert_eq!(expected_from, (from_a, from_b));
            // (A window of 1,000 full-precision prices needs 128-bit counts.)
            if matches!(name, "cents" | "drift") && wa.max(wb) <= 257 {
                assert!(shared > 0, "{name} windows {wa}/{wb}: never shared");
            }
            if (name, wa, wb) == ("cents", 10, 50) {
                // Alone, the two would count in different units; together, in one.
                let (mut alone_a, mut alone_b) = (WindowSum::new(wa, da), WindowSum::new(wb, db));
                for &x in &data {
                    alone_a.push(x);
                    alone_b.push(x);
                }
                assert_ne!(unit(&alone_a), unit(&alone_b));
                assert_eq!(unit(&a), unit(&b));
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
