// lorafuse/worker: the same API as the main entry, with the runtime in a Web Worker, so a
// page never freezes while a model loads or generates. Errors arrive as the same classes.
import { AbortError, LoraError, ShapeError, AdapterError, ConfigError, BackendError, FormatError, UnsupportedError, LimitError } from './errors.js';
import { chatFetch } from './openai.js';
import { cacheCalls } from './sources.js';

const KINDS = { LoraError, ShapeError, AdapterError, ConfigError, BackendError, FormatError, UnsupportedError, LimitError, AbortError };

class Channel {
  #worker;
  #next = 1;
  #pending = new Map();
  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      if (data.fallback) return this.onFallback?.(data.fallback);
      const p = this.#pending.get(data.id);
      if (!p) return;
      if (data.progress) return p.onProgress?.(data.progress);
      if (data.piece) return p.onPiece?.(data.piece);
      this.#pending.delete(data.id);
      if (data.error) {
        const Kind = KINDS[data.error.name] ?? Error;
        const e = new Kind(data.error.message);
        if (Kind === Error) e.name = data.error.name;
        p.reject(e);
      } else p.resolve(data.result);
    };
    worker.onerror = (e) => {
      for (const p of this.#pending.values()) p.reject(new LoraError(`worker failed: ${e.message}`));
      this.#pending.clear();
    };
  }
  /**
   * Sends a request; `hooks` receive progress events and streamed pieces. `signal` aborts it
   * in the worker (it then rejects with AbortError).
   */
  request(op, args = {}, hooks = {}, signal) {
    if (signal?.aborted) return { id: 0, done: Promise.reject(new AbortError(`${op} was aborted`)) };
    const id = this.#next++;
    const done = new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject, ...hooks }));
    this.#worker.postMessage({ id, op, ...args });
    signal?.addEventListener('abort', () => this.#pending.has(id) && this.request('abort', { target: id }), { once: true });
    return { id, done };
  }
  terminate() {
    this.#worker.terminate();
  }
}

/** Only plain, cloneable sources cross into the worker (URLs as strings, bytes, Blobs, {files}). */
function portable(source) {
  return source instanceof URL ? source.href : source;
}

export class LoraWorker {
  #ch;
  /** @internal use LoraWorker.create */
  constructor(ch, info) {
    this.#ch = ch;
    Object.assign(this, info);
  }
  /** Starts a worker running the runtime: backend "auto" | "webgpu" | "cpu"; adapterPrecision, prefillMath, subgroups, threads as in LoraRuntime.create (the CPU threads are started from that worker). */
  static async create({ backend = 'auto', adapterPrecision = 'f32', prefillMath = 'f32', subgroups = true, threads = 'auto', worker } = {}) {
    const w = worker ?? new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    const ch = new Channel(w);
    const models = new Map();
    ch.onFallback = ({ handle, reason, info }) => models.get(handle)?.deref()?._movedToCpu(reason, info);
    const info = await ch.request('create', { backend, adapterPrecision, prefillMath, subgroups, threads }).done;
    const lw = new LoraWorker(ch, info);
    lw.#models = models;
    return lw;
  }
  #models;
  /** As LoraRuntime#loadModel; `onFallback({reason})` runs here when the model moves to the CPU. */
  async loadModel(source, { onProgress, onFallback, signal, ...options } = {}) {
    const { handle, info, fallbackReason } = await this.#ch.request('loadModel', { source: portable(source), options }, { onProgress }, signal).done;
    const m = new WorkerModel(this.#ch, handle, info);
    m.fallbackReason = fallbackReason;
    m.onFallback = onFallback;
    this.#models.set(handle, new WeakRef(m));
    if (fallbackReason) onFallback?.({ reason: fallbackReason });
    return m;
  }
  /** Destroys the worker's GPU device as a driver reset would (tests of the CPU fallback). */
  loseDeviceForTesting() {
    return this.#ch.request('loseDeviceForTesting').done;
  }
  dispose() {
    this.#ch.terminate();
  }
}
// clearCache, isCached, deleteCached, cacheUsage (the same statics as LoraRuntime's).
Object.assign(LoraWorker, cacheCalls);

export class WorkerModel {
  #ch;
  #h;
  constructor(ch, handle, info) {
    this.#ch = ch;
    this.#h = handle;
    this.info = info;
  }
  /** @internal the worker moved this model to the CPU (GPU lost) */
  _movedToCpu(reason, info) {
    this.info = info;
    this.fallbackReason = reason;
    this.onFallback?.({ reason });
  }
  #call(method, ...args) {
    return this.#ch.request('call', { handle: this.#h, method, args }).done;
  }
  loadAdapter(name, source, { onProgress, signal, ...options } = {}) {
    return this.#ch.request('loadAdapter', { handle: this.#h, name, source: portable(source), options }, { onProgress }, signal).done;
  }
  unloadAdapter(name) {
    return this.#call('unloadAdapter', name);
  }
  setAdapterScale(name, scale) {
    return this.#call('setAdapterScale', name, scale);
  }
  adapters() {
    return this.#call('adapters');
  }
  adapterMemoryBytes() {
    return this.#call('adapterMemoryBytes');
  }
  gpuStats() {
    return this.#call('gpuStats');
  }
  promptCacheStats() {
    return this.#call('promptCacheStats');
  }
  setPromptCacheBudget(bytes) {
    return this.#call('setPromptCacheBudget', bytes);
  }
  clearPromptCache() {
    return this.#call('clearPromptCache');
  }
  tokenize(text, opts) {
    return this.#call('tokenize', text, opts);
  }
  detokenize(ids, opts) {
    return this.#call('detokenize', ids, opts);
  }
  applyChatTemplate(messages, opts) {
    return this.#call('applyChatTemplate', messages, opts);
  }
  forward(ids, opts) {
    return this.#call('forward', ids, opts);
  }
  /** OpenAI-style chat, run in the worker: as Model#chat (create, and fetch for the openai SDK). */
  get chat() {
    const create = async (params, { signal } = {}) => {
      if (params?.stream) return this.#stream('chat', { params }, 1, signal).streams[0];
      return this.#ch.request('chat', { handle: this.#h, params }, {}, signal).done;
    };
    return { completions: { create }, fetch: chatFetch(create) };
  }
  /** Streams text pieces for one prompt (async iterable); `.result` resolves to {tokens, finishReason, cachedTokens}. */
  generate(input, { signal, ...options } = {}) {
    return this.#stream('generate', { input, options }, 1, signal).streams[0];
  }
  /** Several prompts in one batched pass; `.streams[i]` is row i's async iterable. */
  generateBatch(items, { signal, ...options } = {}) {
    return this.#stream('generateBatch', { items, options }, items.length, signal);
  }
  dispose() {
    return this.#call('dispose');
  }
  #stream(op, args, rows, signal) {
    const queues = Array.from({ length: rows }, () => []);
    const wake = Array.from({ length: rows }, () => null);
    let finished = false, error;
    const { done } = this.#ch.request(op, { handle: this.#h, ...args }, {
      onPiece: ({ row, text }) => {
        queues[row].push(text);
        wake[row]?.();
      },
    }, signal);
    const result = done.then(
      (r) => ((finished = true), wake.forEach((w) => w?.()), r),
      (e) => ((finished = true), (error = e), wake.forEach((w) => w?.()), undefined),
    );
    const iterate = async function* (row) {
      for (;;) {
        if (queues[row].length) yield queues[row].shift();
        else if (finished) {
          if (error) throw error;
          return;
        } else await new Promise((r) => (wake[row] = r));
      }
    };
    const streams = queues.map((_, row) => Object.assign({ [Symbol.asyncIterator]: () => iterate(row) }, {
      result: result.then((r) => r?.rows[row]),
      async text() {
        let s = '';
        for await (const p of this) s += p;
        return s;
      },
    }));
    return { streams, result };
  }
}
