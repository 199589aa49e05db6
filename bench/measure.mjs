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

export async function benchLorafuse(api, source, { prompt, tokens = 32, reps = 3, label = 'lorafuse', backend = 'cpu', threads = 'auto' } = {}) {
  const rt = await api.LoraRuntime.create({ backend, threads });
  const t0 = now();
  const model = await rt.loadModel(source);
  const loadMs = now() - t0;
  const promptTokens = model.tokenize(prompt).length;
  // No prompt cache: every run prefills the whole prompt (a cached prompt would make the
  // prefill time that of the last token).
  const run = (maxTokens) => model.generate(prompt, { maxTokens, ignoreEos: true, promptCache: false }).text();
  // Warm-up: V8 tiers hot wasm functions up after their first calls (the first prefill
  // took 2.3x the later ones in Node).
  for (let i = 0; i < 3; i++) await run(2);
  const prefillMs = await best(reps, () => run(1));
  const allMs = await best(reps, () => run(tokens + 1));
  const decodeTokS = tokens / ((allMs - prefillMs) / 1000);
  // On WebGPU, per decode token: the counts of a long generation minus a 1-token one's.
  const counted = async (n) => {
    const s0 = model.gpuStats();
    await run(n);
    const s1 = model.gpuStats();
    return Object.fromEntries(Object.keys(s1).map((k) => [k, s1[k] - s0[k]]));
  };
  let perToken = null;
  if (model.gpuStats()) {
    const [one, all] = [await counted(1), await counted(tokens + 1)];
    const d = (k) => (all[k] - one[k]) / tokens;
    perToken = { dispatches: d('dispatches'), workgroupsPerDispatch: d('workgroups') / d('dispatches'), kibPerDispatch: d('bytes') / d('dispatches') / 1024, recordUs: d('recordMs') * 1e3, submitUs: d('submitMs') * 1e3, submits: d('submits') };
  }
  const out = {
    // Which reduction the WebGPU kernels ran (subgroup operations or workgroup-memory trees).
    label: rt.backend === 'webgpu' ? `${label}, subgroups ${rt.subgroups ? 'on' : 'off'}` : `${label}, ${rt.threads} thread${rt.threads > 1 ? 's' : ''}`,
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
    gpuPerToken: perToken,
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
