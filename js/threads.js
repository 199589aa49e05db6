// Which wasm build a realm runs, and its CPU worker threads. The threaded build (pkg/wasm-mt)
// needs shared memory: in browsers only on cross-origin isolated pages (COOP/COEP headers),
// always in Node. Elsewhere, or when threads: 1, the single-threaded build (pkg/wasm) runs.
// The choice is made once per realm, by the first LoraRuntime.create.
import { nodeBuiltin } from './node.js';
import { ConfigError } from './errors.js';
// Both builds' glue is imported statically (the wasm is fetched only for the one that runs):
// a dynamic import would make bundlers split the code, which their default worker format
// (iife) cannot.
import * as threaded from './wasm-mt/lorafuse.js';

const MAX_THREADS = 64;
// Past this many, threads mostly wait for memory and burn the page's battery.
const AUTO_MAX = 4;
// A worker that has not started by then (a CSP without worker-src, a broken bundle) is
// left out.
const START_TIMEOUT_MS = 20000;

/** The thread count asked for: 'auto' (the machine's cores, at most 4) or 1..64. */
export async function wantedThreads(threads) {
  if (threads === 'auto') {
    const cores = globalThis.navigator?.hardwareConcurrency ?? (globalThis.process?.versions?.node ? (await nodeBuiltin('os')).availableParallelism() : 1);
    return Math.max(1, Math.min(cores, AUTO_MAX));
  }
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new ConfigError(`threads must be 'auto' or an integer 1..${MAX_THREADS}, got ${JSON.stringify(threads)}`);
  }
  return threads;
}

/** Why this realm cannot run the threaded build (undefined when it can). */
export function threadsUnavailable() {
  if (globalThis.crossOriginIsolated === false) {
    return 'the page is not cross-origin isolated (it needs Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)';
  }
  if (typeof SharedArrayBuffer !== 'function') return 'SharedArrayBuffer is not available';
  return undefined;
}

/**
 * Compiles a build's wasm: read from the file system in Node, streamed from `url` elsewhere
 * (from its bytes where the server does not send application/wasm, as wasm-bindgen's own
 * loader does).
 */
export async function compile(url) {
  if (url.protocol === 'file:') {
    const { readFile } = await nodeBuiltin('fs/promises');
    return WebAssembly.compile(await readFile(url));
  }
  const res = await fetch(url);
  try {
    return await WebAssembly.compileStreaming(res.clone());
  } catch (e) {
    if (!res.ok || res.headers.get('content-type') === 'application/wasm') throw e;
    return WebAssembly.compile(await res.arrayBuffer());
  }
}

/** Starts one worker thread on `module` and `memory`; resolves when it has instantiated. */
async function startThread(module, memory) {
  let worker, done;
  const ready = new Promise((resolve, reject) => {
    done = (m) => (m?.ready ? resolve() : reject(new Error(m?.error ?? 'the thread did not start')));
  });
  if (typeof Worker === 'function' && !globalThis.process?.versions?.node) {
    worker = new Worker(new URL('./thread.js', import.meta.url), { type: 'module' });
    worker.onmessage = (e) => done(e.data);
    worker.onerror = (e) => done({ error: e.message });
    worker.postMessage({ module, memory });
  } else {
    const { Worker: NodeWorker } = await nodeBuiltin('worker_threads');
    worker = new NodeWorker(new URL('./thread.js', import.meta.url), { workerData: { module, memory } });
    worker.on('message', done);
    worker.on('error', (e) => done({ error: e.message }));
    // A parked thread must not keep Node running.
    worker.unref();
  }
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('the thread did not start in time')), START_TIMEOUT_MS);
  });
  try {
    await Promise.race([ready, timeout]);
  } catch (e) {
    worker.terminate();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Instantiates the threaded build and starts `n - 1` worker threads on its memory. Returns
 * the glue module and, when some workers failed to start, why.
 */
export async function loadThreaded(n) {
  const module = await compile(new URL('./wasm-mt/lorafuse_bg.wasm', import.meta.url));
  const { memory } = await threaded.default({ module_or_path: module });
  const started = await Promise.allSettled(Array.from({ length: n - 1 }, () => startThread(module, memory)));
  const workers = started.filter((s) => s.status === 'fulfilled').length;
  const failed = started.find((s) => s.status === 'rejected');
  threaded.setThreads(1 + workers);
  // A worker joins the pool just after it reports ready: wait until all have (microseconds),
  // so the count the runtime reports is the one that runs.
  for (let t0 = Date.now(); threaded.poolThreads() < 1 + workers && Date.now() - t0 < START_TIMEOUT_MS; ) {
    await new Promise((r) => setTimeout(r, 1));
  }
  return { glue: threaded, note: failed ? `${n - 1 - workers} of ${n - 1} threads failed to start: ${failed.reason.message}` : undefined };
}
