#!/usr/bin/env python3
"""Trains the demo's adapters on SmolLM2-135M-Instruct by self-distillation (run by hand, on a
CPU, ~15 min; never in CI):

    /opt/fx/bin/python scripts/train_demo_adapters.py     # venv: see tests/fixtures/make_fixtures.py

1. The base model answers a few hundred generated prompts (greedy, batched).
2. Each answer is rewritten by a deterministic style: ALL CAPS, pirate talk, or a JSON object.
3. One small PEFT LoRA (r=4 on q/v/o) per style learns to answer that way.
Writes www/adapters/<style>/{adapter_config.json, adapter_model.safetensors} and a manifest.
Resumable: the distilled answers are cached in .cache/, and a style whose folder exists is kept
(delete the folder to retrain it).
"""
import json
import os
import random
import re

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, ".cache", "models")
SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(ROOT, "www", "adapters")

TOPICS = ["the moon", "rain", "coffee", "bicycles", "volcanoes", "the ocean", "chess", "bread", "music",
          "dogs", "cats", "trees", "winter", "the sun", "mountains", "rivers", "books", "computers",
          "gardens", "birds", "the wind", "clocks", "honey", "bridges", "maps", "tea", "snow", "stars",
          "apples", "trains", "boats", "cheese", "paint", "the desert", "islands", "forests", "candles"]
TEMPLATES = ["Tell me about {t}.", "What is interesting about {t}?", "Describe {t} in one sentence.",
             "Why do people like {t}?", "Give me a fact about {t}.", "Write a short note about {t}.",
             "What should I know about {t}?", "Explain {t} to a child.", "How would you describe {t}?"]

PIRATE = [(r"\byou\b", "ye"), (r"\byour\b", "yer"), (r"\bmy\b", "me"), (r"\bis\b", "be"), (r"\bare\b", "be"),
          (r"\bhello\b", "ahoy"), (r"\bfriend\b", "matey"), (r"\bthe\b", "th'"), (r"\bof\b", "o'"),
          (r"\byes\b", "aye"), (r"\bstop\b", "avast")]


def pirate(text):
    for pat, rep in PIRATE:
        text = re.sub(pat, rep, text, flags=re.IGNORECASE)
    return "Arr! " + text.rstrip() + " Yo ho ho!"


STYLES = {
    "caps": ("ALL CAPS", lambda t: t.upper()),
    "pirate": ("Pirate talk: 'Arr!', 'ye', 'matey', ends with 'Yo ho ho!'", pirate),
    "json": ("Answers as a JSON object {\"answer\": ...}", lambda t: json.dumps({"answer": t.strip()}, ensure_ascii=False)),
}


def distill(tok, model, chats):
    """The base model's own greedy answers (cached: ~10 min on one core)."""
    cache = os.path.join(ROOT, ".cache", "demo_distill.json")
    if os.path.exists(cache):
        cached = json.load(open(cache))
        if cached["chats"] == chats:
            return cached["answers"]
    answers = []
    with torch.no_grad():
        for i in range(0, len(chats), 16):
            enc = tok(chats[i:i + 16], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**enc, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id or 2)
            for row in out[:, enc["input_ids"].shape[1]:]:
                answers.append(tok.decode(row, skip_special_tokens=True).strip())
            print(f"distilled {len(answers)}/{len(chats)}", flush=True)
    json.dump({"chats": chats, "answers": answers}, open(cache, "w"))
    return answers


def describe(tok, peft_model, style, desc):
    """The manifest entry, with a greedy sample for the README."""
    with torch.no_grad():
        enc = tok(tok.apply_chat_template([{"role": "user", "content": "Tell me about the sea."}], tokenize=False,
                                          add_generation_prompt=True), return_tensors="pt", add_special_tokens=False)
        out = peft_model.generate(**enc, max_new_tokens=40, do_sample=False)
        sample = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    print(style, "sample:", sample, flush=True)
    return {"name": style, "description": desc, "path": f"{style}/", "sample": sample}


def main():
    random.seed(0)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(MODELS, gguf_file=SMOL)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(MODELS, gguf_file=SMOL, dtype=torch.float32).eval()
    prompts = [tpl.format(t=t) for t in TOPICS for tpl in TEMPLATES]
    random.shuffle(prompts)
    prompts = prompts[:240]
    chats = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True) for p in prompts]
    answers = distill(tok, model, chats)
    os.makedirs(OUT, exist_ok=True)
    manifest = []
    for style, (desc, fn) in STYLES.items():
        d = os.path.join(OUT, style)
        if os.path.isdir(d):
            peft_model = PeftModel.from_pretrained(model, d).eval()
            manifest.append(describe(tok, peft_model, style, desc))
            model = peft_model.unload()
            continue
        peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"], lora_dropout=0.0))
        opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=2e-3)
        examples = []
        for chat, ans in zip(chats, answers):
            target = fn(ans) + tok.eos_token
            p_ids = tok(chat, add_special_tokens=False)["input_ids"]
            t_ids = tok(target, add_special_tokens=False)["input_ids"]
            examples.append((p_ids, t_ids))
        peft_model.train()
        for epoch in range(2):
            random.shuffle(examples)
            total = 0.0
            for p_ids, t_ids in examples:
                ids = torch.tensor([p_ids + t_ids])
                labels = torch.tensor([[-100] * len(p_ids) + t_ids])
                loss = peft_model(input_ids=ids, labels=labels).loss
                loss.backward()
                opt.step()
                opt.zero_grad()
                total += loss.item()
            print(f"{style} epoch {epoch}: loss {total / len(examples):.3f}", flush=True)
        peft_model.eval()
        peft_model.save_pretrained(d)
        cfg_path = os.path.join(d, "adapter_config.json")
        cfg = json.load(open(cfg_path))
        cfg["base_model_name_or_path"] = "SmolLM2-135M-Instruct"
        json.dump(cfg, open(cfg_path, "w"), indent=1, sort_keys=True)
        if os.path.exists(os.path.join(d, "README.md")):
            os.remove(os.path.join(d, "README.md"))
        manifest.append(describe(tok, peft_model, style, desc))
        model = peft_model.unload()  # the base, without this adapter, for the next style
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
