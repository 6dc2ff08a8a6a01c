//! The exact window sum behind `Sum` and `Mean`: the sum of the last `window` values is
//! kept exactly, and a reading is that exact sum rounded once to the nearest f64
//! (`Sum`), or that rounded sum divided by the window (`Mean`, one more correctly
//! rounded operation): `math.fsum(window)` and `math.fsum(window) / n` in Python.
//!
//! Why exact: a reading is then a function of the window's values alone — not of the
//! order they were added in, of how many bars came before, of where a block or a
//! streamed window began, or of which way the sums were computed — so results are bit
//! for bit the same in every path, and nothing drifts over millions of bars.
//!
//! How: every finite f64 is an integer count of some power of two (`x = v · 2^-k`).
//! Prices of one symbol share a few binades, so one unit `2^-k` makes every value of the
//! window an integer `v` that fits in 64 bits (`Fixed<i64>`); adding the new value's
//! count and subtracting the leaving one's is then exact integer arithmetic, a few
//! instructions per bar with no dependency on the previous rounding. A window whose
//! values span too many binades for 64 bits uses 128-bit counts (`Fixed<i128>`, e.g.
//! fractional crypto volumes), and a window no 128-bit count can hold (values apart by
//! more than ~2^60, or beyond 2^120) is summed value by value with an exact
//! floating-point expansion (`exact_sum`, Shewchuk's algorithm) at O(window) per bar.
//! Which of the three is in use changes nothing in the readings; the unit and the
//! representation are chosen again whenever a value does not fit (and a wider one is
//! narrowed back once the window allows it).

/// The largest unit exponent used: `2^-k`, `window · 2^k` and the readings stay normal
/// floats, so scaling by powers of two is exact.
const MAX_UNIT: i32 = 1000;

/// Bars kept beyond the window in a count buffer before it is compacted (one block of
/// the market phase fits without compacting in between).
const SLACK: usize = 256;

/// Bits of an integer's magnitude (0 for 0).
fn bit_len(v: u128) -> i32 {
    (128 - v.leading_zeros()) as i32
}

/// `ceil(log2(n))` for n ≥ 1.
fn ceil_log2(n: usize) -> i32 {
    (usize::BITS - (n.max(1) - 1).leading_zeros()) as i32
}

/// A finite f64 as `±m · 2^q` with `m` odd (None for ±0): the unit it needs is
/// `2^q` (so `k ≥ -q`), and its magnitude is below `2^(bits(m) + q)`.
fn split(x: f64) -> Option<(u64, i32)> {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (m, q) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp - 1075)
    };
    (m != 0).then(|| {
        let tz = m.trailing_zeros();
        (m >> tz, q + tz as i32)
    })
}

/// The integer counts a window is kept in.
pub(super) trait Count: Copy + Default + std::fmt::Debug {
    /// Bits a value's count may have so that `window` of them sum without overflow.
    fn value_bits(window: usize) -> i32;
    /// `x · 2^k` when that is an integer of at most `bits` bits.
    fn of(x: f64, k: i32, scale: f64, bits: i32) -> Option<Self>;
    fn wrapping_add(self, other: Self) -> Self;
    fn wrapping_sub(self, other: Self) -> Self;
    /// The count as the nearest f64 (ties to even): exact for a value's count.
    fn round(self) -> f64;
}

impl Count for i64 {
    fn value_bits(window: usize) -> i32 {
        62 - ceil_log2(window)
    }

    #[inline(always)]
    fn of(x: f64, _k: i32, scale: f64, bits: i32) -> Option<Self> {
        let y = x * scale;
        let v = truncate(y);
        let fits = v.unsigned_abs() < 1u64 << bits;
        (v as f64 == y && fits).then_some(v)
    }

    #[inline(always)]
    fn wrapping_add(self, other: Self) -> Self {
        i64::wrapping_add(self, other)
    }

    #[inline(always)]
    fn wrapping_sub(self, other: Self) -> Self {
        i64::wrapping_sub(self, other)
    }

    #[inline(always)]
    fn round(self) -> f64 {
        self as f64
    }
}

impl Count for i128 {
    fn value_bits(window: usize) -> i32 {
        126 - ceil_log2(window)
    }

    fn of(x: f64, k: i32, _scale: f64, bits: i32) -> Option<Self> {
        let Some((m, q)) = split(x) else {
            return Some(0);
        };
        let shift = q + k;
        if shift < 0 || bit_len(m.into()) + shift > bits {
            return None;
        }
        let v = i128::from(m) << shift;
        Some(if x < 0.0 { -v } else { v })
    }

    #[inline(always)]
    fn wrapping_add(self, other: Self) -> Self {
        i128::wrapping_add(self, other)
    }

    #[inline(always)]
    fn wrapping_sub(self, other: Self) -> Self {
        i128::wrapping_sub(self, other)
    }

    fn round(self) -> f64 {
        if let Ok(small) = i64::try_from(self) {
            return small as f64;
        }
        // Keep the top 63 bits and fold the rest into a sticky bit: one correctly
        // rounded conversion of those, then an exact scaling by a power of two.
        let a = self.unsigned_abs();
        let drop = 65 - a.leading_zeros();
        let sticky = u64::from(a & ((1 << drop) - 1) != 0);
        let top = (a >> drop) as u64 | sticky;
        let scaled = top as i64 as f64 * f64::from_bits(u64::from(1023 + drop) << 52);
        if self < 0 {
            -scaled
        } else {
            scaled
        }
    }
}

/// `y` truncated to an i64; out of range or NaN gives a value whose round trip fails
/// (`i64::MIN`), without the saturation code of `as`.
#[inline(always)]
fn truncate(y: f64) -> i64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_cvttsd_si64, _mm_set_sd};
        // SAFETY: SSE2 is part of x86_64; out of range gives i64::MIN, never UB.
        unsafe { _mm_cvttsd_si64(_mm_set_sd(y)) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        y as i64
    }
}

/// The window as integer counts of `2^-k`: `counts[len - window..]` are the last
/// `window` values (zeros stand for values not fed yet), `total` their sum (exact:
/// every count has at most `bits` bits, so `window` of them cannot overflow, and
/// wrapping arithmetic gives the exact sum of the window whatever happened before).
#[derive(Clone, Debug)]
pub(super) struct Fixed<T: Count> {
    k: i32,
    scale: f64,
    bits: i32,
    /// `divisor · 2^k`: a reading is `round(total) / per`.
    per: f64,
    counts: Vec<T>,
    total: T,
}

impl<T: Count> Fixed<T> {
    /// The window `values` (oldest first, `window` of them) in units of `2^-k`, or None
    /// when one does not fit.
    fn new(values: &[f64], k: i32, divisor: f64) -> Option<Self> {
        let window = values.len();
        let scale = f64::from_bits(((1023 + k) as u64) << 52);
        let bits = T::value_bits(window);
        let mut counts = Vec::with_capacity(2 * window + SLACK);
        let mut total = T::default();
        for &x in values {
            let v = T::of(x, k, scale, bits)?;
            counts.push(v);
            total = total.wrapping_add(v);
        }
        Some(Self {
            k,
            scale,
            bits,
            per: divisor * scale,
            counts,
            total,
        })
    }

    #[inline]
    fn reading(&self) -> f64 {
        self.total.round() / self.per
    }

    /// Make room for `more` counts after the window.
    #[inline]
    fn room(&mut self, window: usize, more: usize) {
        if self.counts.len() + more > self.counts.capacity() {
            let len = self.counts.len();
            self.counts.copy_within(len - window.., 0);
            self.counts.truncate(window);
            self.counts.reserve(window + more.max(SLACK));
        }
    }

    /// Push `x` if it fits the unit; false (and nothing changed) otherwise.
    #[inline]
    fn push(&mut self, window: usize, x: f64) -> bool {
        let Some(v) = T::of(x, self.k, self.scale, self.bits) else {
            return false;
        };
        self.room(window, 1);
        let leaving = self.counts[self.counts.len() - window];
        self.counts.push(v);
        self.total = self.total.wrapping_add(v.wrapping_sub(leaving));
        true
    }

    /// Push all of `xs` and write the reading after each into `out`, if every value fits
    /// the unit; false (and nothing changed) otherwise.
    fn push_all(&mut self, window: usize, xs: &[f64], out: &mut [f64]) -> bool {
        self.room(window, xs.len());
        let start = self.counts.len();
        let (k, scale, bits) = (self.k, self.scale, self.bits);
        let mut fits = true;
        self.counts.extend(xs.iter().map(|&x| {
            let v = T::of(x, k, scale, bits);
            fits &= v.is_some();
            v.unwrap_or_default()
        }));
        if !fits {
            self.counts.truncate(start);
            return false;
        }
        // Running totals first (one integer add per bar), then the divisions in a
        // separate loop the compiler vectorises.
        let mut total = self.total;
        let counts = &self.counts[start - window..];
        for ((slot, &new), &leaving) in out.iter_mut().zip(&counts[window..]).zip(counts) {
            total = total.wrapping_add(new.wrapping_sub(leaving));
            *slot = total.round();
        }
        self.total = total;
        let per = self.per;
        for slot in out.iter_mut() {
            *slot /= per;
        }
        true
    }

    /// The window's values as fed, oldest first.
    fn values(&self, window: usize) -> impl Iterator<Item = f64> + '_ {
        let unscale = f64::from_bits(((1023 - self.k) as u64) << 52);
        self.counts[self.counts.len() - window..]
            .iter()
            .map(move |v| v.round() * unscale)
    }
}

/// A window no 128-bit count holds: its values as fed, each reading an exact sum of them.
#[derive(Clone, Debug)]
pub(super) struct Wide {
    values: std::collections::VecDeque<f64>,
    divisor: f64,
    reading: f64,
}

impl Wide {
    fn push(&mut self, x: f64) {
        self.values.pop_front();
        self.values.push_back(x);
        self.reading = exact_sum(self.values.iter().copied()) / self.divisor;
    }
}

#[derive(Clone, Debug)]
enum Counts {
    Narrow(Fixed<i64>),
    Broad(Fixed<i128>),
    Wide(Wide),
}

/// Sum (or sum over a divisor, for a mean) of the last `window` values, exact; see the
/// module docs.
#[derive(Clone, Debug)]
pub(super) struct WindowSum {
    window: usize,
    divisor: f64,
    counts: Counts,
    /// Pushes since the representation was last chosen: a wider one is reconsidered
    /// every `window` pushes, so one outlier does not keep a window wide for good.
    since_choice: usize,
}

impl WindowSum {
    /// `divisor` divides every reading: 1 for a sum, the window for a mean.
    pub(super) fn new(window: usize, divisor: f64) -> Self {
        let zeros = vec![0.0; window];
        Self {
            window,
            divisor,
            counts: Self::choose(&zeros, divisor),
            since_choice: 0,
        }
    }

    /// The narrowest representation of `values` (the whole window, oldest first).
    fn choose(values: &[f64], divisor: f64) -> Counts {
        // The finest unit any value needs, and the largest magnitude (bits at unit 1).
        let (mut need, mut top) = (i32::MIN, i32::MIN);
        for &x in values {
            if let Some((m, q)) = split(x) {
                need = need.max(-q);
                top = top.max(bit_len(m.into()) + q);
            }
        }
        if need == i32::MIN {
            (need, top) = (0, 0);
        }
        let window = values.len();
        // Any unit in [low, high] holds every value; take the middle, leaving room for
        // finer values below and larger ones above before the unit must change.
        let pick = |bits: i32| {
            let (low, high) = (need.max(0), (bits - top).min(MAX_UNIT));
            (low <= high).then(|| low + (high - low) / 2)
        };
        if let Some(fixed) =
            pick(i64::value_bits(window)).and_then(|k| Fixed::new(values, k, divisor))
        {
            return Counts::Narrow(fixed);
        }
        if let Some(fixed) =
            pick(i128::value_bits(window)).and_then(|k| Fixed::new(values, k, divisor))
        {
            return Counts::Broad(fixed);
        }
        let values: std::collections::VecDeque<f64> = values.iter().copied().collect();
        let reading = exact_sum(values.iter().copied()) / divisor;
        Counts::Wide(Wide {
            values,
            divisor,
            reading,
        })
    }

    fn values(&self) -> Vec<f64> {
        match &self.counts {
            Counts::Narrow(f) => f.values(self.window).collect(),
            Counts::Broad(f) => f.values(self.window).collect(),
            Counts::Wide(w) => w.values.iter().copied().collect(),
        }
    }

    /// Choose the representation again for the window plus `x`, and push `x`.
    #[cold]
    fn push_choosing(&mut self, x: f64) {
        let mut values = self.values();
        values.remove(0);
        values.push(x);
        self.counts = Self::choose(&values, self.divisor);
        self.since_choice = 0;
    }

    #[inline]
    pub(super) fn push(&mut self, x: f64) {
        let window = self.window;
        let pushed = match &mut self.counts {
            Counts::Narrow(f) => f.push(window, x),
            Counts::Broad(f) => {
                self.since_choice += 1;
                self.since_choice < window && f.push(window, x)
            }
            Counts::Wide(w) => {
                self.since_choice += 1;
                if self.since_choice < window {
                    w.push(x);
                }
                self.since_choice < window
            }
        };
        if !pushed {
            self.push_choosing(x);
        }
    }

    /// The exact sum of the window, rounded once, over the divisor.
    #[inline]
    pub(super) fn reading(&self) -> f64 {
        match &self.counts {
            Counts::Narrow(f) => f.reading(),
            Counts::Broad(f) => f.reading(),
            Counts::Wide(w) => w.reading,
        }
    }

    /// Pushes `xs` in order, writing the reading after each push into `out` (as long as
    /// `xs`): the same readings as `push` then `reading`, computed a block at a time.
    pub(super) fn push_all(&mut self, xs: &[f64], out: &mut [f64]) {
        let (window, chunk) = (self.window, self.window + SLACK);
        for (xs, out) in xs.chunks(chunk).zip(out.chunks_mut(chunk)) {
            let done = match &mut self.counts {
                Counts::Narrow(f) => f.push_all(window, xs, out),
                _ => false,
            };
            if !done {
                for (&x, slot) in xs.iter().zip(out.iter_mut()) {
                    self.push(x);
                    *slot = self.reading();
                }
            }
        }
    }

    /// Forget every value (the window is all zeros again).
    pub(super) fn clear(&mut self) {
        *self = Self::new(self.window, self.divisor);
    }
}

/// The exact sum of `values`, rounded once to the nearest f64 (ties to even): Shewchuk's
/// expansion of non-overlapping partial sums, as Python's `math.fsum`. A sum beyond the
/// f64 range is ±inf.
pub(super) fn exact_sum(values: impl Iterator<Item = f64>) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for mut x in values {
        let mut kept = 0;
        for i in 0..partials.len() {
            let mut y = partials[i];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let high = x + y;
            let low = y - (high - x);
            if low != 0.0 {
                partials[kept] = low;
                kept += 1;
            }
            x = high;
            if !x.is_finite() {
                return x;
            }
        }
        partials.truncate(kept);
        partials.push(x);
    }
    // Add the partials from the largest down; stop at the first inexact step and
    // correct a tie by the sign of what is left (round half to even on the exact sum).
    let Some(mut high) = partials.pop() else {
        return 0.0;
    };
    let mut low = 0.0;
    while let Some(x) = partials.pop() {
        let y = x;
        let x = high;
        high = x + y;
        let yr = high - x;
        low = y - yr;
        if low != 0.0 {
            break;
        }
    }
    if let Some(&next) = partials.last() {
        if (low < 0.0 && next < 0.0) || (low > 0.0 && next > 0.0) {
            let y = low * 2.0;
            let x = high + y;
            if y == x - high {
                high = x;
            }
        }
    }
    if high == 0.0 {
        0.0
    } else {
        high
    }
}

#[cfg(test)]
#[path = "rolling_exact_tests.rs"]
mod tests;
