//! The CPU's adapter storage: the layer's arena offsets (from `ArenaAlloc`) map onto separate
//! blocks, one per write (an adapter's A, its B, its DoRA gain). Loading an adapter allocates
//! exactly its own blocks and copies nothing already loaded; unloading frees them. (The GPU
//! keeps one buffer per layer, which one storage binding needs.)

use crate::backend::ArenaMove;
use crate::error::{Error, Result};

#[derive(Default)]
pub struct CpuArena {
    /// (first offset, values), sorted by offset, never overlapping.
    blocks: Vec<(usize, Box<[f32]>)>,
}

impl CpuArena {
    /// Stores `data` at `offset` (a new block, or an overwrite of the block written there).
    pub fn write(&mut self, offset: usize, data: &[f32]) -> Result<()> {
        let i = self.blocks.partition_point(|(o, _)| *o < offset);
        if let Some((o, b)) = self.blocks.get_mut(i) {
            if *o == offset && b.len() == data.len() {
                b.copy_from_slice(data);
                return Ok(());
            }
        }
        let end = offset + data.len();
        let clash = self.blocks.get(i).is_some_and(|(o, _)| *o < end) || (i > 0 && self.blocks[i - 1].0 + self.blocks[i - 1].1.len() > offset);
        if clash {
            return Err(Error::backend(format!("adapter storage: range {offset}..{end} overlaps a live block")));
        }
        let mut v = Vec::new();
        v.try_reserve_exact(data.len()).map_err(|_| Error::backend("out of memory for adapter storage"))?;
        v.extend_from_slice(data);
        self.blocks.insert(i, (offset, v.into_boxed_slice()));
        Ok(())
    }

    /// Keeps the blocks inside the `keep` ranges, re-keyed to their new offsets, and frees
    /// the rest. The ranges are ascending in both `from` and `to`, so the order holds.
    pub fn repack(&mut self, keep: &[ArenaMove]) {
        let blocks = std::mem::take(&mut self.blocks);
        self.blocks = blocks
            .into_iter()
            .filter_map(|(o, b)| {
                let m = keep.iter().find(|m| (m.from..m.from + m.len).contains(&o))?;
                Some((o - m.from + m.to, b))
            })
            .collect();
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.blocks.iter().map(|(_, b)| b.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The values from `offset` to the end of its block.
    ///
    /// Panics if no block holds `offset`: route entries only point at written adapters.
    #[inline]
    pub fn at(&self, offset: usize) -> &[f32] {
        let i = self.blocks.partition_point(|(o, _)| *o <= offset);
        let (o, b) = &self.blocks[i.checked_sub(1).expect("arena offset before the first block")];
        &b[offset - o..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_by_offset() {
        let mut a = CpuArena::default();
        a.write(10, &[1.0, 2.0, 3.0]).unwrap();
        a.write(0, &[4.0; 10]).unwrap();
        a.write(13, &[5.0]).unwrap();
        assert_eq!(a.at(11), &[2.0, 3.0]);
        assert_eq!(a.at(13), &[5.0]);
        assert_eq!(a.at(0).len(), 10);
        assert!(a.write(12, &[0.0; 3]).is_err()); // overlaps
        a.write(10, &[7.0, 8.0, 9.0]).unwrap(); // overwrite in place
        assert_eq!(a.at(10), &[7.0, 8.0, 9.0]);
        a.repack(&[ArenaMove { from: 10, to: 0, len: 4 }]); // drops [0, 10), moves [10, 14) down
        assert_eq!(a.len(), 4);
        assert_eq!((a.at(0), a.at(3)), (&[7.0, 8.0, 9.0][..], &[5.0][..]));
    }
}
