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

use crate::market::{prefetch, PREFETCH_AHEAD};

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

    /// `of` for each of `xs` into `counts`; false if any does not fit.
    fn of_all(xs: &[f64], counts: &mut [Self], k: i32, scale: f64, bits: i32) -> bool {
        let mut fits = true;
        for (count, &x) in counts.iter_mut().zip(xs) {
            let v = Self::of(x, k, scale, bits);
            fits &= v.is_some();
            *count = v.unwrap_or_default();
        }
        fits
    }

    /// The window's running totals over a block: `counts[window + j]` enters and
    /// `counts[j]` leaves at step `j`, starting from `total`; the reading after each step,
    /// `round(total) / per`, goes to `out[j]`. Returns the last total.
    fn sweep(counts: &[Self], window: usize, total: Self, out: &mut [f64], per: f64) -> Self {
        let mut total = total;
        let entering = counts.get(window..).unwrap_or_default();
        for ((slot, &new), &leaving) in out.iter_mut().zip(entering).zip(counts) {
            total = total.wrapping_add(new.wrapping_sub(leaving));
            *slot = total.round();
        }
        // The divisions apart, in a loop the compiler vectorises.
        for slot in out.iter_mut() {
            *slot /= per;
        }
        total
    }
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

    fn of_all(xs: &[f64], counts: &mut [Self], _k: i32, scale: f64, bits: i32) -> bool {
        #[cfg(target_arch = "x86_64")]
        if wide_vectors() {
            // SAFETY: the CPU has the instructions the function is compiled for.
            return unsafe { wide::narrow_counts(xs, counts, scale, bits) };
        }
        narrow_counts(xs, counts, scale, bits)
    }

    fn sweep(counts: &[Self], window: usize, total: Self, out: &mut [f64], per: f64) -> Self {
        #[cfg(target_arch = "x86_64")]
        if wide_vectors() {
            // SAFETY: as above.
            return unsafe { wide::sweep(counts, window, total, out, per) };
        }
        narrow_sweep(counts, window, total, out, per)
    }
}

/// Counts of `2^-k` (`scale` = 2^k) of `xs` into `counts`: false if one is not an
/// integer below 2^bits. No branch: the checks are folded into two words over the block,
/// the bits in which a count's round trip differs from its value (a value that is no
/// integer, or beyond i64, whose conversion gives `i64::MIN`), and the counts' magnitudes
/// OR-ed (below the power of two 2^bits exactly when each one is).
#[inline(always)]
fn narrow_counts(xs: &[f64], counts: &mut [i64], scale: f64, bits: i32) -> bool {
    let (mut differ, mut magnitudes) = (0u64, 0u64);
    for (count, &x) in counts.iter_mut().zip(xs) {
        let y = x * scale;
        let v = truncate(y);
        // `+ 0.0` makes a -0.0 the +0.0 its count converts back to (as `==` would).
        differ |= (v as f64).to_bits() ^ (y + 0.0).to_bits();
        magnitudes |= v.unsigned_abs();
        *count = v;
    }
    differ == 0 && magnitudes >> bits == 0
}

/// `sweep` for 64-bit counts: each total's bits parked in its reading's slot, then the
/// conversions and divisions in a loop of their own (which the compiler vectorises).
#[inline(always)]
fn narrow_sweep(counts: &[i64], window: usize, total: i64, out: &mut [f64], per: f64) -> i64 {
    let mut total = total;
    let entering = counts.get(window..).unwrap_or_default();
    for ((slot, &new), &leaving) in out.iter_mut().zip(entering).zip(counts) {
        total = total.wrapping_add(new.wrapping_sub(leaving));
        *slot = f64::from_bits(total as u64);
    }
    for slot in out.iter_mut() {
        *slot = slot.to_bits() as i64 as f64 / per;
    }
    total
}

/// Whether two sums of one column share one pass (`WindowSum::push_all_pair`): where the
/// counts are converted one value at a time, converting them once saves most of a pass
/// (callgrind: 112 against 162 instructions per symbol-bar for two means); with AVX-512
/// a conversion is cheap, and the shared pass measured ~8% slower than two separate
/// ones (in-process A/B runs timed by the thread's CPU clock), so each sum makes its own.
pub(super) fn shares_passes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !wide_vectors()
    }
    #[cfg(not(target_arch = "x86_64"))]
    true
}

/// Whether this CPU converts whole vectors between f64 and i64 (AVX-512 F and DQ): the
/// count loops then run eight values an instruction. Same integers, same correctly
/// rounded conversions and divisions: the same bits as the plain loops.
#[cfg(target_arch = "x86_64")]
#[inline]
fn wide_vectors() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

/// The count loops compiled for AVX-512 (the same Rust code as above).
#[cfg(target_arch = "x86_64")]
mod wide {
    use crate::market::{prefetch, PREFETCH_AHEAD};
    use std::arch::x86_64::{
        __m512d, __m512i, _mm512_abs_epi64, _mm512_abs_pd, _mm512_add_epi64, _mm512_alignr_epi64,
        _mm512_and_si512, _mm512_castpd_si512, _mm512_castsi512_pd, _mm512_castsi512_si128,
        _mm512_cmp_pd_mask, _mm512_cmpge_epu64_mask, _mm512_cvtepi64_pd, _mm512_cvttpd_epi64,
        _mm512_div_pd, _mm512_fmadd_pd, _mm512_fnmadd_pd, _mm512_loadu_pd, _mm512_loadu_si512,
        _mm512_mask_mov_pd, _mm512_mul_pd, _mm512_permutexvar_epi64, _mm512_set1_epi64,
        _mm512_set1_pd, _mm512_setzero_si512, _mm512_storeu_pd, _mm512_storeu_si512,
        _mm512_sub_epi64, _mm512_testn_epi64_mask, _mm_cvtsi128_si64, _CMP_LT_OQ, _CMP_NEQ_UQ,
    };

    /// Eight values an instruction: a truncating conversion that gives `i64::MIN` out of
    /// range (then the limit check fails), the round trip and the limit as mask bits.
    #[target_feature(enable = "avx512f,avx512dq,avx512vl")]
    pub(super) fn narrow_counts(xs: &[f64], counts: &mut [i64], scale: f64, bits: i32) -> bool {
        let n = xs.len().min(counts.len());
        let whole = n - n % 8;
        let (scale8, limit8) = (_mm512_set1_pd(scale), _mm512_set1_epi64(1 << bits));
        let mut misfits = 0u8;
        for (i, (x8, count8)) in xs[..whole]
            .chunks_exact(8)
            .zip(counts[..whole].chunks_exact_mut(8))
            .enumerate()
        {
            // A cache line a step: the one a kilobyte ahead (see `prefetch`).
            prefetch(xs, 8 * i + PREFETCH_AHEAD);
            // SAFETY: both chunks hold eight elements (unaligned loads and stores).
            unsafe {
                let y = _mm512_mul_pd(_mm512_loadu_pd(x8.as_ptr()), scale8);
                let v = _mm512_cvttpd_epi64(y);
                let inexact = _mm512_cmp_pd_mask::<_CMP_NEQ_UQ>(_mm512_cvtepi64_pd(v), y);
                let beyond = _mm512_cmpge_epu64_mask(_mm512_abs_epi64(v), limit8);
                misfits |= inexact | beyond;
                _mm512_storeu_si512(count8.as_mut_ptr().cast(), v);
            }
        }
        let rest = super::narrow_counts(&xs[whole..n], &mut counts[whole..n], scale, bits);
        misfits == 0 && rest
    }

    /// `sweep` eight steps at a time: the eight changes of the total summed in three
    /// shifted additions, plus the total before them; readings from the totals by
    /// `Divisor::readings`. Integer additions wrap as the scalar ones do: the same totals.
    #[target_feature(enable = "avx512f,avx512dq,avx512vl")]
    pub(super) fn sweep(
        counts: &[i64],
        window: usize,
        total: i64,
        out: &mut [f64],
        per: f64,
    ) -> i64 {
        let n = out.len().min(counts.len().saturating_sub(window));
        let whole = n - n % 8;
        let divisor = Divisor::new(per);
        let (zero, last) = (_mm512_setzero_si512(), _mm512_set1_epi64(7));
        let mut before = _mm512_set1_epi64(total);
        for (j, slots) in (0..whole).step_by(8).zip(out[..whole].chunks_exact_mut(8)) {
            let (new, leaving) = (&counts[window + j..window + j + 8], &counts[j..j + 8]);
            // SAFETY: `new`, `leaving` and `slots` hold eight elements each (unaligned
            // loads and store).
            unsafe {
                let d = _mm512_sub_epi64(
                    _mm512_loadu_si512(new.as_ptr().cast()),
                    _mm512_loadu_si512(leaving.as_ptr().cast()),
                );
                // Lane i gets the sum of lanes 0..=i: add the lanes 1, 2 and 4 below.
                let d = _mm512_add_epi64(d, _mm512_alignr_epi64::<7>(d, zero));
                let d = _mm512_add_epi64(d, _mm512_alignr_epi64::<6>(d, zero));
                let d = _mm512_add_epi64(d, _mm512_alignr_epi64::<4>(d, zero));
                let totals = _mm512_add_epi64(d, before);
                before = _mm512_permutexvar_epi64(last, totals);
                _mm512_storeu_pd(slots.as_mut_ptr(), divisor.readings(totals));
            }
        }
        let total = _mm_cvtsi128_si64(_mm512_castsi512_si128(before));
        super::narrow_sweep(&counts[whole..], window, total, &mut out[whole..n], per)
    }

    /// Readings from totals, eight at a time, without a division where it can be proven
    /// unneeded. The quotient `q` comes from the reciprocal and one correction (fused
    /// multiply-adds); then `r = x - q·per`, rounded or not, tells whether `q` is the
    /// correctly rounded `x / per`: `|x/per - q| = |r|/per`, and `|r| < per·h`, `h` half
    /// the gap between `q` and its neighbours, puts `x/per` strictly closer to `q` than to
    /// any other float (a rounded `r` cannot pass a wrong `q`: `per·h` is itself a float
    /// and rounding is monotone). Lanes that fail (a total of 0, a quotient too near the
    /// subnormals for `per·h` to be exact, the rare quotient the correction leaves off) are
    /// divided, so every lane is exactly `x / per`: the same bits as the plain loop,
    /// whichever lanes were divided.
    struct Divisor {
        per: __m512d,
        inverse: __m512d,
    }

    impl Divisor {
        #[target_feature(enable = "avx512f,avx512dq,avx512vl")]
        fn new(per: f64) -> Self {
            Divisor {
                per: _mm512_set1_pd(per),
                inverse: _mm512_set1_pd(1.0 / per),
            }
        }

        #[target_feature(enable = "avx512f,avx512dq,avx512vl")]
        #[inline]
        fn readings(&self, totals: __m512i) -> __m512d {
            let exponent = _mm512_set1_epi64(0x7ff0_0000_0000_0000);
            let fraction = _mm512_set1_epi64(0x000f_ffff_ffff_ffff);
            // Half the gap above 2^E is 2^(E-53); at q = 2^E the gap below is half that.
            let half_gap = _mm512_set1_pd(2f64.powi(-53));
            let half_gap_below = _mm512_set1_pd(2f64.powi(-54));
            // Quotients below 2^-900 are divided: per·h stays a normal float (per ≥ 1).
            let smallest = _mm512_set1_epi64((1023 - 900) << 52);
            let x = _mm512_cvtepi64_pd(totals);
            let q0 = _mm512_mul_pd(x, self.inverse);
            let q = _mm512_fmadd_pd(_mm512_fnmadd_pd(q0, self.per, x), self.inverse, q0);
            let r = _mm512_abs_pd(_mm512_fnmadd_pd(q, self.per, x));
            let bits = _mm512_castpd_si512(q);
            let power = _mm512_and_si512(bits, exponent);
            let at_power = _mm512_testn_epi64_mask(bits, fraction);
            let gap = _mm512_mask_mov_pd(half_gap, at_power, half_gap_below);
            let bound = _mm512_mul_pd(self.per, _mm512_mul_pd(_mm512_castsi512_pd(power), gap));
            let proven = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(r, bound)
                & _mm512_cmpge_epu64_mask(power, smallest);
            if proven == u8::MAX {
                q
            } else {
                _mm512_mask_mov_pd(_mm512_div_pd(x, self.per), proven, q)
            }
        }
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

/// The window as integer counts of `2^-k`: `counts[filled - window..filled]` are the
/// last `window` values (zeros stand for values not fed yet), `total` their sum (exact:
/// every count has at most `bits` bits, so `window` of them cannot overflow, and
/// wrapping arithmetic gives the exact sum of the window whatever happened before).
#[derive(Clone, Debug)]
pub(super) struct Fixed<T: Count> {
    k: i32,
    scale: f64,
    bits: i32,
    /// `divisor · 2^k`: a reading is `round(total) / per`.
    per: f64,
    /// Room for the window and the counts of a block after it, allocated (and zeroed)
    /// once: a block's counts are written over the slots after `filled`, with no pass
    /// that clears them first.
    counts: Vec<T>,
    filled: usize,
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
        counts.resize(2 * window + SLACK, T::default());
        Some(Self {
            k,
            scale,
            bits,
            per: divisor * scale,
            counts,
            filled: window,
            total,
        })
    }

    #[inline]
    fn reading(&self) -> f64 {
        self.total.round() / self.per
    }

    /// Make room for `more` counts after the window: the window moves to the front when
    /// they would not fit after it (and the buffer grows, zeroed, for a longer block).
    #[inline]
    fn room(&mut self, window: usize, more: usize) {
        if self.filled + more > self.counts.len() {
            let filled = self.filled;
            self.counts.copy_within(filled - window..filled, 0);
            self.filled = window;
            if window + more > self.counts.len() {
                self.counts
                    .resize(2 * window + more.max(SLACK), T::default());
            }
        }
    }

    /// Push `x` if it fits the unit; false (and nothing changed) otherwise.
    #[inline]
    fn push(&mut self, window: usize, x: f64) -> bool {
        let Some(v) = T::of(x, self.k, self.scale, self.bits) else {
            return false;
        };
        self.room(window, 1);
        let leaving = self.counts[self.filled - window];
        self.counts[self.filled] = v;
        self.filled += 1;
        self.total = self.total.wrapping_add(v.wrapping_sub(leaving));
        true
    }

    /// Push all of `xs` and write the reading after each into `out`, if every value fits
    /// the unit; false (and nothing changed) otherwise.
    fn push_all(&mut self, window: usize, xs: &[f64], out: &mut [f64]) -> bool {
        self.room(window, xs.len());
        let (start, end) = (self.filled, self.filled + xs.len());
        let (k, scale, bits) = (self.k, self.scale, self.bits);
        // Counts past `filled` are not the window's: a block that does not fit leaves
        // its partial counts there, unread.
        if !T::of_all(xs, &mut self.counts[start..end], k, scale, bits) {
            return false;
        }
        let counts = &self.counts[start - window..end];
        self.total = T::sweep(counts, window, self.total, out, self.per);
        self.filled = end;
        true
    }

    /// Whether this window's values (`window` of them) are the last of `other`'s
    /// (`other_window ≥ window` of them): the same counts where the unit is the same.
    fn is_tail_of(&self, window: usize, other: &Fixed<T>, other_window: usize) -> bool
    where
        T: PartialEq,
    {
        debug_assert!(other_window >= window);
        if self.k == other.k {
            let mine = &self.counts[self.filled - window..self.filled];
            return mine == &other.counts[other.filled - window..other.filled];
        }
        self.values(window).eq(other.values(window))
    }

    /// The window's values as fed, oldest first.
    fn values(&self, window: usize) -> impl Iterator<Item = f64> + '_ {
        let unscale = f64::from_bits(((1023 - self.k) as u64) << 52);
        self.counts[self.filled - window..self.filled]
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
        let chunk = self.window + SLACK;
        for (c, (xs_c, out)) in xs.chunks(chunk).zip(out.chunks_mut(chunk)).enumerate() {
            prefetch_chunk(xs, (c + 1) * chunk);
            self.push_chunk(xs_c, out);
        }
    }

    /// `push_all` of at most `window + SLACK` values.
    #[inline]
    fn push_chunk(&mut self, xs: &[f64], out: &mut [f64]) {
        let done = match &mut self.counts {
            Counts::Narrow(f) => f.push_all(self.window, xs, out),
            _ => false,
        };
        if !done {
            for (&x, slot) in xs.iter().zip(out.iter_mut()) {
                self.push(x);
                *slot = self.reading();
            }
        }
    }

    /// `push_all` of the same values to two sums (`out_a`, `out_b` their readings), with
    /// one conversion of the values to counts where it can: when both hold 64-bit counts
    /// and the shorter window's values are the last of the longer one's (the same values
    /// fed since either's latest reset), the longer one counts the new values in its
    /// unit and both totals run over that one buffer. The same readings as two
    /// `push_all`: a window's exact sum does not depend on the unit it is counted in.
    pub(super) fn push_all_pair(
        a: &mut WindowSum,
        b: &mut WindowSum,
        xs: &[f64],
        out_a: &mut [f64],
        out_b: &mut [f64],
    ) {
        let (long, short, out_long, out_short) = if a.window >= b.window {
            (a, b, out_a, out_b)
        } else {
            (b, a, out_b, out_a)
        };
        let chunk = long.window + SLACK;
        let chunks = xs
            .chunks(chunk)
            .zip(out_long.chunks_mut(chunk))
            .zip(out_short.chunks_mut(chunk));
        for (c, ((xs_c, out_l), out_s)) in chunks.enumerate() {
            prefetch_chunk(xs, (c + 1) * chunk);
            if !Self::push_chunk_shared(long, short, xs_c, out_l, out_s) {
                long.push_chunk(xs_c, out_l);
                short.push_all(xs_c, out_s);
            }
        }
    }

    /// One chunk of `push_all_pair` over the longer window's counts; false (nothing
    /// pushed: the windows hold the same values, maybe in another unit) where that
    /// cannot be done.
    fn push_chunk_shared(
        long: &mut WindowSum,
        short: &mut WindowSum,
        xs: &[f64],
        out_long: &mut [f64],
        out_short: &mut [f64],
    ) -> bool {
        let (Counts::Narrow(l), Counts::Narrow(s)) = (&mut long.counts, &mut short.counts) else {
            return false;
        };
        let (wl, ws) = (long.window, short.window);
        if !s.is_tail_of(ws, l, wl) {
            return false;
        }
        if s.k != l.k {
            // The same values in the longer window's unit (they fit it with room for
            // `wl ≥ ws` of them).
            let values: Vec<f64> = s.values(ws).collect();
            match Fixed::new(&values, l.k, short.divisor) {
                Some(same_unit) => *s = same_unit,
                None => return false,
            }
        }
        l.room(wl, xs.len());
        let (start, end) = (l.filled, l.filled + xs.len());
        if !i64::of_all(xs, &mut l.counts[start..end], l.k, l.scale, l.bits) {
            return false;
        }
        #[cfg(test)]
        tests::SHARED_CHUNKS.with(|n| n.set(n.get() + 1));
        s.total = i64::sweep(&l.counts[start - ws..end], ws, s.total, out_short, s.per);
        l.total = i64::sweep(&l.counts[start - wl..end], wl, l.total, out_long, l.per);
        l.filled = end;
        // The shorter window keeps its own last values, for when the two part.
        s.counts[..ws].copy_from_slice(&l.counts[end - ws..end]);
        s.filled = ws;
        true
    }

    /// Forget every value (the window is all zeros again).
    pub(super) fn clear(&mut self) {
        *self = Self::new(self.window, self.divisor);
    }
}

/// Prefetch the first values of the chunk that starts at `next` (while the one before it
/// is counted, which prefetches its own from a kilobyte ahead).
#[inline(always)]
fn prefetch_chunk(xs: &[f64], next: usize) {
    for i in (next..next + PREFETCH_AHEAD).step_by(8) {
        prefetch(xs, i);
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
