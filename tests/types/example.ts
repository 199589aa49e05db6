// A typed example that uses the whole public API; `tsc --noEmit` must accept it (npm test).
import { LoraRuntime, ShapeError, type ChatMessage, type GenerateOptions } from 'lorafuse';
import { LoraWorker } from 'lorafuse/worker';

async function main(): Promise<void> {
  const rt = await LoraRuntime.create({ backend: 'auto', adapterPrecision: 'i16', prefillMath: 'f32', subgroups: true });
  const backend: 'webgpu' | 'cpu' = rt.backend;
  const reduces: boolean = rt.subgroups;
  const layer = rt.loraLinear({ weight: new Float32Array(6), outFeatures: 2, inFeatures: 3, dtype: 'f32' });
  layer.addAdapter('a', { a: new Float32Array(3), b: new Float32Array(2), rank: 1, scale: 0.5 });
  const y: Float32Array = await layer.run(new Float32Array(3), 1, { adapterPerRow: ['a'] });
  const model = await rt.loadModel('/models/model.gguf', { onProgress: (p) => console.log(p.loaded, p.total), cache: 'models' });
  console.log(model.info.architecture, model.info.quantization, backend, reduces, y.length);
  await model.loadAdapter('pirate', '/adapters/pirate/', { replace: true });
  const msgs: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
  const opts: GenerateOptions = { adapter: 'pirate', maxTokens: 32, temperature: 0.7, seed: 1, stop: ['\n\n'] };
  for await (const piece of model.generate(msgs, opts)) console.log(piece);
  const batch = model.generateBatch([{ prompt: msgs }, { prompt: 'Hello', adapter: 'pirate' }], { maxTokens: 8 });
  const texts: string[] = await batch.texts();
  const json: string = await model.generate(msgs, { responseFormat: { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'object' } } } }).text();
  await model.generate(msgs, { responseFormat: { type: 'json_object' } }).text();
  const g = model.generate(msgs, { logprobs: true, topLogprobs: 5, frequencyPenalty: 0.4, presencePenalty: -0.2 });
  for await (const piece of g) console.log(piece, g.logprobs.at(-1)?.top_logprobs.map((t) => [t.token, Math.exp(t.logprob)]));
  console.log(json);
  const turn2 = model.generate([...msgs, { role: 'assistant', content: texts[0] }, { role: 'user', content: 'More?' }], { promptCache: true });
  console.log(await turn2.text(), turn2.cachedTokens, batch.cachedTokens(0), model.promptCacheStats().bytes);
  console.log(turn2.usage.prefillTokensPerS, batch.usage(0).completionTokens);
  model.setPromptCacheBudget(64 << 20);
  model.clearPromptCache();
  const logits: Float32Array = await model.forward(model.tokenize('Hello'), { adapters: [{ name: 'pirate', weight: 0.5 }] });
  console.log(texts, logits.length, model.adapters().map((a) => a.rank));
  const stats = model.gpuStats();
  if (stats) console.log(stats.dispatches / Math.max(stats.submits, 1), stats.recordMs);
  model.setAdapterScale('pirate', 0.5);
  model.unloadAdapter('pirate');
  model.dispose();
  try {
    await layer.run(new Float32Array(2), 1);
  } catch (e) {
    if (e instanceof ShapeError) console.log(e.message);
  }
  if (!(await LoraRuntime.isCached('/models/model.gguf', { cache: 'models' }))) console.log('will download');
  const used: number = (await LoraRuntime.cacheUsage('models')).bytes;
  console.log(used, await LoraRuntime.deleteCached('/adapters/pirate/', { cache: 'models' }));
  const w = await LoraWorker.create({ subgroups: false });
  console.log(w.subgroups);
  const ctl = new AbortController();
  const wm = await w.loadModel('/models/model.gguf', { signal: ctl.signal, onProgress: (p) => console.log(p.stage, p.loaded) });
  const arch: 'llama' | 'qwen2' | 'qwen3' | 'mistral' | 'phi3' | 'gemma2' | 'gemma3' = wm.info.architecture;
  const info = await wm.loadAdapter('pirate', '/adapters/pirate/', { signal: ctl.signal });
  const ws = wm.generate(msgs, { adapter: 'pirate', maxTokens: 4, temperature: 0.5 });
  const done = await ws.result;
  console.log(arch, info.rank, await ws.text(), done?.cachedTokens, done?.usage.decodeTokensPerS, (await wm.promptCacheStats()).entries);
  const wb = wm.generateBatch([{ prompt: 'Hi', adapter: 'pirate' }, { prompt: msgs }], { maxTokens: 2 });
  console.log((await wb.result)?.rows.map((r) => r.usage.timeToFirstTokenMs));

  w.dispose();
}
void main();
