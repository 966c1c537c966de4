//! AES-256-GCM throughput on one core: the per-byte part of what a confidential GPU pays for
//! each CPU↔GPU crossing (the driver encrypts bounce buffers with AES-GCM in CC mode), measured
//! here as an input of the transfer-cost model in docs/inference.md.

use std::time::{Duration, Instant};

use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey},
    error::Unspecified,
};

/// Bytes per second sealing (encrypting and tagging) buffers of `size` bytes in place, on the
/// calling thread, for at least `duration`.
pub fn seal_rate(size: usize, duration: Duration) -> Result<f64, Unspecified> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32])?);
    let mut buffer = vec![0x5au8; size];
    let (mut bytes, mut counter) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < duration {
        for _ in 0..8 {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&counter.to_be_bytes());
            counter += 1;
            let tag = key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut buffer,
            )?;
            let _ = std::hint::black_box(tag);
            bytes += size as u64;
        }
    }
    Ok(bytes as f64 / start.elapsed().as_secs_f64())
}
