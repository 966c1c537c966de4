//! A Merkle tree over audit-log entries, as in RFC 6962 / RFC 9162 (Certificate Transparency):
//! leaf hash `SHA-256(0x00 ‖ entry)`, node hash `SHA-256(0x01 ‖ left ‖ right)`, a tree of n leaves
//! split at the largest power of two below n. The domain-separating prefixes make a leaf
//! impossible to pass off as a node. Anyone can check an inclusion proof offline against a root
//! committed on chain.

use sha2::{Digest, Sha256};

/// A 32-byte hash.
pub type Hash = [u8; 32];

/// The hash of one entry.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root over leaf hashes (the empty tree's root is `SHA-256("")`).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` (sibling hashes from the leaf up), or `None` if out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut lo, mut hi, mut m) = (0, leaves.len(), index);
    // Walk down recording siblings, then reverse so the path runs leaf → root.
    while hi - lo > 1 {
        let k = split(hi - lo);
        if m < k {
            path.push(root(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            path.push(root(&leaves[lo..lo + k]));
            lo += k;
            m -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// Whether `leaf` is entry `index` of a tree of `size` leaves with root `root`, by `path`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && &r == root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn every_proof_of_every_tree_size_verifies_and_only_for_its_leaf() {
        for n in 1..=33 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let path = inclusion_proof(&l, i).unwrap();
                assert!(
                    verify_inclusion(&l[i], i as u64, n as u64, &path, &r),
                    "n={n} i={i}"
                );
                let other = (i + 1) % n;
                if other != i {
                    assert!(
                        !verify_inclusion(&l[other], i as u64, n as u64, &path, &r),
                        "n={n} i={i} wrong leaf"
                    );
                    assert!(
                        !verify_inclusion(&l[i], other as u64, n as u64, &path, &r),
                        "n={n} i={i} wrong index"
                    );
                }
                // (The size is not checked here: some paths have the same shape in two sizes; the
                // size a root covers is committed with it on chain, as `toSeq - fromSeq + 1`.)
                if let Some(first) = path.first() {
                    let mut bad = path.clone();
                    bad[0] = node_hash(first, first);
                    assert!(
                        !verify_inclusion(&l[i], i as u64, n as u64, &bad, &r),
                        "n={n} i={i} tampered"
                    );
                }
            }
            assert!(inclusion_proof(&l, n).is_none());
        }
    }

    #[test]
    fn roots_match_an_independent_implementation() {
        // Computed with Python's hashlib from the RFC 6962 definition.
        let expected = [
            (
                1,
                "773885a613489e24ce2cf76199d6a423f042e4bbf12d7eecee912ef276c65701",
            ),
            (
                2,
                "5a47662fd8a317d96049a3f9f47c55dc67ca66051baa3683dbb19b2fe09a07b0",
            ),
            (
                3,
                "94fbd0dd836f50301692e6d0eade728ee19ec52bfff1606ed807c8575d5aaa19",
            ),
            (
                7,
                "98c97f0ba3175cd08b031dd084b9dc4e649b64d1a28e6ea694646503173ab587",
            ),
        ];
        for (n, want) in expected {
            assert_eq!(hex::encode(root(&leaves(n))), want, "root of {n} leaves");
        }
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
