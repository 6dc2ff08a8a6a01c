//! Fixed-window accumulators behind [`super::Rolling`]: min/max and variance over the
//! last `window` values, each push amortised O(1) and free of allocation once the window
//! has filled (the window sum is exact, in `rolling_exact.rs`), and the compensated sum
//! of Wilder's first average.

use std::collections::VecDeque;

/// Neumaier (improved Kahan) summation: the rounding error of each addition is carried
/// in `compensation`, so a sum of many terms is as accurate as one rounding.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    #[inline(always)]
    pub(super) fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    #[inline]
    pub(super) fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Minimum or maximum of the last `window` values: a monotonic deque of
/// (sequence number, value) in a ring buffer (`VecDeque`), so each value enters and
/// leaves once — amortised O(1) — and memory stays at most `window` entries.
#[derive(Clone, Debug)]
pub(super) struct WindowExtreme {
    window: u64,
    keep_max: bool,
    seen: u64,
    deque: VecDeque<(u64, f64)>,
}

impl WindowExtreme {
    pub(super) fn new(window: usize, keep_max: bool) -> Self {
        Self {
            window: window as u64,
            keep_max,
            seen: 0,
            deque: VecDeque::new(),
        }
    }

    pub(super) fn push(&mut self, x: f64) {
        let seq = self.seen;
        self.seen += 1;
        // A value dominated by a newer one can never be the extreme again.
        while let Some(&(_, back)) = self.deque.back() {
            let dominated = if self.keep_max { back <= x } else { back >= x };
            if !dominated {
                break;
            }
            self.deque.pop_back();
        }
        self.deque.push_back((seq, x));
        while let Some(&(front_seq, _)) = self.deque.front() {
            if front_seq + self.window > seq {
                break;
            }
            self.deque.pop_front();
        }
    }

    /// The extreme of the values pushed so far (of the last `window` of them), NaN if none.
    pub(super) fn extreme(&self) -> f64 {
        self.deque.front().map_or(f64::NAN, |&(_, x)| x)
    }

    pub(super) fn clear(&mut self) {
        self.seen = 0;
        self.deque.clear();
    }
}

/// Welford moments of a group of values: count, mean and sum of squared deviations
/// from the mean (`m2`). The mean is kept relative to a shift chosen near the data,
/// so prices of 1e4 moving by 1e-2 keep their digits.
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn add(&mut self, d: f64) {
        self.count += 1.0;
        let delta = d - self.mean;
        self.mean += delta / self.count;
        self.m2 += delta * (d - self.mean);
    }
}

/// Sample variance (ddof = 1) of the last `window` values, as a two-stack queue.
///
/// Values are pushed on the back stack, whose moments grow by Welford updates. When the
/// oldest value must leave and the front stack is empty, the back stack is flipped: its
/// values are walked newest to oldest and each front slot keeps the moments of itself
/// and everything newer in the block. The window's variance is the merge (Chan et al.)
/// of the front top and the back moments, a sum of non-negative terms: nothing is ever
/// subtracted, so there is no cancellation and no drift, however long the run. The flip
/// costs O(window) once every `window` pushes, amortised O(1).
#[derive(Clone, Debug)]
pub(super) struct WindowVariance {
    window: usize,
    /// Suffix moments of the flipped block, oldest value on top (last); slot `i` holds
    /// the moments of `i + 1` values, relative to `front_shift`.
    front: Vec<(f64, f64)>,
    front_shift: f64,
    back: Vec<f64>,
    back_moments: Moments,
    back_shift: f64,
    /// Length of the run of equal values ending at the latest push: a window of equal
    /// values has variance exactly 0 (as pandas reports), not a rounding residue.
    equal_run: usize,
    last: f64,
}

impl WindowVariance {
    pub(super) fn new(window: usize) -> Self {
        Self {
            window,
            front: Vec::new(),
            front_shift: 0.0,
            back: Vec::new(),
            back_moments: Moments::default(),
            back_shift: 0.0,
            equal_run: 0,
            last: f64::NAN,
        }
    }

    pub(super) fn push(&mut self, x: f64) {
        if self.front.len() + self.back.len() == self.window {
            if self.front.is_empty() {
                self.flip();
            }
            self.front.pop();
        }
        if self.back.is_empty() {
            // Prices within a factor 2 of the shift subtract exactly (Sterbenz).
            self.back_shift = x;
        }
        self.back.push(x);
        self.back_moments.add(x - self.back_shift);
        self.equal_run = if x == self.last {
            self.equal_run + 1
        } else {
            1
        };
        self.last = x;
    }

    fn flip(&mut self) {
        // Shift by the block's newest value: it neighbours the back stack's shift (the
        // next value pushed), so the merge subtracts two nearby prices, exactly while
        // within a factor 2; and the small suffixes used late in the epoch sit near it.
        self.front_shift = *self.back.last().expect("flip of a full window");
        let mut suffix = Moments::default();
        for &x in self.back.iter().rev() {
            suffix.add(x - self.front_shift);
            self.front.push((suffix.mean, suffix.m2));
        }
        self.back.clear();
        self.back_moments = Moments::default();
    }

    /// Sample variance of the values in the window (all of them before it fills); NaN
    /// with fewer than two values.
    pub(super) fn variance(&self) -> f64 {
        let n = self.front.len() + self.back.len();
        if n < 2 {
            return f64::NAN;
        }
        if self.equal_run >= n {
            return 0.0;
        }
        let back = self.back_moments;
        let m2 = match self.front.last() {
            None => back.m2,
            Some(&(_, front_m2)) if back.count == 0.0 => front_m2,
            Some(&(front_mean, front_m2)) => {
                let front_count = self.front.len() as f64;
                let delta = (self.back_shift - self.front_shift) + (back.mean - front_mean);
                front_m2 + back.m2 + delta * delta * (front_count * back.count / n as f64)
            }
        };
        m2 / (n - 1) as f64
    }

    pub(super) fn clear(&mut self) {
        self.front.clear();
        self.back.clear();
        self.back_moments = Moments::default();
        self.equal_run = 0;
        self.last = f64::NAN;
    }
}

#[cfg(test)]
#[path = "rolling_window_tests.rs"]
mod tests;
