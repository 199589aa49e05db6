// lorafuse public API. Loads the wasm module itself (fetch in browsers and bundlers, the
// file system in Node), so callers never run an init function.
import { compile, loadThreaded, threadsUnavailable, wantedThreads } from './threads.js';
import * as single from './wasm/lorafuse.js';
import { cacheCalls, openSources } from './sources.js';
import { chatFetch, createChatCompletion } from './openai.js';
import { AbortError, BackendError, ConfigError, LoraError, ShapeError, AdapterError, UnsupportedError, call, callAsync } from './errors.js';
export { LoraError, ShapeError, AdapterError, ConfigError, BackendError, FormatError, UnsupportedError, LimitError, AbortError } from './errors.js';

// The wasm-bindgen glue of the build this realm runs (threads.js), once loaded, and why it
// runs fewer threads than its first runtime asked for (undefined: as many).
let wasm, loading, threadsNote;
/** Instantiates the wasm module once per realm: the threaded build when `threads` > 1 can run. */
function loadWasm(threads) {
  loading ??= (async () => {
    const why = threads > 1 ? threadsUnavailable() : undefined;
    if (threads > 1 && !why) {
      try {
        const mt = await loadThreaded(threads);
        threadsNote = mt.note;
        wasm = mt.glue;
        return;
      } catch (e) {
        // E.g. a shared memory of this size refused: the single-threaded build still runs.
        threadsNote = `the threaded build failed to start: ${e?.message ?? e}`;
      }
    }
    threadsNote ??= why;
    await single.default({ module_or_path: await compile(new URL('./wasm/lorafuse_bg.wasm', import.meta.url)) });
    wasm = single;
  })();
  return loading;
}

/** @internal The loaded build's wasm-bindgen exports (the benchmarks reach the dev-only ones here). */
export function wasmGlue() {
  return wasm;
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
  #threadsNote;
  /** @internal use LoraRuntime.create */
  constructor(rt, threadsNote) {
    this.#rt = rt;
    this.#threadsNote = threadsNote;
  }

  /** Picks a backend: "auto" (WebGPU when an adapter exists, else CPU), "webgpu" or "cpu". */
  static async create({ backend = 'auto', adapterPrecision = 'f32', prefillMath = 'f32', subgroups = true, threads = 'auto' } = {}) {
    if (typeof subgroups !== 'boolean') throw new ConfigError(`subgroups must be true or false, got ${JSON.stringify(subgroups)}`);
    const n = await wantedThreads(threads);
    await loadWasm(n);
    wasm.setThreads(n);
    // The realm's build and workers come from its first create(): say so when this asks for more.
    const running = wasm.poolThreads();
    const note = running >= n ? undefined
      : (threadsNote ?? (wasm.threadsSupported()
        ? `${running} threads were started by this page's first LoraRuntime.create`
        : "this page's first LoraRuntime.create asked for 1 thread: the single-threaded build runs"));
    return new LoraRuntime(await callAsync(() => wasm.Runtime.create(String(backend), String(adapterPrecision), String(prefillMath), subgroups)), note);
  }

  /** Bytes of wasm memory in use (it only grows: this is the peak so far). */
  static wasmMemoryBytes() {
    return wasm ? wasm.wasmMemoryBytes() : 0;
  }

  /**
   * Threads the CPU kernels run on (the calling thread included). A page-wide setting: the
   * first create() picks the build (threads need a cross-origin isolated page) and starts
   * the workers; a later create() may lower the count or raise it back up to them.
   */
  get threads() {
    return wasm.poolThreads();
  }
  /** Why fewer threads run than were asked for (undefined when as many run). */
  get threadsNote() {
    return this.#threadsNote;
  }

  /** "webgpu" or "cpu": what actually runs. */
  get backend() {
    return this.#rt.backend;
  }
  /** GPU adapter name, or which CPU path runs. */
  get device() {
    return this.#rt.device;
  }
  /** How adapter factors are stored by default: "f32", "i16" or "f16" (WebGPU only). */
  get adapterPrecision() {
    return this.#rt.adapterPrecision;
  }
  /** "f16" when prefill matmuls multiply in f16 (asked for, WebGPU with shader-f16), else "f32". */
  get prefillMath() {
    return this.#rt.prefillMath;
  }
  /** Whether the WebGPU kernels reduce with subgroup operations (false on the CPU). */
  get subgroups() {
    return this.#rt.subgroups;
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

  /**
   * Loads a model, streaming its bytes into place: a GGUF file (URL, Response, Blob/File,
   * ArrayBuffer, Uint8Array) or a Hugging Face folder (URL ending in "/", Files, or
   * {files: {name: source}}). onProgress({stage, loaded, total, file}) follows the bytes
   * (stage "download", the files parsed as they arrive), then the assembly ("parse" on the
   * CPU, "upload" on WebGPU, where the weights go to the GPU) and "ready". The model
   * runs on this runtime's backend (info.backend): on WebGPU its weights, adapters and KV
   * cache live on the GPU. int8Activations (CPU only): opt-in faster path for
   * block-format weights that quantizes activations to 8 bits per 32-block (less exact).
   *
   * On WebGPU, if the GPU fails (device lost, out of memory) the model moves to the CPU and
   * running generations continue where they were: the model and its adapters are loaded
   * again from their sources (a URL refetch is served by `cache` when given; Blobs and bytes
   * are read again, so a consumed Response cannot be). This keeps no second copy of the
   * weights meanwhile; `fallback: false` opts out. `onFallback({reason})` reports it.
   */
  async loadModel(source, { onProgress, signal, fileName, int8Activations = false, cache, fallback = true, onFallback } = {}) {
    const opts = { fileName, int8Activations, cache };
    const reload = fallback && this.backend === 'webgpu'
      ? async () => {
        // 16-bit factors stay 16-bit (the CPU's own format) when a generation moves.
        const cpu = await callAsync(() => wasm.Runtime.create('cpu', this.adapterPrecision, 'f32', false));
        try {
          return await streamModel(cpu, source, opts);
        } finally {
          cpu.free();
        }
      }
      : undefined;
    let m;
    try {
      m = await streamModel(this.#rt, source, { ...opts, onProgress, signal });
    } catch (e) {
      // The GPU failed during the upload (out of memory, device lost): load on the CPU.
      if (!(e instanceof BackendError) || !reload) throw e;
      const model = new Model(await reload(), {});
      model.fallbackReason = e.message;
      onFallback?.({ reason: e.message });
      return model;
    }
    return new Model(m, { reload, onFallback });
  }

  /** Destroys the GPU device as a driver reset would; for tests of the CPU fallback. */
  loseDeviceForTesting() {
    this.#rt.loseDeviceForTesting();
  }

  dispose() {
    this.#rt?.free();
    this.#rt = undefined;
  }
}
// clearCache, isCached, deleteCached, cacheUsage (the same statics as LoraWorker's).
Object.assign(LoraRuntime, cacheCalls);

/** Streams a model's files into a loader; builds it on runtime `rt`'s backend. */
async function streamModel(rt, source, { onProgress, signal, fileName, int8Activations, cache }) {
  const files = await callAsync(() => openSources(source, { signal, fileName, cache }));
  const loader = new wasm.ModelLoader();
  try {
    const { loaded, total } = await feed(loader, files, { signal, onProgress });
    if (signal?.aborted) throw new AbortError('loading the model was aborted');
    // Every byte is in: the model is assembled (on WebGPU, its weights copied to the GPU).
    const last = files.at(-1)?.name;
    onProgress?.({ stage: rt.backend === 'webgpu' ? 'upload' : 'parse', loaded, total, file: last });
    const m = call(() => loader.finish(rt, !!int8Activations));
    onProgress?.({ stage: 'ready', loaded, total, file: last });
    return m;
  } finally {
    freeQuietly(loader);
  }
}

/**
 * Pushes every file's chunks into a ModelLoader as they arrive ("download" progress over
 * all files); resolves to the bytes pushed and their announced total. `what` names the load
 * in an abort's message (default: the file).
 */
async function feed(loader, files, { signal, onProgress, what }) {
  const total = files.every((f) => f.total !== undefined) ? files.reduce((a, f) => a + f.total, 0) : undefined;
  let loaded = 0;
  for (const f of files) {
    call(() => loader.begin(f.name, f.total));
    for await (const chunk of f.chunks) {
      if (signal?.aborted) throw new AbortError(`loading ${what ?? f.name} was aborted`);
      call(() => loader.push(chunk));
      loaded += chunk.length;
      onProgress?.({ stage: 'download', loaded, total, file: f.name });
    }
  }
  return { loaded, total };
}

/** After a failure inside the module a loader may be unusable: its error is the one to report, not this clean-up's. */
function freeQuietly(loader) {
  try {
    loader.free();
  } catch {}
}

/**
 * An adapter's files streamed into a ModelLoader (no whole-file copy in wasm memory): a PEFT
 * folder's adapter_config.json and adapter_model.safetensors, or a GGUF LoRA file; other
 * files given with them are skipped. The caller hands the loader to Model#loadAdapter.
 */
async function streamAdapter(name, source, { signal, onProgress, cache }) {
  const all = await callAsync(() => openSources(source, { signal, adapter: true, cache }));
  const files = all.filter((f) => /\.(json|safetensors|gguf)$/.test(f.name));
  if (all.some((f) => f.name.endsWith('.bin')) && !files.some((f) => !f.name.endsWith('.json'))) {
    throw new UnsupportedError(`adapter ${name}: adapter_model.bin (pickle) is not read; save the adapter with safe_serialization`);
  }
  const loader = new wasm.ModelLoader();
  try {
    await feed(loader, files, { signal, onProgress, what: `adapter ${name}` });
    return loader;
  } catch (e) {
    freeQuietly(loader);
    throw e;
  }
}

/** Adds the adapter streamed into `loader` to wasm model `m`, and frees the loader. */
function addStreamed(m, name, loader, replace, precision) {
  try {
    return call(() => m.loadAdapter(name, loader, replace, precision));
  } finally {
    freeQuietly(loader);
  }
}

/**
 * One generation step; after a GPU failure the model moves to the CPU and the generation
 * continues there (`moved` receives the migrated generator) before the step is retried.
 */
async function nextStep(g, model, moved) {
  try {
    return await callAsync(() => g.next());
  } catch (e) {
    const m = await model.recover(e);
    const g2 = call(() => g.migrate(m));
    g.free();
    moved(g2);
    return callAsync(() => g2.next());
  }
}

/** Lets the page breathe between tokens (a macrotask, not a 4 ms timer). */
const breathe =
  typeof setImmediate === 'function'
    ? () => new Promise((r) => setImmediate(r))
    : typeof MessageChannel === 'function'
      ? () => new Promise((r) => { const c = new MessageChannel(); c.port1.onmessage = () => r(); c.port2.postMessage(0); })
      : () => new Promise((r) => setTimeout(r, 0));

const ADAPTER_OPTIONS = ['adapter', 'adapters'];
const GENERATE_OPTIONS = [...ADAPTER_OPTIONS, 'maxTokens', 'temperature', 'topK', 'topP', 'minP', 'repetitionPenalty', 'repeatLastN', 'seed', 'stop', 'stopTokens', 'ignoreEos', 'promptCache', 'responseFormat', 'frequencyPenalty', 'presencePenalty', 'logprobs', 'topLogprobs'];

/** A loaded language model. */
export class Model {
  #m;
  #info;
  #reload;
  #onFallback;
  #recovering;
  /** What the CPU fallback reloads: adapter sources and scales. */
  #adapterSources = new Map();
  #scales = new Map();
  /** Why the model moved to the CPU, if it did. */
  fallbackReason;
  /** @internal use LoraRuntime#loadModel */
  constructor(m, { reload, onFallback } = {}) {
    this.#m = m;
    this.#info = m.info();
    this.#reload = reload;
    this.#onFallback = onFallback;
  }
  /**
   * After a GPU failure: the same model and adapters on the CPU (once, whoever asks), then
   * resolves to the new wasm model. Any other error is rethrown.
   * @internal
   */
  async recover(e) {
    if (!(e instanceof BackendError) || !this.#reload) throw e;
    this.#recovering ??= (async () => {
      let m;
      try {
        m = await this.#reload();
        for (const [name, { source, cache, precision }] of this.#adapterSources) {
          addStreamed(m, name, await streamAdapter(name, source, { cache }), true, precision);
        }
        for (const [name, s] of this.#scales) call(() => m.setAdapterScale(name, s));
      } catch (err) {
        m?.free();
        throw new BackendError(`${e.message}; moving to the CPU failed: ${err.message}`);
      }
      this.#m?.free();
      this.#m = m;
      this.#info = m.info();
      this.#reload = undefined;
      this.fallbackReason = e.message;
      this.#onFallback?.({ reason: e.message });
    })();
    await this.#recovering;
    return this.#live();
  }
  /** Architecture, sizes, quantization, bytes. */
  get info() {
    return this.#info;
  }
  /** Token ids for text; special-token strings (e.g. <|im_end|>) become their ids unless special: false. */
  tokenize(text, { special = true } = {}) {
    return Array.from(call(() => this.#live().tokenize(String(text), !!special)));
  }
  detokenize(ids, { skipSpecial = false } = {}) {
    return call(() => this.#live().detokenize(Uint32Array.from(ids), !!skipSpecial));
  }
  /** The model's chat template applied to [{role, content}]. */
  applyChatTemplate(messages, { addGenerationPrompt = true } = {}) {
    return call(() => this.#live().applyChatTemplate(messages, !!addGenerationPrompt));
  }
  /**
   * Logits as one Float32Array [ids.length × vocabSize], row-major by position.
   * opts: {adapter: name | null} or {adapters: [{name, weight}]}.
   */
  async forward(ids, opts = {}) {
    const v = Uint32Array.from(ids);
    if (v.length === 0) throw new ShapeError('forward needs at least one token id');
    for (const k of Object.keys(opts)) {
      if (!ADAPTER_OPTIONS.includes(k)) throw new ConfigError(`unknown forward option ${JSON.stringify(k)}`);
    }
    try {
      return await callAsync(() => this.#live().forward(v, opts));
    } catch (e) {
      return callAsync(async () => (await this.recover(e)).forward(v, opts));
    }
  }

  /**
   * Loads a PEFT adapter (adapter_config.json + adapter_model.safetensors) from a folder URL
   * ending in "/", a list of Files, or {files: {name: source}}. Resolves to its info.
   * precision: "auto" (the runtime's adapterPrecision, except that int16 gives way to f32 for
   * an adapter it would round coarsely), or "f32" / "f16" / "i16" for this adapter.
   */
  async loadAdapter(name, source, { replace = false, signal, onProgress, cache, precision = 'auto' } = {}) {
    if (typeof name !== 'string' || !name) throw new AdapterError('adapter names must be non-empty strings');
    const loader = await streamAdapter(name, source, { signal, onProgress, cache });
    const info = addStreamed(this.#live(), name, loader, !!replace, String(precision));
    if (this.#reload) this.#adapterSources.set(name, { source, cache, precision: String(precision) });
    this.#scales.delete(name);
    return info;
  }
  /** Removes an adapter and frees its weights. */
  unloadAdapter(name) {
    call(() => this.#live().unloadAdapter(String(name)));
    this.#adapterSources.delete(String(name));
    this.#scales.delete(String(name));
  }
  /** Multiplies an adapter's effect (its own alpha/r scaling stays); 0 turns it off. */
  setAdapterScale(name, scale) {
    if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new ConfigError(`scale must be a finite number, got ${scale}`);
    call(() => this.#live().setAdapterScale(String(name), scale));
    this.#scales.set(String(name), scale);
  }
  /** [{name, rank, alpha, scale, targets, bytes, dora}] */
  adapters() {
    return call(() => this.#live().adapters());
  }
  /** Bytes held for adapter factors now (GPU buffers or wasm heap), all layers together. */
  adapterMemoryBytes() {
    return call(() => this.#live().adapterMemoryBytes());
  }
  /**
   * The prefix cache: KV caches of finished generations, reused by prompts that start the
   * same way under the same adapters. {entries, positions, bytes, budget}.
   */
  promptCacheStats() {
    return call(() => this.#live().promptCacheStats());
  }
  /** Sets the prefix cache's budget in bytes (0 keeps nothing), dropping what no longer fits. */
  setPromptCacheBudget(bytes) {
    call(() => this.#live().setPromptCacheBudget(Number(bytes)));
  }
  clearPromptCache() {
    call(() => this.#live().clearPromptCache());
  }
  /** The GPU's running counts (submits, readBytes, dispatches, workgroups, bytes, recordMs, submitMs), or null on the CPU. */
  gpuStats() {
    return call(() => this.#live().gpuStats());
  }
  /**
   * OpenAI-style chat: `model.chat.completions.create({messages, stream, ...}, {signal})`,
   * and `model.chat.fetch` for the openai SDK (js/openai.js).
   */
  get chat() {
    const create = (params, options) => createChatCompletion(this, params, options);
    return { completions: { create }, fetch: chatFetch(create) };
  }
  /**
   * Streams text for a prompt string or a message list (chat template applied). Returns a
   * Generation: `for await (const piece of gen)`, or `await gen.text()`.
   */
  generate(input, { signal, ...opts } = {}) {
    for (const k of Object.keys(opts)) {
      if (!GENERATE_OPTIONS.includes(k)) throw new ConfigError(`unknown generate option ${JSON.stringify(k)}`);
    }
    const m = this.#live();
    const prompt = typeof input === 'string' ? input : this.applyChatTemplate(input);
    const ids = m.encodePrompt(prompt);
    const g = call(() => m.generate(ids, opts));
    return new Generation(g, signal, this, ids.length, opts.logprobs);
  }
  /**
   * Several prompts at once, each with its own adapter (or none), stepped together: one
   * batched forward pass per token for all of them. items: [{prompt, adapter?, adapters?}]
   * (prompt: a string or a message list). Returns a BatchGeneration whose `streams[i]` is
   * row i's async iterable of text pieces.
   */
  generateBatch(items, { signal, ...opts } = {}) {
    for (const k of Object.keys(opts)) {
      if (!GENERATE_OPTIONS.includes(k) || ADAPTER_OPTIONS.includes(k)) throw new ConfigError(`unknown generateBatch option ${JSON.stringify(k)}`);
    }
    if (!Array.isArray(items)) throw new ConfigError('generateBatch takes an array of {prompt, adapter?}');
    const m = this.#live();
    const rows = items.map(({ prompt, ...rest }) => {
      for (const k of Object.keys(rest)) {
        if (!ADAPTER_OPTIONS.includes(k)) throw new ConfigError(`unknown generateBatch item field ${JSON.stringify(k)}`);
      }
      const text = typeof prompt === 'string' ? prompt : this.applyChatTemplate(prompt);
      return { ids: Array.from(m.encodePrompt(text)), ...rest };
    });
    return new BatchGeneration(call(() => m.generateBatch(rows, opts)), rows.map((r) => r.ids.length), signal, this);
  }
  dispose() {
    this.#m?.free();
    this.#m = undefined;
  }
  #live() {
    if (!this.#m) throw new ConfigError('this model was disposed');
    return this.#m;
  }
}

/** Rows generated together; each row is its own stream. */
export class BatchGeneration {
  #g;
  #signal;
  #model;
  #queues;
  #stepping;
  #error;
  #promptTokens;
  /** Before the first step, after it, after the latest. */
  #times = [];
  constructor(g, promptTokens, signal, model) {
    this.#g = g;
    this.#signal = signal;
    this.#model = model;
    this.#promptTokens = promptTokens;
    this.#queues = promptTokens.map(() => []);
    /** One async iterable of text pieces per row. */
    this.streams = this.#queues.map((_, i) => ({ [Symbol.asyncIterator]: () => this.#rowIterator(i) }));
  }
  /** Row i's generated token ids, and why it finished. */
  tokens(i) {
    return this.#g ? Array.from(call(() => this.#g.tokens(i))) : [];
  }
  finishReason(i) {
    return this.#g && call(() => this.#g.finishReason(i));
  }
  /** Row i's token log-probabilities so far, with the `logprobs` option (`Generation.logprobs`). */
  logprobs(i) {
    return this.#g ? call(() => this.#g.logprobs(i, 0)) : [];
  }
  /** Row i's prompt tokens served from the prefix cache (not run again). */
  cachedTokens(i) {
    return this.#g ? call(() => this.#g.cachedTokens(i)) : 0;
  }
  /** Row i's token counts and the batch's times so far (`Generation.usage`). */
  usage(i) {
    return usageOf(this.#promptTokens[i], this.cachedTokens(i), this.tokens(i).length, this.#times);
  }
  /** Every row's whole text. */
  async texts() {
    return Promise.all(this.streams.map(async (s) => {
      let t = '';
      for await (const p of s) t += p;
      return t;
    }));
  }
  /** Advances all rows by one step (one step at a time, whoever asks). */
  #step() {
    this.#stepping ??= (async () => {
      try {
        if (this.#signal?.aborted) throw new AbortError('generation was aborted');
        if (!this.#times.length) this.#times.push(performance.now());
        const pieces = await nextStep(this.#g, this.#model, (g) => (this.#g = g));
        this.#times[Math.min(this.#times.length, 2)] = performance.now();
        pieces.forEach((p, i) => p && this.#queues[i].push(p));
        await breathe();
      } catch (e) {
        this.#error = e;
      } finally {
        this.#stepping = undefined;
      }
    })();
    return this.#stepping;
  }
  async *#rowIterator(i) {
    for (;;) {
      if (this.#queues[i].length) {
        yield this.#queues[i].shift();
        continue;
      }
      if (this.#error) throw this.#error;
      // Another row's iterator may be mid-step (a GPU readback): wait for it, then look again.
      if (this.#stepping) {
        await this.#stepping;
        continue;
      }
      if (call(() => this.#g.done(i))) return;
      await this.#step();
    }
  }
}

/** One generation: an async iterable of text pieces (valid UTF-8, stop strings excluded). */
export class Generation {
  #g;
  #signal;
  #model;
  #tokens = [];
  #logprobs = [];
  #wantLogprobs;
  #finishReason;
  #cachedTokens = 0;
  #promptTokens;
  #times = [];
  constructor(g, signal, model, promptTokens, wantLogprobs) {
    this.#g = g;
    this.#signal = signal;
    this.#model = model;
    this.#promptTokens = promptTokens;
    this.#wantLogprobs = !!wantLogprobs;
  }
  /**
   * With the `logprobs` option: per generated token (a final stop token aside) OpenAI's
   * {token, logprob, bytes, top_logprobs}, of the softmax of the logits after the penalties
   * and the responseFormat mask, before temperature and cuts; grows as the text streams.
   */
  get logprobs() {
    return this.#logprobs;
  }
  /**
   * Token counts and speed: promptTokens, cachedTokens (served by the prefix cache),
   * completionTokens, timeToFirstTokenMs, prefillTokensPerS (prompt tokens run, over the time
   * to the first token), decodeTokensPerS (the tokens after the first, over their time).
   */
  get usage() {
    return usageOf(this.#promptTokens, this.#cachedTokens, this.#tokens.length, this.#times);
  }
  /** "stop", "length", "context" or "abort", once finished. */
  get finishReason() {
    return this.#finishReason;
  }
  /** Generated token ids (complete once finished). */
  get tokens() {
    return this.#tokens;
  }
  /** Prompt tokens served from the prefix cache (known once iteration starts). */
  get cachedTokens() {
    return this.#cachedTokens;
  }
  async *[Symbol.asyncIterator]() {
    let g = this.#g;
    if (!g) throw new ConfigError('a Generation can be iterated once');
    this.#g = undefined;
    this.#cachedTokens = g.cachedTokens(0);
    const times = this.#times;
    times.push(performance.now());
    try {
      for (;;) {
        if (this.#signal?.aborted) {
          this.#finishReason = 'abort';
          throw new AbortError('generation was aborted');
        }
        const [piece] = await nextStep(g, this.#model, (moved) => (g = moved));
        times[Math.min(times.length, 2)] = performance.now();
        this.#tokens = Array.from(g.tokens(0));
        if (this.#wantLogprobs) this.#logprobs.push(...g.logprobs(0, this.#logprobs.length));
        if (piece === undefined) break;
        if (piece) yield piece;
        await breathe();
      }
      this.#finishReason = g.finishReason(0);
    } finally {
      // Stopped early (break, abort, an error): the prompt's cache still serves the next one.
      try {
        g.release();
      } catch {}
      g.free();
    }
  }
  /** The whole text. */
  async text() {
    let s = '';
    for await (const piece of this) s += piece;
    return s;
  }
}

/** Usage from token counts and [start, first token, last step] times (ms). */
function usageOf(promptTokens, cachedTokens, completionTokens, [t0, t1 = t0, t2 = t1] = []) {
  const rate = (n, ms) => (ms > 0 ? (1000 * n) / ms : 0);
  return {
    promptTokens,
    cachedTokens,
    completionTokens,
    timeToFirstTokenMs: t0 === undefined ? 0 : t1 - t0,
    prefillTokensPerS: t0 === undefined ? 0 : rate(promptTokens - cachedTokens, t1 - t0),
    decodeTokensPerS: rate(Math.max(completionTokens - 1, 0), t2 - t1),
  };
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
