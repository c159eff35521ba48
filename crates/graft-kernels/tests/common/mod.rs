//! Helpers shared by the integration tests.

#[allow(dead_code)]
pub mod conv;

/// Deterministic values in [-1, 1) from a seed (an LCG): tests that run in parallel must not
/// share the device's random generator, whose seed is global.
pub fn noise(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
