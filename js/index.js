// lorafuse public API. Loads the wasm module itself (fetch in browsers and bundlers, the
// file system in Node), so callers never run an init function.
import init, { Runtime } from './wasm/lorafuse.js';

/** Base class of every error lorafuse throws on bad input or a failing backend. */
export class LoraError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}
/** Lengths or shapes that do not fit (weight, x, A, B, rows). */
export class ShapeError extends LoraError {}
/** Unknown or duplicate adapter names, bad ranks. */
export class AdapterError extends LoraError {}
/** Bad option values: NaN or infinite numbers, unknown dtypes, backends or options. */
export class ConfigError extends LoraError {}
/** The requested backend is unavailable, or the GPU failed. */
export class BackendError extends LoraError {}
/** A file that is truncated, corrupt or not what it claims to be. */
export class FormatError extends LoraError {}
/** Valid input lorafuse does not handle (yet): a quant type, an architecture. */
export class UnsupportedError extends LoraError {}
/** A hard limit, such as the model's context length, would be exceeded. */
export class LimitError extends LoraError {}
/** The operation was aborted by its AbortSignal. */
export class AbortError extends LoraError {}

const KINDS = { ShapeError, AdapterError, ConfigError, BackendError, FormatError, UnsupportedError, LimitError, AbortError };

function translate(e) {
  const Kind = e && KINDS[e.name];
  return Kind && !(e instanceof LoraError) ? new Kind(e.message) : e;
}
function call(fn) {
  try {
    return fn();
  } catch (e) {
    throw translate(e);
  }
}
async function callAsync(fn) {
  try {
    return await fn();
  } catch (e) {
    throw translate(e);
  }
}

let loading;
/** Instantiates the wasm module once per realm. */
function loadWasm() {
  loading ??= (async () => {
    const url = new URL('./wasm/lorafuse_bg.wasm', import.meta.url);
    if (url.protocol === 'file:') {
      const { readFile } = await import(/* @vite-ignore */ 'node:fs/promises');
      await init({ module_or_path: await readFile(url) });
    } else {
      await init({ module_or_path: url });
    }
  })();
  return loading;
}

function f32(name, v) {
  if (v instanceof Float32Array) return v;
  if (Array.isArray(v)) return Float32Array.from(v);
  throw new ConfigError(`${name} must be a Float32Array (or an array of numbers)`);
}
function count(name, v) {
  if (!Number.isInteger(v) || v < 0) throw new ShapeError(`${name} must be a non-negative integer, got ${v}`);
  return v;
}
function finite(name, v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${name} must be a finite number, got ${v}`);
  return v;
}

export class LoraRuntime {
  #rt;
  /** @internal use LoraRuntime.create */
  constructor(rt) {
    this.#rt = rt;
  }

  /** Picks a backend: "auto" (WebGPU when an adapter exists, else CPU), "webgpu" or "cpu". */
  static async create({ backend = 'auto' } = {}) {
    await loadWasm();
    return new LoraRuntime(await callAsync(() => Runtime.create(String(backend))));
  }

  /** "webgpu" or "cpu": what actually runs. */
  get backend() {
    return this.#rt.backend;
  }
  /** GPU adapter name, or which CPU path runs. */
  get device() {
    return this.#rt.device;
  }
  /** Why "auto" fell back to the CPU (undefined when it did not). */
  get fallbackReason() {
    return this.#rt.fallbackReason;
  }

  /** A LoRA linear layer over a frozen base weight [outFeatures, inFeatures]. */
  loraLinear({ weight, outFeatures, inFeatures, dtype = 'f32' }) {
    count('outFeatures', outFeatures);
    count('inFeatures', inFeatures);
    return new LoraLinear(call(() => this.#rt.loraLinear(weight, outFeatures, inFeatures, String(dtype))));
  }

  dispose() {
    this.#rt?.free();
    this.#rt = undefined;
  }
}

const RUN_OPTIONS = ['adapter', 'adapters', 'adapterPerRow'];

export class LoraLinear {
  #l;
  /** @internal use LoraRuntime#loraLinear */
  constructor(l) {
    this.#l = l;
  }
  get outFeatures() {
    return this.#l.outFeatures;
  }
  get inFeatures() {
    return this.#l.inFeatures;
  }

  /** Adds adapter `name` with A [rank, in], B [out, rank] and its scale (alpha / r). */
  addAdapter(name, { a, b, rank, scale = 1 }, { replace = false } = {}) {
    if (typeof name !== 'string' || !name) throw new AdapterError('adapter name must be a non-empty string');
    const av = f32('a', a), bv = f32('b', b);
    count('rank', rank);
    finite('scale', scale);
    call(() => this.#l.addAdapter(name, av, bv, rank, scale, !!replace));
  }
  removeAdapter(name) {
    call(() => this.#l.removeAdapter(String(name)));
  }
  setAdapterScale(name, scale) {
    finite('scale', scale);
    call(() => this.#l.setAdapterScale(String(name), scale));
  }
  /** [{name, rank, scale}] */
  adapters() {
    return this.#l.adapters();
  }

  /**
   * y [rows, out] for x [rows, in]. opts: {adapter: name | null}, {adapters: [{name, weight}]}
   * (one stack for all rows) or {adapterPerRow: [name | null | [{name, weight}]]}.
   */
  async run(x, rows, opts) {
    const xv = f32('x', x);
    count('rows', rows);
    for (const k of Object.keys(opts ?? {})) {
      if (!RUN_OPTIONS.includes(k)) throw new ConfigError(`unknown run option ${JSON.stringify(k)} (expected ${RUN_OPTIONS.join(', ')})`);
    }
    return callAsync(() => this.#l.run(xv, rows, opts ?? null));
  }

  dispose() {
    this.#l?.free();
    this.#l = undefined;
  }
}
