//! Deterministic random streams for the core's tests: the core takes no `rand`
//! dependency, and a test that fails must fail the same way on every machine.

/// Marsaglia's xorshift64 (shifts 13, 7, 17) from `seed` (not zero): the raw stream the
/// property tests draw sizes, symbols and steps from.
pub(crate) fn draws(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// xorshift64* (shifts 12, 25, 27, then a multiply that mixes the high bits): the stream
/// the rolling and candle tests draw prices from.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1): the top 53 bits.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
