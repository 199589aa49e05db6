//! `Runtime` (backend choice) and `Linear` (one LoRA linear layer with named adapters).

use super::js_err;
use crate::backend::{Backend, BackendChoice};
use crate::cpu::CpuBackend;
use crate::backend::factors::FactorFormat;
use crate::error::{Error, Result};
use crate::gpu::{GpuBackend, GpuOptions};
use crate::lora::LoraLinear;
use crate::backend::routing::Mix;
use crate::formats::weights::{HostWeight, WeightData, WeightFormat};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

#[derive(Clone)]
pub(super) enum AnyBackend {
    Cpu(CpuBackend),
    Gpu(GpuBackend),
}

enum AnyLinear {
    Cpu(LoraLinear<CpuBackend>),
    Gpu(LoraLinear<GpuBackend>),
}

/// Runs `$body` with `$l` bound to the concrete `LoraLinear` inside an `AnyLinear`.
macro_rules! with_layer {
    ($layer:expr, $l:ident => $body:expr) => {
        match $layer {
            AnyLinear::Cpu($l) => $body,
            AnyLinear::Gpu($l) => $body,
        }
    };
}

#[wasm_bindgen]
pub struct Runtime {
    backend: AnyBackend,
    fallback_reason: Option<String>,
}

impl Runtime {
    pub(super) fn any_backend(&self) -> &AnyBackend {
        &self.backend
    }
}

#[wasm_bindgen]
impl Runtime {
    /// `backend`: "auto" (WebGPU when an adapter exists, else CPU), "webgpu" or "cpu".
    /// `adapter_precision`: how adapter factors are stored: "f32" (exact, PEFT to 1e-4 for any
    /// adapter; the JS default), "i16" (int16 codes with a step per rank, on both backends;
    /// opt-in: a trained adapter can pass 1e-4) or "f16" (f16 on WebGPU; the CPU stores int16
    /// for it). `adapterPrecision` says which runs.
    /// `prefill_math`: "f32", or "f16" for f16 products in the prefill matmuls where the
    /// WebGPU adapter has shader-f16 (faster on GPUs with fast f16, less exact: see
    /// `GpuOptions::f16_math`). `prefillMath` says which runs.
    /// `subgroups`: reductions use WebGPU subgroup operations where the adapter offers them
    /// (false: workgroup-memory trees everywhere). `subgroups` says which runs.
    pub async fn create(backend: String, adapter_precision: String, prefill_math: String, subgroups: bool) -> std::result::Result<Runtime, JsValue> {
        let choice = BackendChoice::parse(&backend).map_err(js_err)?;
        let factors = FactorFormat::parse(&adapter_precision).ok_or_else(|| {
            js_err(Error::config(format!("unknown adapterPrecision {adapter_precision:?} (expected \"f32\", \"f16\" or \"i16\")")))
        })?;
        let f16_math = match prefill_math.as_str() {
            "f32" => false,
            "f16" => true,
            other => return Err(js_err(Error::config(format!("unknown prefillMath {other:?} (expected \"f32\" or \"f16\")")))),
        };
        let opts = GpuOptions { factors, f16_math, no_subgroups: !subgroups, ..Default::default() };
        let cpu = CpuBackend { factors: CpuBackend.storable(factors), ..CpuBackend };
        let (backend, fallback_reason) = match choice {
            BackendChoice::Cpu => (AnyBackend::Cpu(cpu), None),
            BackendChoice::WebGpu => (AnyBackend::Gpu(GpuBackend::new(&opts).await.map_err(js_err)?), None),
            BackendChoice::Auto => match GpuBackend::new(&opts).await {
                Ok(g) => (AnyBackend::Gpu(g), None),
                Err(e) => (AnyBackend::Cpu(cpu), Some(e.message)),
            },
        };
        Ok(Runtime { backend, fallback_reason })
    }

    /// "webgpu" or "cpu".
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match &self.backend {
            AnyBackend::Cpu(b) => b.kind().js_name().into(),
            AnyBackend::Gpu(b) => b.kind().js_name().into(),
        }
    }

    /// The GPU adapter's name, or which CPU path runs.
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        match &self.backend {
            AnyBackend::Cpu(b) => b.describe(),
            AnyBackend::Gpu(b) => b.describe(),
        }
    }

    /// Destroys the GPU device, as a driver reset would (tests of the CPU fallback).
    #[wasm_bindgen(js_name = loseDeviceForTesting)]
    pub fn lose_device_for_testing(&self) {
        if let AnyBackend::Gpu(g) = &self.backend {
            g.context().device.destroy();
        }
    }

    /// How adapter factors are stored by default: "f32", "f16" (WebGPU only) or "i16".
    #[wasm_bindgen(getter, js_name = adapterPrecision)]
    pub fn adapter_precision(&self) -> String {
        match &self.backend {
            AnyBackend::Cpu(b) => b.factor_format().name().into(),
            AnyBackend::Gpu(b) => b.factor_format().name().into(),
        }
    }

    /// "f16" when the prefill matmuls multiply in f16 (asked for, on WebGPU with
    /// shader-f16), else "f32".
    #[wasm_bindgen(getter, js_name = prefillMath)]
    pub fn prefill_math(&self) -> String {
        let f16 = matches!(&self.backend, AnyBackend::Gpu(g) if g.context().flags.f16_math);
        (if f16 { "f16" } else { "f32" }).into()
    }

    /// Whether the GPU kernels reduce with subgroup operations (false on the CPU).
    #[wasm_bindgen(getter)]
    pub fn subgroups(&self) -> bool {
        matches!(&self.backend, AnyBackend::Gpu(g) if g.context().flags.subgroups)
    }

    /// Why "auto" fell back to the CPU, if it did.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.fallback_reason.clone()
    }

    /// A layer with base weight `[out, in]` (Float32Array for "f32", Uint16Array of half
    /// bit patterns for "f16").
    #[wasm_bindgen(js_name = loraLinear)]
    pub fn lora_linear(&self, weight: JsValue, out: usize, inp: usize, dtype: &str) -> std::result::Result<Linear, JsValue> {
        let data = weight_data(&weight, WeightFormat::parse(dtype).map_err(js_err)?).map_err(js_err)?;
        let w = HostWeight::new(out, inp, data).map_err(js_err)?;
        let layer = match &self.backend {
            AnyBackend::Cpu(b) => AnyLinear::Cpu(LoraLinear::new(b, w).map_err(js_err)?),
            AnyBackend::Gpu(b) => AnyLinear::Gpu(LoraLinear::new(b, w).map_err(js_err)?),
        };
        Ok(Linear { layer: Rc::new(RefCell::new(layer)), names: BTreeMap::new() })
    }
}

fn weight_data(v: &JsValue, fmt: WeightFormat) -> Result<WeightData> {
    let want = match fmt {
        WeightFormat::F32 => "a Float32Array",
        WeightFormat::F16 | WeightFormat::BF16 => "a Uint16Array of bit patterns",
        _ => "a Uint8Array of GGUF blocks",
    };
    let data = match fmt {
        WeightFormat::F32 => v.dyn_ref::<js_sys::Float32Array>().map(|a| WeightData::F32(a.to_vec())),
        WeightFormat::F16 => v.dyn_ref::<js_sys::Uint16Array>().map(|a| WeightData::F16(a.to_vec())),
        WeightFormat::BF16 => v.dyn_ref::<js_sys::Uint16Array>().map(|a| WeightData::BF16(a.to_vec())),
        _ => v.dyn_ref::<js_sys::Uint8Array>().map(|a| WeightData::Blocks(fmt, a.to_vec())),
    };
    data.ok_or_else(|| Error::config(format!("weight for dtype {:?} must be {want}", fmt.name())))
}

#[wasm_bindgen]
pub struct Linear {
    /// Shared with in-flight `run` futures, which never hold a borrow across an await.
    layer: Rc<RefCell<AnyLinear>>,
    names: BTreeMap<String, usize>,
}

/// One entry of a weighted adapter stack, `{name, weight?}`.
#[derive(Deserialize)]
struct Weighted {
    name: String,
    #[serde(default = "one")]
    weight: f32,
}

fn one() -> f32 {
    1.0
}

/// A row's choice in `adapterPerRow`: null, a name, or a weighted stack.
#[derive(Deserialize)]
#[serde(untagged)]
enum RowChoice {
    Name(String),
    Stack(Vec<Weighted>),
    None(()),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RunOptions {
    #[serde(default)]
    adapter: Option<String>,
    #[serde(default)]
    adapters: Option<Vec<Weighted>>,
    #[serde(default)]
    adapter_per_row: Option<Vec<RowChoice>>,
}

#[wasm_bindgen]
impl Linear {
    #[wasm_bindgen(js_name = addAdapter)]
    pub fn add_adapter(
        &mut self,
        name: String,
        a: &[f32],
        b: &[f32],
        rank: usize,
        scale: f32,
        replace: bool,
    ) -> std::result::Result<(), JsValue> {
        let old = self.names.get(&name).copied();
        if old.is_some() && !replace {
            return Err(js_err(Error::adapter(format!(
                "an adapter named {name:?} is already loaded (pass replace: true to swap it)"
            ))));
        }
        let mut layer = self.layer.borrow_mut();
        // Add the new one first: if that fails, the old adapter is still there.
        let id = with_layer!(&mut *layer, l => l.add_adapter(a, b, rank, scale)).map_err(js_err)?;
        if let Some(old) = old {
            with_layer!(&mut *layer, l => l.remove_adapter(old)).map_err(js_err)?;
        }
        self.names.insert(name, id);
        Ok(())
    }

    #[wasm_bindgen(js_name = removeAdapter)]
    pub fn remove_adapter(&mut self, name: &str) -> std::result::Result<(), JsValue> {
        let id = self.id(name).map_err(js_err)?;
        with_layer!(&mut *self.layer.borrow_mut(), l => l.remove_adapter(id)).map_err(js_err)?;
        self.names.remove(name);
        Ok(())
    }

    #[wasm_bindgen(js_name = setAdapterScale)]
    pub fn set_adapter_scale(&mut self, name: &str, scale: f32) -> std::result::Result<(), JsValue> {
        let id = self.id(name).map_err(js_err)?;
        with_layer!(&mut *self.layer.borrow_mut(), l => l.set_scale(id, scale)).map_err(js_err)
    }

    /// `[{name, rank, scale}]`, sorted by name.
    pub fn adapters(&self) -> js_sys::Array {
        let layer = self.layer.borrow();
        let list = js_sys::Array::new();
        for (name, &id) in &self.names {
            if let Ok(s) = with_layer!(&*layer, l => l.slot(id)) {
                let o = js_sys::Object::new();
                let set = |k: &str, v: JsValue| js_sys::Reflect::set(&o, &k.into(), &v);
                let _ = set("name", name.into());
                let _ = set("rank", s.rank.into());
                let _ = set("scale", s.scale.into());
                list.push(&o);
            }
        }
        list
    }

    #[wasm_bindgen(getter, js_name = outFeatures)]
    pub fn out_features(&self) -> usize {
        with_layer!(&*self.layer.borrow(), l => l.out_features())
    }

    #[wasm_bindgen(getter, js_name = inFeatures)]
    pub fn in_features(&self) -> usize {
        with_layer!(&*self.layer.borrow(), l => l.in_features())
    }

    /// `y [rows, out]` for `x [rows, in]`; `opts` picks adapters (see index.d.ts).
    pub fn run(&self, x: &[f32], rows: usize, opts: JsValue) -> js_sys::Promise {
        let fut = self.start(x, rows, opts);
        wasm_bindgen_futures::future_to_promise(async move {
            let y = fut.map_err(js_err)?.await.map_err(js_err)?;
            Ok(js_sys::Float32Array::from(&y[..]).into())
        })
    }
}

type Pending = Pin<Box<dyn Future<Output = Result<Vec<f32>>>>>;

impl Linear {
    fn id(&self, name: &str) -> Result<usize> {
        self.names.get(name).copied().ok_or_else(|| Error::adapter(format!("no adapter named {name:?} is loaded")))
    }

    fn mix(&self, rows: usize, opts: JsValue) -> Result<Mix> {
        let o: RunOptions = if opts.is_undefined() || opts.is_null() {
            RunOptions::default()
        } else {
            serde_wasm_bindgen::from_value(opts).map_err(|e| Error::config(format!("run options: {e}")))?
        };
        let stack = |ws: &[Weighted]| ws.iter().map(|w| Ok((self.id(&w.name)?, w.weight))).collect::<Result<Vec<_>>>();
        match (o.adapter, o.adapters, o.adapter_per_row) {
            (None, None, None) => Ok(Mix::Base),
            (Some(name), None, None) => Ok(Mix::All(vec![(self.id(&name)?, 1.0)])),
            (None, Some(ws), None) => Ok(Mix::All(stack(&ws)?)),
            (None, None, Some(per_row)) => {
                if per_row.len() != rows {
                    return Err(Error::shape(format!("adapterPerRow has {} entries for {rows} rows", per_row.len())));
                }
                let rows = per_row
                    .iter()
                    .map(|c| match c {
                        RowChoice::None(()) => Ok(vec![]),
                        RowChoice::Name(n) => Ok(vec![(self.id(n)?, 1.0)]),
                        RowChoice::Stack(ws) => stack(ws),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Mix::PerRow(rows))
            }
            _ => Err(Error::config("give at most one of adapter, adapters and adapterPerRow")),
        }
    }

    /// Checks, uploads and records synchronously; the returned future only reads back.
    fn start(&self, x: &[f32], rows: usize, opts: JsValue) -> Result<Pending> {
        let mix = self.mix(rows, opts)?;
        let layer = self.layer.borrow();
        Ok(with_layer!(&*layer, l => {
            let y = l.record(x, rows, &mix)?;
            let b = l.backend().clone();
            Box::pin(async move { b.read(&y).await }) as Pending
        }))
    }
}
