//! The files a caller hands over for one model, one at a time and in chunks: a GGUF file,
//! or a Hugging Face folder (config.json, tokenizer.json, tokenizer_config.json,
//! generation_config.json, model.safetensors or its shards). `Model::load` builds the
//! model from what `Loader::finish` collected.

use super::gguf::GgufStream;
use super::safetensors::SafetensorsStream;
use super::tensors::RawTensor;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

enum File {
    Json(Vec<u8>),
    Gguf(GgufStream),
    Safetensors(SafetensorsStream),
}

/// JSON files beyond this are not configs (tokenizer.json of a 150k vocabulary is ~10 MB).
const MAX_JSON: usize = 64 << 20;

/// A model's files, received whole.
pub enum ModelFiles {
    /// One GGUF file (its name, and the stream holding it).
    Gguf(String, GgufStream),
    /// A Hugging Face folder: its JSON files by name, the safetensors tensors by name, and
    /// the bytes received in all.
    Hf { json: BTreeMap<String, String>, tensors: BTreeMap<String, RawTensor>, bytes: u64 },
}

#[derive(Default)]
pub struct Loader {
    files: Vec<(String, File)>,
    received: u64,
}

impl Loader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the next file; its bytes follow through `push`.
    pub fn begin(&mut self, name: &str) -> Result<()> {
        self.begin_sized(name, None)
    }

    /// Starts the next file, of `total` bytes when the caller knows (a Blob's size, a file's
    /// length): headers claiming bytes past its end are refused before anything is reserved.
    pub fn begin_sized(&mut self, name: &str, total: Option<u64>) -> Result<()> {
        let base = name.rsplit('/').next().unwrap_or(name).to_string();
        let file = if base.ends_with(".gguf") {
            File::Gguf(GgufStream::sized(&base, total))
        } else if base.ends_with(".safetensors") {
            File::Safetensors(SafetensorsStream::sized(&base, total))
        } else if base.ends_with(".json") {
            File::Json(Vec::new())
        } else {
            return Err(Error::unsupported(format!("{base}: not a model file (expected .gguf, .safetensors or .json)")));
        };
        self.files.push((base, file));
        Ok(())
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.received += chunk.len() as u64;
        let Some((name, file)) = self.files.last_mut() else {
            return Err(Error::config("push before begin"));
        };
        match file {
            File::Gguf(s) => s.push(chunk),
            File::Safetensors(s) => s.push(chunk),
            File::Json(b) if b.len() + chunk.len() > MAX_JSON => Err(Error::format(format!("{name}: larger than {MAX_JSON} bytes"))),
            File::Json(b) => {
                b.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    /// What arrived: the GGUF file, or the JSON files and the safetensors' tensors (which
    /// may be none).
    pub fn into_files(self) -> Result<ModelFiles> {
        let received = self.received;
        let mut json = BTreeMap::new();
        let mut gguf = None;
        let mut shards = Vec::new();
        for (name, f) in self.files {
            match f {
                File::Gguf(s) if gguf.is_none() => gguf = Some((name, s)),
                File::Gguf(_) => return Err(Error::config(format!("{name}: give one GGUF file per model"))),
                File::Safetensors(s) => shards.push(s),
                File::Json(b) => {
                    let text = String::from_utf8(b).map_err(|_| Error::format(format!("{name}: not UTF-8")))?;
                    json.insert(name, text);
                }
            }
        }
        if let Some((name, s)) = gguf {
            return Ok(ModelFiles::Gguf(name, s));
        }
        let mut tensors = BTreeMap::new();
        for s in shards {
            for (k, (t, b)) in s.finish()? {
                tensors.insert(k, RawTensor::from_safetensors(t, b));
            }
        }
        Ok(ModelFiles::Hf { json, tensors, bytes: received })
    }

    /// A model's files: `into_files`, with weights.
    pub fn finish(self) -> Result<ModelFiles> {
        let files = self.into_files()?;
        if matches!(&files, ModelFiles::Hf { tensors, .. } if tensors.is_empty()) {
            return Err(Error::format("no model weights: give a .gguf file, or model.safetensors with config.json and tokenizer.json"));
        }
        Ok(files)
    }
}
