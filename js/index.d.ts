/** Base class of every error lorafuse throws on bad input or a failing backend. */
export class LoraError extends Error {}
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

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';
export type BackendName = 'webgpu' | 'cpu';
/** f32: Float32Array; f16, bf16: Uint16Array of bit patterns; q8_0, q4_0, q4_1: Uint8Array of GGUF blocks (CPU backend). */
export type WeightDtype = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1';

export interface WeightedAdapter {
  name: string;
  /** Multiplies the adapter's own scale; default 1. */
  weight?: number;
}

/** Which adapters apply; give at most one field. None: base weights only. */
export interface RunOptions {
  /** One adapter on every row; null = base only. */
  adapter?: string | null;
  /** A weighted stack on every row. */
  adapters?: WeightedAdapter[];
  /** Per row: an adapter name, null (base only) or a weighted stack. */
  adapterPerRow?: Array<string | null | WeightedAdapter[]>;
}

export interface AdapterInfo {
  name: string;
  rank: number;
  scale: number;
}

export class LoraRuntime {
  private constructor();
  static create(options?: { backend?: BackendChoice }): Promise<LoraRuntime>;
  /** What actually runs. */
  readonly backend: BackendName;
  /** GPU adapter name, or which CPU path runs. */
  readonly device: string;
  /** Why "auto" fell back to the CPU, when it did. */
  readonly fallbackReason: string | undefined;
  /**
   * A LoRA linear layer over a frozen base weight [outFeatures, inFeatures], row-major
   * (PyTorch layout), in the storage format `dtype` (see WeightDtype).
   */
  loraLinear(options: {
    weight: Float32Array | Uint16Array | Uint8Array;
    outFeatures: number;
    inFeatures: number;
    dtype?: WeightDtype;
  }): LoraLinear;
  dispose(): void;
}

export class LoraLinear {
  private constructor();
  readonly outFeatures: number;
  readonly inFeatures: number;
  /** A [rank, in] and B [out, rank], row-major (PEFT layout); scale usually alpha / rank. */
  addAdapter(
    name: string,
    adapter: { a: Float32Array | number[]; b: Float32Array | number[]; rank: number; scale?: number },
    options?: { replace?: boolean },
  ): void;
  removeAdapter(name: string): void;
  setAdapterScale(name: string, scale: number): void;
  adapters(): AdapterInfo[];
  /** y [rows, outFeatures] for x [rows, inFeatures], row-major. */
  run(x: Float32Array | number[], rows: number, options?: RunOptions | null): Promise<Float32Array>;
  dispose(): void;
}
