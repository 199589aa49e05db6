// Model benchmark steps shared by Node (bench/model.mjs) and Chromium (bench/page.html).
// Prefill: a 1-token generation (prompt + one step); decode: the extra time per token of a
// longer greedy generation. Best of `reps`.

const now = () => performance.now();

export async function best(reps, fn) {
  let t = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = now();
    await fn();
    t = Math.min(t, now() - t0);
  }
  return t;
}

export async function benchLorafuse(api, source, { prompt, tokens = 32, reps = 3, label = 'lorafuse', backend = 'cpu' } = {}) {
  const rt = await api.LoraRuntime.create({ backend });
  const t0 = now();
  const model = await rt.loadModel(source);
  const loadMs = now() - t0;
  const promptTokens = model.tokenize(prompt).length;
  await model.generate(prompt, { maxTokens: 2 }).text(); // warm-up
  const prefillMs = await best(reps, () => model.generate(prompt, { maxTokens: 1, ignoreEos: true }).text());
  const allMs = await best(reps, () => model.generate(prompt, { maxTokens: tokens + 1, ignoreEos: true }).text());
  const decodeTokS = tokens / ((allMs - prefillMs) / 1000);
  const out = {
    // Which reduction the WebGPU kernels ran (subgroup operations or workgroup-memory trees).
    label: rt.backend === 'webgpu' ? `${label}, subgroups ${rt.subgroups ? 'on' : 'off'}` : label,
    promptTokens,
    loadMs,
    prefillMs,
    prefillTokS: promptTokens / (prefillMs / 1000),
    decodeTokS,
    weightBytes: model.info.weightBytes,
    fileBytes: model.info.fileBytes,
    peakWasmBytes: api.LoraRuntime.wasmMemoryBytes(),
    quantization: `${model.info.quantization} (embedding ${model.info.embeddingFormat})`,
    backend: model.info.backend,
  };
  model.dispose();
  return out;
}

export async function benchWllama(Wllama, wasmUrl, modelUrl, { prompt, tokens = 32, threads = 1, reps = 3 } = {}) {
  const w = new Wllama({ default: wasmUrl }, { suppressNativeLog: true });
  const t0 = now();
  await w.loadModelFromUrl(modelUrl, { n_threads: threads, n_ctx: 512, n_gpu_layers: 0, useCache: false });
  const loadMs = now() - t0;
  const run = (n) => w.createCompletion({ prompt, max_tokens: n, temperature: 0, cache_prompt: false });
  await run(2);
  let prefillMs = Infinity, decodeTokS = 0, promptTokens = 0;
  for (let i = 0; i < reps; i++) {
    const r = await run(tokens);
    const t = r.timings ?? {};
    promptTokens = t.prompt_n ?? promptTokens;
    prefillMs = Math.min(prefillMs, t.prompt_ms ?? Infinity);
    decodeTokS = Math.max(decodeTokS, t.predicted_per_second ?? 0);
  }
  await w.exit();
  return { label: `wllama, ${threads} thread${threads > 1 ? 's' : ''}`, promptTokens, loadMs, prefillMs, prefillTokS: promptTokens / (prefillMs / 1000), decodeTokS };
}
