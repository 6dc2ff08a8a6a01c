//! Tests of [`super::CandleSeries`] and [`super::clock_bucket`] against a naive group-by
//! of random bars with gaps, for clock and precomputed (session) buckets.

use super::*;
use crate::rolling::{RollingKind, Source};

const MINUTE: i64 = 60_000_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

use crate::test_draws::XorShift;

#[derive(Clone, Copy, Debug)]
struct Bar {
    ts: i64,
    label: i64,
    end: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

/// Random-walk bars at the given timestamps; the bucket is filled in later.
fn bars_at(rng: &mut XorShift, timestamps: &[i64]) -> Vec<Bar> {
    let mut close = 100.0;
    timestamps
        .iter()
        .map(|&ts| {
            let open = close + rng.unit() - 0.5;
            close = open + rng.unit() - 0.5;
            let (high, low) = (open.max(close) + rng.unit(), open.min(close) - rng.unit());
            let volume = (rng.unit() * 100.0).floor();
            Bar {
                ts,
                label: 0,
                end: 0,
                open,
                high,
                low,
                close,
                volume,
            }
        })
        .collect()
}

/// One-minute timestamps from `start`, about 5% dropped plus the odd long gap.
fn minutes_with_gaps(rng: &mut XorShift, start: i64, len: usize) -> Vec<i64> {
    let mut out = Vec::new();
    let mut ts = start;
    for _ in 0..len {
        let r = rng.unit();
        if r < 0.002 {
            ts += (rng.next_u64() % 600) as i64 * MINUTE;
        } else if r > 0.05 {
            out.push(ts);
        }
        ts += MINUTE;
    }
    out
}

/// A candle written out from its bars, labelled `label`.
fn candle_of(bars: &[Bar], label: i64) -> Candle {
    Candle {
        ts: label,
        end: bars[0].end,
        open: bars[0].open,
        high: bars
            .iter()
            .map(|b| b.high)
            .fold(f64::NEG_INFINITY, f64::max),
        low: bars.iter().map(|b| b.low).fold(f64::INFINITY, f64::min),
        close: bars[bars.len() - 1].close,
        volume: bars.iter().map(|b| b.volume).sum(),
    }
}

/// The bar spacing known at each bar: the gcd of all gaps up to it, by Euclid's
/// subtraction (independent of the series' remainder form); every 64 bars, checked to
/// divide every gap so far.
fn spacing_so_far(bars: &[Bar]) -> Vec<Option<i64>> {
    fn by_subtraction(mut a: i64, mut b: i64) -> i64 {
        while a != b {
            if a > b {
                a -= b;
            } else {
                b -= a;
            }
        }
        a
    }
    let mut out = vec![None];
    for i in 1..bars.len() {
        let gap = bars[i].ts - bars[i - 1].ts;
        let g = out[i - 1].map_or(gap, |g| by_subtraction(g, gap));
        if i % 64 == 0 {
            assert!((1..=i).all(|k| (bars[k].ts - bars[k - 1].ts) % g == 0));
        }
        out.push(Some(g));
    }
    out
}

/// Naive group-by: each run of bars with one label is a candle, cut after a bar that
/// reaches the end by the spacing known at it; visible from that bar's call, else from
/// the next bar's call (or never). A run of a label already completed is labelled by
/// its first bar. Returns (first bar, last bar, visible at, label) per candle.
fn naive_groups(bars: &[Bar]) -> Vec<(usize, usize, Option<usize>, i64)> {
    let spacing = spacing_so_far(bars);
    let mut groups: Vec<(usize, usize, Option<usize>, i64)> = Vec::new();
    let mut first = 0;
    for i in 0..bars.len() {
        let reaches = spacing[i].is_some_and(|d| bars[i].ts + d >= bars[i].end);
        if reaches || i + 1 == bars.len() || bars[i + 1].label != bars[i].label {
            let visible = if reaches {
                Some(i)
            } else {
                (i + 1 < bars.len()).then_some(i + 1)
            };
            let late = first > 0 && bars[first - 1].label == bars[first].label;
            let label = if late {
                bars[first].ts
            } else {
                bars[first].label
            };
            groups.push((first, i, visible, label));
            first = i + 1;
        }
    }
    groups
}

/// Feeds `bars` and checks the observable state against the naive group-by after every
/// call (the checks that scan every retained candle after every 16th call and the last).
fn check_against_naive(bars: &[Bar], capacity: usize, rng: &mut XorShift) {
    let groups = naive_groups(bars);
    let candles: Vec<Candle> = groups
        .iter()
        .map(|g| candle_of(&bars[g.0..=g.1], g.3))
        .collect();
    let mut series = CandleSeries::new(capacity);
    let (mut shown, mut group) = (0, 0);
    for (i, b) in bars.iter().enumerate() {
        let done = series.update(
            b.ts, b.label, b.end, b.open, b.high, b.low, b.close, b.volume,
        );
        // Candles become visible in label order, so the visible ones are a prefix.
        let before = shown;
        while shown < groups.len() && groups[shown].2.is_some_and(|at| at <= i) {
            shown += 1;
        }
        let visible = &candles[..shown];
        assert_eq!(&*done, &candles[before..shown], "bar {i}");
        assert_eq!(series.total_completed(), visible.len() as u64);
        let retained = &visible[visible.len().saturating_sub(capacity)..];
        assert_eq!(series.completed_len(), retained.len());
        assert_eq!(series.last_completed(), retained.last().copied());
        let two = series.last(2);
        let tail = &retained[retained.len().saturating_sub(2)..];
        assert_eq!(two.open, tail.iter().map(|c| c.open).collect::<Vec<_>>());
        assert_eq!(two.high, tail.iter().map(|c| c.high).collect::<Vec<_>>());
        assert_eq!(two.low, tail.iter().map(|c| c.low).collect::<Vec<_>>());
        assert_eq!(
            two.volume,
            tail.iter().map(|c| c.volume).collect::<Vec<_>>()
        );
        assert_eq!(two.end, tail.iter().map(|c| c.end).collect::<Vec<_>>());
        if groups[group].1 < i {
            group += 1;
        }
        let (first, _, visible_at, label) = groups[group];
        let forming = (visible_at != Some(i)).then(|| candle_of(&bars[first..=i], label));
        assert_eq!(series.forming(), forming, "bar {i}");
        if i % 16 != 0 && i + 1 != bars.len() {
            continue;
        }
        let all = series.last(usize::MAX);
        assert_eq!(all.ts, retained.iter().map(|c| c.ts).collect::<Vec<_>>());
        assert_eq!(
            all.close,
            retained.iter().map(|c| c.close).collect::<Vec<_>>()
        );
        // index_at: labels, instants inside and just before candles, and random probes.
        let span = b.ts - bars[0].ts + 2 * DAY;
        let mut probes = vec![b.ts, i64::MIN, i64::MAX];
        for c in retained.iter().take(3).chain(retained.iter().rev().take(3)) {
            probes.extend([c.ts, c.ts - 1, c.end - 1, c.end]);
        }
        for _ in 0..4 {
            probes.push(bars[0].ts - DAY + (rng.next_u64() % span as u64) as i64);
        }
        for ts in probes {
            let want = retained.iter().rposition(|c| c.ts <= ts);
            assert_eq!(series.index_at(ts), want, "index_at({ts}) after bar {i}");
            if let Some(at) = want {
                assert_eq!(series.get(at), Some(retained[at]));
            }
        }
    }
}

/// A clock label computed by remainder, independently of `clock_bucket`'s floor division.
fn naive_clock_label(ts: i64, period: i64, origin: i64) -> i64 {
    let r = (ts - origin) % period;
    if r < 0 {
        ts - r - period
    } else {
        ts - r
    }
}

#[test]
fn clock_candles_match_a_naive_group_by() {
    let mut rng = XorShift(0xC0FFEE);
    // Starts two days before the epoch: negative timestamps.
    let timestamps = minutes_with_gaps(&mut rng, -2 * DAY + 7 * MINUTE, 4000);
    let mut bars = bars_at(&mut rng, &timestamps);
    for period in [MINUTE, 5 * MINUTE, 7 * MINUTE, HOUR, 4 * HOUR, DAY] {
        for origin in [0, 15 * MINUTE, -17 * MINUTE, 30_000_000_000] {
            for b in &mut bars {
                b.label = naive_clock_label(b.ts, period, origin);
                b.end = b.label + period;
                assert_eq!(clock_bucket(b.ts, period, origin), (b.label, b.end));
            }
            for capacity in [1, 3, 10_000] {
                check_against_naive(&bars, capacity, &mut rng);
            }
        }
    }
}

/// Exchange sessions as a caller would precompute them: labelled by the session date
/// (midnight New York, UTC−5), ending at the close, 16:00 or 13:00 on half days;
/// some sessions lose their last bars and complete only when the next one opens.
#[test]
fn session_candles_match_a_naive_group_by() {
    let mut rng = XorShift(99);
    let mut timestamps = Vec::new();
    let mut buckets = Vec::new();
    for day in -4..6i64 {
        let label = day * DAY + 5 * HOUR;
        let close = if day == 1 { 13 * HOUR } else { 16 * HOUR };
        let lost_at_close = if day % 3 == 0 { 10 } else { 0 };
        let open_minute = (9 * HOUR + 30 * MINUTE) / MINUTE;
        for minute in open_minute..close / MINUTE - lost_at_close {
            if rng.unit() > 0.05 {
                timestamps.push(label + minute * MINUTE);
                buckets.push((label, label + close));
            }
        }
    }
    let mut bars = bars_at(&mut rng, &timestamps);
    for (b, &(label, end)) in bars.iter_mut().zip(&buckets) {
        (b.label, b.end) = (label, end);
    }
    for capacity in [1, 4, 100] {
        check_against_naive(&bars, capacity, &mut rng);
    }
}

/// Bars of 5-minute buckets at the given minutes, each with close = its minute.
fn five_minute_series(minutes: &[i64], capacity: usize) -> (CandleSeries, Vec<Vec<Candle>>) {
    let mut series = CandleSeries::new(capacity);
    let mut calls = Vec::new();
    for &m in minutes {
        let (label, end) = clock_bucket(m * MINUTE, 5 * MINUTE, 0);
        let x = m as f64;
        calls.push(
            series
                .update(m * MINUTE, label, end, x, x + 0.5, x - 0.5, x, 1.0)
                .to_vec(),
        );
    }
    (series, calls)
}

#[test]
fn a_candle_completes_with_the_bar_that_reaches_its_end() {
    let (series, calls) = five_minute_series(&[0, 1, 2, 3, 4], 10);
    assert!(calls[..4].iter().all(Vec::is_empty));
    let candle = Candle {
        ts: 0,
        end: 5 * MINUTE,
        open: 0.0,
        high: 4.5,
        low: -0.5,
        close: 4.0,
        volume: 5.0,
    };
    assert_eq!(calls[4], vec![candle]);
    assert_eq!(series.forming(), None);
    assert_eq!(series.last_completed(), Some(candle));
}

#[test]
fn a_candle_missing_its_last_bar_completes_when_the_next_bucket_starts() {
    let (series, calls) = five_minute_series(&[0, 1, 2, 3, 5], 10);
    assert!(calls[..4].iter().all(Vec::is_empty));
    assert_eq!(calls[4].len(), 1);
    assert_eq!((calls[4][0].ts, calls[4][0].close), (0, 3.0));
    let forming = series.forming().unwrap();
    assert_eq!(
        (forming.ts, forming.open, forming.close),
        (5 * MINUTE, 5.0, 5.0)
    );
}

#[test]
fn one_bar_can_complete_two_candles() {
    // Bucket [0, 5) lacks minute 4; bucket [5, 10) has only its last minute.
    let (series, calls) = five_minute_series(&[0, 1, 2, 3, 9], 10);
    let labels: Vec<i64> = calls[4].iter().map(|c| c.ts).collect();
    assert_eq!(labels, vec![0, 5 * MINUTE]);
    assert_eq!(series.total_completed(), 2);
    assert_eq!(series.forming(), None);
}

#[test]
fn empty_buckets_make_no_candle_and_old_candles_leave_the_ring() {
    let (series, _) = five_minute_series(&[0, 1, 2, 3, 4, 15, 16, 17, 18, 19, 20, 24], 2);
    assert_eq!(series.total_completed(), 3);
    assert_eq!(series.last(10).ts, vec![15 * MINUTE, 20 * MINUTE]);
    assert_eq!(series.index_at(7 * MINUTE), None); // before the oldest retained
    assert_eq!(series.index_at(16 * MINUTE), Some(0));
    assert_eq!(series.index_at(22 * MINUTE), Some(1));
    assert_eq!(series.index_at(60 * MINUTE), Some(1));
    assert_eq!(series.get(1).map(|c| (c.open, c.close)), Some((20.0, 24.0)));
    assert_eq!(series.get(2), None);
}

#[test]
fn clock_buckets_floor_toward_minus_infinity() {
    assert_eq!(clock_bucket(0, 60, 0), (0, 60));
    assert_eq!(clock_bucket(59, 60, 0), (0, 60));
    assert_eq!(clock_bucket(60, 60, 0), (60, 120));
    assert_eq!(clock_bucket(-1, 60, 0), (-60, 0));
    assert_eq!(clock_bucket(-60, 60, 0), (-60, 0));
    assert_eq!(clock_bucket(0, 60, 30), (-30, 30));
    assert_eq!(clock_bucket(-31, 60, -90), (-90, -30));
    // ts − origin overflows i64; the bucket itself does not.
    assert_eq!(clock_bucket(-5, 10, i64::MAX - 3), (-6, 4)); // origin ≡ 4 (mod 10)
    let mut rng = XorShift(5);
    for _ in 0..10_000 {
        let period = 1 + (rng.next_u64() % 1000) as i64;
        let origin = (rng.next_u64() % 200_001) as i64 - 100_000;
        let ts = (rng.next_u64() % 2_000_001) as i64 - 1_000_000;
        let mut label = origin;
        while label > ts {
            label -= period;
        }
        while label + period <= ts {
            label += period;
        }
        assert_eq!(clock_bucket(ts, period, origin), (label, label + period));
    }
}

#[test]
#[should_panic(expected = "period must be positive")]
fn a_zero_period_is_refused() {
    clock_bucket(0, 0, 0);
}

/// Rolling caches of a higher timeframe are fed completed candles only.
#[test]
fn rolling_on_completed_candles() {
    let mut rng = XorShift(17);
    let timestamps = minutes_with_gaps(&mut rng, 0, 3000);
    let mut bars = bars_at(&mut rng, &timestamps);
    for b in &mut bars {
        (b.label, b.end) = clock_bucket(b.ts, 15 * MINUTE, 0);
    }
    let kind = RollingKind::Atr(5);
    let mut streamed = Rolling::new(kind, Source::Close).unwrap();
    let mut series = CandleSeries::new(1);
    for b in &bars {
        for candle in series
            .update(
                b.ts, b.label, b.end, b.open, b.high, b.low, b.close, b.volume,
            )
            .iter()
        {
            candle.feed(&mut streamed);
        }
    }
    let mut reference = Rolling::new(kind, Source::Close).unwrap();
    let groups = naive_groups(&bars);
    let mut fed = 0;
    for g in groups.iter().filter(|g| g.2.is_some()) {
        candle_of(&bars[g.0..=g.1], g.3).feed(&mut reference);
        fed += 1;
    }
    assert_eq!(streamed.count(), fed);
    assert_eq!(streamed.value().to_bits(), reference.value().to_bits());
}

/// The completion rule's inputs are the symbol's own bars up to the current one: the
/// same bars give the same completions whatever follows (finer bars later, here).
#[test]
fn completion_uses_only_the_bars_so_far() {
    let quarter = |m: i64| clock_bucket(m * MINUTE, 15 * MINUTE, 0);
    let feed = |series: &mut CandleSeries, minutes: &[i64]| -> Vec<Vec<i64>> {
        minutes
            .iter()
            .map(|&m| {
                let (label, end) = quarter(m);
                let x = m as f64;
                let done = series.update(m * MINUTE, label, end, x, x, x, x, 1.0);
                done.iter().map(|c| c.ts / MINUTE).collect()
            })
            .collect()
    };
    // 5-minute bars, then 1-minute bars from minute 30.
    let five: Vec<i64> = (0..30).step_by(5).collect();
    let mut minutes = five.clone();
    minutes.extend(30..45);
    let mut prefix_only = CandleSeries::new(10);
    let mut whole = CandleSeries::new(10);
    let early = feed(&mut prefix_only, &five);
    let all = feed(&mut whole, &minutes);
    assert_eq!(early, all[..five.len()]);
    // [0, 15) completes with its bar at minute 10 (10 + 5 = 15), [15, 30) with 25.
    assert_eq!(
        early,
        vec![vec![], vec![], vec![0], vec![], vec![], vec![15]]
    );
    assert_eq!(prefix_only.spacing(), Some(5 * MINUTE));
    // The first 1-minute bar (30) cannot be known to be one: [30, 45) completes at 44.
    assert!(all[6..20].iter().all(Vec::is_empty));
    assert_eq!(all[20], vec![30]);
    assert_eq!(whole.spacing(), Some(MINUTE));
}

#[test]
fn before_the_second_bar_a_candle_completes_with_the_next_bucket() {
    let (_, calls) = five_minute_series(&[4, 5, 6, 7, 8, 9], 10);
    // Minute 4 ends bucket [0, 5), but one bar says nothing of the spacing.
    assert!(calls[0].is_empty());
    assert_eq!(calls[1].iter().map(|c| c.ts).collect::<Vec<_>>(), vec![0]);
    assert_eq!(
        calls[5].iter().map(|c| c.ts).collect::<Vec<_>>(),
        vec![5 * MINUTE]
    );
}

#[test]
fn a_bar_for_a_completed_bucket_starts_a_candle_of_its_own() {
    // A first gap of 10 minutes, then 2, then 1: minute 10 looks like the bucket's last.
    let mut series = CandleSeries::new(10);
    let mut completions = Vec::new();
    for m in [0, 10, 12, 13, 14] {
        let (label, end) = clock_bucket(m * MINUTE, 15 * MINUTE, 0);
        let x = m as f64;
        let done = series.update(m * MINUTE, label, end, x, x + 1.0, x - 1.0, x, 1.0);
        completions.push(
            done.iter()
                .map(|c| (c.ts / MINUTE, c.close))
                .collect::<Vec<_>>(),
        );
    }
    // Minute 10 + the gap so far (10) reaches 15: the candle of [0, 15) completes with
    // the bars seen then; the later bars of the bucket form a candle labelled 12.
    assert_eq!(completions[1], vec![(0, 10.0)]);
    assert!(completions[2].is_empty() && completions[3].is_empty());
    assert_eq!(completions[4], vec![(12, 14.0)]);
    let late = series.last_completed().unwrap();
    assert_eq!((late.ts, late.end), (12 * MINUTE, 15 * MINUTE));
    assert_eq!(
        (late.open, late.high, late.low, late.volume),
        (12.0, 15.0, 11.0, 3.0)
    );
    assert_eq!(series.total_completed(), 2);
    assert_eq!(series.index_at(11 * MINUTE), Some(0));
    assert_eq!(series.index_at(12 * MINUTE), Some(1));
}

/// `history` of the given bar times (prices: the bar's number) in hourly clock buckets,
/// a bar at `outside` in no bucket.
fn history_of(times: &[i64], outside: Option<i64>) -> CandleHistory {
    let prices: Vec<f64> = (0..times.len()).map(|i| i as f64).collect();
    let p = &prices[..];
    history(times, [p, p, p, p, p], Default::default(), |i| {
        if Some(times[i]) == outside {
            (NO_BUCKET, 0)
        } else {
            clock_bucket(times[i], HOUR, 0)
        }
    })
}

#[test]
fn history_says_which_candle_each_bar_joined_and_how_many_had_completed() {
    // 30-minute bars: the 00:30 bar ends its hour; the 01:30 one is missing, so the
    // 01:00 candle completes with the 02:00 bar, whose own candle is still forming at
    // the end and never listed.
    let h = history_of(&[0, 30 * MINUTE, HOUR, 2 * HOUR], None);
    assert_eq!(h.candles.ts, vec![0, HOUR]);
    assert_eq!(h.candles.close, vec![1.0, 2.0]);
    assert_eq!(h.candles.open, vec![0.0, 2.0]);
    assert_eq!(h.candles.volume, vec![1.0, 2.0]);
    assert_eq!(h.joined, vec![0, 0, 1, 2]);
    assert_eq!(h.completed, vec![0, 1, 1, 2]);
}

#[test]
fn history_gives_a_late_bar_its_own_candle_and_skips_a_bar_in_no_bucket() {
    // The first bar's spacing is unknown; at 00:30 it is 30 minutes, so the 00:30 bar
    // completes 00:00's candle; 00:45 then shows finer bars: a candle of its own,
    // labelled 00:45, which ends the hour at once (15-minute bars now). The 01:00 bar
    // is in no bucket: it completes nothing and joins nothing.
    let h = history_of(
        &[0, 30 * MINUTE, 45 * MINUTE, HOUR, HOUR + 15 * MINUTE],
        Some(HOUR),
    );
    assert_eq!(h.candles.ts, vec![0, 45 * MINUTE]);
    assert_eq!(h.candles.end, vec![HOUR, HOUR]);
    assert_eq!(h.joined, vec![0, 0, 1, -1, 2]);
    assert_eq!(h.completed, vec![0, 1, 2, 2, 2]);
}

// ---- the calendar's wall clock ---------------------------------------------------------

/// New York in 2024: EST (−5h) until 2024-03-10 07:00 UTC, EDT (−4h) until 2024-11-03
/// 06:00 UTC, EST again.
fn new_york_2024() -> (WallClock, i64, i64) {
    let spring = 1_710_054_000 * 1_000_000_000; // 2024-03-10 07:00 UTC
    let fall = 1_730_613_600 * 1_000_000_000; // 2024-11-03 06:00 UTC
    let clock = WallClock::new(
        vec![spring - 400 * DAY, spring, fall],
        vec![-5 * HOUR, -4 * HOUR, -5 * HOUR],
    )
    .expect("a valid clock");
    (clock, spring, fall)
}

#[test]
fn a_wall_time_is_found_in_its_period_and_never_early_where_clocks_change() {
    let (clock, spring, fall) = new_york_2024();
    let local = |utc: i64, offset: i64| utc + offset;
    // Ordinary times on either side of a change, looked for from an earlier period.
    assert_eq!(
        clock.instant(local(spring - DAY, -5 * HOUR), 0),
        spring - DAY
    );
    assert_eq!(
        clock.instant(local(spring + DAY, -4 * HOUR), 0),
        spring + DAY
    );
    assert_eq!(clock.instant(local(fall + DAY, -5 * HOUR), 1), fall + DAY);
    // 02:30 on 2024-03-10 never happens (01:59 EST is followed by 03:00 EDT): the change.
    let skipped = local(spring, -5 * HOUR) + 30 * MINUTE;
    assert_eq!(clock.instant(skipped, 0), spring);
    // 01:30 on 2024-11-03 happens twice (EDT, then EST an hour later): the later one.
    let twice = local(fall, -4 * HOUR) - 30 * MINUTE;
    assert_eq!(clock.instant(twice, 1), fall + 30 * MINUTE);
    // Before the first start the first offset holds.
    assert_eq!(clock.instant(-5 * HOUR, 0), 0);
}

#[test]
fn a_wall_clock_is_refused_with_what_is_wrong() {
    let err = |starts: Vec<i64>, offsets: Vec<i64>| WallClock::new(starts, offsets).unwrap_err();
    assert!(err(vec![], vec![]).contains("one offset per start"));
    assert!(err(vec![0, 1], vec![0]).contains("got 2 starts and 1 offsets"));
    assert!(err(vec![0, 5, 5], vec![0, 1, 2]).contains("start 2 (5) is not after start 1 (5)"));
    assert!(err(vec![0, i64::MAX], vec![0, 0]).contains("before the end of time"));
    assert!(err(vec![0], vec![DAY + 1]).contains("more than a day from UTC"));
}

/// Feeds `timestamps` (each bar's bucket from `bucket`) and lists, per bar, the labels
/// of the candles it completed.
fn completions(
    series: &mut CandleSeries,
    timestamps: &[i64],
    bucket: impl Fn(i64) -> (i64, i64),
) -> Vec<Vec<i64>> {
    timestamps
        .iter()
        .map(|&ts| {
            series
                .feed(ts, bucket(ts), (1.0, 1.0, 1.0, 1.0, 1.0))
                .iter()
                .map(|c| c.ts)
                .collect()
        })
        .collect()
}

#[test]
fn daily_bars_at_local_midnight_complete_their_day_across_both_changes() {
    let (clock, spring, fall) = new_york_2024();
    let clock = Arc::new(clock);
    // A bar at each New York midnight from 2024-03-04 to 2024-03-15 and from 2024-10-28
    // to 2024-11-08, weekdays only (Monday 00:00 EST = 05:00 UTC).
    let first_monday = spring - 6 * DAY - 2 * HOUR; // 2024-03-04 05:00 UTC
    let fall_monday = fall - 6 * DAY - 2 * HOUR; // 2024-10-28 04:00 UTC
    let mut bars = Vec::new();
    for monday in [first_monday, fall_monday] {
        for day in (0..12).filter(|d| d % 7 < 5) {
            let utc = monday + day * DAY;
            // Past a change the same wall time is an hour earlier or later in UTC.
            let shift = if monday == first_monday && utc > spring {
                -HOUR
            } else if monday == fall_monday && utc > fall {
                HOUR
            } else {
                0
            };
            bars.push(utc + shift);
        }
    }
    // Local days as the caller gives them: a bar's bucket is its own local day.
    let own_day = |ts: i64| {
        let k = bars.iter().position(|&b| b == ts).expect("a bar");
        let next = bars.get(k + 1).copied().unwrap_or(ts + 3 * DAY);
        let end = if next - ts < 2 * DAY { next } else { ts + DAY };
        (ts, end)
    };
    let mut wall = CandleSeries::with_clock(5, Arc::clone(&clock));
    let on_wall = completions(&mut wall, &bars, own_day);
    // Every bar from the second on completes its own day (the first: the spacing is not
    // known yet, so its day completes with the next bar).
    assert_eq!(on_wall[0], Vec::<i64>::new());
    assert_eq!(on_wall[1], vec![bars[0], bars[1]]);
    for (k, done) in on_wall.iter().enumerate().skip(2) {
        assert_eq!(done, &vec![bars[k]], "bar {k}");
    }
    assert_eq!(wall.spacing(), Some(DAY));
    // In UTC alone the 71- and 73-hour weekends make the spacing an hour: past the first
    // change, a day completes only with the next bar.
    let mut utc = CandleSeries::new(5);
    let in_utc = completions(&mut utc, &bars, own_day);
    assert_eq!(utc.spacing(), Some(HOUR));
    let late = (0..bars.len())
        .find(|&k| in_utc[k] != on_wall[k])
        .expect("a difference");
    assert!(bars[late] > spring, "the same up to the first change");
}

#[test]
fn bars_kept_on_utc_keep_their_utc_spacing_under_a_wall_clock() {
    // Four-hourly bars on the UTC clock around New York's spring change: on the wall
    // clock they are 3 hours apart once, so UTC's spacing (4 hours) is the coarser and
    // every candle completes as without the wall clock.
    let (clock, spring, _) = new_york_2024();
    let bars: Vec<i64> = (0..36)
        .map(|k| spring - 3 * HOUR - 2 * DAY + k * 4 * HOUR)
        .collect();
    let day = |ts: i64| clock_bucket(ts, DAY, 0);
    let mut wall = CandleSeries::with_clock(5, Arc::new(clock));
    let mut utc = CandleSeries::new(5);
    assert_eq!(
        completions(&mut wall, &bars, day),
        completions(&mut utc, &bars, day)
    );
    assert_eq!(wall.spacing(), Some(4 * HOUR));
}

#[test]
fn minute_bars_complete_the_same_candles_under_a_wall_clock() {
    // Random minute bars with gaps across both of New York's changes: both clocks read a
    // spacing of a minute, so the wall clock changes no candle, bar for bar.
    let (clock, spring, fall) = new_york_2024();
    let clock = Arc::new(clock);
    let mut rng = XorShift(41);
    let mut bars = Vec::new();
    for change in [spring, fall] {
        let mut ts = change - 3 * HOUR;
        for _ in 0..2_000 {
            ts += MINUTE * (1 + (rng.unit() * 3.0) as i64) * if rng.unit() < 0.01 { 30 } else { 1 };
            bars.push(ts);
        }
    }
    for period in [15 * MINUTE, HOUR, DAY] {
        let bucket = |t: i64| clock_bucket(t, period, 0);
        let mut wall = CandleSeries::with_clock(5, Arc::clone(&clock));
        let mut utc = CandleSeries::new(5);
        let done = completions(&mut wall, &bars, bucket);
        assert_eq!(done, completions(&mut utc, &bars, bucket));
        assert!(done.iter().filter(|d| !d.is_empty()).count() >= 4);
    }
}
