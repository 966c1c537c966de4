//! The prompt set: requests in three buckets by input + output tokens (short ≤ 100, medium
//! 101–500, long > 500), generated from a seed so that every run and every arm sends the same
//! requests. A prompt's tokens are words (what the mock model counts); a real model's tokenizer
//! counts them differently, so its runs report the tokens the server says it used.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A size bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bucket {
    /// Input + output ≤ 100 tokens.
    Short,
    /// 101–500 tokens.
    Medium,
    /// More than 500 tokens.
    Long,
}

impl Bucket {
    /// Input and output token ranges (inclusive) whose sums all fall in the bucket.
    pub fn ranges(self) -> ((usize, usize), (usize, usize)) {
        match self {
            Bucket::Short => ((10, 60), (10, 40)),
            Bucket::Medium => ((80, 300), (30, 200)),
            Bucket::Long => ((400, 1500), (128, 512)),
        }
    }

    /// Whether `total` tokens belong to this bucket.
    pub fn holds(self, total: usize) -> bool {
        match self {
            Bucket::Short => total <= 100,
            Bucket::Medium => (101..=500).contains(&total),
            Bucket::Long => total > 500,
        }
    }
}

/// One request of the set.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    /// The text (`input` words).
    pub text: String,
    /// Input tokens (words).
    pub input: usize,
    /// Output tokens asked for (`max_tokens`, with `ignore_eos`).
    pub output: usize,
}

/// `n` prompts of `bucket`, the same for the same seed.
pub fn generate(bucket: Bucket, n: usize, seed: u64) -> Vec<Prompt> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ((in_lo, in_hi), (out_lo, out_hi)) = bucket.ranges();
    (0..n)
        .map(|_| {
            let input = rng.random_range(in_lo..=in_hi);
            let output = rng.random_range(out_lo..=out_hi);
            let text = (0..input)
                .map(|_| WORDS[rng.random_range(0..WORDS.len())])
                .collect::<Vec<_>>()
                .join(" ");
            Prompt {
                text,
                input,
                output,
            }
        })
        .collect()
}

const WORDS: &[&str] = &[
    "attest",
    "block",
    "chain",
    "compose",
    "device",
    "enclave",
    "finalized",
    "gateway",
    "hash",
    "image",
    "key",
    "measure",
    "node",
    "oracle",
    "policy",
    "quote",
    "registry",
    "root",
    "seal",
    "token",
    "upgrade",
    "verify",
    "vote",
    "witness",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prompt_falls_in_its_bucket_and_a_seed_fixes_the_set() {
        for bucket in [Bucket::Short, Bucket::Medium, Bucket::Long] {
            let set = generate(bucket, 500, 11);
            assert_eq!(set, generate(bucket, 500, 11));
            assert_ne!(set, generate(bucket, 500, 12));
            for p in &set {
                assert!(
                    bucket.holds(p.input + p.output),
                    "{bucket:?}: {} + {}",
                    p.input,
                    p.output
                );
                assert_eq!(p.text.split_whitespace().count(), p.input);
            }
        }
        // The buckets do not overlap.
        assert!(!Bucket::Short.holds(101) && Bucket::Medium.holds(101) && !Bucket::Long.holds(500));
    }
}
