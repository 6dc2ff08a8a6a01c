//! Market: the bar columns of every symbol, copied in once at load and never per bar.

use crate::error::{EngineError, Result};

/// One symbol's bars as columns: timestamps (int64 ns UTC, strictly increasing) and
/// float64 open/high/low/close/volume. Validated at the door (Python); not re-checked here.
#[derive(Clone, Debug, Default)]
pub struct SymbolBars {
    pub ts: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl SymbolBars {
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The bar at `i` as (open, high, low, close, volume).
    #[inline]
    pub fn ohlcv(&self, i: usize) -> (f64, f64, f64, f64, f64) {
        (
            self.open[i],
            self.high[i],
            self.low[i],
            self.close[i],
            self.volume[i],
        )
    }
}

/// All symbols of one backtest plus their union timeline. Immutable once built, so one
/// `Market` can be shared (behind an `Arc`) by many engine runs, e.g. a parameter sweep.
#[derive(Debug)]
pub struct Market {
    names: Vec<String>,
    bars: Vec<SymbolBars>,
    timeline: Vec<i64>,
}

impl Market {
    /// Take ownership of the columns. Only shape is checked (equal column lengths, at
    /// least one symbol): the values were validated at the door.
    pub fn new(names: Vec<String>, bars: Vec<SymbolBars>) -> Result<Self> {
        if names.is_empty() {
            return Err(EngineError::InvalidMarket("no symbols".into()));
        }
        if names.len() != bars.len() {
            return Err(EngineError::InvalidMarket(format!(
                "{} names for {} symbols' columns",
                names.len(),
                bars.len()
            )));
        }
        for (name, b) in names.iter().zip(&bars) {
            let n = b.ts.len();
            let lens = [
                b.open.len(),
                b.high.len(),
                b.low.len(),
                b.close.len(),
                b.volume.len(),
            ];
            if lens.iter().any(|&l| l != n) {
                return Err(EngineError::InvalidMarket(format!(
                    "{name}: columns have different lengths (ts {n}, open/high/low/close/volume {lens:?})"
                )));
            }
            if n == 0 {
                return Err(EngineError::InvalidMarket(format!("{name}: no bars")));
            }
        }
        let timeline = union_timeline(&bars);
        Ok(Market {
            names,
            bars,
            timeline,
        })
    }

    pub fn symbol_count(&self) -> usize {
        self.names.len()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn name(&self, symbol: usize) -> &str {
        &self.names[symbol]
    }

    pub fn symbol_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn bars(&self, symbol: usize) -> &SymbolBars {
        &self.bars[symbol]
    }

    /// Every timestamp at which at least one symbol has a bar, ascending, without repeats.
    pub fn timeline(&self) -> &[i64] {
        &self.timeline
    }

    /// Total number of (symbol, bar) pairs.
    pub fn bar_count(&self) -> usize {
        self.bars.iter().map(|b| b.len()).sum()
    }
}

/// Union of sorted timestamp columns: merged pairwise (a tournament of linear merges,
/// O(n log k)), dropping repeats.
fn union_timeline(bars: &[SymbolBars]) -> Vec<i64> {
    let mut runs: Vec<Vec<i64>> = bars.iter().map(|b| b.ts.clone()).collect();
    while runs.len() > 1 {
        let mut next = Vec::with_capacity(runs.len().div_ceil(2));
        let mut it = runs.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(merge_unique(&a, &b)),
                None => next.push(a),
            }
        }
        runs = next;
    }
    let mut out = runs.pop().unwrap_or_default();
    out.dedup();
    out
}

fn merge_unique(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x < y {
            out.push(x);
            i += 1;
        } else if y < x {
            out.push(y);
            j += 1;
        } else {
            out.push(x);
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn bars_at(ts: &[i64], price: f64) -> SymbolBars {
        let n = ts.len();
        SymbolBars {
            ts: ts.to_vec(),
            open: vec![price; n],
            high: vec![price; n],
            low: vec![price; n],
            close: vec![price; n],
            volume: vec![1.0; n],
        }
    }

    #[test]
    fn timeline_is_the_sorted_union() {
        let m = Market::new(
            vec!["A".into(), "B".into()],
            vec![bars_at(&[1, 3, 5], 1.0), bars_at(&[2, 3, 6], 1.0)],
        )
        .unwrap();
        assert_eq!(m.timeline(), &[1, 2, 3, 5, 6]);
        assert_eq!(m.bar_count(), 6);
        assert_eq!(m.symbol_index("B"), Some(1));
    }

    #[test]
    fn union_of_many_runs_matches_sort_and_dedup() {
        let runs: Vec<Vec<i64>> = (0..7)
            .map(|k| {
                (0..50)
                    .map(|i| i * (k + 1) % 97)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect()
            })
            .collect();
        let bars: Vec<SymbolBars> = runs.iter().map(|r| bars_at(r, 1.0)).collect();
        let mut expected: Vec<i64> = runs.concat();
        expected.sort();
        expected.dedup();
        assert_eq!(union_timeline(&bars), expected);
    }

    #[test]
    fn refuses_ragged_columns_and_empty_symbols() {
        let mut b = bars_at(&[1, 2], 1.0);
        b.close.pop();
        let err = Market::new(vec!["A".into()], vec![b]).unwrap_err();
        assert!(err
            .to_string()
            .contains("A: columns have different lengths"));
        let err = Market::new(vec!["Z".into()], vec![bars_at(&[], 1.0)]).unwrap_err();
        assert!(err.to_string().contains("Z: no bars"));
        assert!(Market::new(vec![], vec![]).is_err());
    }
}
