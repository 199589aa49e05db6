//! GGUF (v2, v3) reading as bytes arrive: the header (metadata, tensor table) is parsed once
//! it is complete, then each tensor's bytes are copied straight into its own buffer, so a
//! file is never held twice. Every size and offset is checked before it is trusted.

use crate::error::{Error, Result};
use super::spans::{Incoming, TensorSpans};
use crate::formats::weights::WeightFormat;
use std::collections::BTreeMap;

/// Headers beyond this are treated as corrupt (SmolLM2's, with its vocabulary, is 1.8 MB).
const MAX_HEADER: usize = 64 << 20;
/// What a wasm32 heap could hold at all.
pub const MAX_MODEL_BYTES: u64 = 3 << 30;

#[derive(Clone, Debug, PartialEq)]
pub enum Meta {
    U(u64),
    I(i64),
    F(f64),
    Bool(bool),
    Str(String),
    Array(MetaArray),
}

/// A metadata array as the file holds it: its elements' bytes, validated once and decoded
/// on each read. A vocabulary of 49,152 strings is one allocation of about the file's bytes,
/// not one value per element (a per-element `Meta` took 32 bytes per u8 natively).
#[derive(Clone, Debug, PartialEq)]
pub struct MetaArray {
    elem: u32,
    len: usize,
    bytes: Vec<u8>,
}

impl MetaArray {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Bytes held for the elements: about what the file spends on them.
    pub fn held_bytes(&self) -> usize {
        self.bytes.capacity()
    }
    /// The elements, decoded one at a time.
    pub fn iter(&self) -> impl Iterator<Item = Meta> + '_ {
        let mut c = Cursor { b: &self.bytes, at: 0, file: "", limit: self.bytes.len() };
        // The bytes were validated when parsed: decoding them again cannot fail.
        (0..self.len).map_while(move |_| c.value(self.elem, 1).ok())
    }
}

impl Meta {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Meta::U(v) => Some(v),
            Meta::I(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Meta::F(v) => Some(v),
            Meta::U(v) => Some(v as f64),
            Meta::I(v) => Some(v as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Meta::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            Meta::Array(v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF order: `dims[0]` is the innermost (columns).
    pub dims: Vec<usize>,
    pub format: WeightFormat,
    /// From the start of the data section.
    pub offset: u64,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub struct Header {
    pub version: u32,
    pub meta: BTreeMap<String, Meta>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_start: u64,
}

/// Parse failure: not enough bytes yet (at least this many are needed), or a definite error.
enum Stop {
    More(usize),
    Bad(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Bad(e)
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
    file: &'a str,
    /// Where the header must end: MAX_HEADER, or the file's length when smaller.
    limit: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], Stop> {
        if n > self.limit || self.at + n > self.limit {
            return Err(self.bad(if self.limit < MAX_HEADER {
                format!("truncated: the header is incomplete: a field of {n} bytes runs past the file's end ({} bytes)", self.limit)
            } else {
                format!("a header field of {n} bytes runs past {MAX_HEADER} bytes")
            }));
        }
        if self.b.len() - self.at < n {
            return Err(Stop::More(self.at + n));
        }
        self.at += n;
        Ok(&self.b[self.at - n..self.at])
    }
    fn bad(&self, m: String) -> Stop {
        Stop::Bad(Error::format(format!("{}: {m} (at byte {})", self.file, self.at)))
    }
    fn u32(&mut self) -> std::result::Result<u32, Stop> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> std::result::Result<u64, Stop> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len(&mut self, what: &str) -> std::result::Result<usize, Stop> {
        let n = self.u64()?;
        usize::try_from(n).ok().filter(|&n| n <= MAX_HEADER).ok_or_else(|| self.bad(format!("{what} claims {n} entries")))
    }
    fn string(&mut self) -> std::result::Result<String, Stop> {
        let n = self.len("a string")?;
        let at = self.at;
        let bytes = self.take(n)?.to_vec();
        String::from_utf8(bytes).map_err(|_| Stop::Bad(Error::format(format!("{}: string at byte {at} is not UTF-8", self.file))))
    }
    /// Checks one array element of type `ty` without keeping it.
    fn skip(&mut self, ty: u32) -> std::result::Result<(), Stop> {
        let n = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => {
                let n = self.len("a string")?;
                let at = self.at;
                return match std::str::from_utf8(self.take(n)?) {
                    Ok(_) => Ok(()),
                    Err(_) => Err(Stop::Bad(Error::format(format!("{}: string at byte {at} is not UTF-8", self.file)))),
                };
            }
            9 => return Err(self.bad("arrays of arrays are not read".into())),
            _ => return Err(self.bad(format!("unknown metadata type {ty}"))),
        };
        self.take(n).map(|_| ())
    }
    fn value(&mut self, ty: u32, depth: u32) -> std::result::Result<Meta, Stop> {
        let b = |c: &mut Self, n| c.take(n).map(|s| s.to_vec());
        Ok(match ty {
            0 => Meta::U(b(self, 1)?[0] as u64),
            1 => Meta::I(b(self, 1)?[0] as i8 as i64),
            2 => Meta::U(u16::from_le_bytes(b(self, 2)?.try_into().unwrap()) as u64),
            3 => Meta::I(i16::from_le_bytes(b(self, 2)?.try_into().unwrap()) as i64),
            4 => Meta::U(self.u32()? as u64),
            5 => Meta::I(self.u32()? as i32 as i64),
            6 => Meta::F(f32::from_bits(self.u32()?) as f64),
            7 => Meta::Bool(b(self, 1)?[0] != 0),
            8 => Meta::Str(self.string()?),
            9 if depth == 0 => {
                let elem = self.u32()?;
                let len = self.len("an array")?;
                let start = self.at;
                for _ in 0..len {
                    self.skip(elem)?;
                }
                Meta::Array(MetaArray { elem, len, bytes: self.b[start..self.at].to_vec() })
            }
            10 => Meta::U(self.u64()?),
            11 => Meta::I(self.u64()? as i64),
            12 => Meta::F(f64::from_bits(self.u64()?)),
            _ => return Err(self.bad(format!("unknown metadata type {ty}"))),
        })
    }
}

/// GGUF tensor type ids → our formats.
fn format_of(ty: u32, name: &str, file: &str) -> Result<WeightFormat> {
    Ok(match ty {
        0 => WeightFormat::F32,
        1 => WeightFormat::F16,
        2 => WeightFormat::Q4_0,
        3 => WeightFormat::Q4_1,
        6 => WeightFormat::Q5_0,
        7 => WeightFormat::Q5_1,
        8 => WeightFormat::Q8_0,
        10 => WeightFormat::Q2_K,
        11 => WeightFormat::Q3_K,
        12 => WeightFormat::Q4_K,
        13 => WeightFormat::Q5_K,
        14 => WeightFormat::Q6_K,
        20 => WeightFormat::IQ4_NL,
        30 => WeightFormat::BF16,
        _ => {
            const NAMES: [(u32, &str); 9] =
                [(15, "Q8_K"), (16, "IQ2_XXS"), (17, "IQ2_XS"), (18, "IQ3_XXS"), (19, "IQ1_S"), (21, "IQ3_S"), (22, "IQ2_S"), (23, "IQ4_XS"), (29, "IQ1_M")];
            let n = NAMES.iter().find(|(t, _)| *t == ty).map_or(format!("type {ty}"), |(_, n)| n.to_string());
            return Err(Error::unsupported(format!(
                "{file}: tensor {name} is {n}; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K"
            )));
        }
    })
}

/// Parses the header from the start of a file; `Ok(None)` when more bytes are needed.
pub fn parse_header(b: &[u8], file: &str) -> Result<Option<Header>> {
    match parse(b, file, MAX_HEADER) {
        Ok(h) => Ok(Some(h)),
        Err(Stop::More(_)) => Ok(None),
        Err(Stop::Bad(e)) => Err(e),
    }
}

fn parse(b: &[u8], file: &str, limit: usize) -> std::result::Result<Header, Stop> {
    let mut c = Cursor { b, at: 0, file, limit };
    if c.take(4)? != b"GGUF" {
        return Err(c.bad("not a GGUF file (bad magic)".into()));
    }
    let version = c.u32()?;
    if !(2..=3).contains(&version) {
        return Err(Stop::Bad(Error::unsupported(format!("{file}: GGUF version {version} (2 and 3 are supported)"))));
    }
    let n_tensors = c.len("the tensor count")?;
    let n_meta = c.len("the metadata count")?;
    let mut meta = BTreeMap::new();
    for _ in 0..n_meta {
        let key = c.string()?;
        let ty = c.u32()?;
        let v = c.value(ty, 0)?;
        if meta.contains_key(&key) {
            return Err(c.bad(format!("metadata key {key} appears twice")));
        }
        meta.insert(key, v);
    }
    let mut tensors = Vec::with_capacity(n_tensors.min(1 << 16));
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..n_tensors {
        let name = c.string()?;
        if !names.insert(name.clone()) {
            return Err(c.bad(format!("tensor {name} appears twice")));
        }
        let n_dims = c.u32()? as usize;
        if n_dims == 0 || n_dims > 4 {
            return Err(c.bad(format!("tensor {name} has {n_dims} dimensions")));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            let d = c.u64()?;
            if !(1..=1u64 << 31).contains(&d) {
                return Err(c.bad(format!("tensor {name} has dimension {d}")));
            }
            dims.push(super::to_usize(d));
        }
        let format = format_of(c.u32()?, &name, file)?;
        let offset = c.u64()?;
        let elems = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).unwrap_or(u64::MAX);
        let (per, bytes) = format.block();
        if dims[0] % per != 0 {
            return Err(c.bad(format!("tensor {name}: {} rows of {} are not whole {} blocks", dims[0], dims[0], format.name())));
        }
        let size = (elems / per as u64).saturating_mul(bytes as u64);
        if size > MAX_MODEL_BYTES {
            return Err(c.bad(format!("tensor {name} claims {size} bytes")));
        }
        tensors.push(TensorInfo { name, dims, format, offset, size });
    }
    let align = meta.get("general.alignment").and_then(Meta::as_u64).unwrap_or(32);
    if align == 0 || align > 1 << 16 || !align.is_power_of_two() {
        return Err(c.bad(format!("general.alignment {align}")));
    }
    let data_start = (c.at as u64).next_multiple_of(align);
    // Tensors must not overlap, and all of them must fit what a heap can hold.
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|t| t.offset);
    let mut end = 0u64;
    for t in &by_offset {
        if t.offset < end {
            return Err(c.bad(format!("tensor {} overlaps the one before it", t.name)));
        }
        end = t.offset.checked_add(t.size).filter(|&e| e <= MAX_MODEL_BYTES).ok_or_else(|| {
            c.bad(format!("tensor {} ends beyond {MAX_MODEL_BYTES} bytes", t.name))
        })?;
    }
    Ok(Header { version, meta, tensors, data_start })
}

/// Push-style GGUF reader: `push` chunks as they arrive, then `finish`.
pub struct GgufStream {
    file: String,
    header: Option<Header>,
    inc: Incoming,
    /// The file's length, when the caller knows it.
    total: Option<u64>,
    /// The header is parsed again only once this many bytes are held: what the last attempt
    /// lacked, and at least twice what it had (a header arriving in small chunks is parsed
    /// O(log n) times, not once per chunk).
    next_try: usize,
    /// Header parses so far.
    pub parses: usize,
}

impl GgufStream {
    pub fn new(file: &str) -> Self {
        Self::sized(file, None)
    }

    /// A stream for a file of `total` bytes, when known: fields and tensors claiming bytes
    /// past its end are refused as soon as the header says so.
    pub fn sized(file: &str, total: Option<u64>) -> Self {
        GgufStream { file: file.into(), header: None, inc: Incoming::default(), total, next_try: 0, parses: 0 }
    }

    /// Bytes reserved for tensors so far.
    pub fn reserved(&self) -> usize {
        self.inc.reserved()
    }

    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.inc.pos
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        if self.inc.push(chunk)? && self.inc.head.len() >= self.next_try {
            self.try_header()?;
        }
        Ok(())
    }

    /// Parses the header from what is held; once it is whole, routes the rest to tensors.
    fn try_header(&mut self) -> Result<()> {
        self.parses += 1;
        let limit = self.total.map_or(MAX_HEADER, |t| MAX_HEADER.min(super::to_usize(t)));
        let h = match parse(&self.inc.head, &self.file, limit) {
            Ok(h) => h,
            Err(Stop::More(need)) => {
                self.next_try = need.max(2 * self.inc.head.len());
                return Ok(());
            }
            Err(Stop::Bad(e)) => return Err(e),
        };
        let ds = h.data_start;
        let spans = h.tensors.iter().map(|t| (t.name.clone(), ds + t.offset, ds + t.offset + t.size)).collect();
        let spans = TensorSpans::new(&self.file, spans, self.total)?;
        self.header = Some(h);
        self.inc.start(spans, ds)
    }

    /// The header and every tensor's bytes, by name.
    pub fn finish(mut self) -> Result<(Header, BTreeMap<String, (TensorInfo, Vec<u8>)>)> {
        if self.header.is_none() && self.inc.head.len() < self.next_try {
            self.try_header()?; // what arrived after the last attempt may complete it
        }
        let (Some(h), Some(spans)) = (self.header, self.inc.spans) else {
            let head = &self.inc.head;
            return Err(Error::format(if head.len() < 4 || &head[..4] == b"GGUF" {
                format!("{}: truncated: the header is incomplete after {} bytes", self.file, self.inc.pos)
            } else {
                format!("{}: not a GGUF file", self.file)
            }));
        };
        let data = spans.finish(self.inc.pos)?;
        let tensors = h.tensors.iter().cloned().zip(data).map(|(t, d)| (t.name.clone(), (t, d))).collect();
        Ok((h, tensors))
    }
}
