//! Base weights on the GPU, in their file format. Weights uploaded together (a group: q, k
//! and v; gate and up) of one format are stacked row after row in one store, so that one pass
//! reads them all; a store is split by rows into chunks that each fit one storage binding.
//! A `GpuWeight` is a view: its rows of a store.

use super::{GpuBackend, Inner, STORAGE};
use crate::backend::Shaped;
use crate::error::{Error, Result};
use crate::formats::weights::{HostWeight, WeightFormat};
use std::rc::Rc;

pub struct GpuWeight {
    pub format: WeightFormat,
    pub rows: usize,
    pub cols: usize,
    pub(super) store: Rc<WeightStore>,
    /// This weight's first row in its store.
    pub(super) row0: usize,
}

impl Shaped for GpuWeight {
    fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
}

pub(super) struct WeightStore {
    pub chunks: Vec<WeightChunk>,
    owner: Rc<Inner>,
}

pub(super) struct WeightChunk {
    pub id: u64,
    pub buf: wgpu::Buffer,
    /// The store rows it holds.
    pub row0: usize,
    pub rows: usize,
}

/// Rows `rows` of a weight that sit in one chunk, and where they start in it.
pub(super) struct Piece<'a> {
    pub chunk: &'a WeightChunk,
    /// Weight rows (relative to the weight's first row).
    pub rows: std::ops::Range<usize>,
    /// The chunk row of `rows.start`.
    pub chunk_row: usize,
}

impl GpuWeight {
    /// The pieces of weight rows `rows`, chunk by chunk.
    pub(super) fn pieces(&self, rows: std::ops::Range<usize>) -> Vec<Piece<'_>> {
        let (a, b) = (self.row0 + rows.start, self.row0 + rows.end);
        (self.store.chunks.iter())
            .filter(|c| c.row0 < b && c.row0 + c.rows > a)
            .map(|c| {
                let (s, e) = (a.max(c.row0), b.min(c.row0 + c.rows));
                Piece { chunk: c, rows: s - self.row0..e - self.row0, chunk_row: s - c.row0 }
            })
            .collect()
    }

    /// Whether `next` continues this weight in the same store.
    pub(super) fn followed_by(&self, next: &GpuWeight) -> bool {
        Rc::ptr_eq(&self.store, &next.store) && self.row0 + self.rows == next.row0
    }

    /// Storage bindings (chunks) this weight's store was split into.
    pub fn chunks(&self) -> usize {
        self.pieces(0..self.rows).len()
    }
}

impl Drop for WeightStore {
    fn drop(&mut self) {
        self.owner.flush(); // recorded passes may still read it
        for c in &self.chunks {
            self.owner.pool.forget(c.id);
            c.buf.destroy();
        }
    }
}

impl GpuBackend {
    /// Uploads weights: those sharing a format and width stacked in one store.
    pub(super) fn upload_weights(&self, ws: Vec<HostWeight>) -> Result<Vec<GpuWeight>> {
        let stackable = ws.windows(2).all(|p| p[0].format() == p[1].format() && p[0].cols == p[1].cols);
        if !stackable {
            return ws.into_iter().map(|w| Ok(self.upload_weights(vec![w])?.remove(0))).collect();
        }
        let Some(first) = ws.first() else { return Ok(vec![]) };
        let (format, cols) = (first.format(), first.cols);
        let (block, _) = format.block();
        if cols % block != 0 {
            return Err(Error::shape(format!("{} rows of {cols} weights are not whole blocks of {block}", format.name())));
        }
        let row_bytes = format.bytes_for(cols);
        let mut per_chunk = (self.0.ctx.max_binding / row_bytes as u64) as usize;
        if matches!(format, WeightFormat::F16 | WeightFormat::BF16) && cols % 2 == 1 {
            per_chunk -= per_chunk % 2; // chunks must start on a whole u32 of halves
        }
        if per_chunk == 0 {
            return Err(Error::shape(format!("one weight row ({row_bytes} bytes) exceeds the GPU's storage binding limit of {}", self.0.ctx.max_binding)));
        }
        let total: usize = ws.iter().map(|w| w.rows).sum();
        // The store's bytes, weight after weight; each chunk is written once.
        let bytes: Vec<&[u8]> = ws.iter().map(HostWeight::bytes).collect();
        let mut chunks = Vec::new();
        for row0 in (0..total).step_by(per_chunk) {
            let rows = per_chunk.min(total - row0);
            let range = row0 * row_bytes..(row0 + rows) * row_bytes;
            let buf = self.0.buffer("weight", range.len() as u64, STORAGE)?;
            let mut data = Vec::with_capacity(range.len());
            let mut at = 0;
            for b in &bytes {
                let (s, e) = (range.start.max(at), range.end.min(at + b.len()));
                if s < e {
                    data.extend_from_slice(&b[s - at..e - at]);
                }
                at += b.len();
            }
            self.0.write_padded(&buf, &data);
            chunks.push(WeightChunk { id: self.0.pool.new_id(), buf, row0, rows });
        }
        let store = Rc::new(WeightStore { chunks, owner: self.0.clone() });
        let mut row0 = 0;
        Ok(ws
            .iter()
            .map(|w| {
                let v = GpuWeight { format, rows: w.rows, cols, store: store.clone(), row0 };
                row0 += w.rows;
                v
            })
            .collect())
    }
}
