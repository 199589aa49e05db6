//! First-fit allocator over one flat array of 32-bit words per layer. Each adapter's A and B live in it
//! back to back, so one storage binding serves every adapter of the layer (what per-row
//! routing needs on the GPU). Freed ranges are reused; a freed range at the end lowers the
//! high-water mark. (An unload normally packs the arena instead: `LoraLinear::remove_adapter`.)

#[derive(Debug, Default, Clone)]
pub struct ArenaAlloc {
    /// Free ranges (offset, len), sorted by offset, never adjacent.
    free: Vec<(usize, usize)>,
    /// High-water mark: the storage must hold at least this many elements.
    end: usize,
}

impl ArenaAlloc {
    /// Words `0..end` all in use, no holes (what packing the arena leaves).
    pub fn packed(end: usize) -> Self {
        ArenaAlloc { free: Vec::new(), end }
    }

    pub fn end(&self) -> usize {
        self.end
    }

    pub fn alloc(&mut self, len: usize) -> usize {
        if let Some(i) = self.free.iter().position(|&(_, l)| l >= len) {
            let (off, l) = self.free[i];
            if l == len {
                self.free.remove(i);
            } else {
                self.free[i] = (off + len, l - len);
            }
            return off;
        }
        // Extend the last free range if it touches the end, else grow.
        if let Some(&(off, l)) = self.free.last() {
            if off + l == self.end {
                self.free.pop();
                self.end = off + len;
                return off;
            }
        }
        let off = self.end;
        self.end += len;
        off
    }

    pub fn free(&mut self, off: usize, len: usize) {
        let i = self.free.partition_point(|&(o, _)| o < off);
        self.free.insert(i, (off, len));
        // Merge with the right, then the left neighbour.
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
        // A hole at the end is no hole: the storage can end before it.
        if let Some(&(o, l)) = self.free.last() {
            if o + l == self.end {
                self.free.pop();
                self.end = o;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_merges_free_ranges() {
        let mut a = ArenaAlloc::default();
        let x = a.alloc(10);
        let y = a.alloc(20);
        let z = a.alloc(5);
        assert_eq!((x, y, z, a.end()), (0, 10, 30, 35));
        a.free(y, 20);
        assert_eq!(a.alloc(15), 10); // first fit inside the hole
        a.free(x, 10);
        a.free(10, 15);
        assert_eq!(a.alloc(25), 0); // merged hole [0, 30)
        a.free(z, 5);
        assert_eq!(a.end(), 25); // the hole [25, 35) at the end lowered the mark
        assert_eq!(a.alloc(12), 25);
        assert_eq!(a.end(), 37);
        a.free(0, 25);
        a.free(25, 12);
        assert_eq!((a.end(), a.free.len()), (0, 0)); // everything freed: nothing held
    }
}
