import type { BackendChoice, BackendName, ChatCompletion, ChatCompletionChunk, ChatCompletionCreateParams, GpuStats, PromptCacheStats } from './index.js';

export interface WorkerProgress {
  loaded: number;
  total?: number;
  file: string;
}

/** The runtime in a Web Worker: the same calls as LoraRuntime, all asynchronous. */
export class LoraWorker {
  private constructor();
  static create(options?: { backend?: BackendChoice; adapterPrecision?: 'f32' | 'f16' | 'i16'; prefillMath?: 'f32' | 'f16'; subgroups?: boolean; worker?: Worker }): Promise<LoraWorker>;
  readonly backend: BackendName;
  readonly device: string;
  readonly adapterPrecision: 'f32' | 'f16' | 'i16';
  readonly prefillMath: 'f32' | 'f16';
  readonly subgroups: boolean;
  readonly fallbackReason?: string;
  /** A URL (string), Blob/File, ArrayBuffer/Uint8Array or {files}; see LoraRuntime#loadModel. */
  loadModel(
    source: unknown,
    options?: {
      onProgress?: (p: WorkerProgress) => void;
      fileName?: string;
      int8Activations?: boolean;
      cache?: string;
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
  readonly result: Promise<{ tokens: number[]; finishReason?: string; cachedTokens: number } | undefined>;
  text(): Promise<string>;
}

export class WorkerModel {
  private constructor();
  /** Updated when the model moves to the CPU (info.backend becomes "cpu"). */
  readonly info: Record<string, unknown>;
  /** Why the model moved from the GPU to the CPU, if it did. */
  readonly fallbackReason: string | undefined;
  loadAdapter(name: string, source: unknown, options?: { replace?: boolean; precision?: 'auto' | 'f32' | 'f16' | 'i16'; onProgress?: (p: WorkerProgress) => void }): Promise<Record<string, unknown>>;
  unloadAdapter(name: string): Promise<void>;
  setAdapterScale(name: string, scale: number): Promise<void>;
  adapters(): Promise<Array<{ name: string; rank: number; alpha: number; scale: number; targets: string[]; bytes: number; dora: boolean; roundingError: number; precision: 'f32' | 'f16' | 'i16' }>>;
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
  applyChatTemplate(messages: Array<{ role: string; content: string }>, options?: { addGenerationPrompt?: boolean }): Promise<string>;
  forward(ids: number[], options?: { adapter?: string | null; adapters?: Array<{ name: string; weight?: number }> }): Promise<Float32Array>;
  generate(input: string | Array<{ role: string; content: string }>, options?: Record<string, unknown> & { signal?: AbortSignal }): WorkerStream;
  generateBatch(
    items: Array<{ prompt: string | Array<{ role: string; content: string }>; adapter?: string | null; adapters?: Array<{ name: string; weight?: number }> }>,
    options?: Record<string, unknown> & { signal?: AbortSignal },
  ): { streams: WorkerStream[]; result: Promise<{ rows: Array<{ tokens: number[]; finishReason?: string; cachedTokens: number }> } | undefined> };
  dispose(): Promise<void>;
}
