//! Studies: what a strategy declares in `init()` and the engine keeps current in the
//! market phase — higher-timeframe candles, O(1) rolling caches on base bars or on a
//! timeframe's completed candles, and precomputed series revealed bar by bar.
//!
//! Every value read during a tick reflects bars up to and including that tick only.

use crate::candles::{clock_bucket, CandleSeries};
use crate::error::{EngineError, Result};
use crate::market::SymbolBars;
use crate::rolling::{Rolling, RollingKind, Source};

/// How a timeframe assigns base bars to buckets.
enum Buckets {
    /// Fixed periods from an origin (ns UTC): clock-aligned candles.
    Clock { period: i64, origin: i64 },
    /// Per symbol and per base bar, the bucket's (label, end); `i64::MIN` label = bar not
    /// part of any candle (e.g. outside the session).
    Given {
        labels: Vec<Vec<i64>>,
        ends: Vec<Vec<i64>>,
    },
}

struct Timeframe {
    buckets: Buckets,
    series: Vec<CandleSeries>,
}

enum Study {
    Rolling {
        per_symbol: Vec<Rolling>,
    },
    /// A vectorised indicator computed over the whole history, one value per base bar.
    Series {
        values: Vec<Vec<f64>>,
        warmup_done: Vec<usize>,
    },
}

#[derive(Default)]
pub struct Studies {
    timeframes: Vec<Timeframe>,
    studies: Vec<Study>,
    /// Rolling studies fed by each timeframe (index = timeframe).
    by_timeframe: Vec<Vec<usize>>,
    base_rolling: Vec<usize>,
    /// Rolling studies on base bars fed by an extra column: (study, column index).
    column_rolling: Vec<(usize, usize)>,
    /// Which price columns the declared studies read (bit per `Source`): the market phase
    /// loads only those, so an SMA of closes touches one column's memory, not five.
    needs: u8,
}

fn bit(source: Source) -> u8 {
    1 << (source as u8)
}

impl Studies {
    pub fn is_empty(&self) -> bool {
        self.timeframes.is_empty() && self.base_rolling.is_empty() && self.column_rolling.is_empty()
    }

    /// Whether a study was computed from every bar at declaration (a precomputed series,
    /// or candles whose buckets were given per bar): it cannot follow a streamed run.
    pub fn needs_whole_history(&self) -> bool {
        self.studies
            .iter()
            .any(|s| matches!(s, Study::Series { .. }))
            || self
                .timeframes
                .iter()
                .any(|t| matches!(t.buckets, Buckets::Given { .. }))
    }

    /// A clock-aligned timeframe of `period` ns counted from `origin`, keeping the last
    /// `capacity` completed candles per symbol.
    pub fn add_clock_timeframe(
        &mut self,
        symbols: usize,
        period: i64,
        origin: i64,
        capacity: usize,
    ) -> Result<usize> {
        if period <= 0 || capacity == 0 {
            return Err(EngineError::InvalidConfig(format!(
                "timeframe period {period} ns and history {capacity} must both be positive"
            )));
        }
        self.push_timeframe(symbols, Buckets::Clock { period, origin }, capacity)
    }

    /// A timeframe whose buckets were computed by the caller (sessions in a timezone).
    pub fn add_given_timeframe(
        &mut self,
        bars: &[&SymbolBars],
        labels: Vec<Vec<i64>>,
        ends: Vec<Vec<i64>>,
        capacity: usize,
    ) -> Result<usize> {
        if capacity == 0 {
            return Err(EngineError::InvalidConfig(
                "a timeframe's history must be positive".into(),
            ));
        }
        if labels.len() != bars.len() || ends.len() != bars.len() {
            return Err(EngineError::InvalidConfig(
                "one label and end array per symbol is required".into(),
            ));
        }
        for (s, b) in bars.iter().enumerate() {
            if labels[s].len() != b.len() || ends[s].len() != b.len() {
                return Err(EngineError::InvalidConfig(format!(
                    "symbol {s}: labels/ends must have one entry per bar ({})",
                    b.len()
                )));
            }
        }
        self.push_timeframe(bars.len(), Buckets::Given { labels, ends }, capacity)
    }

    fn push_timeframe(
        &mut self,
        symbols: usize,
        buckets: Buckets,
        capacity: usize,
    ) -> Result<usize> {
        self.needs = 0b1_1111; // candles carry every column
        self.timeframes.push(Timeframe {
            buckets,
            series: (0..symbols).map(|_| CandleSeries::new(capacity)).collect(),
        });
        self.by_timeframe.push(Vec::new());
        Ok(self.timeframes.len() - 1)
    }

    /// A rolling statistic per symbol, on base bars (`timeframe` None) or on a timeframe's
    /// completed candles.
    pub fn add_rolling(
        &mut self,
        symbols: usize,
        kind: RollingKind,
        source: Source,
        timeframe: Option<usize>,
    ) -> Result<usize> {
        let proto = Rolling::new(kind, source).map_err(EngineError::InvalidConfig)?;
        let id = self.studies.len();
        match timeframe {
            None => {
                self.base_rolling.push(id);
                self.needs |= match kind {
                    RollingKind::Atr(_) => {
                        bit(Source::High) | bit(Source::Low) | bit(Source::Close)
                    }
                    _ => bit(source),
                };
            }
            Some(tf) => {
                let list = self
                    .by_timeframe
                    .get_mut(tf)
                    .ok_or_else(|| EngineError::InvalidConfig(format!("no timeframe {tf}")))?;
                list.push(id);
            }
        }
        self.studies.push(Study::Rolling {
            per_symbol: vec![proto; symbols],
        });
        Ok(id)
    }

    /// A rolling statistic per symbol on base bars whose input is the market's extra
    /// column `column` (e.g. a precomputed signal). A missing value (NaN, where the door
    /// allowed it) is not fed: the window holds the column's last values that exist. A
    /// symbol without the column never becomes ready. ATR reads high, low and close, so
    /// it has no column source.
    pub fn add_rolling_on_column(
        &mut self,
        symbols: usize,
        kind: RollingKind,
        column: usize,
    ) -> Result<usize> {
        if matches!(kind, RollingKind::Atr(_)) {
            return Err(EngineError::InvalidConfig(
                "atr reads high, low and close; it cannot take an extra column as its source"
                    .into(),
            ));
        }
        let proto = Rolling::new(kind, Source::Close).map_err(EngineError::InvalidConfig)?;
        let id = self.studies.len();
        self.column_rolling.push((id, column));
        self.studies.push(Study::Rolling {
            per_symbol: vec![proto; symbols],
        });
        Ok(id)
    }

    /// A precomputed series: `values[symbol][bar]`, revealed as bars are processed.
    pub fn add_series(&mut self, bars: &[&SymbolBars], values: Vec<Vec<f64>>) -> Result<usize> {
        if values.len() != bars.len() {
            return Err(EngineError::InvalidConfig(
                "one value array per symbol is required".into(),
            ));
        }
        for (s, b) in bars.iter().enumerate() {
            if values[s].len() != b.len() {
                return Err(EngineError::InvalidConfig(format!(
                    "symbol {s}: the indicator has {} values for {} bars",
                    values[s].len(),
                    b.len()
                )));
            }
        }
        let warmup_done = values
            .iter()
            .map(|v| v.iter().position(|x| !x.is_nan()).unwrap_or(usize::MAX))
            .collect();
        self.studies.push(Study::Series {
            values,
            warmup_done,
        });
        Ok(self.studies.len() - 1)
    }

    /// Market-phase update for `symbol`'s bar at position `i` of the columns `b` (the run
    /// index, except in a streamed window, where no per-bar study is allowed).
    #[inline]
    pub fn update(&mut self, s: usize, i: usize, b: &SymbolBars) {
        let needs = self.needs;
        let read = |source: Source, column: &[f64]| {
            if needs & bit(source) != 0 {
                column[i]
            } else {
                0.0
            }
        };
        let (o, h, l, c, v) = (
            read(Source::Open, &b.open),
            read(Source::High, &b.high),
            read(Source::Low, &b.low),
            read(Source::Close, &b.close),
            read(Source::Volume, &b.volume),
        );
        for &id in &self.base_rolling {
            if let Study::Rolling { per_symbol, .. } = &mut self.studies[id] {
                per_symbol[s].update(o, h, l, c, v);
            }
        }
        for &(id, k) in &self.column_rolling {
            if let (Some(values), Study::Rolling { per_symbol, .. }) =
                (b.extra(k), &mut self.studies[id])
            {
                let x = values[i];
                if !x.is_nan() {
                    per_symbol[s].update(x, x, x, x, x);
                }
            }
        }
        for (tf_id, tf) in self.timeframes.iter_mut().enumerate() {
            let ts = b.ts[i];
            let (label, end) = match &tf.buckets {
                Buckets::Clock { period, origin } => clock_bucket(ts, *period, *origin),
                Buckets::Given { labels, ends } => (labels[s][i], ends[s][i]),
            };
            let done = if label == i64::MIN {
                // Outside any bucket: no prices join a candle, but time has passed.
                tf.series[s].observe_time(ts)
            } else {
                tf.series[s].update(ts, label, end, o, h, l, c, v)
            };
            for candle in done.iter() {
                for &id in &self.by_timeframe[tf_id] {
                    if let Study::Rolling { per_symbol, .. } = &mut self.studies[id] {
                        candle.feed(&mut per_symbol[s]);
                    }
                }
            }
        }
    }

    /// Whether study `id` is an ATR over base bars (what a trailing stop may follow).
    pub fn is_base_atr(&self, id: usize) -> bool {
        match self.studies.get(id) {
            Some(Study::Rolling { per_symbol }) => {
                self.base_rolling.contains(&id)
                    && per_symbol
                        .first()
                        .is_some_and(|r| matches!(r.kind(), RollingKind::Atr(_)))
            }
            _ => false,
        }
    }

    fn study(&self, id: usize) -> Result<&Study> {
        self.studies
            .get(id)
            .ok_or_else(|| EngineError::InvalidConfig(format!("no indicator {id}")))
    }

    /// Current value of study `id` for `symbol`; `bar` is the symbol's latest bar index.
    #[inline]
    pub fn value(&self, id: usize, s: usize, bar: Option<usize>) -> Result<f64> {
        Ok(match self.study(id)? {
            Study::Rolling { per_symbol, .. } => per_symbol[s].value(),
            Study::Series { values, .. } => bar.map_or(f64::NAN, |i| values[s][i]),
        })
    }

    /// The value before the latest update.
    #[inline]
    pub fn prev(&self, id: usize, s: usize, bar: Option<usize>) -> Result<f64> {
        Ok(match self.study(id)? {
            Study::Rolling { per_symbol, .. } => per_symbol[s].prev(),
            Study::Series { values, .. } => match bar {
                Some(i) if i > 0 => values[s][i - 1],
                _ => f64::NAN,
            },
        })
    }

    pub fn is_ready(&self, id: usize, s: usize, bar: Option<usize>) -> Result<bool> {
        Ok(match self.study(id)? {
            Study::Rolling { per_symbol, .. } => per_symbol[s].is_ready(),
            Study::Series { warmup_done, .. } => bar.is_some_and(|i| i >= warmup_done[s]),
        })
    }

    /// Forget a rolling statistic's window for `symbol` (it refills from the next input).
    pub fn reset(&mut self, id: usize, s: usize) -> Result<()> {
        match self.studies.get_mut(id) {
            Some(Study::Rolling { per_symbol, .. }) => {
                per_symbol[s].reset();
                Ok(())
            }
            Some(Study::Series { .. }) => Err(EngineError::InvalidConfig(
                "a precomputed series cannot be reset".into(),
            )),
            None => Err(EngineError::InvalidConfig(format!("no indicator {id}"))),
        }
    }

    pub fn candles(&self, tf: usize, s: usize) -> Result<&CandleSeries> {
        self.timeframes
            .get(tf)
            .map(|t| &t.series[s])
            .ok_or_else(|| EngineError::InvalidConfig(format!("no timeframe {tf}")))
    }
}

/// Parse a rolling kind name as the Python API spells it.
pub fn rolling_kind(name: &str, window: usize) -> Result<RollingKind> {
    Ok(match name {
        "sum" => RollingKind::Sum(window),
        "mean" | "sma" => RollingKind::Mean(window),
        "min" => RollingKind::Min(window),
        "max" => RollingKind::Max(window),
        "std" => RollingKind::Std(window),
        "ema" => RollingKind::Ema(window),
        "rsi" => RollingKind::Rsi(window),
        "atr" => RollingKind::Atr(window),
        other => {
            return Err(EngineError::InvalidConfig(format!(
                "unknown rolling statistic {other:?}: expected sum, mean, min, max, std, ema, rsi or atr"
            )))
        }
    })
}

pub fn source(name: &str) -> Result<Source> {
    Ok(match name {
        "open" => Source::Open,
        "high" => Source::High,
        "low" => Source::Low,
        "close" => Source::Close,
        "volume" => Source::Volume,
        other => {
            return Err(EngineError::InvalidConfig(format!(
                "unknown source {other:?}: expected open, high, low, close or volume"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolling_statistic_can_read_an_extra_column_and_skips_its_gaps() {
        let n = 6;
        let mut b = SymbolBars::from_vecs(
            (0..n as i64).collect(),
            vec![10.0; n],
            vec![11.0; n],
            vec![9.0; n],
            vec![10.0; n],
            vec![1.0; n],
        );
        b.extra = vec![Some(vec![1.0, 2.0, f64::NAN, 4.0, 5.0, 6.0].into())];
        let mut studies = Studies::default();
        let mean = studies
            .add_rolling_on_column(1, RollingKind::Mean(2), 0)
            .unwrap();
        let close = studies
            .add_rolling(1, RollingKind::Mean(2), Source::Close, None)
            .unwrap();
        assert!(!studies.is_empty());
        let mut seen = Vec::new();
        for i in 0..n {
            studies.update(0, i, &b);
            seen.push(studies.value(mean, 0, Some(i)).unwrap());
            assert_eq!(studies.value(close, 0, Some(i)).unwrap().is_nan(), i == 0);
        }
        // The NaN at bar 2 is not fed: the window then holds 2.0 and 4.0.
        assert!(seen[0].is_nan());
        assert_eq!(&seen[1..], &[1.5, 1.5, 3.0, 4.5, 5.5]);
        let atr = studies.add_rolling_on_column(1, RollingKind::Atr(3), 0);
        assert!(atr
            .unwrap_err()
            .to_string()
            .contains("atr reads high, low and close"));
    }

    #[test]
    fn a_symbol_without_the_column_never_becomes_ready() {
        let b = SymbolBars::from_vecs(
            vec![0, 1],
            vec![1.0; 2],
            vec![1.0; 2],
            vec![1.0; 2],
            vec![1.0; 2],
            vec![1.0; 2],
        );
        let mut studies = Studies::default();
        let id = studies
            .add_rolling_on_column(1, RollingKind::Sum(1), 0)
            .unwrap();
        studies.update(0, 0, &b);
        studies.update(0, 1, &b);
        assert!(!studies.is_ready(id, 0, Some(1)).unwrap());
        assert!(studies.value(id, 0, Some(1)).unwrap().is_nan());
    }
}
