"""The PyTorch anchor for the GPU benchmark (run by scripts/device-bench.sh on the GPU machine,
which has torch, transformers and peft): SmolLM2-135M's shapes with random weights (speed
only), bf16 on the GPU.

- HF `generate` with a static KV cache (64 prompt tokens, 128 new), the figure the issue quotes;
- a per-step loop with a dynamic cache: prefill of 64 tokens, then 32 greedy steps;
- the same loop with one unmerged r16 all-linear PEFT adapter.

Prints a markdown table. `python3 bench/pytorch_anchor.py`.
"""

import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def config():
    return LlamaConfig(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0,
        max_position_embeddings=2048,
    )


def sync():
    torch.cuda.synchronize()


@torch.no_grad()
def step_loop(model, prompt, steps=32):
    """(prefill tok/s, decode tok/s) of a greedy loop, one forward per token."""
    sync()
    t0 = time.perf_counter()
    out = model(prompt, use_cache=True)
    nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    sync()
    prefill = prompt.shape[1] / (time.perf_counter() - t0)
    past = out.past_key_values
    t1 = time.perf_counter()
    for _ in range(steps):
        out = model(nxt, past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    sync()
    return prefill, steps / (time.perf_counter() - t1)


@torch.no_grad()
def generate_static(model, prompt, new=128):
    sync()
    t0 = time.perf_counter()
    model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False, cache_implementation="static")
    sync()
    return new / (time.perf_counter() - t0)


def best(fn, reps=3):
    runs = [fn() for _ in range(reps)]
    return max(runs, key=lambda r: r if isinstance(r, float) else r[1])


def main():
    torch.manual_seed(0)
    dev = "cuda"
    model = LlamaForCausalLM(config()).to(dev, torch.bfloat16).eval()
    prompt = torch.randint(100, 4000, (1, 64), device=dev)
    print(f"### PyTorch {torch.__version__} on {torch.cuda.get_device_name()}, SmolLM2-135M shapes, random weights, bf16\n")
    print("| run | prefill tok/s | decode tok/s |")
    print("|---|---|---|")
    step_loop(model, prompt)  # warm-up
    gen = best(lambda: generate_static(model, prompt))
    print(f"| HF generate, static cache (64 + 128 tokens, prefill included) | | {gen:.1f} |")
    p, d = best(lambda: step_loop(model, prompt))
    print(f"| per-step loop, dynamic cache | {p:.0f} | {d:.1f} |")
    try:
        from peft import LoraConfig, get_peft_model

        lora = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False))
        lora.eval()
        step_loop(lora, prompt)
        p, d = best(lambda: step_loop(lora, prompt))
        print(f"| per-step loop, one r16 all-linear PEFT adapter (unmerged) | {p:.0f} | {d:.1f} |")
    except ImportError as e:
        print(f"| PEFT: not available ({e}) | | |")


if __name__ == "__main__":
    main()
