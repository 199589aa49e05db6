//! What wgpu's WebGPU backend does not give us, read or asked of the browser's own objects:
//! whether WebGPU exists, the adapter's name, and the `subgroups` feature.

use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsValue;

// wgpu 30's web backend maps 16 features to WebGPU names (`FEATURES_MAPPING`), and
// "subgroups" is not one of them, so it can neither see nor request it. It passes WGSL
// through untouched, though, so a device that has the feature runs our subgroup kernels.
// `askSubgroupsOnce` makes the next `GPUAdapter.requestDevice` also ask for "subgroups"
// where that adapter offers them. `Context::new` calls the function it returns as soon as
// wgpu's `request_device` returns (wgpu 30 calls `requestDevice` synchronously in it), so
// no other code on the page can see the change; the method is put back on the call itself
// too, and only if it is still ours. Should a later wgpu call it later, subgroups are just
// not asked for, and the flag (read from the device) says so.
#[wasm_bindgen(inline_js = r#"
export function askSubgroupsOnce() {
  const proto = globalThis.GPUAdapter?.prototype;
  const own = proto && Object.getOwnPropertyDescriptor(proto, 'requestDevice');
  if (!own || typeof own.value !== 'function') return () => {};
  function requestDevice(desc) {
    restore();
    const d = { ...(desc ?? {}) };
    if (this.features.has('subgroups')) d.requiredFeatures = [...(d.requiredFeatures ?? []), 'subgroups'];
    return own.value.call(this, d);
  }
  function restore() {
    if (Object.getOwnPropertyDescriptor(proto, 'requestDevice')?.value === requestDevice) {
      Object.defineProperty(proto, 'requestDevice', own);
    }
  }
  Object.defineProperty(proto, 'requestDevice', { ...own, value: requestDevice });
  return restore;
}
export function hasFeature(device, name) {
  return !!device?.features?.has(name);
}
export function nowMs() {
  return globalThis.performance?.now() ?? Date.now();
}
"#)]
extern "C" {
    /// Returns the function that puts `requestDevice` back (a no-op once it is back).
    #[wasm_bindgen(js_name = askSubgroupsOnce)]
    pub fn ask_subgroups_once() -> js_sys::Function;
    #[wasm_bindgen(js_name = hasFeature)]
    fn has_feature(device: &JsValue, name: &str) -> bool;
    /// performance.now() (Date.now() where there is none).
    #[wasm_bindgen(js_name = nowMs)]
    pub fn now_ms() -> f64;
}

/// The device was opened with `subgroups` (`ask_subgroups_once` got it).
pub fn device_has_subgroups(device: &wgpu::Device) -> bool {
    device.as_webgpu().is_some_and(|d| has_feature(d, "subgroups"))
}

/// "google swiftshader (fallback)" and the like, from `GPUDevice.adapterInfo` (wgpu's own
/// adapter info is empty on the web).
pub fn adapter_name(device: &wgpu::Device) -> Option<String> {
    let dev: &JsValue = device.as_webgpu()?;
    let info = Reflect::get(dev, &"adapterInfo".into()).ok().filter(|v| v.is_object())?;
    let field = |k: &str| Reflect::get(&info, &k.into()).ok().and_then(|v| v.as_string()).filter(|s| !s.is_empty());
    let mut parts: Vec<String> = ["vendor", "architecture", "device", "description"].iter().filter_map(|k| field(k)).collect();
    parts.dedup();
    if Reflect::get(&info, &"isFallbackAdapter".into()).ok().and_then(|v| v.as_bool()) == Some(true) {
        parts.push("(fallback)".into());
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// `navigator.gpu` exists (wgpu would throw deep inside otherwise, e.g. in Node).
pub fn gpu_present() -> bool {
    let nav = Reflect::get(&js_sys::global(), &JsValue::from_str("navigator")).unwrap_or(JsValue::UNDEFINED);
    if nav.is_undefined() || nav.is_null() {
        return false;
    }
    let gpu = Reflect::get(&nav, &JsValue::from_str("gpu")).unwrap_or(JsValue::UNDEFINED);
    !(gpu.is_undefined() || gpu.is_null())
}
