//! safetensors read as bytes arrive: an 8-byte header length, a JSON header, then tensor
//! data that is routed into per-tensor buffers (the file is never held twice).

use super::gguf::MAX_MODEL_BYTES;
use super::spans::{Incoming, TensorSpans};
use crate::error::{Error, Result};
use crate::formats::weights::WeightFormat;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct StTensor {
    pub name: String,
    pub format: WeightFormat,
    /// Row-major, PyTorch order (outermost first).
    pub shape: Vec<usize>,
    pub begin: u64,
    pub end: u64,
}

pub struct SafetensorsStream {
    file: String,
    tensors: Option<Vec<StTensor>>,
    inc: Incoming,
    /// The file's length, when the caller knows it.
    total: Option<u64>,
    /// Where the last tensor ends (once the header is read): nothing may follow it.
    data_end: u64,
}

fn parse_header(file: &str, json: &[u8]) -> Result<Vec<StTensor>> {
    let bad = |m: String| Error::format(format!("{file}: {m}"));
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| bad("header is not a JSON object".into()))?;
    let mut out = Vec::new();
    for (name, t) in obj {
        if name == "__metadata__" {
            continue;
        }
        let dtype = t["dtype"].as_str().unwrap_or("?");
        let format = match dtype {
            "F32" => WeightFormat::F32,
            "F16" => WeightFormat::F16,
            "BF16" => WeightFormat::BF16,
            _ => return Err(Error::unsupported(format!("{file}: tensor {name} is {dtype} (F32, F16 and BF16 are supported)"))),
        };
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .ok_or_else(|| bad(format!("tensor {name} has no shape")))?
            .iter()
            .map(|d| d.as_u64().filter(|&d| d <= 1 << 31).map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(format!("tensor {name} has a bad shape")))?;
        let off = t["data_offsets"].as_array().filter(|a| a.len() == 2);
        let (begin, end) = match off.map(|a| (a[0].as_u64(), a[1].as_u64())) {
            Some((Some(b), Some(e))) if b <= e && e <= MAX_MODEL_BYTES => (b, e),
            _ => return Err(bad(format!("tensor {name} has bad data_offsets"))),
        };
        let need = shape.iter().try_fold(format.bytes_for(1) as u64, |a, &d| a.checked_mul(d as u64));
        if need != Some(end - begin) {
            let need = need.map_or("more than 2^64".into(), |n| n.to_string());
            return Err(bad(format!("tensor {name}: {shape:?} {dtype} needs {need} bytes, the header gives {}", end - begin)));
        }
        out.push(StTensor { name: name.clone(), format, shape, begin, end });
    }
    // As the format requires (and the safetensors crate checks): the tensors tile the data
    // from its first byte, with no overlaps and no holes.
    out.sort_by_key(|t| (t.begin, t.end));
    let mut end = 0;
    for t in &out {
        if t.begin != end {
            let what = if t.begin < end { "overlaps the tensor before it" } else { "leaves a hole before it" };
            return Err(bad(format!("tensor {} at bytes {}..{} {what} (data so far ends at {end})", t.name, t.begin, t.end)));
        }
        end = t.end;
    }
    Ok(out)
}

impl SafetensorsStream {
    pub fn new(file: &str) -> Self {
        Self::sized(file, None)
    }

    /// A stream for a file of `total` bytes, when known: a header or tensors claiming bytes
    /// past its end are refused as soon as the header says so.
    pub fn sized(file: &str, total: Option<u64>) -> Self {
        SafetensorsStream { file: file.into(), tensors: None, inc: Incoming::default(), total, data_end: 0 }
    }

    fn trailing(&self, len: u64, end: u64) -> Error {
        Error::format(format!("{}: {} bytes follow the last tensor (it ends at byte {end} of {len})", self.file, len - end))
    }

    /// Bytes reserved for tensors so far.
    pub fn reserved(&self) -> usize {
        self.inc.reserved()
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        if !self.inc.push(chunk)? || self.inc.head.len() < 8 {
            return Ok(());
        }
        let n = u64::from_le_bytes(self.inc.head[..8].try_into().unwrap());
        if n > 100 << 20 || self.total.is_some_and(|t| n > t.saturating_sub(8)) {
            return Err(Error::format(format!("{}: header claims {n} bytes (not a safetensors file?)", self.file)));
        }
        if (self.inc.head.len() as u64) < 8 + n {
            return Ok(());
        }
        let tensors = parse_header(&self.file, &self.inc.head[8..8 + n as usize])?;
        let ds = 8 + n;
        let end = ds + tensors.last().map_or(0, |t| t.end);
        if let Some(t) = self.total.filter(|&t| t > end) {
            return Err(self.trailing(t, end));
        }
        self.data_end = end;
        let spans = tensors.iter().map(|t| (t.name.clone(), ds + t.begin, ds + t.end)).collect();
        let spans = TensorSpans::new(&self.file, spans, self.total)?;
        self.tensors = Some(tensors);
        self.inc.start(spans, ds)
    }

    pub fn finish(self) -> Result<BTreeMap<String, (StTensor, Vec<u8>)>> {
        if self.tensors.is_some() && self.inc.pos > self.data_end {
            return Err(self.trailing(self.inc.pos, self.data_end));
        }
        let (Some(ts), Some(spans)) = (self.tensors, self.inc.spans) else {
            return Err(Error::format(format!("{}: truncated: the header is incomplete after {} bytes", self.file, self.inc.pos)));
        };
        let data = spans.finish(self.inc.pos)?;
        Ok(ts.into_iter().zip(data).map(|(t, d)| (t.name.clone(), (t, d))).collect())
    }
}
