//! Routes a file's bytes, as they arrive, into one buffer per tensor by absolute byte span
//! (shared by the GGUF and safetensors streams). Gaps (alignment padding) are skipped.

use crate::error::{Error, Result};

pub struct TensorSpans {
    file: String,
    /// Per tensor, in the file's tensor order: name and absolute [start, end).
    spans: Vec<(String, u64, u64)>,
    /// Tensor indices by start offset.
    order: Vec<usize>,
    data: Vec<Vec<u8>>,
    next: usize,
}

impl TensorSpans {
    pub fn new(file: &str, spans: Vec<(String, u64, u64)>) -> TensorSpans {
        let mut order: Vec<usize> = (0..spans.len()).collect();
        order.sort_by_key(|&i| spans[i].1);
        let data = vec![Vec::new(); spans.len()];
        let mut r = TensorSpans { file: file.into(), spans, order, data, next: 0 };
        r.skip_empty();
        r
    }

    fn skip_empty(&mut self) {
        while self.next < self.order.len() && self.spans[self.order[self.next]].1 == self.spans[self.order[self.next]].2 {
            self.next += 1;
        }
    }

    /// Copies `bytes`, which start at absolute offset `at`, into the tensors they belong to.
    pub fn route(&mut self, mut at: u64, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() && self.next < self.order.len() {
            let i = self.order[self.next];
            let (ref name, start, end) = self.spans[i];
            if at < start {
                let skip = (start - at).min(bytes.len() as u64) as usize;
                (at, bytes) = (at + skip as u64, &bytes[skip..]);
                continue;
            }
            let buf = &mut self.data[i];
            if buf.capacity() == 0 {
                buf.try_reserve_exact((end - start) as usize)
                    .map_err(|_| Error::limit(format!("{}: out of memory for tensor {name} ({} bytes)", self.file, end - start)))?;
            }
            let n = (end - at).min(bytes.len() as u64) as usize;
            buf.extend_from_slice(&bytes[..n]);
            (at, bytes) = (at + n as u64, &bytes[n..]);
            if at == end {
                self.next += 1;
                self.skip_empty();
            }
        }
        Ok(())
    }

    /// Every tensor's bytes in the file's tensor order, or an error naming the first
    /// tensor the `received` bytes did not complete.
    pub fn finish(self, received: u64) -> Result<Vec<Vec<u8>>> {
        if let Some(&i) = self.order.get(self.next) {
            let (name, _, end) = &self.spans[i];
            return Err(Error::format(format!(
                "{}: truncated at byte {received}: tensor {name} needs bytes up to {end}",
                self.file
            )));
        }
        Ok(self.data)
    }
}
