//! Models for JS: a push-style loader fed chunks as they arrive, the `Model` handle, and a
//! step-wise generator the JS wrapper turns into an async iterator.

use super::js_err;
use super::runtime::{AnyBackend, Runtime};
use crate::cpu::CpuBackend;
use crate::gpu::GpuBackend;
use crate::backend::factors::FactorFormat;
use crate::error::{Error, Result};
use crate::model::adapters::{adapter_from_loader, AdapterChoice};
use crate::tokenizer::chat::Message;
use crate::generate::{GenerateOptions, Generator, Sequence};
use crate::model::llama::Logits;
use crate::formats::files::Loader;
use crate::backend::ops::ModelOps;
use crate::generate::sample::SampleOptions;
use crate::model::Model;
use serde::Deserialize;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// A model on the runtime's backend. Everything below is written once, generically, and
/// `with_model!` / `with_gen!` pick the concrete type.
#[derive(Clone)]
enum AnyModel {
    Cpu(Shared<CpuBackend>),
    Gpu(Shared<GpuBackend>),
}

/// Shared with running generators; adapters change it in place.
type Shared<B> = Rc<RefCell<Model<B>>>;

macro_rules! with_model {
    ($m:expr, $i:ident => $body:expr) => {
        match $m {
            AnyModel::Cpu($i) => $body,
            AnyModel::Gpu($i) => $body,
        }
    };
}

#[wasm_bindgen]
pub struct ModelLoader {
    loader: Option<Loader>,
}

#[wasm_bindgen]
impl ModelLoader {
    #[wasm_bindgen(constructor)]
    pub fn new() -> ModelLoader {
        ModelLoader { loader: Some(Loader::new()) }
    }

    fn live(&mut self) -> std::result::Result<&mut Loader, JsValue> {
        self.loader.as_mut().ok_or_else(|| js_err(Error::config("this loader has finished or failed")))
    }

    /// Starts the next file (by name: .gguf, .safetensors or .json), of `total` bytes when
    /// known (a header claiming more is refused at once).
    pub fn begin(&mut self, name: &str, total: Option<f64>) -> std::result::Result<(), JsValue> {
        let total = total.filter(|t| t.is_finite() && *t >= 0.0).map(|t| t as u64);
        let r = self.live()?.begin_sized(name, total);
        self.keep_if_ok(r)
    }

    /// Feeds the next bytes of the current file.
    pub fn push(&mut self, chunk: &[u8]) -> std::result::Result<(), JsValue> {
        let r = self.live()?.push(chunk);
        self.keep_if_ok(r)
    }

    /// Builds the model on the runtime's backend once every file has arrived (on WebGPU the
    /// weights are uploaded and the loader's copies freed). `int8_activations`: the opt-in
    /// fast path for quantized weights on the CPU (see `CpuBackend`).
    pub fn finish(&mut self, rt: &Runtime, int8_activations: bool) -> std::result::Result<JsModel, JsValue> {
        let l = self.loader.take().ok_or_else(|| js_err(Error::config("this loader has finished or failed")))?;
        let inner = match rt.any_backend() {
            AnyBackend::Cpu(c) => AnyModel::Cpu(Rc::new(RefCell::new(l.finish().and_then(|f| Model::load(&CpuBackend { int8_activations, ..*c }, f)).map_err(js_err)?))),
            AnyBackend::Gpu(g) => AnyModel::Gpu(Rc::new(RefCell::new(l.finish().and_then(|f| Model::load(g, f)).map_err(js_err)?))),
        };
        Ok(JsModel { inner })
    }

    /// A failed file frees everything received so far.
    fn keep_if_ok(&mut self, r: Result<()>) -> std::result::Result<(), JsValue> {
        r.map_err(|e| {
            self.loader = None;
            js_err(e)
        })
    }
}

#[wasm_bindgen(js_name = Model)]
pub struct JsModel {
    inner: AnyModel,
}

fn busy() -> JsValue {
    js_err(Error::config("the model is busy (a generation step or an adapter change is running)"))
}

/// `{adapter: name | null}` or `{adapters: [{name, weight}]}` from an options object.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AdapterOpts {
    adapter: Option<String>,
    adapters: Option<Vec<NamedWeight>>,
}

#[derive(Deserialize)]
struct NamedWeight {
    name: String,
    #[serde(default = "one")]
    weight: f32,
}

fn one() -> f32 {
    1.0
}

impl AdapterOpts {
    fn choice(self) -> Result<AdapterChoice> {
        match (self.adapter, self.adapters) {
            (None, None) => Ok(AdapterChoice::Base),
            (Some(n), None) => Ok(AdapterChoice::Stack(vec![(n, 1.0)])),
            (None, Some(v)) => Ok(AdapterChoice::Stack(v.into_iter().map(|w| (w.name, w.weight)).collect())),
            (Some(_), Some(_)) => Err(Error::config("give adapter or adapters, not both")),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct GenOpts {
    adapter: Option<String>,
    adapters: Option<Vec<NamedWeight>>,
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    repetition_penalty: Option<f32>,
    repeat_last_n: Option<usize>,
    seed: Option<f64>,
    stop: Vec<String>,
    stop_tokens: Vec<u32>,
    ignore_eos: bool,
    /// Reuse (and keep) KV caches of earlier prompts with the same start: on unless false.
    prompt_cache: Option<bool>,
    /// OpenAI's, on generated tokens (-2..2).
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    /// Record log-probabilities of generated tokens, with `top_logprobs` alternatives each.
    logprobs: bool,
    top_logprobs: Option<usize>,
    /// Structured output, as OpenAI's `response_format`: `{type: "text"}`,
    /// `{type: "json_object"}` or `{type: "json_schema", json_schema: {schema}}` (`schema`
    /// beside `type` is read too).
    response_format: Option<serde_json::Value>,
}

/// The JSON schema a `responseFormat` asks for: None for text, Some(None) for any object.
fn json_schema(f: &Option<serde_json::Value>) -> Result<Option<Option<serde_json::Value>>> {
    let Some(f) = f else { return Ok(None) };
    let bad = || Error::config(format!("responseFormat must be {{type: \"text\" | \"json_object\" | \"json_schema\", json_schema: {{schema}}}}, got {f}"));
    let schema = f.get("json_schema").and_then(|j| j.get("schema")).or_else(|| f.get("schema")).cloned();
    // A schema given as JSON text (WebLLM passes strings).
    let schema = match schema {
        Some(serde_json::Value::String(s)) => Some(serde_json::from_str(&s).map_err(|e| Error::config(format!("responseFormat schema is not JSON: {e}")))?),
        s => s,
    };
    match f.get("type").and_then(|t| t.as_str()) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(schema)),
        Some("json_schema") => schema.map(|s| Some(Some(s))).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// A token's log-probability as OpenAI's ChatCompletionTokenLogprob (and, without
/// `top_logprobs`, its TopLogprob).
#[derive(serde::Serialize)]
struct LogprobJs {
    token: String,
    logprob: f32,
    bytes: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<Vec<LogprobJs>>,
}

/// What the GPU has done so far (`gpuStats()`; null on the CPU).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct GpuStatsJs {
    submits: f64,
    read_bytes: f64,
    dispatches: f64,
    workgroups: f64,
    bytes: f64,
    record_ms: f64,
    submit_ms: f64,
}

#[wasm_bindgen(js_class = Model)]
impl JsModel {
    /// The GPU's running counts: submits, bytes read back, dispatches, their workgroups and
    /// the bytes they were sized for, host ms in dispatch calls and in submits; null on the CPU.
    #[wasm_bindgen(js_name = gpuStats)]
    pub fn gpu_stats(&self) -> std::result::Result<JsValue, JsValue> {
        let AnyModel::Gpu(m) = &self.inner else { return Ok(JsValue::NULL) };
        let s = m.borrow().llama.backend().context().stats.get();
        let js = GpuStatsJs {
            submits: s.submits as f64,
            read_bytes: s.read_bytes as f64,
            dispatches: s.dispatches as f64,
            workgroups: s.workgroups as f64,
            bytes: s.bytes as f64,
            record_ms: s.record_ns as f64 / 1e6,
            submit_ms: s.submit_ns as f64 / 1e6,
        };
        Ok(serde_wasm_bindgen::to_value(&js)?)
    }

    /// The prefix cache: {entries, positions, bytes, budget}.
    #[wasm_bindgen(js_name = promptCacheStats)]
    pub fn prompt_cache_stats(&self) -> std::result::Result<JsValue, JsValue> {
        Ok(with_model!(&self.inner, m => serde_wasm_bindgen::to_value(&m.borrow().prefixes.borrow().stats()))?)
    }

    /// Sets the prefix cache's byte budget (0: keep nothing), dropping what no longer fits.
    #[wasm_bindgen(js_name = setPromptCacheBudget)]
    pub fn set_prompt_cache_budget(&self, bytes: f64) -> std::result::Result<(), JsValue> {
        if !(bytes.is_finite() && bytes >= 0.0) {
            return Err(js_err(Error::config(format!("prompt cache budget {bytes} must be a non-negative number of bytes"))));
        }
        with_model!(&self.inner, m => m.borrow().prefixes.borrow_mut().set_budget(bytes.min(usize::MAX as f64) as usize));
        Ok(())
    }

    #[wasm_bindgen(js_name = clearPromptCache)]
    pub fn clear_prompt_cache(&self) {
        with_model!(&self.inner, m => m.borrow().prefixes.borrow_mut().clear());
    }

    pub fn info(&self) -> std::result::Result<JsValue, JsValue> {
        Ok(with_model!(&self.inner, m => serde_wasm_bindgen::to_value(&m.borrow().info))?)
    }

    pub fn tokenize(&self, text: &str, special: bool) -> Vec<u32> {
        with_model!(&self.inner, m => m.borrow().tokenizer.encode(text, special))
    }

    /// Prompt ids, with the model's BOS when its tokenizer wants one.
    #[wasm_bindgen(js_name = encodePrompt)]
    pub fn encode_prompt(&self, text: &str) -> Vec<u32> {
        with_model!(&self.inner, m => m.borrow().encode_prompt(text))
    }

    pub fn detokenize(&self, ids: Vec<u32>, skip_special: bool) -> std::result::Result<String, JsValue> {
        let tok = |m: &crate::tokenizer::Tokenizer| {
            let vocab = m.vocab_size();
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
                return Err(js_err(Error::shape(format!("token id {bad} is outside the vocabulary of {vocab}"))));
            }
            Ok(m.decode(&ids, skip_special))
        };
        with_model!(&self.inner, m => tok(&m.borrow().tokenizer))
    }

    #[wasm_bindgen(js_name = applyChatTemplate)]
    pub fn apply_chat_template(&self, messages: JsValue, add_generation_prompt: bool) -> std::result::Result<String, JsValue> {
        let messages: Vec<Message> = serde_wasm_bindgen::from_value(messages)
            .map_err(|e| js_err(Error::config(format!("messages must be [{{role, content}}]: {e}"))))?;
        with_model!(&self.inner, m => m.borrow().template.render(&messages, add_generation_prompt)).map_err(js_err)
    }

    /// Logits `[ids.length, vocab]` for `ids` in a fresh sequence; `opts` picks adapters.
    pub fn forward(&self, ids: Vec<u32>, opts: JsValue) -> js_sys::Promise {
        let m = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move { with_model!(m, m => forward(m, ids, opts).await) })
    }

    /// Adds an adapter from the files streamed into `loader` (a PEFT folder's
    /// adapter_config.json and adapter_model.safetensors, or a GGUF LoRA file; the loader is
    /// used up); returns its info. `precision`: "auto" (the runtime's format; int16 gives way
    /// to f32 for an adapter it would round coarsely), or "f32" / "f16" / "i16" for this
    /// adapter (f16 is int16 on the CPU).
    #[wasm_bindgen(js_name = loadAdapter)]
    pub fn load_adapter(&self, name: &str, loader: &mut ModelLoader, replace: bool, precision: &str) -> std::result::Result<JsValue, JsValue> {
        let format = match precision {
            "auto" => None,
            p => Some(FactorFormat::parse(p).ok_or_else(|| js_err(Error::config(format!("unknown precision {p:?} (expected \"auto\", \"f32\", \"f16\" or \"i16\")"))))?),
        };
        let l = loader.loader.take().ok_or_else(|| js_err(Error::config("this loader has finished or failed")))?;
        with_model!(&self.inner, m => {
            // Parsed without holding the model (generation steps go on meanwhile).
            let cfg = m.try_borrow().map_err(|_| busy())?.llama.cfg.clone();
            let a = adapter_from_loader(l, &cfg).map_err(|e| js_err(Error::new(e.kind, format!("adapter {name:?}: {}", e.message))))?;
            let info = m.try_borrow_mut().map_err(|_| busy())?.add_adapter_in(name, a, replace, format).map_err(js_err)?;
            Ok(serde_wasm_bindgen::to_value(&info)?)
        })
    }

    #[wasm_bindgen(js_name = unloadAdapter)]
    pub fn unload_adapter(&self, name: &str) -> std::result::Result<(), JsValue> {
        with_model!(&self.inner, m => m.try_borrow_mut().map_err(|_| busy())?.remove_adapter(name)).map_err(js_err)
    }

    #[wasm_bindgen(js_name = setAdapterScale)]
    pub fn set_adapter_scale(&self, name: &str, scale: f32) -> std::result::Result<(), JsValue> {
        with_model!(&self.inner, m => m.try_borrow_mut().map_err(|_| busy())?.set_adapter_scale(name, scale)).map_err(js_err)
    }

    #[wasm_bindgen(js_name = adapterMemoryBytes)]
    pub fn adapter_memory_bytes(&self) -> f64 {
        with_model!(&self.inner, m => m.borrow().adapter_memory_bytes()) as f64
    }

    pub fn adapters(&self) -> std::result::Result<JsValue, JsValue> {
        Ok(with_model!(&self.inner, m => serde_wasm_bindgen::to_value(&m.borrow().adapters.list()))?)
    }

    /// One prompt: a generator with one sequence.
    pub fn generate(&self, prompt: Vec<u32>, opts: JsValue) -> std::result::Result<JsGenerator, JsValue> {
        let o: GenOpts = parse_opts(opts, "generate options")?;
        let mut o = o;
        let choice = AdapterOpts { adapter: o.adapter.take(), adapters: o.adapters.take() }.choice().map_err(js_err)?;
        let inner = with_model!(&self.inner, m => AnyGen::from(start(m, vec![(prompt, choice)], o)?));
        Ok(JsGenerator { inner })
    }

    /// Several prompts stepped together, one batched forward pass per step; `items` is
    /// `[{ids: number[], adapter?, adapters?}]`, `opts` the shared generation options.
    #[wasm_bindgen(js_name = generateBatch)]
    pub fn generate_batch(&self, items: JsValue, opts: JsValue) -> std::result::Result<JsGenerator, JsValue> {
        #[derive(Deserialize)]
        struct Item {
            ids: Vec<u32>,
            #[serde(default)]
            adapter: Option<String>,
            #[serde(default)]
            adapters: Option<Vec<NamedWeight>>,
        }
        let items: Vec<Item> = serde_wasm_bindgen::from_value(items)
            .map_err(|e| js_err(Error::config(format!("generateBatch items must be [{{prompt, adapter?}}]: {e}"))))?;
        if items.is_empty() || items.len() > 256 {
            return Err(js_err(Error::shape(format!("generateBatch takes 1 to 256 prompts, got {}", items.len()))));
        }
        let o: GenOpts = parse_opts(opts, "generate options")?;
        let seqs = items
            .into_iter()
            .map(|it| Ok((it.ids, AdapterOpts { adapter: it.adapter, adapters: it.adapters }.choice()?)))
            .collect::<Result<Vec<_>>>()
            .map_err(js_err)?;
        let inner = with_model!(&self.inner, m => AnyGen::from(start(m, seqs, o)?));
        Ok(JsGenerator { inner })
    }
}

async fn forward<B: ModelOps>(m: Shared<B>, ids: Vec<u32>, opts: JsValue) -> std::result::Result<JsValue, JsValue> {
    let o: AdapterOpts = parse_opts(opts, "forward options")?;
    let m = m.try_borrow().map_err(|_| busy())?;
    let vocab = m.info.vocab_size;
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        return Err(js_err(Error::shape(format!("token id {bad} is outside the vocabulary of {vocab}"))));
    }
    let mix = o.choice().and_then(|c| m.adapters.mix(&c)).map_err(js_err)?;
    let mut s = m.llama.session();
    let t = m.llama.forward(&mut s, &ids, Logits::All, &mix).map_err(js_err)?;
    let v = crate::backend::Backend::read(m.llama.backend(), &t).await.map_err(js_err)?;
    Ok(js_sys::Float32Array::from(&v[..]).into())
}

fn start<B: ModelOps>(model: &Shared<B>, seqs: Vec<(Vec<u32>, AdapterChoice)>, o: GenOpts) -> std::result::Result<GenState<B>, JsValue> {
    {
        let m = model.try_borrow().map_err(|_| busy())?;
        let vocab = m.info.vocab_size;
        for bad in seqs.iter().flat_map(|(p, _)| p).chain(&o.stop_tokens).filter(|&&i| i as usize >= vocab) {
            return Err(js_err(Error::shape(format!("token id {bad} is outside the vocabulary of {vocab}"))));
        }
        let d = SampleOptions::default();
        let seed = o.seed.unwrap_or(0.0);
        if !(seed.is_finite() && seed >= 0.0) {
            return Err(js_err(Error::config(format!("seed {seed} must be a non-negative number"))));
        }
        let format = match json_schema(&o.response_format).map_err(js_err)? {
            Some(schema) => Some(m.json_format(schema.as_ref()).map_err(js_err)?),
            None => None,
        };
        let logprobs = match (o.logprobs, o.top_logprobs) {
            (false, Some(_)) => return Err(js_err(Error::config("topLogprobs needs logprobs: true"))),
            (on, n) => on.then_some(n.unwrap_or(0)),
        };
        let opts = GenerateOptions {
            format,
            logprobs,
            max_tokens: o.max_tokens.unwrap_or(256),
            sample: SampleOptions {
                temperature: o.temperature.unwrap_or(d.temperature),
                top_k: o.top_k.unwrap_or(d.top_k),
                top_p: o.top_p.unwrap_or(d.top_p),
                min_p: o.min_p.unwrap_or(d.min_p),
                repetition_penalty: o.repetition_penalty.unwrap_or(d.repetition_penalty),
                repeat_last_n: o.repeat_last_n.unwrap_or(d.repeat_last_n),
                frequency_penalty: o.frequency_penalty.unwrap_or(d.frequency_penalty),
                presence_penalty: o.presence_penalty.unwrap_or(d.presence_penalty),
                seed: seed as u64,
            },
            stop_strings: o.stop.into_iter().filter(|s| !s.is_empty()).collect(),
            stop_tokens: if o.ignore_eos { o.stop_tokens } else { o.stop_tokens.into_iter().chain(m.stop_tokens.iter().copied()).collect() },
            ignore_eos: o.ignore_eos,
        };
        let mut choices = Vec::with_capacity(seqs.len());
        let mut g = Generator { seqs: Vec::with_capacity(seqs.len()) };
        let keep = o.prompt_cache != Some(false);
        for (i, (prompt, choice)) in seqs.into_iter().enumerate() {
            let stack = m.adapters.stack(&choice).map_err(js_err)?;
            // Each sequence samples with its own stream of randomness.
            let mut o = opts.clone();
            o.sample.seed = o.sample.seed.wrapping_add(i as u64);
            let s = match keep {
                true => Sequence::resume(&m.llama, prompt, o, stack, &mut m.prefixes.borrow_mut()),
                false => Sequence::new(&m.llama, prompt, o, stack),
            };
            g.seqs.push(s.map_err(js_err)?);
            choices.push(choice);
        }
        Ok(GenState { model: model.clone(), gen: Rc::new(RefCell::new(g)), choices, keep })
    }
}

/// A running generation: the model it steps and its sequences.
struct GenState<B: ModelOps> {
    model: Shared<B>,
    gen: Rc<RefCell<Generator<B>>>,
    /// Adapters by name per sequence: resolved again at every step, so an adapter replaced
    /// meanwhile is used in its new form and one unloaded meanwhile is an error.
    choices: Vec<AdapterChoice>,
    /// Finished sequences leave their KV caches to the model's prefix cache.
    keep: bool,
}

impl<B: ModelOps> Clone for GenState<B> {
    fn clone(&self) -> Self {
        GenState { model: self.model.clone(), gen: self.gen.clone(), choices: self.choices.clone(), keep: self.keep }
    }
}

impl<B: ModelOps> GenState<B> {
    fn migrate<C: ModelOps>(&self, model: &Shared<C>) -> std::result::Result<GenState<C>, JsValue> {
        let mut g = self.gen.try_borrow_mut().map_err(|_| js_err(Error::config("a generation step is running; await it first")))?;
        let m = model.try_borrow().map_err(|_| busy())?;
        let seqs = g.seqs.drain(..).map(|s| s.moved_to(&m.llama)).collect();
        Ok(GenState { model: model.clone(), gen: Rc::new(RefCell::new(Generator { seqs })), choices: self.choices.clone(), keep: self.keep })
    }

    /// Ends every sequence, leaving their KV caches to the prefix cache (a generation stopped
    /// early still serves its prompt to the next one); nothing while a step runs.
    fn release(&self) {
        if let (Ok(mut g), Ok(m), true) = (self.gen.try_borrow_mut(), self.model.try_borrow(), self.keep) {
            let mut cache = m.prefixes.borrow_mut();
            for s in &mut g.seqs {
                s.retire(&m.llama, &mut cache);
            }
        }
    }

    /// The sequences, unless a step (which holds them across a GPU readback) is running.
    fn seqs(&self) -> std::result::Result<std::cell::Ref<'_, Generator<B>>, JsValue> {
        self.gen.try_borrow().map_err(|_| js_err(Error::config("a generation step is running; await it first")))
    }

    /// Sequence `i`'s log-probabilities from its `from`-th generated token on, as OpenAI's
    /// ChatCompletionTokenLogprob objects.
    fn logprobs(&self, i: usize, from: usize) -> std::result::Result<JsValue, JsValue> {
        let g = self.seqs()?;
        let m = self.model.try_borrow().map_err(|_| busy())?;
        let tok = &m.tokenizer;
        let one = |t: u32, logprob: f32| {
            let bytes = tok.token_bytes(t);
            LogprobJs { token: String::from_utf8_lossy(&bytes).into_owned(), logprob, bytes, top_logprobs: None }
        };
        let out: Vec<LogprobJs> = g
            .seqs
            .get(i)
            .map_or(&[][..], |s| s.logprobs.get(from..).unwrap_or(&[]))
            .iter()
            .map(|l| LogprobJs { top_logprobs: Some(l.top.iter().map(|&(t, p)| one(t, p)).collect()), ..one(l.token, l.logprob) })
            .collect();
        Ok(serde_wasm_bindgen::to_value(&out)?)
    }

    async fn step(self) -> std::result::Result<JsValue, JsValue> {
        let mut g = self.gen.try_borrow_mut().map_err(|_| js_err(Error::config("a generation step is already running")))?;
        let m = self.model.try_borrow().map_err(|_| busy())?;
        for (s, c) in g.seqs.iter_mut().zip(&self.choices) {
            s.stack = m.adapters.stack(c).map_err(|e| js_err(Error::new(e.kind, format!("during generation: {}", e.message))))?;
        }
        let pieces = g.step(&m.llama, &m.tokenizer).await.map_err(js_err)?;
        if self.keep {
            g.retire_finished(&m.llama, &mut m.prefixes.borrow_mut());
        }
        let out = js_sys::Array::new();
        for p in pieces {
            out.push(&p.map_or(JsValue::UNDEFINED, JsValue::from));
        }
        Ok(out.into())
    }
}

#[derive(Clone)]
enum AnyGen {
    Cpu(GenState<CpuBackend>),
    Gpu(GenState<GpuBackend>),
}

impl From<GenState<CpuBackend>> for AnyGen {
    fn from(g: GenState<CpuBackend>) -> Self {
        AnyGen::Cpu(g)
    }
}

impl From<GenState<GpuBackend>> for AnyGen {
    fn from(g: GenState<GpuBackend>) -> Self {
        AnyGen::Gpu(g)
    }
}

macro_rules! with_gen {
    ($g:expr, $i:ident => $body:expr) => {
        match $g {
            AnyGen::Cpu($i) => $body,
            AnyGen::Gpu($i) => $body,
        }
    };
}

#[wasm_bindgen(js_name = Generator)]
pub struct JsGenerator {
    inner: AnyGen,
}

fn parse_opts<T: for<'de> Deserialize<'de> + Default>(opts: JsValue, what: &str) -> std::result::Result<T, JsValue> {
    if opts.is_undefined() || opts.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(opts).map_err(|e| js_err(Error::config(format!("{what}: {e}"))))
}

#[wasm_bindgen(js_class = Generator)]
impl JsGenerator {
    /// Runs one step; resolves to an array with, per sequence, its next text piece (possibly
    /// "") or undefined once it has finished.
    /// This generation continued on `model` (the same weights on another backend, after a
    /// GPU loss); this generator is left empty.
    pub fn migrate(&self, model: &JsModel) -> std::result::Result<JsGenerator, JsValue> {
        let inner = with_gen!(&self.inner, g => with_model!(&model.inner, m => AnyGen::from(g.migrate(m)?)));
        Ok(JsGenerator { inner })
    }

    /// Ends the generation (unfinished sequences: "abort"), leaving its KV caches for later
    /// prompts; call before `free` when stopping early.
    pub fn release(&self) {
        with_gen!(&self.inner, g => g.release());
    }

    pub fn next(&self) -> js_sys::Promise {
        let g = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move { with_gen!(g, g => g.step().await) })
    }

    /// Generated token ids of sequence `i` so far.
    pub fn tokens(&self, i: usize) -> std::result::Result<Vec<u32>, JsValue> {
        with_gen!(&self.inner, g => Ok(g.seqs()?.seqs.get(i).map_or(vec![], |s| s.tokens().to_vec())))
    }

    /// Prompt tokens of sequence `i` served from the prefix cache (not run again).
    #[wasm_bindgen(js_name = cachedTokens)]
    pub fn cached_tokens(&self, i: usize) -> std::result::Result<usize, JsValue> {
        with_gen!(&self.inner, g => Ok(g.seqs()?.seqs.get(i).map_or(0, |s| s.cached_tokens())))
    }

    /// Sequence `i`'s token log-probabilities from its `from`-th generated token on (with
    /// the `logprobs` option; OpenAI's ChatCompletionTokenLogprob objects).
    pub fn logprobs(&self, i: usize, from: usize) -> std::result::Result<JsValue, JsValue> {
        with_gen!(&self.inner, g => g.logprobs(i, from))
    }

    /// Whether sequence `i` has finished.
    pub fn done(&self, i: usize) -> std::result::Result<bool, JsValue> {
        with_gen!(&self.inner, g => Ok(g.seqs()?.seqs.get(i).is_none_or(|s| s.done)))
    }

    /// "stop", "length" or "context" once sequence `i` finished.
    #[wasm_bindgen(js_name = finishReason)]
    pub fn finish_reason(&self, i: usize) -> std::result::Result<Option<String>, JsValue> {
        with_gen!(&self.inner, g => Ok(g.seqs()?.seqs.get(i).and_then(|s| s.finish_reason).map(str::to_string)))
    }
}
