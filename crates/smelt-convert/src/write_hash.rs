//! BLAKE3 of a file taken while it is written, so the report's output hash needs no second
//! read of the output.
//!
//! Every writer streams its bytes in order and, at the end, may seek back to patch what it
//! reserved at the start (the blob's header and directory, the safetensors header). So the
//! file is split along BLAKE3's own tree: a *prefix* of `P` bytes (`P` a power-of-two number of
//! 1 KiB chunks), then regions `[P, 2P)`, `[2P, 4P)`, `[4P, 8P)`, … Each region starts at an
//! offset that is a power of two times `P`, so it is a whole subtree of the file's tree, and
//! is hashed as the bytes arrive (`blake3::hazmat`: a hasher told its input offset, finished
//! as a chaining value). The prefix is read back from the file once, when the file is done,
//! and the chaining values are merged into the root: the first regions make the perfect left
//! subtree `[0, 2^(k-1)·P)` and the last one, full or not, is the right subtree, exactly as
//! BLAKE3 splits a file of that length.
//!
//! A write that does not land where the streamed hash expects it (over bytes already hashed
//! past the prefix, or beyond the end, leaving a hole) marks the hash *broken*; the caller then
//! hashes the finished file the old way. Results never depend on which path was taken.

use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode};

/// The hash of a file being written, whose first `prefix` bytes are read back at the end.
pub(crate) struct WriteHasher {
    prefix: u64,
    /// The offset the next streamed byte must have.
    next: u64,
    /// Start of the region `current` hashes (a power of two times `prefix`).
    region: u64,
    current: blake3::Hasher,
    /// Chaining values of the regions already complete, in file order (not the prefix).
    done: Vec<ChainingValue>,
    broken: bool,
}

impl WriteHasher {
    /// A hasher whose prefix is `prefix` bytes, or `None` unless that is a power-of-two number
    /// of BLAKE3 chunks.
    pub(crate) fn new(prefix: u64) -> Option<WriteHasher> {
        let chunk = blake3::CHUNK_LEN as u64;
        if prefix % chunk != 0 || !(prefix / chunk).is_power_of_two() {
            return None;
        }
        Some(WriteHasher {
            prefix,
            next: prefix,
            region: prefix,
            current: region_hasher(prefix),
            done: Vec::new(),
            broken: false,
        })
    }

    /// The prefix length in bytes.
    pub(crate) fn prefix(&self) -> u64 {
        self.prefix
    }

    /// Gives up on the streamed hash (the caller will read the file back).
    pub(crate) fn break_off(&mut self) {
        self.broken = true;
    }

    /// `bytes` were written at offset `at`.
    pub(crate) fn wrote(&mut self, at: u64, bytes: &[u8]) {
        if self.broken {
            return;
        }
        let end = at.saturating_add(bytes.len() as u64);
        if end <= self.prefix {
            return; // read back at the end
        }
        let (at, mut bytes) =
            if at < self.prefix { (self.prefix, &bytes[(self.prefix - at) as usize..]) } else { (at, bytes) };
        if at != self.next {
            self.broken = true; // an overwrite of hashed bytes, or a hole
            return;
        }
        while !bytes.is_empty() {
            let region_end = self.region * 2;
            let take = bytes.len().min((region_end - self.next) as usize);
            self.current.update(&bytes[..take]);
            self.next += take as u64;
            bytes = &bytes[take..];
            if self.next == region_end {
                self.done.push(self.current.finalize_non_root());
                self.region = region_end;
                self.current = region_hasher(region_end);
            }
        }
    }

    /// The BLAKE3 of the whole file, `len` bytes long, given its first `min(len, prefix)`
    /// bytes; `None` when the streamed hash broke or does not reach `len`.
    pub(crate) fn finish(self, len: u64, prefix_bytes: &[u8]) -> Option<blake3::Hash> {
        if self.broken || prefix_bytes.len() as u64 != len.min(self.prefix) {
            return None;
        }
        if len <= self.prefix {
            return (self.next == self.prefix).then(|| blake3::hash(prefix_bytes));
        }
        if self.next != len {
            return None;
        }
        // Chaining values of [0, P), then [P, 2P), [2P, 4P), …, the last one possibly partial.
        let mut cvs = Vec::with_capacity(self.done.len() + 2);
        cvs.push(blake3::Hasher::new().update(prefix_bytes).finalize_non_root());
        cvs.extend(self.done);
        if self.next > self.region {
            cvs.push(self.current.finalize_non_root());
        }
        // len > P, so there are at least two: the left subtree is all but the last one.
        let (right, left) = cvs.split_last()?;
        let left = left.iter().skip(1).fold(left[0], |l, r| merge_subtrees_non_root(&l, r, Mode::Hash));
        Some(merge_subtrees_root(&left, right, Mode::Hash))
    }
}

fn region_hasher(offset: u64) -> blake3::Hasher {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect()
    }

    /// Written in order in pieces of every size, for lengths on both sides of each region
    /// boundary: BLAKE3's one-shot hash of the bytes.
    #[test]
    fn in_order_writes_give_the_hash_of_the_bytes() {
        let p = 2048usize;
        let lens = [
            0,
            1,
            1023,
            1024,
            1025,
            p - 1,
            p,
            p + 1,
            2 * p,
            2 * p + 1,
            4 * p - 1,
            4 * p,
            4 * p + 7,
            37 * p + 5,
        ];
        for len in lens {
            let d = data(len);
            for piece in [1, 7, 1024, 3000, 1 << 20] {
                let mut h = WriteHasher::new(p as u64).unwrap();
                for (i, c) in d.chunks(piece).enumerate() {
                    h.wrote((i * piece) as u64, c);
                }
                let got = h.finish(len as u64, &d[..len.min(p)]);
                assert_eq!(got, Some(blake3::hash(&d)), "len {len} piece {piece}");
            }
        }
    }

    /// A writer that reserves a header, streams the body and patches the header at the end
    /// (what the blob and safetensors writers do): the hash is that of the final bytes.
    #[test]
    fn a_header_patched_inside_the_prefix_is_read_back() {
        let p = 4096usize;
        let mut d = data(50_000);
        let mut h = WriteHasher::new(p as u64).unwrap();
        h.wrote(0, &vec![0u8; 3000]); // the reserved header
        h.wrote(3000, &d[3000..]);
        d[..3000].fill(0x5a); // the header as finally written
        h.wrote(0, &d[..3000]);
        assert_eq!(h.finish(d.len() as u64, &d[..p]), Some(blake3::hash(&d)));
    }

    /// Overwriting streamed bytes, leaving a hole, or stopping short all give `None` (the
    /// caller hashes the file instead), never a wrong hash.
    #[test]
    fn writes_out_of_order_past_the_prefix_break_the_hash() {
        let p = 1024u64;
        let d = data(10_000);
        let mut h = WriteHasher::new(p).unwrap();
        h.wrote(0, &d);
        h.wrote(5000, &d[5000..5010]);
        assert_eq!(h.finish(d.len() as u64, &d[..1024]), None, "overwrite");
        let mut h = WriteHasher::new(p).unwrap();
        h.wrote(0, &d[..2000]);
        h.wrote(3000, &d[3000..]);
        assert_eq!(h.finish(d.len() as u64, &d[..1024]), None, "hole");
        let mut h = WriteHasher::new(p).unwrap();
        h.wrote(0, &d[..9000]);
        assert_eq!(h.finish(d.len() as u64, &d[..1024]), None, "short");
        let mut h = WriteHasher::new(p).unwrap();
        h.wrote(0, &d);
        h.break_off();
        assert_eq!(h.finish(d.len() as u64, &d[..1024]), None, "broken off");
    }

    /// A prefix must be a power-of-two number of 1 KiB chunks.
    #[test]
    fn prefixes_that_are_not_subtrees_are_refused() {
        for bad in [0, 512, 1000, 3 * 1024, 6 * 1024] {
            assert!(WriteHasher::new(bad).is_none(), "{bad}");
        }
        for good in [1024, 2048, 16 << 20] {
            assert!(WriteHasher::new(good).is_some(), "{good}");
        }
    }
}
