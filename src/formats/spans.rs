//! Routes a file's bytes, as they arrive, into one buffer per tensor by absolute byte span
//! (shared by the GGUF and safetensors streams). Gaps (alignment padding) are skipped.
//! Memory follows the bytes, not the header: a tensor's buffer is reserved for at most what
//! the file has delivered so far plus `SLACK`, and grows as its bytes arrive, so a header
//! claiming gigabytes costs nothing until they exist; where the file's length is known, a
//! tensor past its end is refused at once.

use crate::error::{Error, Result};

/// Bytes a buffer may be reserved beyond what the file has delivered.
const SLACK: u64 = 16 << 20;

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
    /// The tensors' spans in a file of `total` bytes when its length is known.
    pub fn new(file: &str, spans: Vec<(String, u64, u64)>, total: Option<u64>) -> Result<TensorSpans> {
        if let (Some(total), Some((name, _, end))) = (total, spans.iter().max_by_key(|s| s.2)) {
            if *end > total {
                return Err(Error::format(format!("{file}: truncated at byte {total}: tensor {name} needs bytes up to {end}")));
            }
        }
        let mut order: Vec<usize> = (0..spans.len()).collect();
        order.sort_by_key(|&i| spans[i].1);
        let data = vec![Vec::new(); spans.len()];
        let mut r = TensorSpans { file: file.into(), spans, order, data, next: 0 };
        r.skip_empty();
        Ok(r)
    }

    /// Bytes reserved for tensors so far.
    pub fn reserved(&self) -> usize {
        self.data.iter().map(Vec::capacity).sum()
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
            let n = (end - at).min(bytes.len() as u64) as usize;
            if buf.capacity() - buf.len() < n {
                // The whole tensor, but no more than the file has shown so far (plus slack)
                // or twice what is held (so a growing buffer is copied O(log) times).
                let shown = (at + bytes.len() as u64 + SLACK).max(2 * buf.capacity() as u64);
                let want = (end - start).min(shown) as usize;
                buf.try_reserve_exact(want.max(buf.len() + n) - buf.len())
                    .map_err(|_| Error::limit(format!("{}: out of memory for tensor {name} ({} bytes)", self.file, end - start)))?;
            }
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

/// What the GGUF and safetensors streams share: a file's bytes are held until its header is
/// whole, then routed into its tensors by span.
#[derive(Default)]
pub struct Incoming {
    /// The bytes held while the header is incomplete.
    pub head: Vec<u8>,
    pub spans: Option<TensorSpans>,
    /// Absolute bytes received so far.
    pub pos: u64,
}

impl Incoming {
    /// Routes `chunk` once the header is known (false), else holds it (true: the caller may
    /// try `head` again).
    pub fn push(&mut self, chunk: &[u8]) -> Result<bool> {
        let start = self.pos;
        self.pos += chunk.len() as u64;
        if let Some(r) = &mut self.spans {
            r.route(start, chunk)?;
            return Ok(false);
        }
        self.head.extend_from_slice(chunk);
        Ok(true)
    }

    /// The header is whole and tensor data starts at byte `ds`: what was held past it goes to
    /// the tensors (padding before the data may also still be to come).
    pub fn start(&mut self, mut spans: TensorSpans, ds: u64) -> Result<()> {
        let head = std::mem::take(&mut self.head);
        if let Some(s) = usize::try_from(ds).ok().filter(|&s| s < head.len()) {
            spans.route(ds, &head[s..])?;
        }
        self.spans = Some(spans);
        Ok(())
    }

    /// Bytes reserved for tensors so far.
    pub fn reserved(&self) -> usize {
        self.spans.as_ref().map_or(0, TensorSpans::reserved)
    }
}
