//! The one random number generator graft's seeded decisions use (splits, augmentation,
//! shuffling, a new head's initial weights), so a seed means the same on every platform.

/// SplitMix64: small and well known, so results are identical on every platform and version.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next value (not an `Iterator`: the stream never ends and is never collected).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw from [0, 1): the top 53 bits of the next value.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
