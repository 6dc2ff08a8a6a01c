//! Portfolio: one cash balance for all symbols, net positions made of FIFO lots (trades),
//! and equity kept up to date incrementally.
//!
//! Accounting identity, true after every operation, exactly:
//!   equity = cash + Σ position_size × mark_price
//! where each position is marked at its own symbol's latest price (never the entry price).
//! `value` (Σ size × mark) and `gross` (Σ |size| × mark) are adjusted on each fill and each
//! new price by replacing the position's own term, so no operation walks all positions.
//!
//! Sums of money are exact ([`Money`]): every amount (a fill's cash, a position's
//! size × mark, a day's carrying cost) is one f64, turned into fixed point once, and the
//! sums of those integers are exact. A sum of the same amounts is then the same bits in
//! any order, so the account cannot depend on the order symbols are visited in (their
//! names); equity is that exact sum rounded once to f64.

use std::ops::{AddAssign, Index, IndexMut, Neg, SubAssign};

use crate::orders::Side;
use crate::symbol_set::SymbolSet;

// ---- exact sums of money ---------------------------------------------------------------

/// Fractional bits of [`Money`]: one unit is 2⁻⁵² ≈ 2.2e-16.
const MONEY_FRACTION_BITS: i32 = 52;
const MONEY_UNIT: f64 = 1.0 / (1u64 << MONEY_FRACTION_BITS) as f64;

/// Largest amount (in magnitude) one term may be: 2⁷² ≈ 4.7e21. Sums are watched to stay
/// below 2⁷³, so adding a term to a sum never leaves i128 (2¹²⁷ units) and cannot wrap.
pub const MONEY_LIMIT: f64 = 4_722_366_482_869_645_213_696.0; // 2^72

const TWO_POW_11: f64 = 2_048.0;
const TWO_POW_52: f64 = 4_503_599_627_370_496.0;
const TWO_POW_62: f64 = 4_611_686_018_427_387_904.0;

/// `x` (a whole number of units, or one to round: |x| < 2⁶³) rounded to the nearest
/// whole number, ties to even, as an i64: the processor's conversion in its default
/// rounding mode (the mode every sum here assumes), one instruction.
#[inline(always)]
fn nearest(x: f64) -> i64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_cvtsd_si64, _mm_set_sd};
        // SAFETY: SSE2 is part of every x86_64 processor.
        unsafe { _mm_cvtsd_si64(_mm_set_sd(x)) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        x.round_ties_even() as i64
    }
}

/// `x` (|x| < 2⁶²) as its whole part and its fraction in units of 2⁻⁵², rounded to
/// nearest (ties to even, symmetric in sign). Both steps are exact: the whole part is a
/// truncation, `x − whole` is representable (a multiple of x's spacing below 1), and the
/// scaling by 2⁵² is a power of two; only the fraction of an `|x| < 1` can have bits
/// below one unit, rounded by `nearest`.
#[inline(always)]
fn split(x: f64) -> (i64, i64) {
    debug_assert!(x.abs() < TWO_POW_62);
    // SAFETY: |x| < 2⁶² (the caller's check), so its whole part is an i64.
    let whole: i64 = unsafe { x.to_int_unchecked() };
    (whole, nearest((x - whole as f64) * TWO_POW_52))
}

/// An amount of money in fixed point: an i128 count of 2⁻⁵² units.
///
/// Every f64 of magnitude ≥ 1 is a multiple of 2⁻⁵², so amounts from 1 to `MONEY_LIMIT`
/// convert exactly; smaller ones round to the nearest unit (ties to even, symmetric in
/// sign: −x converts to −(x)), an error below f64's own spacing at 1. Adding and
/// subtracting are exact, hence independent of order. An amount beyond the limit (or not
/// finite) is recorded by the portfolio (`out_of_range`) and ends the run with an error,
/// never a wrapped sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(i128);

impl Money {
    pub const ZERO: Money = Money(0);

    /// Whether `from_f64` takes `amount`: it refuses exactly the amounts whose magnitude
    /// is not below `MONEY_LIMIT` (and NaN), so this is its test without the conversion
    /// (run for every bar of a position whose mark is skipped).
    #[inline(always)]
    pub fn in_range(amount: f64) -> bool {
        amount.abs() < MONEY_LIMIT
    }

    /// `x` in units of 2⁻⁵², rounded to nearest (ties to even); `None` when `|x|` is not
    /// below `MONEY_LIMIT` or `x` is not finite.
    #[inline]
    pub fn from_f64(x: f64) -> Option<Money> {
        let magnitude = x.abs();
        // Below 2¹¹, x × 2⁵² is exact (a power of two) and below 2⁶³: it rounds to the
        // nearest whole number of units in one conversion.
        if magnitude < TWO_POW_11 {
            return Some(Money(nearest(x * TWO_POW_52) as i128));
        }
        // Amounts below 2⁶² (all but the largest) in a few float operations, without the
        // bit fields: the whole part and the fraction are exact (see `split`).
        if magnitude < TWO_POW_62 {
            let (whole, units) = split(x);
            return Some(Money(
                ((whole as i128) << MONEY_FRACTION_BITS) + units as i128,
            ));
        }
        Money::from_f64_fields(x)
    }

    /// `from_f64` from the bit fields of `x`: any magnitude (kept out of line: amounts
    /// this large are rare, and inlined it would weigh on every conversion).
    #[cold]
    #[inline(never)]
    fn from_f64_fields(x: f64) -> Option<Money> {
        let bits = x.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i32;
        if exponent == 0 {
            // Zero or subnormal (< 2⁻¹⁰²²): nearer to 0 than to one unit.
            return Some(Money(0));
        }
        // |x| = mantissa × 2^(exponent − 1075); in units: mantissa × 2^(exponent − 1023).
        let mantissa = ((bits & ((1u64 << 52) - 1)) | (1u64 << 52)) as i128;
        let shift = exponent - 1075 + MONEY_FRACTION_BITS;
        let magnitude = if shift >= 0 {
            // 53 significant bits shifted left must stay below 2^124 (|x| < 2^72).
            if shift > 124 - 53 {
                return None; // beyond the limit, or inf/NaN (exponent 0x7ff)
            }
            mantissa << shift
        } else {
            let down = -shift;
            if down > 54 {
                0 // below half a unit
            } else {
                let kept = mantissa >> down;
                let rest = mantissa & ((1i128 << down) - 1);
                let half = 1i128 << (down - 1);
                if rest > half || (rest == half && kept & 1 == 1) {
                    kept + 1
                } else {
                    kept
                }
            }
        };
        Some(Money(if bits >> 63 == 1 {
            -magnitude
        } else {
            magnitude
        }))
    }

    /// The nearest f64 (one rounding of the exact amount, ties to even: the same bits as
    /// `i128 as f64` scaled by the unit, which takes a library call of some 45
    /// instructions; this takes one conversion of a 64-bit integer).
    #[inline]
    pub fn to_f64(self) -> f64 {
        let units = self.0.unsigned_abs();
        let magnitude = if units < 1u128 << 53 {
            // Exact as an f64 (53 bits); the scaling by a power of two is exact too.
            units as i64 as f64 * MONEY_UNIT
        } else {
            // Rounding to 53 significant bits depends on those bits, the next one, and
            // whether any below it is set: 63 bits from the top hold them all, the last
            // one standing for everything below it (a "sticky" bit). Converting those 63
            // bits rounds once, to nearest, ties to even; the scaling is exact.
            let shift = units.leading_zeros(); // at most 74: units >= 2^53
            let top = units << shift; // the highest bit set is bit 127
            let high = (top >> 64) as u64;
            let below = u64::from(top as u64 != 0);
            let kept = (high >> 1) | ((high | below) & 1);
            // units = kept × 2^(65 − shift), one unit is 2⁻⁵²: the amount is
            // kept × 2^(13 − shift), a power of two within f64's normal range.
            let scale = f64::from_bits(((1023 + 13 - shift) as u64) << 52);
            kept as i64 as f64 * scale
        };
        if self.0 < 0 {
            -magnitude
        } else {
            magnitude
        }
    }

    /// Half of an even amount (exact): the short side of a parked gross and value.
    #[inline]
    fn half(self) -> Money {
        Money(self.0 / 2)
    }

    /// Whether a sum has left the range it is kept in (2⁷³, twice a term's limit).
    #[inline]
    pub fn beyond_sum_limit(self) -> bool {
        self.0.unsigned_abs() >= 1u128 << 125
    }
}

impl Neg for Money {
    type Output = Money;

    #[inline]
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl AddAssign for Money {
    #[inline]
    fn add_assign(&mut self, other: Money) {
        self.0 = self.0.wrapping_add(other.0);
    }
}

impl SubAssign for Money {
    #[inline]
    fn sub_assign(&mut self, other: Money) {
        self.0 = self.0.wrapping_sub(other.0);
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        let mut total = Money::ZERO;
        for m in iter {
            total += m;
        }
        total
    }
}

/// An open trade: one entry, possibly partly closed since.
#[derive(Clone, Debug)]
pub struct Lot {
    pub id: u64,
    /// The order whose fill opened it (its tag is the trade's).
    pub entry_order: u64,
    /// +1 long, -1 short.
    pub direction: f64,
    /// Units still open (> 0).
    pub size: f64,
    pub entry_price: f64,
    pub entry_ts: i64,
    pub entry_bar: usize,
    /// Entry commission not yet charged to a closed part of this lot.
    pub entry_commission: f64,
    /// Highest and lowest prices seen while open, for excursions.
    pub high: f64,
    pub low: f64,
    pub stop_loss: Option<u64>,
    pub take_profit: Option<u64>,
}

impl Lot {
    /// Its units, signed: negative when short.
    #[inline]
    pub fn signed_size(&self) -> f64 {
        self.direction * self.size
    }

    /// The side of an order that closes it: a sell for a long, a buy for a short.
    pub fn closing_side(&self) -> Side {
        if self.direction > 0.0 {
            Side::Sell
        } else {
            Side::Buy
        }
    }
}

/// A position's open lots (trades), oldest first: a fill that closes takes from the
/// front (FIFO), one that opens adds at the back. They are kept in one vector from `head`
/// on, so they read as one slice: the oldest leaves by moving `head` (a position of one
/// lot, the usual case, is pushed and cleared, with none of a ring's index arithmetic),
/// and the room before `head` is reclaimed once it is half the vector or more (each lot
/// is moved at most once per lot that left before it: constant work per lot).
#[derive(Clone, Default)]
pub struct Lots {
    items: Vec<Lot>,
    head: usize,
}

impl Lots {
    #[inline]
    pub fn len(&self) -> usize {
        self.items.len() - self.head
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items.len() == self.head
    }

    /// The open lots, oldest first.
    #[inline]
    pub fn as_slice(&self) -> &[Lot] {
        &self.items[self.head..]
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Lot] {
        &mut self.items[self.head..]
    }

    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, Lot> {
        self.as_slice().iter()
    }

    #[inline]
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Lot> {
        self.as_mut_slice().iter_mut()
    }

    /// Which lots are open, as one number: `last id << 32 | count` (0 when none; None when
    /// an id or the count is too large to say so). Two reads give the same number only if
    /// no lot opened or closed between them: an opening adds an id above every open one
    /// (the last changes), and closings alone lower the count.
    pub fn key(&self) -> Option<i64> {
        let count = self.len() as u64;
        let last = self.as_slice().last().map_or(0, |l| l.id);
        (count >> 32 == 0 && last >> 31 == 0).then_some((last << 32 | count) as i64)
    }

    /// The oldest open lot: the next a closing fill takes from.
    #[inline]
    pub fn front(&self) -> Option<&Lot> {
        self.items.get(self.head)
    }

    #[inline]
    fn push_back(&mut self, lot: Lot) {
        self.items.push(lot);
    }

    /// Remove the lot at `k` (0: the oldest), keeping the others in order.
    #[inline]
    fn remove(&mut self, k: usize) -> Lot {
        let lot = if k == 0 {
            self.head += 1;
            self.items[self.head - 1].clone()
        } else {
            self.items.remove(self.head + k)
        };
        if self.head == self.items.len() {
            self.items.clear();
            self.head = 0;
        } else if self.head * 2 >= self.items.len() {
            self.items.drain(..self.head);
            self.head = 0;
        }
        lot
    }
}

impl Index<usize> for Lots {
    type Output = Lot;

    #[inline]
    fn index(&self, k: usize) -> &Lot {
        &self.as_slice()[k]
    }
}

impl IndexMut<usize> for Lots {
    #[inline]
    fn index_mut(&mut self, k: usize) -> &mut Lot {
        &mut self.as_mut_slice()[k]
    }
}

impl<'a> IntoIterator for &'a Lots {
    type Item = &'a Lot;
    type IntoIter = std::slice::Iter<'a, Lot>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::fmt::Debug for Lots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A finished trade (or the closed part of one), as the portfolio keeps it: what its
/// exit order's record does not say, and its exit time (which a run for its statistics
/// alone, keeping no order log, reads for its duration). Its symbol and side (the
/// opposite of the exit fill's) are that order's (`results::OrderLog::trade_row` gives
/// every field).
#[derive(Clone, Debug, PartialEq)]
pub struct ClosedTrade {
    pub trade_id: u64,
    /// The order whose fill opened the trade.
    pub entry_order: u64,
    /// The order whose fill closed it.
    pub exit_order: u64,
    pub size: f64,
    pub entry_ts: i64,
    /// When the exit fill closed it.
    pub exit_ts: i64,
    pub entry_price: f64,
    pub exit_price: f64,
    /// Net of the entry and exit commissions attributed to this size.
    pub pnl: f64,
    pub commission: f64,
    pub bars_held: usize,
    /// Maximum adverse / favourable excursion as a fraction of the entry price (≤ 0 / ≥ 0).
    pub mae: f64,
    pub mfe: f64,
    /// Its symbol's multiplier (`Config::multipliers`): what it cost is in money.
    pub multiplier: f64,
}

impl ClosedTrade {
    /// Net return on everything the trade cost: `pnl / (entry_price × size ×
    /// multiplier + commission)`.
    /// Costs count in the base so that a small piece carrying a fixed fee reads as the
    /// loss of (nearly) all it cost, never as a loss of many times its notional; a long
    /// can never lose more than 100%.
    #[inline]
    pub fn return_pct(&self) -> f64 {
        self.pnl / (worth(self.size, self.entry_price, self.multiplier) + self.commission)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Position {
    /// Signed units: > 0 long, < 0 short.
    pub size: f64,
    /// Latest price (NaN before the symbol's first bar).
    pub mark: f64,
    /// The symbol's multiplier (`Config::multipliers`; 1 for shares and coins).
    pub multiplier: f64,
    pub lots: Lots,
    /// This position's terms of the account's value and gross exposure: size × mark ×
    /// multiplier and its absolute value, as last booked (0 when flat).
    value: Money,
    gross: Money,
}

impl Position {
    /// Volume-weighted entry price of the open lots (NaN when flat).
    pub fn average_price(&self) -> f64 {
        let (mut units, mut cost) = (0.0, 0.0);
        for lot in &self.lots {
            units += lot.size;
            cost += lot.size * lot.entry_price;
        }
        if units > 0.0 {
            cost / units
        } else {
            f64::NAN
        }
    }

    /// The bar at which the oldest open lot was entered (`None`: flat): where the
    /// position's holding period starts (a time exit counts from it).
    #[inline]
    pub fn opened_at(&self) -> Option<usize> {
        self.lots.front().map(|lot| lot.entry_bar)
    }
}

/// The account as a fill being weighed would leave it (`Portfolio::after_fill`): what a
/// broker checks before it executes an increase (`Config::beyond_buying_power`).
#[derive(Clone, Copy, Debug)]
pub struct AfterFill {
    pub symbol: usize,
    /// Equity after the fill, the symbol's position at the market price of the fill.
    pub equity: f64,
    /// Gross exposure after it.
    pub gross: f64,
    /// What the symbol's position is worth after it (|size| × that price × multiplier).
    pub worth: f64,
    /// The units (|size|) of the symbol's position after it.
    pub units: f64,
    /// Whether the fill grows the position (opens, adds to or reverses it).
    pub grows: bool,
}

/// The money `size` units at `price` are worth, `multiplier` being their symbol's: the one
/// rule of every amount the account books (a position's term, a fill's cash, a payment,
/// a trade's P&L), evaluated in one order so that every driver books the same bits (with
/// a multiplier of 1, exactly size × price).
#[inline(always)]
pub fn worth(size: f64, price: f64, multiplier: f64) -> f64 {
    size * price * multiplier
}

/// What one fill did to the trades of its symbol (the bracket legs of the lots it closed
/// completely are in `Portfolio::closed_legs`).
#[derive(Debug, Default)]
pub struct FillEffect {
    /// How many lots it closed completely.
    pub closed_lots: usize,
    /// The lot this fill opened, if any.
    pub opened_lot: Option<u64>,
}

/// A fill as the portfolio books it.
#[derive(Clone, Copy, Debug)]
pub struct Execution {
    pub symbol: usize,
    pub direction: f64,
    pub size: f64,
    pub price: f64,
    pub commission: f64,
    pub ts: i64,
    pub bar: usize,
    pub order_id: u64,
    /// Bracket legs close exactly their own lot, not the oldest one.
    pub closes_lot: Option<u64>,
}

pub struct Portfolio {
    /// Exact sums (see the module documentation): cash, Σ size × mark, Σ |size| × mark.
    cash: Money,
    value: Money,
    gross: Money,
    /// Σ size × mark and Σ |size| × mark of the parked positions (see `park`), summed by
    /// the driver that parked them and set before anything reads the account.
    parked_value: Money,
    parked_gross: Money,
    /// The first amount that left `Money`'s range: (symbol, amount); the run stops on it.
    out_of_range: Option<(Option<usize>, f64)>,
    positions: Vec<Position>,
    /// The symbols whose position is open (size not 0), set where a size is booked.
    holding: SymbolSet,
    next_lot_id: u64,
    pub closed: Vec<ClosedTrade>,
    /// The bracket legs of the lots the latest fill closed completely (they must be
    /// cancelled); a buffer kept between fills, so a fill allocates nothing.
    closed_legs: Vec<u64>,
    /// Carrying costs charged so far, net of interest earned.
    pub carry_paid: f64,
    /// Dividends received so far, net of those paid on short positions.
    pub dividends: f64,
    /// Per symbol, its share of `dividends` and `carry_paid` (`Payments`), so that what
    /// each symbol made sums with the account's interest to the run's P&L.
    pub payments: Vec<Payments>,
    /// The part of `carry_paid` no symbol made: interest paid on negative cash, net of
    /// interest earned on positive cash.
    pub interest: f64,
    /// The day end carrying costs were last accrued at (ns UTC).
    last_accrual: Option<i64>,
    /// The calendar days the latest accrual charged for (`accrue_carry`).
    carry_days: f64,
}

/// What a symbol's positions were paid and charged over the run besides their fills, in
/// the account's money, signed as the statistics sign their totals.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Payments {
    /// Dividends received, net of those its shorts paid the lender (`Dividends [$]`).
    pub dividends: f64,
    /// Borrow fees its shorts paid and funding it settled, paid less received
    /// (`Carrying Costs [$]`).
    pub carrying_costs: f64,
}

/// What a data column of payments per bar holds (`Config::funding`, `Config::dividends`),
/// settled by a position held there (`Portfolio::settle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payment {
    /// A perpetual future's funding rate, settled at the bar's close.
    Funding,
    /// A cash dividend per unit, paid at the open of the bar the symbol goes ex.
    Dividend,
}

impl Payment {
    /// The payment a column's value at a bar makes: none for 0 or NaN.
    #[inline]
    pub fn at(value: f64) -> Option<f64> {
        (value != 0.0 && !value.is_nan()).then_some(value)
    }
}

/// Annual rates of carrying costs, as a broker charges them: accrued for each calendar
/// day (actual/365) at the end of each trading day, on the balances held then.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CarryRates {
    /// `borrow_rate`: fee on the market value of short positions.
    pub borrow: f64,
    /// `margin_rate`: interest paid on negative cash (money borrowed to buy).
    pub margin: f64,
    /// `cash_rate`: interest earned on positive cash (short sale proceeds included).
    pub cash: f64,
}

const NANOS_PER_DAY: f64 = 86_400e9;

/// Lots smaller than this fraction of their size count as fully closed (float dust).
const DUST: f64 = 1e-9;

impl Portfolio {
    pub fn new(cash: f64, symbols: usize) -> Self {
        let mut portfolio = Portfolio {
            cash: Money::ZERO,
            value: Money::ZERO,
            gross: Money::ZERO,
            parked_value: Money::ZERO,
            parked_gross: Money::ZERO,
            out_of_range: None,
            positions: (0..symbols)
                .map(|_| Position {
                    mark: f64::NAN,
                    multiplier: 1.0,
                    ..Default::default()
                })
                .collect(),
            holding: SymbolSet::new(symbols),
            next_lot_id: 1,
            closed: Vec::new(),
            closed_legs: Vec::new(),
            carry_paid: 0.0,
            dividends: 0.0,
            payments: vec![Payments::default(); symbols],
            interest: 0.0,
            last_accrual: None,
            carry_days: 0.0,
        };
        portfolio.cash = portfolio.money(None, cash);
        portfolio
    }

    /// `x` as `Money`, or zero with the account flagged out of range (see `out_of_range`).
    #[inline]
    fn money(&mut self, symbol: Option<usize>, x: f64) -> Money {
        match Money::from_f64(x) {
            Some(m) => m,
            None => {
                self.flag(symbol, x);
                Money::ZERO
            }
        }
    }

    #[cold]
    fn flag(&mut self, symbol: Option<usize>, amount: f64) {
        self.out_of_range.get_or_insert((symbol, amount));
    }

    /// Watch the sums after an update: one beyond its range flags the account.
    #[inline]
    fn check_sums(&mut self, symbol: Option<usize>) {
        if self.cash.beyond_sum_limit()
            || self.value.beyond_sum_limit()
            || self.gross.beyond_sum_limit()
        {
            let amount = self.equity();
            self.flag(symbol, amount);
        }
    }

    /// The first amount (and its symbol, if one) beyond what the account sums exactly
    /// (`MONEY_LIMIT`), or not finite; after it the sums are meaningless.
    pub fn out_of_range(&self) -> Option<(Option<usize>, f64)> {
        self.out_of_range
    }

    /// Set `symbol`'s multiplier (`Config::multipliers`), before the run.
    pub fn set_multiplier(&mut self, symbol: usize, multiplier: f64) {
        self.positions[symbol].multiplier = multiplier;
    }

    /// Replace `symbol`'s term of value and gross exposure by size × mark as they are now.
    /// (Inlined into `mark`: it runs for every bar of every position.)
    #[inline(always)]
    fn revalue(&mut self, symbol: usize) {
        let p = &self.positions[symbol];
        let (size, mark) = (p.size, p.mark);
        let value = if size == 0.0 {
            Money::ZERO
        } else {
            self.money(Some(symbol), worth(size, mark, p.multiplier))
        };
        // |size| × mark is ±(size × mark), and the conversion is symmetric in sign.
        let gross = if size < 0.0 { value.neg() } else { value };
        let p = &mut self.positions[symbol];
        let (old_value, old_gross) = (p.value, p.gross);
        p.value = value;
        p.gross = gross;
        self.value += value;
        self.value -= old_value;
        self.gross += gross;
        self.gross -= old_gross;
        // Only these two sums moved (cash is watched where it moves).
        if self.value.beyond_sum_limit() || self.gross.beyond_sum_limit() {
            let amount = self.equity();
            self.flag(Some(symbol), amount);
        }
    }

    /// Charge the carrying costs of the calendar days since the previous day end (one for
    /// the first; a weekend between two sessions makes three), at the day end `ts`:
    /// borrow fees on short market value, interest on negative cash, interest earned on
    /// positive cash. Returns the net amount charged (taken from cash, hence equity).
    pub fn accrue_carry(&mut self, ts: i64, rates: &CarryRates, own_borrow: &[Option<f64>]) -> f64 {
        // Rounded: a day of 23 or 25 hours (DST) or an early close is still one day.
        let days = self.last_accrual.map_or(1.0, |prev| {
            ((ts - prev) as f64 / NANOS_PER_DAY).round().max(1.0)
        });
        self.last_accrual = Some(ts);
        self.carry_days = days;
        if !own_borrow.is_empty() {
            return self.accrue_own_borrow(days, rates, own_borrow);
        }
        if *rates == CarryRates::default() {
            return 0.0;
        }
        // Σ over shorts of −size × mark: their terms, summed exactly (in any order); a
        // parked short's term is in the parked sums (gross − value = twice the shorts').
        let mut short_value: Money = self
            .positions
            .iter()
            .filter(|p| p.size < 0.0)
            .map(|p| p.value.neg())
            .sum();
        let mut parked_shorts = self.parked_gross;
        parked_shorts -= self.parked_value;
        short_value += parked_shorts.half();
        let cost = self.charge_carry(short_value.to_f64() * rates.borrow, days, rates);
        // Each short's share of the fee (a parked one's: `parked_borrow_share`).
        if rates.borrow != 0.0 {
            for (p, paid) in self.positions.iter().zip(&mut self.payments) {
                if p.size < 0.0 {
                    paid.carrying_costs += p.value.neg().to_f64() * rates.borrow * days / 365.0;
                }
            }
        }
        cost
    }

    /// Charge `days` calendar days of carrying costs: `fees` a year (the shorts' borrow
    /// fees) and the interest on the cash held now, paid on negative cash, earned on
    /// positive. Returns the net amount charged.
    fn charge_carry(&mut self, fees: f64, days: f64, rates: &CarryRates) -> f64 {
        let cash = self.cash();
        let rate = if cash < 0.0 { rates.margin } else { rates.cash };
        let cost = (fees - cash * rate) * days / 365.0;
        let charge = self.money(None, cost);
        self.cash -= charge;
        self.check_sums(None);
        self.carry_paid += cost;
        self.interest -= cash * rate * days / 365.0;
        cost
    }

    /// A parked short's share of the borrow fee the latest day end charged: `value`, its
    /// term of the account's value then, which `accrue_carry` read in the parked sums.
    pub fn parked_borrow_share(&mut self, symbol: usize, value: Money, rates: &CarryRates) {
        self.payments[symbol].carrying_costs +=
            value.neg().to_f64() * rates.borrow * self.carry_days / 365.0;
    }

    /// `accrue_carry` with symbols borrowed at rates of their own (`own_borrow`, by symbol;
    /// `None`: the account's `borrow_rate`): the fee is Σ over shorts of −size × mark ×
    /// its rate, each term rounded once and summed exactly. (Signals mode runs such
    /// accounts by the engine's loop: no position is parked.)
    #[inline(never)]
    fn accrue_own_borrow(
        &mut self,
        days: f64,
        rates: &CarryRates,
        own_borrow: &[Option<f64>],
    ) -> f64 {
        let mut fee = Money::ZERO;
        for s in 0..self.positions.len() {
            let p = &self.positions[s];
            if p.size < 0.0 {
                let rate = own_borrow.get(s).copied().flatten().unwrap_or(rates.borrow);
                let term = p.value.neg().to_f64() * rate;
                fee += self.money(Some(s), term);
                self.payments[s].carrying_costs += term * days / 365.0;
            }
        }
        self.charge_carry(fee.to_f64(), days, rates)
    }

    /// cash + Σ size × mark: the exact sum, rounded once.
    #[inline]
    pub fn equity(&self) -> f64 {
        let mut total = self.cash;
        total += self.value;
        total += self.parked_value;
        total.to_f64()
    }

    /// Cash (rounded once from its exact sum).
    #[inline]
    pub fn cash(&self) -> f64 {
        self.cash.to_f64()
    }

    /// Whether a short position counts in the account's own sums (not parked) with a
    /// term other than zero: Σ |size| × mark differs from Σ size × mark exactly then.
    #[inline]
    pub fn has_short_terms(&self) -> bool {
        self.gross != self.value
    }

    /// `symbol`'s position of `size` settles `value`, a payment of kind `kind` at a bar
    /// closing at `close` (`Payment::at`): funding pays size × close × rate from cash,
    /// counted with the carrying costs (a long pays a positive rate, a short receives
    /// it); a dividend pays size × dividend into cash (a short's is negative: it pays the
    /// lender), counted with the dividends. Both times the multiplier: a contract's
    /// funding is on what it is worth, its dividend per unit of what it holds.
    pub fn settle(&mut self, kind: Payment, symbol: usize, size: f64, close: f64, value: f64) {
        let multiplier = self.positions[symbol].multiplier;
        let received = match kind {
            Payment::Funding => -(worth(size, close, multiplier) * value),
            Payment::Dividend => worth(size, value, multiplier),
        };
        let amount = self.money(Some(symbol), received);
        self.cash += amount;
        let paid = &mut self.payments[symbol];
        match kind {
            Payment::Funding => {
                self.carry_paid -= received;
                paid.carrying_costs -= received;
            }
            Payment::Dividend => {
                self.dividends += received;
                paid.dividends += received;
            }
        }
        self.check_sums(Some(symbol));
    }

    /// Whether the account's own sums (the parked positions' aside) may put it under a
    /// margin call at some marks. Not while cash is above zero and every term is a
    /// long's at a positive mark (Σ |size| × mark = Σ size × mark): equity is then cash
    /// plus gross exposure, above zero and above any fraction below 1 of the exposure,
    /// whatever the marks do until cash or a position changes (`Config::margin_called`).
    #[inline]
    pub fn margin_exposed(&self) -> bool {
        (self.cash.0 <= 0) | (self.gross.0 != self.value.0)
    }

    /// Whether any position is open.
    #[inline]
    pub fn holds_any(&self) -> bool {
        self.holding.words().iter().any(|&w| w != 0)
    }

    /// Σ |size| × mark over all positions.
    #[inline]
    pub fn gross_exposure(&self) -> f64 {
        let mut total = self.gross;
        total += self.parked_gross;
        total.to_f64()
    }

    // ---- parked positions (signals mode's sparse driver) ----------------------------------

    /// Take `symbol`'s terms out of the account's sums: a driver that visits only the
    /// ticks where something can happen sums a held position's marks between them itself
    /// (per tick, exactly) and hands them back through `set_parked_sums` before anything
    /// reads the account. The position keeps its size and lots; its mark is left as it is
    /// until `unpark`. Returns the term of value taken out (size × mark, as last booked).
    pub fn park(&mut self, symbol: usize) -> Money {
        let p = &mut self.positions[symbol];
        let (value, gross) = (p.value, p.gross);
        p.value = Money::ZERO;
        p.gross = Money::ZERO;
        self.value -= value;
        self.gross -= gross;
        value
    }

    /// Bring a parked position back into the account's sums, marked at `price` (its
    /// latest close): the same term as if it had been marked at every bar in between.
    #[inline]
    pub fn unpark(&mut self, symbol: usize, price: f64) {
        self.mark(symbol, price);
    }

    /// The parked positions' Σ size × mark and Σ |size| × mark at the tick being run.
    #[inline]
    pub fn set_parked_sums(&mut self, value: Money, gross: Money) {
        self.parked_value = value;
        self.parked_gross = gross;
        if value.beyond_sum_limit() || gross.beyond_sum_limit() {
            let amount = self.equity();
            self.flag(None, amount);
        }
    }

    /// Record an amount beyond the exact range found outside the account (a parked
    /// position's mark): the run stops on it like on any other.
    pub fn flag_out_of_range(&mut self, symbol: usize, amount: f64) {
        self.flag(Some(symbol), amount);
    }

    #[inline]
    pub fn position(&self, symbol: usize) -> &Position {
        &self.positions[symbol]
    }

    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// The symbols with an open position (size not 0), as a set kept with the sizes.
    #[inline]
    pub fn holding(&self) -> &SymbolSet {
        &self.holding
    }

    pub fn open_position_count(&self) -> usize {
        self.positions.iter().filter(|p| p.size != 0.0).count()
    }

    /// Move `symbol`'s mark to `price`, replacing its term of value and gross exposure.
    /// (Inlined into its callers: it runs for every bar of every position.)
    #[inline(always)]
    pub fn mark(&mut self, symbol: usize, price: f64) {
        let p = &mut self.positions[symbol];
        // The price it is marked at already (a close like the one before, often on minute
        // bars): a booked term is size × this price, so the sums stay as they are. Every
        // change of size books the term again; a term of 0 is booked afresh (a parked
        // position's, taken out of the sums, or one too small to count).
        let booked = price == p.mark && p.value != Money::ZERO;
        p.mark = price;
        if p.size != 0.0 && !booked {
            self.revalue(symbol);
        }
    }

    /// Widen the excursion range of `symbol`'s open lots with a bar's low and high.
    #[inline]
    pub fn observe_range(&mut self, symbol: usize, low: f64, high: f64) {
        for lot in self.positions[symbol].lots.iter_mut() {
            lot.low = lot.low.min(low);
            lot.high = lot.high.max(high);
        }
    }

    /// Equity and gross exposure if `size` units were bought (direction +1) or sold (-1)
    /// at `price` paying `commission`, the market being at `market` then (the price the
    /// order matched at, before slippage and impact): used for the margin check before a
    /// fill. The symbol's position is valued at that market price, the units it held
    /// as well as those the fill adds (their mark is the open, or the close before: a stop
    /// or a limit fills later in the bar, where the market has moved), and what the fill
    /// pays beyond it (slippage, impact) is lost from equity at once; the other symbols
    /// stay at their marks. (Inlined into the book's one caller, where its inputs are in
    /// registers.)
    #[inline(always)]
    pub fn after_fill(
        &self,
        symbol: usize,
        direction: f64,
        size: f64,
        (price, market): (f64, f64),
        commission: f64,
    ) -> AfterFill {
        let p = &self.positions[symbol];
        let new_size = p.size + direction * size;
        let grows = new_size.abs() > p.size.abs() * (1.0 + DUST);
        // (A symbol not priced yet holds nothing to value again.)
        let moved = if p.mark.is_nan() {
            0.0
        } else {
            market - p.mark
        };
        let m = p.multiplier;
        AfterFill {
            symbol,
            equity: self.equity() - commission
                + worth(direction * size, market - price, m)
                + worth(p.size, moved, m),
            gross: self.gross_exposure()
                + worth(new_size.abs() - p.size.abs(), market, m)
                + worth(p.size.abs(), moved, m),
            worth: worth(new_size.abs(), market, m),
            units: new_size.abs(),
            grows,
        }
    }

    /// The margin the open positions require: Σ `rate(symbol, units, worth)` over them,
    /// units being |size| and worth |size| × mark × multiplier as booked, with `change` (a
    /// symbol, its units and its worth after a fill being weighed) in place of that
    /// symbol's own; an exact sum (`Money`)
    /// rounded once, as gross exposure is, so that with a rate of worth × 1 it is gross
    /// exposure to the bit. Infinite when a term is beyond money's range. Reads every
    /// position held: only for accounts whose symbols have margin terms of their own
    /// (`Config::margins`), which signals mode runs by the engine's loop, so that no
    /// position is parked.
    pub fn required_margin(
        &self,
        rate: impl Fn(usize, f64, f64) -> f64,
        change: Option<(usize, f64, f64)>,
    ) -> f64 {
        let held = self.holding.iter().map(|s| match change {
            Some(changed) if changed.0 == s => changed,
            _ => {
                let p = &self.positions[s];
                (s, p.size.abs(), p.gross.to_f64())
            }
        });
        // (A symbol the fill would open is not held yet.)
        let opened = change.filter(|&(s, _, _)| !self.holding.contains(s));
        let mut required = Money::ZERO;
        for (s, units, worth) in held.chain(opened) {
            match Money::from_f64(rate(s, units, worth)) {
                Some(term) => required += term,
                None => return f64::INFINITY,
            }
        }
        required.to_f64()
    }

    /// Book a fill: cash, lots (FIFO against the opposite side, or the named lot),
    /// closed-trade records, and the incremental value/gross. (Inlined into the book's
    /// one caller: the execution's fields stay in registers.)
    #[inline(always)]
    pub fn apply(&mut self, x: Execution) -> FillEffect {
        let mut effect = FillEffect::default();
        self.closed_legs.clear();
        let multiplier = self.positions[x.symbol].multiplier;
        let paid = self.money(
            Some(x.symbol),
            worth(x.direction * x.size, x.price, multiplier),
        );
        self.cash -= paid;
        // No commission converts to no money (the usual case without one: skip the work).
        if x.commission != 0.0 {
            let fee = self.money(Some(x.symbol), x.commission);
            self.cash -= fee;
        }
        let pos = &mut self.positions[x.symbol];
        if pos.mark.is_nan() {
            pos.mark = x.price;
        }
        let mut remaining = x.size;

        if let Some(lot_id) = x.closes_lot {
            if let Some(k) = pos.lots.iter().position(|l| l.id == lot_id) {
                let take = remaining.min(pos.lots[k].size);
                let legs = &mut self.closed_legs;
                close_part(pos, k, take, &x, &mut self.closed, legs, &mut effect);
                remaining -= take;
            }
        } else {
            while remaining > 0.0 {
                let Some(front) = pos.lots.front() else { break };
                if front.direction == x.direction {
                    break;
                }
                let take = remaining.min(front.size);
                let legs = &mut self.closed_legs;
                close_part(pos, 0, take, &x, &mut self.closed, legs, &mut effect);
                remaining -= take;
                if remaining <= x.size * DUST {
                    remaining = 0.0;
                }
            }
        }

        if remaining > x.size * DUST {
            let id = self.next_lot_id;
            self.next_lot_id += 1;
            let entry_commission = x.commission * remaining / x.size;
            pos.lots.push_back(Lot {
                id,
                entry_order: x.order_id,
                direction: x.direction,
                size: remaining,
                entry_price: x.price,
                entry_ts: x.ts,
                entry_bar: x.bar,
                entry_commission,
                high: x.price,
                low: x.price,
                stop_loss: None,
                take_profit: None,
            });
            effect.opened_lot = Some(id);
        }

        // Recount the position from its lots rather than accumulating float deltas (one
        // lot, the usual case, is its own sum: its term is never zero).
        pos.size = match pos.lots.as_slice() {
            [lot] => lot.signed_size(),
            lots => lots.iter().map(Lot::signed_size).sum(),
        };
        self.holding.set(x.symbol, pos.size != 0.0);
        self.revalue(x.symbol);
        if self.cash.beyond_sum_limit() {
            let amount = self.equity();
            self.flag(Some(x.symbol), amount);
        }
        effect
    }

    /// The bracket legs of the lots the latest `apply` closed completely.
    #[inline]
    pub fn closed_legs(&self) -> &[u64] {
        &self.closed_legs
    }

    pub fn lot_mut(&mut self, symbol: usize, lot_id: u64) -> Option<&mut Lot> {
        self.positions[symbol]
            .lots
            .iter_mut()
            .find(|l| l.id == lot_id)
    }

    pub fn lot(&self, symbol: usize, lot_id: u64) -> Option<&Lot> {
        self.positions[symbol].lots.iter().find(|l| l.id == lot_id)
    }
}

/// Close `take` units of lot `k`, writing a closed-trade record with its share of the
/// entry and exit commissions: the lot's entry commission in proportion to the units
/// closed, the closing fill's commission in proportion to the units it closes here.
/// (Inlined: a fill that closes a trade, every other fill, keeps its registers.)
#[inline(always)]
fn close_part(
    pos: &mut Position,
    k: usize,
    take: f64,
    x: &Execution,
    closed: &mut Vec<ClosedTrade>,
    legs: &mut Vec<u64>,
    effect: &mut FillEffect,
) {
    let lot = &mut pos.lots[k];
    let share = take / lot.size;
    let entry_commission = lot.entry_commission * share;
    let exit_commission = x.commission * take / x.size;
    lot.entry_commission -= entry_commission;
    lot.high = lot.high.max(x.price);
    lot.low = lot.low.min(x.price);
    let commission = entry_commission + exit_commission;
    let pnl = worth(
        lot.direction * (x.price - lot.entry_price),
        take,
        pos.multiplier,
    ) - commission;
    let (adverse, favourable) = if lot.direction > 0.0 {
        (lot.low, lot.high)
    } else {
        (lot.high, lot.low)
    };
    closed.push(ClosedTrade {
        trade_id: lot.id,
        entry_order: lot.entry_order,
        exit_order: x.order_id,
        size: take,
        entry_ts: lot.entry_ts,
        exit_ts: x.ts,
        entry_price: lot.entry_price,
        exit_price: x.price,
        pnl,
        commission,
        bars_held: x.bar.saturating_sub(lot.entry_bar),
        mae: lot.direction * (adverse / lot.entry_price - 1.0),
        mfe: lot.direction * (favourable / lot.entry_price - 1.0),
        multiplier: pos.multiplier,
    });
    lot.size -= take;
    if lot.size <= take * DUST {
        let done = pos.lots.remove(k);
        if let Some(leg) = done.stop_loss {
            legs.push(leg);
        }
        if let Some(leg) = done.take_profit {
            legs.push(leg);
        }
        effect.closed_lots += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_draws::draws;

    fn exec(direction: f64, size: f64, price: f64, commission: f64) -> Execution {
        Execution {
            symbol: 0,
            direction,
            size,
            price,
            commission,
            ts: 0,
            bar: 0,
            order_id: 0,
            closes_lot: None,
        }
    }

    fn check_identity(p: &Portfolio) {
        let marked: f64 = p
            .positions()
            .iter()
            .filter(|x| x.size != 0.0)
            .map(|x| x.size * x.mark * x.multiplier)
            .sum();
        assert!((p.equity() - (p.cash() + marked)).abs() < 1e-9 * p.equity().abs().max(1.0));
    }

    #[test]
    fn money_converts_amounts_from_one_up_exactly_and_rounds_below_symmetrically() {
        for x in [
            1.0,
            1.5,
            100.1,
            9_999.99,
            123_456_789.123,
            4.0e21,
            MONEY_LIMIT / 2.0,
        ] {
            for v in [x, -x] {
                assert_eq!(Money::from_f64(v).unwrap().to_f64(), v, "{v}");
            }
        }
        let unit = MONEY_UNIT;
        assert_eq!(Money::from_f64(unit).unwrap(), Money(1));
        // Half a unit ties to even (0), one and a half to 2; the sign never changes that.
        assert_eq!(Money::from_f64(unit / 2.0).unwrap(), Money(0));
        assert_eq!(Money::from_f64(unit * 1.5).unwrap(), Money(2));
        assert_eq!(Money::from_f64(-unit * 1.5).unwrap(), Money(-2));
        assert_eq!(Money::from_f64(unit * 2.5).unwrap(), Money(2));
        assert_eq!(Money::from_f64(unit * 0.75).unwrap(), Money(1));
        assert_eq!(
            Money::from_f64(0.3).unwrap(),
            Money((0.3f64 / unit).round() as i128)
        );
        assert_eq!(Money::from_f64(1e-300).unwrap(), Money(0));
        assert_eq!(Money::from_f64(-0.0).unwrap(), Money(0));
        for bad in [MONEY_LIMIT, -MONEY_LIMIT, 1e30, f64::INFINITY, f64::NAN] {
            assert_eq!(Money::from_f64(bad), None, "{bad}");
        }
    }

    #[test]
    fn money_fast_conversion_is_the_bit_field_one() {
        // Every magnitude the fast path takes (and the edges around it): random bit
        // patterns per exponent, ties of half a unit, powers of two, both signs.
        let mut next = draws(0x2545_F491_4F6C_DD1D);
        let check = |x: f64| {
            for v in [x, -x] {
                assert_eq!(Money::from_f64(v), Money::from_f64_fields(v), "{v:e}");
            }
        };
        for exponent in 0..=1100u64 {
            for _ in 0..200 {
                check(f64::from_bits((exponent << 52) | (next() >> 12)));
            }
            check(f64::from_bits(exponent << 52));
            check(f64::from_bits((exponent << 52) | ((1 << 52) - 1)));
        }
        for k in 0..2_000i64 {
            check((k as f64 + 0.5) * MONEY_UNIT);
            check(k as f64 * MONEY_UNIT);
            check(1.0 + k as f64 * f64::EPSILON);
            check(TWO_POW_62 - k as f64 * 1024.0);
            check(MONEY_LIMIT - k as f64 * 1_048_576.0);
            check(MONEY_LIMIT + k as f64 * 1_048_576.0);
            // Both sides of 2¹¹, where the conversion in one step ends.
            check(TWO_POW_11 - k as f64 * 2.0 * f64::EPSILON);
            check(TWO_POW_11 + k as f64 * 4.0 * f64::EPSILON);
            check((k as f64 + 0.5) * MONEY_UNIT + 1_000.0);
        }
        for x in [
            0.0,
            f64::MIN_POSITIVE,
            5e-324,
            TWO_POW_62,
            TWO_POW_11,
            MONEY_LIMIT,
            f64::NAN,
            f64::INFINITY,
        ] {
            check(x);
        }
    }

    #[test]
    fn money_to_f64_is_the_library_conversion_at_every_exponent() {
        // The library's i128 -> f64 (one rounding to nearest, ties to even) scaled by the
        // unit is the rule; the fast conversion must give the same bits for every bit
        // length, both signs, exact ties (even and odd kept bits) and their neighbours.
        let reference = |m: Money| m.0 as f64 * MONEY_UNIT;
        let check = |units: i128| {
            for v in [units, units.wrapping_neg()] {
                let m = Money(v);
                assert_eq!(m.to_f64().to_bits(), reference(m).to_bits(), "{v}");
            }
        };
        let mut next = draws(0x2545_F491_4F6C_DD1D);
        check(0);
        check(i128::MAX);
        check(i128::MIN);
        for length in 1..=127u32 {
            let top = 1u128 << (length - 1);
            check(top as i128);
            check(((top << 1).wrapping_sub(1)) as i128);
            for _ in 0..2_000 {
                let bits = (u128::from(next()) << 64) | u128::from(next());
                check((top | (bits & (top - 1))) as i128);
            }
            if length > 54 {
                // Exact halves between two neighbouring f64s, with the kept bits' last
                // one even and odd, and one unit either side of them.
                let half = 1u128 << (length - 54);
                for _ in 0..200 {
                    let within = (top << 1).wrapping_sub(1) & !(half * 2 - 1);
                    let kept = (top | (u128::from(next()) << (length - 53))) & within;
                    for last in [0, half * 2] {
                        let tie = (kept | last) + half;
                        check(tie as i128);
                        check((tie - 1) as i128);
                        check((tie + 1) as i128);
                    }
                }
            }
        }
    }

    #[test]
    fn a_closed_trade_names_the_orders_that_opened_and_closed_it() {
        // Two entries (orders 3 and 5), a close of 12 (order 8: all of the first, 2 of the
        // second) and one of the rest (order 9): each part names its entry and its exit.
        let mut p = Portfolio::new(1e6, 1);
        let order = |id: u64, x: Execution| Execution { order_id: id, ..x };
        p.apply(order(3, exec(1.0, 10.0, 100.0, 0.0)));
        p.apply(order(5, exec(1.0, 4.0, 101.0, 0.0)));
        p.apply(order(8, exec(-1.0, 12.0, 102.0, 0.0)));
        p.apply(order(9, exec(-1.0, 2.0, 103.0, 0.0)));
        let parts: Vec<(u64, u64, f64)> = p
            .closed
            .iter()
            .map(|t| (t.entry_order, t.exit_order, t.size))
            .collect();
        assert_eq!(parts, [(3, 8, 10.0), (5, 8, 2.0), (5, 9, 2.0)]);
        assert!(p.position(0).lots.is_empty());
    }

    fn lot(id: u64) -> Lot {
        Lot {
            id,
            entry_order: id,
            direction: 1.0,
            size: id as f64,
            entry_price: 10.0,
            entry_ts: 0,
            entry_bar: 0,
            entry_commission: 0.0,
            high: 10.0,
            low: 10.0,
            stop_loss: None,
            take_profit: None,
        }
    }

    #[test]
    fn lots_keep_the_order_of_a_ring_of_lots_and_bounded_room() {
        // Random opens, FIFO closes and closes of a named lot (bracket legs), against a
        // VecDeque doing the same: the same lots in the same order after every step,
        // the oldest first, and never more room kept than twice the open lots.
        let mut next = draws(0x9E37_79B9_7F4A_7C15);
        let mut pick = |k: u64| next() % k;
        let mut lots = Lots::default();
        let mut reference = std::collections::VecDeque::new();
        let mut next_id = 1;
        let (mut fronts, mut named, mut deep) = (0, 0, 0);
        for _ in 0..50_000 {
            let grow = pick(100) < if reference.len() > 40 { 30 } else { 55 };
            if grow || reference.is_empty() {
                lots.push_back(lot(next_id));
                reference.push_back(lot(next_id));
                next_id += 1;
            } else {
                let k = if pick(4) == 0 {
                    named += 1;
                    pick(reference.len() as u64) as usize
                } else {
                    fronts += 1;
                    0
                };
                let (got, want) = (lots.remove(k), reference.remove(k).unwrap());
                assert_eq!(got.id, want.id);
            }
            deep = deep.max(reference.len());
            let ids: Vec<u64> = lots.iter().map(|l| l.id).collect();
            let want: Vec<u64> = reference.iter().map(|l| l.id).collect();
            assert_eq!(ids, want);
            assert_eq!(lots.len(), reference.len());
            assert_eq!(lots.front().map(|l| l.id), reference.front().map(|l| l.id));
            if !reference.is_empty() {
                let k = pick(reference.len() as u64) as usize;
                assert_eq!(lots[k].id, reference[k].id);
            }
            assert!(lots.head == 0 || lots.head * 2 < lots.items.len());
            assert!(
                lots.items.len() <= 2 * lots.len() + 1,
                "{} kept",
                lots.items.len()
            );
        }
        assert!(fronts > 10_000 && named > 3_000 && deep > 30);
    }

    /// A deterministic stream of awkward amounts (no rand dependency in the core).
    fn amounts(n: usize, seed: u64) -> Vec<f64> {
        let mut next = draws(seed);
        (0..n)
            .map(|_| {
                let state = next();
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                (u - 0.4) * 10f64.powi((state % 6) as i32) / 3.0
            })
            .collect()
    }

    #[test]
    fn equity_is_the_same_bits_whatever_order_symbols_are_marked_and_filled_in() {
        let n = 12;
        let sizes = amounts(n, 7);
        let opens = amounts(n, 11)
            .iter()
            .map(|x| 10.0 + x.abs())
            .collect::<Vec<_>>();
        let closes = amounts(n, 13)
            .iter()
            .map(|x| 10.0 + x.abs())
            .collect::<Vec<_>>();
        let run = |order: &[usize]| {
            let mut p = Portfolio::new(100_000.0, n);
            for &s in order {
                p.mark(s, opens[s]);
            }
            for &s in order {
                let mut x = exec(sizes[s].signum(), sizes[s].abs() / 7.0, opens[s], 0.013);
                x.symbol = s;
                p.apply(x);
            }
            for &s in order {
                p.mark(s, closes[s]);
            }
            (
                p.equity().to_bits(),
                p.cash().to_bits(),
                p.gross_exposure().to_bits(),
            )
        };
        let forward: Vec<usize> = (0..n).collect();
        let backward: Vec<usize> = (0..n).rev().collect();
        let shuffled = [5, 0, 11, 3, 8, 1, 10, 6, 2, 9, 4, 7];
        let float_order = |order: &[usize]| {
            order
                .iter()
                .fold(0.0, |acc, &s| acc + sizes[s] / 7.0 * closes[s])
        };
        // Plain f64 sums of these terms do depend on the order (so the test can fail) ...
        let sums = [&forward, &backward, &shuffled[..]].map(|o| float_order(o).to_bits());
        assert!(sums[0] != sums[1] || sums[0] != sums[2]);
        // ... the account's sums do not.
        assert_eq!(run(&forward), run(&backward));
        assert_eq!(run(&forward), run(&shuffled));
    }

    /// The account's sums as they would be booked from scratch: every position's terms
    /// size × mark and |size| × mark (0 for a parked one), summed exactly.
    fn sums_from_scratch(p: &Portfolio, parked: &[bool]) -> (Money, Money) {
        let (mut value, mut gross) = (Money::ZERO, Money::ZERO);
        for (s, q) in p.positions().iter().enumerate() {
            if q.size != 0.0 && !parked[s] {
                value += Money::from_f64(q.size * q.mark).unwrap();
                gross += Money::from_f64(q.size.abs() * q.mark).unwrap();
            }
        }
        (value, gross)
    }

    #[test]
    fn marking_at_the_same_price_again_keeps_the_sums_booked_from_scratch() {
        // Prices on a coarse grid repeat often (as minute closes do); fills change sizes
        // between marks, and positions are parked and brought back at the price they
        // were parked at, which a mark at an unchanged price must not mistake for booked.
        let n = 4;
        let mut next = draws(0x9E37_79B9_7F4A_7C15);
        let mut pick = |k: u64| next() % k;
        let mut p = Portfolio::new(1_000_000.0, n);
        let mut parked = vec![false; n];
        let mut repeated = 0;
        for _ in 0..20_000 {
            let s = pick(n as u64) as usize;
            let price = 50.0 + pick(4) as f64 * 0.25;
            match pick(10) {
                0 if !parked[s] => {
                    let mut x = exec(
                        if pick(2) == 0 { 1.0 } else { -1.0 },
                        1.0 + pick(3) as f64,
                        price,
                        0.5,
                    );
                    x.symbol = s;
                    p.mark(s, price);
                    p.apply(x);
                }
                1 if !parked[s] => {
                    p.park(s);
                    parked[s] = true;
                }
                2 if parked[s] => {
                    // Back at the price it was parked at, or at a new one.
                    let at = if pick(2) == 0 {
                        p.position(s).mark
                    } else {
                        price
                    };
                    p.unpark(s, at);
                    parked[s] = false;
                }
                _ if !parked[s] => {
                    repeated +=
                        usize::from(price == p.position(s).mark && p.position(s).size != 0.0);
                    p.mark(s, price);
                }
                _ => {}
            }
            assert_eq!((p.value, p.gross), sums_from_scratch(&p, &parked));
        }
        assert!(repeated > 1_000, "{repeated} marks at an unchanged price");
    }

    #[test]
    fn equity_is_cash_plus_each_position_marked_summed_exactly() {
        let mut p = Portfolio::new(10_000.0, 3);
        let prices = [101.37, 0.3, 77.7];
        for (s, &price) in prices.iter().enumerate() {
            p.mark(s, price);
            let mut x = exec(if s == 1 { -1.0 } else { 1.0 }, 3.3, price, 0.1);
            x.symbol = s;
            p.apply(x);
            p.mark(s, price * 1.01);
        }
        // The identity with every term rounded once and summed exactly (as i128 units).
        let terms: Vec<f64> = p.positions().iter().map(|q| q.size * q.mark).collect();
        let exact: i128 = terms
            .iter()
            .map(|&t| Money::from_f64(t).unwrap().0)
            .sum::<i128>()
            + p.cash.0;
        assert_eq!(p.equity(), Money(exact).to_f64());
        let gross: i128 = terms
            .iter()
            .map(|&t| Money::from_f64(t.abs()).unwrap().0)
            .sum();
        assert_eq!(p.gross_exposure(), Money(gross).to_f64());
    }

    #[test]
    fn an_amount_beyond_the_exact_range_is_reported_not_wrapped() {
        let mut p = Portfolio::new(10_000.0, 2);
        p.mark(0, 1.0);
        p.apply(exec(1.0, 1.0, 1.0, 0.0));
        assert_eq!(p.out_of_range(), None);
        p.mark(0, 1e25);
        assert_eq!(p.out_of_range(), Some((Some(0), 1e25)));
        // Many terms just inside the limit: the sum is caught before i128 could wrap.
        let mut q = Portfolio::new(10_000.0, 64);
        for s in 0..64 {
            q.mark(s, MONEY_LIMIT / 2.0);
            let mut x = exec(1.0, 1.0, MONEY_LIMIT / 2.0, 0.0);
            x.symbol = s;
            q.apply(x);
        }
        assert!(q.out_of_range().is_some());
    }

    #[test]
    fn long_round_trip_with_commission() {
        let mut p = Portfolio::new(10_000.0, 1);
        p.mark(0, 100.0);
        p.apply(exec(1.0, 10.0, 100.0, 2.0));
        assert_eq!(p.cash(), 10_000.0 - 1000.0 - 2.0);
        p.mark(0, 110.0);
        check_identity(&p);
        assert!((p.equity() - (10_000.0 - 2.0 + 100.0)).abs() < 1e-9);
        p.apply(exec(-1.0, 10.0, 110.0, 3.0));
        let t = &p.closed[0];
        // (110 - 100) × 10 - (2 + 3) = 95, on 1000 + 5 of cost.
        assert!((t.pnl - 95.0).abs() < 1e-12);
        assert!((t.return_pct() - 95.0 / 1005.0).abs() < 1e-12);
        assert!((p.equity() - 10_095.0).abs() < 1e-9);
        assert_eq!(p.position(0).size, 0.0);
    }

    #[test]
    fn a_fill_is_weighed_with_its_symbol_where_the_market_is_when_it_fills() {
        // 10 held short from 100, marked at the open, 100; 5 more sold by a stop at 99
        // that fills at 98.9 after slippage, commission 1. At 99 the 10 held gain 10 and
        // are worth 990, the 5 added 495, and the 0.1 a unit given up by the slippage is
        // lost at once.
        let mut p = Portfolio::new(10_000.0, 1);
        p.mark(0, 100.0);
        p.apply(exec(-1.0, 10.0, 100.0, 0.0));
        let after = p.after_fill(0, -1.0, 5.0, (98.9, 99.0), 1.0);
        let equity = 10_000.0 - 1.0 - 0.5 + 10.0;
        assert!((after.equity - equity).abs() < 1e-9, "{after:?}");
        assert!((after.gross - 1_485.0).abs() < 1e-9, "{after:?}");
        assert!((after.worth - 1_485.0).abs() < 1e-9, "{after:?}");
        assert_eq!((after.units, after.grows), (15.0, true));
        // At the mark itself nothing is valued again: the terms of the fill alone.
        let at_open = p.after_fill(0, -1.0, 5.0, (99.9, 100.0), 1.0);
        assert_eq!(
            (at_open.equity, at_open.gross),
            (10_000.0 - 1.0 - 0.5, 1_500.0)
        );
    }

    #[test]
    fn a_contract_books_its_multiplier_in_every_amount() {
        // Two contracts of 50 a point bought at 5,010 (commission 4), marked at 5,020,
        // sold at 4,990 (commission 4): cash -501,004 then +499,000 - 4; the trade loses
        // 2 × 20 × 50 + 8 = 2,008 of 501,000 + 8 it cost. Funding of 0.1% at 5,000 on the
        // two: 500; a dividend of 1.00 a unit: 100.
        let mut p = Portfolio::new(1_000_000.0, 1);
        p.set_multiplier(0, 50.0);
        p.mark(0, 5_000.0);
        let after = p.after_fill(0, 1.0, 2.0, (5_010.0, 5_000.0), 4.0);
        assert_eq!(
            (after.equity, after.gross, after.worth, after.grows),
            (1_000_000.0 - 4.0 - 1_000.0, 500_000.0, 500_000.0, true)
        );
        p.apply(exec(1.0, 2.0, 5_010.0, 4.0));
        assert_eq!(p.cash(), 1_000_000.0 - 501_000.0 - 4.0);
        p.mark(0, 5_020.0);
        check_identity(&p);
        assert_eq!(p.gross_exposure(), 502_000.0);
        assert_eq!(p.equity(), 1_000_000.0 - 4.0 + 1_000.0);
        p.settle(Payment::Funding, 0, 2.0, 5_000.0, 0.001);
        p.settle(Payment::Dividend, 0, 2.0, 5_000.0, 1.0);
        assert_eq!((p.carry_paid, p.dividends), (500.0, 100.0));
        p.apply(exec(-1.0, 2.0, 4_990.0, 4.0));
        let t = &p.closed[0];
        assert_eq!(t.pnl, -2_008.0);
        assert_eq!(t.return_pct(), -2_008.0 / 501_008.0);
        assert_eq!(p.equity(), 1_000_000.0 - 2_008.0 - 500.0 + 100.0);
    }

    #[test]
    fn short_pnl_and_flip_through_zero() {
        let mut p = Portfolio::new(1_000.0, 1);
        p.mark(0, 50.0);
        p.apply(exec(-1.0, 4.0, 50.0, 0.0));
        assert_eq!(p.cash(), 1_200.0);
        p.mark(0, 45.0);
        check_identity(&p);
        // Buy 6: closes the 4 short (+20) and opens 2 long at 45.
        let e = p.apply(exec(1.0, 6.0, 45.0, 0.0));
        assert_eq!(e.closed_lots, 1);
        assert!(e.opened_lot.is_some());
        assert!((p.closed[0].pnl - 20.0).abs() < 1e-12);
        assert_eq!(p.position(0).size, 2.0);
        check_identity(&p);
        assert!((p.equity() - 1_020.0).abs() < 1e-9);
    }

    #[test]
    fn carrying_costs_accrue_per_calendar_day() {
        let rates = CarryRates {
            borrow: 0.0365,
            margin: 0.073,
            cash: 0.0,
        };
        let day = 86_400_000_000_000i64;
        let mut p = Portfolio::new(1_000.0, 2);
        p.mark(0, 50.0);
        // Short 5,000: cash 6,000. 5,000 × 3.65% / 365 = 0.50 a day; no interest on
        // positive cash at 0%.
        p.apply(exec(-1.0, 100.0, 50.0, 0.0));
        assert!((p.accrue_carry(16 * 3_600_000_000_000, &rates, &[]) - 0.5).abs() < 1e-12);
        // Friday to Monday: three days.
        assert!(
            (p.accrue_carry(3 * day + 16 * 3_600_000_000_000, &rates, &[]) - 1.5).abs() < 1e-12
        );
        assert!((p.carry_paid - 2.0).abs() < 1e-12);
        assert!((p.cash() - 5_998.0).abs() < 1e-9);
        check_identity(&p);
        // Cover and buy 200 of another at 50: cash 5,998 - 5,000 - 10,000 = -9,002.
        p.apply(exec(1.0, 100.0, 50.0, 0.0));
        p.mark(1, 50.0);
        p.apply(exec(1.0, 200.0, 50.0, 0.0));
        let charged = p.accrue_carry(4 * day + 16 * 3_600_000_000_000, &rates, &[]);
        assert!((charged - 9_002.0 * 0.073 / 365.0).abs() < 1e-12);
        check_identity(&p);
    }

    #[test]
    fn a_symbols_own_borrow_rate_charges_its_shorts() {
        // Shorts of 5,000 (the account's 3.65%: 0.50 a day) and 2,000 (its own 36.5%:
        // 2.00 a day); a long of the third symbol pays no fee, whatever its own rate.
        let rates = CarryRates {
            borrow: 0.0365,
            margin: 0.0,
            cash: 0.0,
        };
        let own = [None, Some(0.365), Some(1.0)];
        let mut p = Portfolio::new(10_000.0, 3);
        for (s, direction, size) in [(0, -1.0, 100.0), (1, -1.0, 40.0), (2, 1.0, 10.0)] {
            p.mark(s, 50.0);
            let mut x = exec(direction, size, 50.0, 0.0);
            x.symbol = s;
            p.apply(x);
        }
        let charged = p.accrue_carry(16 * 3_600_000_000_000, &rates, &own);
        assert!((charged - 2.5).abs() < 1e-12, "{charged}");
        assert!((p.carry_paid - 2.5).abs() < 1e-12);
        check_identity(&p);
        // Each short pays its own part; the long and the account's cash nothing.
        let paid: Vec<f64> = p.payments.iter().map(|x| x.carrying_costs).collect();
        assert!(
            (paid[0] - 0.5).abs() < 1e-12 && (paid[1] - 2.0).abs() < 1e-12,
            "{paid:?}"
        );
        assert_eq!((paid[2], p.interest), (0.0, 0.0));
    }

    #[test]
    fn each_symbol_keeps_its_share_of_the_payments_and_the_account_its_interest() {
        // Shorts of 5,000 and 2,000 at 3.65% (0.50 and 0.20 a day), a long of 15,000 on
        // 10,000 of cash: cash 10,000 + 7,000 - 15,000 = 2,000, earning 1.825% (0.10 a
        // day). A first day end (one day: 0.50 + 0.20 - 0.10 charged, cash 1,999.40), then
        // two days: 1.00, 0.40 and the interest on 1,999.40.
        let rates = CarryRates {
            borrow: 0.0365,
            margin: 0.073,
            cash: 0.01825,
        };
        let mut p = Portfolio::new(10_000.0, 4);
        for (s, direction, size) in [(0, -1.0, 100.0), (1, -1.0, 40.0), (2, 1.0, 300.0)] {
            p.mark(s, 50.0);
            let mut x = exec(direction, size, 50.0, 0.0);
            x.symbol = s;
            p.apply(x);
        }
        let day = 86_400_000_000_000i64;
        p.accrue_carry(day, &rates, &[]);
        let charged = p.accrue_carry(3 * day, &rates, &[]);
        assert!((charged - 2.0 * (0.5 + 0.2 - 1_999.4 * 0.01825 / 365.0)).abs() < 1e-9);
        let paid: Vec<f64> = p.payments.iter().map(|x| x.carrying_costs).collect();
        assert!(
            (paid[0] - 1.5).abs() < 1e-9 && (paid[1] - 0.6).abs() < 1e-9,
            "{paid:?}"
        );
        assert_eq!((paid[2], paid[3]), (0.0, 0.0));
        assert!(p.interest < 0.0 && (p.interest - (p.carry_paid - 2.1)).abs() < 1e-12);
        // A parked short's share is its term at the latest day end, for as many days.
        p.parked_borrow_share(3, Money::from_f64(-1_000.0).unwrap(), &rates);
        assert!((p.payments[3].carrying_costs - 1_000.0 * 0.0365 * 2.0 / 365.0).abs() < 1e-12);
        // Funding and dividends are the symbol's that settled them.
        p.settle(Payment::Funding, 2, 300.0, 50.0, 0.001);
        p.settle(Payment::Dividend, 0, -100.0, 50.0, 0.25);
        assert!((p.payments[2].carrying_costs - 15.0).abs() < 1e-12);
        assert_eq!(p.payments[0].dividends, -25.0);
        assert_eq!(p.dividends, -25.0);
        let symbols: f64 = p.payments.iter().map(|x| x.carrying_costs).sum();
        assert!(
            (symbols - 1_000.0 * 0.0365 * 2.0 / 365.0 + p.interest - p.carry_paid).abs() < 1e-9
        );
    }

    #[test]
    fn a_sliver_with_a_fixed_fee_loses_what_it_cost_not_ten_times_it() {
        let mut p = Portfolio::new(10_000.0, 1);
        p.mark(0, 10.0);
        p.apply(exec(1.0, 100.0, 10.0, 1.0));
        p.apply(exec(1.0, 0.01, 10.0, 1.0)); // a top-up of 0.10 paying a 1.00 fee
        p.apply(exec(-1.0, 100.01, 11.0, 1.0));
        let (big, sliver) = (&p.closed[0], &p.closed[1]);
        let exit_share = 0.01 / 100.01;
        // 0.01 × (11 - 10) - 1 - exit share = -0.9901..., on 0.10 + 1 + exit share.
        let pnl = 0.01 - 1.0 - exit_share;
        assert!((sliver.pnl - pnl).abs() < 1e-12);
        assert!((sliver.return_pct() - pnl / (0.1 + 1.0 + exit_share)).abs() < 1e-12);
        assert!(sliver.return_pct() > -1.0);
        let big_fees = 1.0 + 100.0 / 100.01;
        assert!((big.return_pct() - (100.0 - big_fees) / (1000.0 + big_fees)).abs() < 1e-12);
    }

    #[test]
    fn fifo_partial_close_splits_commission() {
        let mut p = Portfolio::new(10_000.0, 1);
        p.mark(0, 10.0);
        p.apply(exec(1.0, 10.0, 10.0, 1.0));
        p.apply(exec(1.0, 10.0, 12.0, 1.0));
        p.apply(exec(-1.0, 15.0, 11.0, 1.5));
        // First lot fully (+10 - 1 - 1.0), then 5 of the second (-5 - 0.5 - 0.5).
        assert!((p.closed[0].pnl - 8.0).abs() < 1e-12);
        assert!((p.closed[1].pnl - (-6.0)).abs() < 1e-12);
        assert_eq!(p.position(0).lots.len(), 1);
        assert!((p.position(0).lots[0].entry_commission - 0.5).abs() < 1e-12);
        p.mark(0, 11.0);
        check_identity(&p);
    }
}
