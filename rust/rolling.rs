//! Rolling statistics for one symbol, fed one completed bar at a time in O(1).
//!
//! A [`Rolling`] is the engine's indicator cache: each tick's market phase calls
//! [`Rolling::update`] with the new bar (or, for a higher timeframe, with a candle that
//! has just completed), and strategies read [`Rolling::value`] / [`Rolling::prev`].
//!
//! Definitions, equal to the pandas expression beside them within 1e-9 relative on
//! random data (`s` is the chosen column as a Series, `n` the window; `Sum` and `Mean`
//! are exact, and for `Std` see below):
//!
//! | kind | value once ready | ready after |
//! |---|---|---|
//! | `Sum(n)` | `s.rolling(n).sum()` | n values |
//! | `Mean(n)` | `s.rolling(n).mean()` | n values |
//! | `Min(n)` / `Max(n)` | `s.rolling(n).min()` / `.max()` | n values |
//! | `Std(n)`, n ≥ 2 | `s.rolling(n).std()` (sample, ddof = 1) | n values |
//! | `Ema(n)` | `s.ewm(span=n, adjust=False).mean()`: α = 2/(n+1), seeded with the first value | n values |
//! | `Rsi(n)` | Wilder's RSI, below | n changes (n + 1 values) |
//! | `Atr(n)` | Wilder's ATR, below | n bars |
//!
//! * **Rsi**: with gainₜ = max(Δₜ, 0) and lossₜ = max(−Δₜ, 0) of the changes
//!   Δₜ = sₜ − sₜ₋₁, the first average gain/loss is the simple mean of the first n, then
//!   avg = (prev · (n − 1) + x) / n; RSI = 100 − 100 / (1 + gain/loss), 100 when
//!   loss = 0, 50 when both are 0.
//! * **Atr**: TRₜ = max(h − l, |h − cₜ₋₁|, |l − cₜ₋₁|), the first bar's TR = h − l; the
//!   first ATR is the mean of the first n TRs, then (prev · (n − 1) + TR) / n. Atr reads
//!   high, low and close whatever the [`Source`].
//!
//! Before a statistic is ready its value is NaN. `Sum` and `Mean` are exact: a reading
//! is the exact sum of the window's values rounded once to the nearest f64 (Python's
//! `math.fsum(window)`), divided by n for `Mean` (see `rolling_exact.rs`), so it depends
//! on the window's values alone, never on the bars before it or on the path that fed
//! them, and pandas' `rolling(n).sum()` / `.mean()` agree with it within their own
//! rounding. `Std` keeps its digits when prices are large and moves small: it agrees
//! with a two-pass computation over each window
//! (`np.std(sliding_window_view(x, n), axis=1, ddof=1)`) to about 1e-15 relative (see
//! `rolling_window.rs`). pandas' own `rolling(n).std()` is incremental and never
//! resets, so on long price series it is off by 1e-9 to 1e-2 relative where the
//! window's spread is small against the price: test `Std` against the per-window
//! definition, not against pandas. Inputs are assumed finite: they are checked once, at
//! the door, in Python.

#[path = "rolling_exact.rs"]
mod exact;
#[path = "rolling_window.rs"]
mod window;

use exact::WindowSum;
use window::{CompensatedSum, WindowExtreme, WindowVariance};

/// The column of a bar a statistic reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Open,
    High,
    Low,
    Close,
    Volume,
}

impl Source {
    fn pick(self, open: f64, high: f64, low: f64, close: f64, volume: f64) -> f64 {
        match self {
            Source::Open => open,
            Source::High => high,
            Source::Low => low,
            Source::Close => close,
            Source::Volume => volume,
        }
    }
}

/// Consecutive bars of one symbol as columns of equal length: what [`Rolling::feed`]
/// reads.
#[derive(Clone, Copy, Debug)]
pub struct BarColumns<'a> {
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    pub volume: &'a [f64],
}

impl<'a> BarColumns<'a> {
    /// Every bar of `bars`.
    pub fn of_bars(bars: &'a crate::market::SymbolBars) -> Self {
        BarColumns {
            open: &bars.open,
            high: &bars.high,
            low: &bars.low,
            close: &bars.close,
            volume: &bars.volume,
        }
    }

    /// The column `source` reads.
    pub fn of(&self, source: Source) -> &'a [f64] {
        match source {
            Source::Open => self.open,
            Source::High => self.high,
            Source::Low => self.low,
            Source::Close => self.close,
            Source::Volume => self.volume,
        }
    }
}

/// A statistic and its window, in bars (see the module docs for the definitions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RollingKind {
    Sum(usize),
    Mean(usize),
    Min(usize),
    Max(usize),
    Std(usize),
    Ema(usize),
    Rsi(usize),
    Atr(usize),
}

impl RollingKind {
    /// The window `n` of the statistic.
    pub fn window(self) -> usize {
        match self {
            RollingKind::Sum(n)
            | RollingKind::Mean(n)
            | RollingKind::Min(n)
            | RollingKind::Max(n)
            | RollingKind::Std(n)
            | RollingKind::Ema(n)
            | RollingKind::Rsi(n)
            | RollingKind::Atr(n) => n,
        }
    }

    fn name(self) -> &'static str {
        match self {
            RollingKind::Sum(_) => "Sum",
            RollingKind::Mean(_) => "Mean",
            RollingKind::Min(_) => "Min",
            RollingKind::Max(_) => "Max",
            RollingKind::Std(_) => "Std",
            RollingKind::Ema(_) => "Ema",
            RollingKind::Rsi(_) => "Rsi",
            RollingKind::Atr(_) => "Atr",
        }
    }
}

/// Wilder's smoothing: a simple mean of the first n inputs, then
/// avg = (prev · (n − 1) + x) / n.
#[derive(Clone, Copy, Debug)]
struct WilderAverage {
    window: usize,
    seen: usize,
    warmup: CompensatedSum,
    average: f64,
}

impl WilderAverage {
    fn new(window: usize) -> Self {
        Self {
            window,
            seen: 0,
            warmup: CompensatedSum::default(),
            average: f64::NAN,
        }
    }

    fn push(&mut self, x: f64) {
        self.seen += 1;
        let n = self.window as f64;
        if self.seen < self.window {
            self.warmup.add(x);
        } else if self.seen == self.window {
            self.warmup.add(x);
            self.average = self.warmup.value() / n;
        } else {
            self.average = (self.average * (n - 1.0) + x) / n;
        }
    }
}

#[derive(Clone, Debug)]
enum State {
    Sum(WindowSum),
    Extreme(WindowExtreme),
    Variance(WindowVariance),
    Ema {
        alpha: f64,
        average: f64,
    },
    Rsi {
        last: f64,
        gain: WilderAverage,
        loss: WilderAverage,
    },
    Atr {
        last_close: f64,
        range: WilderAverage,
    },
}

/// One rolling statistic of one symbol's bars, updated in O(1) per bar.
///
/// Memory is bounded by the window; nothing is allocated per update once the window
/// has filled, including after [`Rolling::reset`].
#[derive(Clone, Debug)]
pub struct Rolling {
    kind: RollingKind,
    source: Source,
    state: State,
    count: usize,
    value: f64,
    prev: f64,
}

impl Rolling {
    /// A statistic over `source` (ignored by `Atr`).
    ///
    /// # Errors
    /// A window of 0, or a `Std` window of 1 (the sample standard deviation of one
    /// value is undefined); the message names the kind and the rule.
    pub fn new(kind: RollingKind, source: Source) -> Result<Self, String> {
        let n = kind.window();
        let least = if matches!(kind, RollingKind::Std(_)) {
            2
        } else {
            1
        };
        if n < least {
            let why = if least == 2 {
                " (the sample standard deviation, ddof=1, needs two values)"
            } else {
                ""
            };
            return Err(format!(
                "rolling {} needs a window of at least {least} bars{why}, got {n}",
                kind.name()
            ));
        }
        let state = match kind {
            RollingKind::Sum(_) => State::Sum(WindowSum::new(n, 1.0)),
            RollingKind::Mean(_) => State::Sum(WindowSum::new(n, n as f64)),
            RollingKind::Min(_) => State::Extreme(WindowExtreme::new(n, false)),
            RollingKind::Max(_) => State::Extreme(WindowExtreme::new(n, true)),
            RollingKind::Std(_) => State::Variance(WindowVariance::new(n)),
            RollingKind::Ema(_) => State::Ema {
                alpha: 2.0 / (n as f64 + 1.0),
                average: f64::NAN,
            },
            RollingKind::Rsi(_) => State::Rsi {
                last: f64::NAN,
                gain: WilderAverage::new(n),
                loss: WilderAverage::new(n),
            },
            RollingKind::Atr(_) => State::Atr {
                last_close: f64::NAN,
                range: WilderAverage::new(n),
            },
        };
        Ok(Self {
            kind,
            source,
            state,
            count: 0,
            value: f64::NAN,
            prev: f64::NAN,
        })
    }

    /// The statistic and window this cache computes.
    pub fn kind(&self) -> RollingKind {
        self.kind
    }

    /// The column this cache reads (`Atr` reads high, low and close regardless).
    pub fn source(&self) -> Source {
        self.source
    }

    /// Feeds one completed bar. O(1); amortised O(1) for `Min`, `Max` and `Std`.
    pub fn update(&mut self, open: f64, high: f64, low: f64, close: f64, volume: f64) {
        let x = self.source.pick(open, high, low, close, volume);
        self.count += 1;
        match &mut self.state {
            State::Sum(sum) => sum.push(x),
            State::Extreme(extreme) => extreme.push(x),
            State::Variance(variance) => variance.push(x),
            State::Ema { alpha, average } => {
                *average = if self.count == 1 {
                    x
                } else {
                    (1.0 - *alpha) * *average + *alpha * x
                };
            }
            State::Rsi { last, gain, loss } => {
                if self.count > 1 {
                    let change = x - *last;
                    gain.push(change.max(0.0));
                    loss.push((-change).max(0.0));
                }
                *last = x;
            }
            State::Atr { last_close, range } => {
                let mut true_range = high - low;
                if self.count > 1 {
                    true_range = true_range
                        .max((high - *last_close).abs())
                        .max((low - *last_close).abs());
                }
                range.push(true_range);
                *last_close = close;
            }
        }
        self.prev = self.value;
        self.value = if self.is_ready() {
            self.compute()
        } else {
            f64::NAN
        };
    }

    /// Feeds consecutive bars (`bars`, each column `out.len()` long) in order, as many
    /// [`Rolling::update`] calls would, writing the value after each bar into `out`.
    /// The same operations in the same order: the values are bit for bit those of
    /// `update`, only the sums run in one tight loop over one column.
    pub fn feed(&mut self, bars: &BarColumns<'_>, out: &mut [f64]) {
        if let State::Sum(sum) = &mut self.state {
            let xs = &bars.of(self.source)[..out.len()];
            sum.push_all(xs, out);
            self.after_sums(out);
            return;
        }
        for (k, slot) in out.iter_mut().enumerate() {
            self.update(
                bars.open[k],
                bars.high[k],
                bars.low[k],
                bars.close[k],
                bars.volume[k],
            );
            *slot = self.value;
        }
    }

    /// `a.feed(bars, out_a)` and `b.feed(bars, out_b)`, the same values bit for bit, with
    /// one pass over the column where both are sums (or means) of it and the CPU gains by
    /// it (`exact::shares_passes`): two moving averages of the close, the usual
    /// crossover, convert each close to an exact count once.
    pub fn feed_pair(
        a: &mut Rolling,
        b: &mut Rolling,
        bars: &BarColumns<'_>,
        out_a: &mut [f64],
        out_b: &mut [f64],
    ) {
        if let (State::Sum(sum_a), State::Sum(sum_b)) = (&mut a.state, &mut b.state) {
            if a.source == b.source && out_a.len() == out_b.len() && exact::shares_passes() {
                let xs = &bars.of(a.source)[..out_a.len()];
                WindowSum::push_all_pair(sum_a, sum_b, xs, out_a, out_b);
                a.after_sums(out_a);
                b.after_sums(out_b);
                return;
            }
        }
        a.feed(bars, out_a);
        b.feed(bars, out_b);
    }

    /// After a block of sums' readings `out`: NaN until the window is full, and the
    /// latest two readings kept.
    fn after_sums(&mut self, out: &mut [f64]) {
        // The reading after bar j counts `self.count + j + 1` values.
        let n = self.kind.window();
        let warming = (n - 1).saturating_sub(self.count).min(out.len());
        out[..warming].fill(f64::NAN);
        self.count += out.len();
        match out {
            [] => {}
            [last] => (self.prev, self.value) = (self.value, *last),
            [.., before, last] => (self.prev, self.value) = (*before, *last),
        }
    }

    /// Whether `feed_pair` shares one pass between this statistic and `other`.
    pub fn sums_same_column(&self, other: &Rolling) -> bool {
        matches!((&self.state, &other.state), (State::Sum(_), State::Sum(_)))
            && self.source == other.source
    }

    /// Whether the statistic is ready after `count` bars (see [`Rolling::is_ready`]).
    pub fn ready_after(&self, count: usize) -> bool {
        let n = self.kind.window();
        match self.kind {
            RollingKind::Rsi(_) => count > n,
            _ => count >= n,
        }
    }

    fn compute(&self) -> f64 {
        match &self.state {
            State::Sum(sum) => sum.reading(),
            State::Extreme(extreme) => extreme.extreme(),
            State::Variance(variance) => variance.variance().sqrt(),
            State::Ema { average, .. } => *average,
            State::Rsi { gain, loss, .. } => {
                let (gain, loss) = (gain.average, loss.average);
                if loss == 0.0 {
                    if gain == 0.0 {
                        50.0
                    } else {
                        100.0
                    }
                } else {
                    100.0 - 100.0 / (1.0 + gain / loss)
                }
            }
            State::Atr { range, .. } => range.average,
        }
    }

    /// The statistic after the latest update; NaN until [`Rolling::is_ready`].
    pub fn value(&self) -> f64 {
        self.value
    }

    /// The value before the latest update (NaN if there was none or it was not ready):
    /// with [`Rolling::value`], enough to detect crossings.
    pub fn prev(&self) -> f64 {
        self.prev
    }

    /// Whether the window is full: n values (`Sum`, `Mean`, `Min`, `Max`, `Std`, `Ema`),
    /// n changes i.e. n + 1 values (`Rsi`), n bars (`Atr`).
    pub fn is_ready(&self) -> bool {
        self.ready_after(self.count)
    }

    /// Bars fed since creation or the latest [`Rolling::reset`].
    pub fn count(&self) -> usize {
        self.count
    }

    /// Forgets every bar, as if new (keeping allocated buffers for reuse).
    pub fn reset(&mut self) {
        let n = self.kind.window();
        match &mut self.state {
            State::Sum(sum) => sum.clear(),
            State::Extreme(extreme) => extreme.clear(),
            State::Variance(variance) => variance.clear(),
            State::Ema { average, .. } => *average = f64::NAN,
            State::Rsi { last, gain, loss } => {
                *last = f64::NAN;
                *gain = WilderAverage::new(n);
                *loss = WilderAverage::new(n);
            }
            State::Atr { last_close, range } => {
                *last_close = f64::NAN;
                *range = WilderAverage::new(n);
            }
        }
        self.count = 0;
        self.value = f64::NAN;
        self.prev = f64::NAN;
    }
}

#[cfg(test)]
#[path = "rolling_tests.rs"]
mod tests;
