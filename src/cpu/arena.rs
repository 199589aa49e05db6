//! The CPU's adapter storage: the layer's arena offsets (from `ArenaAlloc`, in 32-bit words)
//! map onto separate blocks, one per write (an adapter's A, its B, its DoRA gain). Loading an
//! adapter allocates exactly its own blocks and copies nothing already loaded; unloading frees
//! them. (The GPU keeps one buffer per layer, which one storage binding needs.) A block holds
//! factors in its adapter's `FactorFormat` (f32 or int16).

use crate::backend::{ArenaMove, ArenaStore};
use crate::error::{Error, Result};
use crate::backend::factors::{i16_codes, i16_scales, FactorFormat, RankAxis};

/// One write's values.
enum Block {
    F32(Box<[f32]>),
    I16(Box<[i16]>, Box<[f32]>),
}

impl Block {
    fn words(&self) -> usize {
        match self {
            Block::F32(v) => v.len(),
            Block::I16(v, s) => FactorFormat::I16.words(v.len(), s.len()),
        }
    }
}

/// The values of a block from some word on, as the kernels read them.
#[derive(Clone, Copy)]
pub enum Values<'a> {
    F32(&'a [f32]),
    /// Codes and the per-rank scales.
    I16(&'a [i16], &'a [f32]),
}

/// Which of `Values`' formats a pointer addresses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    F32,
    I16,
}

impl<'a> Values<'a> {
    /// The first `n` values' address and format.
    ///
    /// Panics if the block holds fewer: route entries were checked against the factors' sizes.
    #[inline]
    pub fn ptr(self, n: usize) -> (*const u8, Kind) {
        match self {
            Values::F32(v) => (v[..n].as_ptr().cast(), Kind::F32),
            Values::I16(v, _) => (v[..n].as_ptr().cast(), Kind::I16),
        }
    }

    /// The per-rank scales (I16 only).
    #[inline]
    pub fn scales(self) -> Option<&'a [f32]> {
        match self {
            Values::I16(_, s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Default)]
pub struct CpuArena {
    /// (first word, values), sorted by offset, never overlapping.
    blocks: Vec<(usize, Block)>,
}

impl ArenaStore for CpuArena {
    /// A is kept transposed, `[in, rank]`: what `shrink.rs` reads as one stream.
    fn write_a(&mut self, offset: usize, a: &[f32], rank: usize, format: FactorFormat) -> Result<()> {
        self.write(offset, &super::shrink::transpose_a(a, rank), rank, format)
    }

    /// Stores `data`, a `[len / rank, rank]` matrix, at word `offset` (a new block, or an
    /// overwrite of the block written there) in format `f`, rounding to nearest.
    fn write(&mut self, offset: usize, data: &[f32], rank: usize, f: FactorFormat) -> Result<()> {
        let block = match f {
            FactorFormat::F32 => Block::F32(filled(data.len(), data.iter().copied())?),
            FactorFormat::I16 => {
                let scale = i16_scales(data, rank, RankAxis::Columns);
                let mut codes = reserved(data.len())?;
                i16_codes(data, &scale, RankAxis::Columns, &mut codes);
                Block::I16(codes.into_boxed_slice(), scale.into_boxed_slice())
            }
            FactorFormat::F16 => return Err(Error::config("the CPU stores 16-bit adapter factors as int16 (\"i16\"), not f16")),
        };
        let end = offset + block.words();
        let i = self.blocks.partition_point(|(o, _)| *o < offset);
        if let Some((o, b)) = self.blocks.get_mut(i) {
            if *o == offset && b.words() == block.words() {
                *b = block;
                return Ok(());
            }
        }
        let clash = self.blocks.get(i).is_some_and(|(o, _)| *o < end) || (i > 0 && self.blocks[i - 1].0 + self.blocks[i - 1].1.words() > offset);
        if clash {
            return Err(Error::backend(format!("adapter storage: range {offset}..{end} overlaps a live block")));
        }
        self.blocks.insert(i, (offset, block));
        Ok(())
    }

    /// Keeps the blocks inside the `keep` ranges, re-keyed to their new offsets, and frees
    /// the rest (blocks only change keys: nothing is copied). The ranges are ascending in
    /// both `from` and `to`, so the order holds.
    fn repack(&mut self, keep: &[ArenaMove], _len: usize) -> Result<()> {
        let blocks = std::mem::take(&mut self.blocks);
        self.blocks = blocks
            .into_iter()
            .filter_map(|(o, b)| {
                let m = keep.iter().find(|m| (m.from..m.from + m.len).contains(&o))?;
                Some((o - m.from + m.to, b))
            })
            .collect();
        Ok(())
    }

    /// Words held.
    fn capacity(&self) -> usize {
        self.blocks.iter().map(|(_, b)| b.words()).sum()
    }
}

impl CpuArena {
    /// The values from word `offset` to the end of its block.
    ///
    /// Panics if no block holds `offset`: route entries only point at written adapters.
    #[inline]
    pub fn at(&self, offset: usize) -> Values<'_> {
        let i = self.blocks.partition_point(|(o, _)| *o <= offset);
        let (o, b) = &self.blocks[i.checked_sub(1).expect("arena offset before the first block")];
        match b {
            Block::F32(v) => Values::F32(&v[offset - o..]),
            Block::I16(v, s) => {
                assert_eq!(offset, *o, "I16 blocks are read from their start");
                Values::I16(v, s)
            }
        }
    }

    /// `at` for a block written as f32 (DoRA gains always are).
    ///
    /// Panics if the block holds int16 codes.
    #[inline]
    pub fn at_f32(&self, offset: usize) -> &[f32] {
        match self.at(offset) {
            Values::F32(v) => v,
            _ => panic!("arena block at {offset} holds 16-bit factors, not f32"),
        }
    }
}

/// A boxed slice of `len` values, failing rather than aborting when memory runs out.
fn filled<T>(len: usize, values: impl Iterator<Item = T>) -> Result<Box<[T]>> {
    let mut v = reserved(len)?;
    v.extend(values);
    Ok(v.into_boxed_slice())
}

/// An empty Vec with room for `len` values, or an error when memory runs out.
fn reserved<T>(len: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::backend("out of memory for adapter storage"))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_by_offset() {
        let mut a = CpuArena::default();
        a.write(10, &[1.0, 2.0, 3.0], 1, FactorFormat::F32).unwrap();
        a.write(0, &[4.0; 10], 1, FactorFormat::F32).unwrap();
        a.write(13, &[5.0], 1, FactorFormat::F32).unwrap();
        assert_eq!(a.at_f32(11), &[2.0, 3.0]);
        assert_eq!(a.at_f32(13), &[5.0]);
        assert_eq!(a.at_f32(0).len(), 10);
        assert!(a.write(12, &[0.0; 3], 1, FactorFormat::F32).is_err()); // overlaps
        a.write(10, &[7.0, 8.0, 9.0], 1, FactorFormat::F32).unwrap(); // overwrite in place
        assert_eq!(a.at_f32(10), &[7.0, 8.0, 9.0]);
        a.repack(&[ArenaMove { from: 10, to: 0, len: 4 }], 4).unwrap(); // drops [0, 10), moves [10, 14) down
        assert_eq!(a.capacity(), 4);
        assert_eq!((a.at_f32(0), a.at_f32(3)), (&[7.0, 8.0, 9.0][..], &[5.0][..]));
    }

    /// An int16 block takes half a word per code (rounded up) plus a word per rank; each
    /// rank's largest magnitude becomes ±32767 and every code is the nearest.
    #[test]
    fn i16_blocks_take_half_the_words_plus_scales() {
        let mut a = CpuArena::default();
        // [3, 2]: column 0 peaks at -4, column 1 at 0.5, and a zero column scale stays 0.
        let v = [1.0, 0.5, -4.0, 0.2, 3.0, -0.1];
        a.write(0, &v, 2, FactorFormat::I16).unwrap(); // 3 words of codes + 2 of scales
        assert!(a.write(4, &[0.0], 1, FactorFormat::F32).is_err()); // overlaps its last word
        a.write(5, &[6.0], 1, FactorFormat::F32).unwrap();
        assert_eq!(a.capacity(), 6);
        let Values::I16(q, s) = a.at(0) else { panic!("f32 block") };
        assert_eq!(s, &[4.0 / 32767.0, 0.5 / 32767.0]);
        assert_eq!(q, &[8192, 32767, -32767, 13107, 24575, -6553]);
        assert_eq!(a.at_f32(5), &[6.0]);
        a.write(10, &[0.0, 0.0], 1, FactorFormat::I16).unwrap();
        assert!(matches!(a.at(10), Values::I16(&[0, 0], &[0.0])));
    }
}
