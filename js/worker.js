// The worker side of lorafuse/worker: runs the real runtime off the main thread and answers
// the client's messages. Streams send one message per text piece.
import { LoraRuntime } from './index.js';

let rt;
const models = new Map();
const aborts = new Map(); // request id → AbortController (loads and generations)
let nextModel = 1;

function reply(msg, transfer = []) {
  self.postMessage(msg, transfer);
}

/** Runs `task(signal)` under request `id`, which the client's "abort" can cancel. */
async function abortable(id, task) {
  const ctl = new AbortController();
  aborts.set(id, ctl);
  try {
    return await task(ctl.signal);
  } finally {
    aborts.delete(id);
  }
}

function fail(id, e) {
  reply({ id, error: { name: e?.name ?? 'Error', message: e?.message ?? String(e) } });
}

const handlers = {
  async create({ backend, adapterPrecision, prefillMath, subgroups, threads }) {
    rt = await LoraRuntime.create({ backend, adapterPrecision, prefillMath, subgroups, threads });
    const { device, fallbackReason } = rt;
    return { backend: rt.backend, device, fallbackReason, adapterPrecision: rt.adapterPrecision, prefillMath: rt.prefillMath, subgroups: rt.subgroups, threads: rt.threads, threadsNote: rt.threadsNote };
  },
  async loadModel({ source, options }, id) {
    const handle = nextModel++;
    // A later move to the CPU (GPU lost) is announced to the client's WorkerModel.
    const onFallback = ({ reason }) => models.has(handle) && reply({ fallback: { handle, reason, info: models.get(handle).info } });
    const model = await abortable(id, (signal) => rt.loadModel(source, { ...options, signal, onFallback, onProgress: (p) => reply({ id, progress: p }) }));
    models.set(handle, model);
    return { handle, info: model.info, fallbackReason: model.fallbackReason };
  },
  async loadAdapter({ handle, name, source, options }, id) {
    return abortable(id, (signal) => models.get(handle).loadAdapter(name, source, { ...options, signal, onProgress: (p) => reply({ id, progress: p }) }));
  },
  call({ handle, method, args }) {
    const m = models.get(handle);
    if (!m || !['unloadAdapter', 'setAdapterScale', 'adapters', 'adapterMemoryBytes', 'gpuStats', 'promptCacheStats', 'setPromptCacheBudget', 'clearPromptCache', 'tokenize', 'detokenize', 'applyChatTemplate', 'forward', 'dispose'].includes(method)) {
      throw new Error(`no such model method ${method}`);
    }
    return m[method](...args);
  },
  generate({ handle, input, options }, id) {
    return abortable(id, async (signal) => {
      const g = models.get(handle).generate(input, { ...options, signal });
      for await (const text of g) reply({ id, piece: { row: 0, text } });
      return { rows: [{ tokens: g.tokens, finishReason: g.finishReason, cachedTokens: g.cachedTokens, usage: g.usage, logprobs: g.logprobs }] };
    });
  },
  generateBatch({ handle, items, options }, id) {
    return abortable(id, async (signal) => {
      const b = models.get(handle).generateBatch(items, { ...options, signal });
      await Promise.all(b.streams.map(async (s, row) => {
        for await (const text of s) reply({ id, piece: { row, text } });
      }));
      return { rows: items.map((_, i) => ({ tokens: b.tokens(i), finishReason: b.finishReason(i), cachedTokens: b.cachedTokens(i), usage: b.usage(i), logprobs: b.logprobs(i) })) };
    });
  },
  /** OpenAI-style chat: the completion, or its chunks one message each. */
  chat({ handle, params }, id) {
    return abortable(id, async (signal) => {
      const r = await models.get(handle).chat.completions.create(params, { signal });
      if (!params?.stream) return r;
      for await (const chunk of r) reply({ id, piece: { row: 0, text: chunk } });
      return null;
    });
  },
  loseDeviceForTesting() {
    rt.loseDeviceForTesting();
    return true;
  },
  abort({ target }) {
    aborts.get(target)?.abort();
    return true;
  },
};

self.onmessage = async ({ data }) => {
  const { id, op, ...args } = data;
  try {
    const result = await handlers[op](args, id);
    reply({ id, result }, result instanceof Float32Array ? [result.buffer] : []);
  } catch (e) {
    fail(id, e);
  }
};
