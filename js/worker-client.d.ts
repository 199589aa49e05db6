import type {
  AdapterSelection, BackendChoice, BackendName, ChatCompletion, ChatCompletionChunk, ChatCompletionCreateParams, ChatMessage, GenerateOptions,
  CacheOption, CacheUsage, GenerationUsage, GpuStats, LoadProgress, ModelAdapterInfo, ModelInfo, Prompt, PromptCacheStats, TokenLogprob,
} from './index.js';

/** As LoadProgress: stage "download", then "parse" (CPU) or "upload" (WebGPU), then "ready". */
export type WorkerProgress = LoadProgress;

/** How a generation (one row of a batch) ended. */
export interface WorkerRowResult {
  tokens: number[];
  finishReason?: 'stop' | 'length' | 'context';
  cachedTokens: number;
  usage: GenerationUsage;
  /** With the logprobs option (Generation.logprobs). */
  logprobs: TokenLogprob[];
}

/** The runtime in a Web Worker: the same calls as LoraRuntime, all asynchronous. */
export class LoraWorker {
  private constructor();
  static create(options?: { backend?: BackendChoice; adapterPrecision?: 'f32' | 'f16' | 'i16'; prefillMath?: 'f32' | 'f16'; subgroups?: boolean; threads?: 'auto' | number; worker?: Worker }): Promise<LoraWorker>;
  /** As LoraRuntime's: the caches are the origin's, shared with the worker. */
  static clearCache(cache: CacheOption): Promise<boolean>;
  static isCached(source: string | URL, options: { cache: CacheOption }): Promise<boolean>;
  static deleteCached(source: string | URL, options: { cache: CacheOption }): Promise<number>;
  static cacheUsage(cache: CacheOption): Promise<CacheUsage>;
  readonly backend: BackendName;
  readonly device: string;
  readonly adapterPrecision: 'f32' | 'f16' | 'i16';
  readonly prefillMath: 'f32' | 'f16';
  readonly subgroups: boolean;
  readonly fallbackReason?: string;
  /** CPU threads in the worker (its own pool: the worker starts them). */
  readonly threads: number;
  readonly threadsNote?: string;
  /** A URL (string), Blob/File, ArrayBuffer/Uint8Array or {files}; see LoraRuntime#loadModel. */
  loadModel(
    source: unknown,
    options?: {
      onProgress?: (p: WorkerProgress) => void;
      /** Aborts the load in the worker (AbortError). */
      signal?: AbortSignal;
      fileName?: string;
      int8Activations?: boolean;
      cache?: CacheOption;
      /** WebGPU: move to the CPU when the GPU fails (default true). */
      fallback?: boolean;
      onFallback?: (info: { reason: string }) => void;
    },
  ): Promise<WorkerModel>;
  /** Destroys the worker's GPU device as a driver reset would (tests of the CPU fallback). */
  loseDeviceForTesting(): Promise<boolean>;
  dispose(): void;
}

/** A stream of text pieces; `result` resolves when it ends. */
export interface WorkerStream extends AsyncIterable<string> {
  readonly result: Promise<WorkerRowResult | undefined>;
  text(): Promise<string>;
}

export class WorkerModel {
  private constructor();
  /** Updated when the model moves to the CPU (info.backend becomes "cpu"). */
  readonly info: ModelInfo;
  /** Why the model moved from the GPU to the CPU, if it did. */
  readonly fallbackReason: string | undefined;
  loadAdapter(
    name: string,
    source: unknown,
    options?: { replace?: boolean; precision?: 'auto' | 'f32' | 'f16' | 'i16'; onProgress?: (p: WorkerProgress) => void; signal?: AbortSignal; cache?: CacheOption },
  ): Promise<ModelAdapterInfo>;
  unloadAdapter(name: string): Promise<void>;
  setAdapterScale(name: string, scale: number): Promise<void>;
  adapters(): Promise<ModelAdapterInfo[]>;
  adapterMemoryBytes(): Promise<number>;
  gpuStats(): Promise<GpuStats | null>;
  /** As Model#chat, run in the worker. */
  readonly chat: {
    completions: {
      create(params: ChatCompletionCreateParams & { stream: true }, options?: { signal?: AbortSignal }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(params: ChatCompletionCreateParams & { stream?: false | null }, options?: { signal?: AbortSignal }): Promise<ChatCompletion>;
    };
    fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  };
  promptCacheStats(): Promise<PromptCacheStats>;
  setPromptCacheBudget(bytes: number): Promise<void>;
  clearPromptCache(): Promise<void>;
  tokenize(text: string, options?: { special?: boolean }): Promise<number[]>;
  detokenize(ids: number[], options?: { skipSpecial?: boolean }): Promise<string>;
  applyChatTemplate(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): Promise<string>;
  forward(ids: number[], options?: AdapterSelection): Promise<Float32Array>;
  generate(input: Prompt, options?: GenerateOptions): WorkerStream;
  generateBatch(
    items: Array<{ prompt: Prompt } & AdapterSelection>,
    options?: Omit<GenerateOptions, 'adapter' | 'adapters'>,
  ): { streams: WorkerStream[]; result: Promise<{ rows: WorkerRowResult[] } | undefined> };
  dispose(): Promise<void>;
}
