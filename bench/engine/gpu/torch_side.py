"""PyTorch side of the GPU engine bench, on the same card and the same layer shapes as the bundle (prep.py):

- HBM read bandwidth (sum of a 2 GiB fp16 tensor) and device copy bandwidth, CUDA events;
- HF `Qwen2ForCausalLM` with the checkpoint's text shapes, fp16, SDPA: decode ms/token at batch 1 and aggregate
  tokens/s at batch 8, with the dynamic cache (eager) and with the static cache (transformers compiles the decode
  step with torch.compile); ms/token = (time of N+1 new tokens - time of 1) / N, greedy, min_new_tokens forced;
- TTFT of the one-image prompt with the LVR reference loop (lvr.decoding over TorchBackend, fp16 eager): from
  prompt building (image decode + preprocessing) to the end of the first forward (vision + prefill), the same span
  the TS side reports as its TTFT.

Compiles and model builds run first; timed parts wait for WORK/export.done (the exporter traces on the CPU
meanwhile) so timings are not taken under the exporter's load. Writes the JSON given by --out after each part.

    python bench/engine/gpu/torch_side.py WORK --out torch.json --deadline EPOCH_S
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "workers"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

N_TOKENS = 64
PROMPT_LEN = 32
# CPU only for a smoke test of this script (LVR_BENCH_TINY=1); every reported number comes from CUDA.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def wait_for(path: Path, deadline: float) -> bool:
    while not path.exists():
        if time.time() > deadline:
            return False
        time.sleep(0.2)
    return True


def bandwidth() -> dict:
    x = torch.ones(2**30, dtype=torch.float16, device=DEVICE)  # 2 GiB
    y = torch.empty_like(x)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def timed(fn, iters=10):
        fn()
        sync()
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        sync()
        return start.elapsed_time(end) / 1000 / iters

    read_s = timed(lambda: x.sum(dtype=torch.float32))
    copy_s = timed(lambda: y.copy_(x))
    nbytes = x.numel() * 2
    del x, y
    torch.cuda.empty_cache()
    return {"read_tb_s": nbytes / read_s / 1e12, "copy_rw_tb_s": 2 * nbytes / copy_s / 1e12}


def hf_model(ckpt: Path):
    from transformers import AutoConfig, Qwen2Config, Qwen2ForCausalLM

    text = AutoConfig.from_pretrained(ckpt).text_config
    cfg = Qwen2Config(vocab_size=text.vocab_size, hidden_size=text.hidden_size,
                      intermediate_size=text.intermediate_size, num_hidden_layers=text.num_hidden_layers,
                      num_attention_heads=text.num_attention_heads, num_key_value_heads=text.num_key_value_heads,
                      max_position_embeddings=4096, tie_word_embeddings=text.tie_word_embeddings,
                      rms_norm_eps=1e-6)
    cfg._attn_implementation = "sdpa"
    with torch.device(DEVICE):
        model = Qwen2ForCausalLM(cfg).to(torch.float16).eval()
    model.generation_config.pad_token_id = 0
    return model


def gen_time(model, batch: int, new: int, static: bool) -> float:
    ids = torch.randint(100, 1000, (batch, PROMPT_LEN), device=DEVICE)
    kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, attention_mask=torch.ones_like(ids))
    if static:
        kw["cache_implementation"] = "static"
    sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        model.generate(ids, **kw)
    sync()
    return time.perf_counter() - t0


def hf_decode(model, static: bool, batch: int) -> dict:
    t_one = min(gen_time(model, batch, 1, static) for _ in range(2))
    t_n = gen_time(model, batch, N_TOKENS + 1, static)
    ms = (t_n - t_one) / N_TOKENS * 1000
    return {"batch": batch, "ms_per_step": ms, "tok_s_per_stream": 1000 / ms,
            "aggregate_tok_s": batch * (N_TOKENS + 1) / t_n, "wall_s_incl_prefill": t_n}


def lvr_ttft(work: Path) -> dict:
    from tokenizers import Tokenizer

    from lvr.backends import TorchBackend
    from lvr.decoding import LVROptions, SamplingParams, generate
    from lvr.model import LVRForConditionalGeneration
    from lvr.preprocess import ImageConfig, build_prompt

    bundle = work / "bundle-fp16"
    model = LVRForConditionalGeneration.from_pretrained(work / "ckpt", torch_dtype=torch.float16).to(DEVICE).eval()
    manifest = json.loads((bundle / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    cfg = ImageConfig.from_json(manifest["preprocessing"])
    msgs = [{"role": "user", "content": [{"type": "image", "image": str(work / "image.png")},
                                         {"type": "text", "text": "Describe it."}]}]
    backend = TorchBackend(model)
    orig = backend.forward

    def run():
        spans = []

        def timed(*a):
            sync()
            s = time.perf_counter()
            r = orig(*a)
            sync()
            spans.append((s, time.perf_counter()))
            return r

        sync()
        t0 = time.perf_counter()
        prompt = build_prompt(msgs, tok, None, cfg)
        backend.forward = timed
        generate(backend, prompt, SamplingParams(max_new_tokens=1, eos_ids=()), LVROptions())
        backend.forward = orig
        return {"ttft_ms": (spans[0][1] - t0) * 1000, "prefill_forward_ms": (spans[0][1] - spans[0][0]) * 1000,
                "prompt_tokens": len(prompt.input_ids)}

    run()
    return run()


def parity_fp16(work: Path) -> dict:
    """Greedy tokens of the parity prompts (bench/engine/gpu/parity_prompts.json: texts, then the one-image prompt)
    with the LVR reference loop on the fp16 model, and each step's top-1 minus top-2 logit: the TS side decodes the
    same prompts and combine.py reports where the two first differ and how close that step's top two were."""
    from tokenizers import Tokenizer

    from lvr.backends import TorchBackend
    from lvr.decoding import LVROptions, SamplingParams, generate
    from lvr.model import LVRForConditionalGeneration
    from lvr.preprocess import ImageConfig, build_prompt

    spec = json.loads((Path(__file__).parent / "parity_prompts.json").read_text())
    bundle = work / "bundle-fp16"
    manifest = json.loads((bundle / "manifest.json").read_text())
    model = LVRForConditionalGeneration.from_pretrained(work / "ckpt", torch_dtype=torch.float16).to(DEVICE).eval()
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    cfg = ImageConfig.from_json(manifest["preprocessing"])
    lvr = LVROptions(strategy=manifest["lvr"]["strategy"], steps=int(manifest["lvr"]["steps"]))
    params = SamplingParams(max_new_tokens=spec["max_tokens"], do_sample=False, repetition_penalty=1.0, eos_ids=())
    backend = TorchBackend(model)
    forward = backend.forward
    margins: list[float] = []

    def recorded(*a):
        logits, h = forward(*a)
        top2 = np.sort(np.asarray(logits, dtype=np.float32).reshape(-1))[-2:]
        margins.append(float(top2[1] - top2[0]))
        return logits, h

    backend.forward = recorded
    prompts = [[{"role": "user", "content": t}] for t in spec["texts"]]
    prompts.append([{"role": "user", "content": [{"type": "image", "image": str(work / "image.png")},
                                                  {"type": "text", "text": spec["image_text"]}]}])
    out = []
    for msgs in prompts:
        prompt = build_prompt(msgs, tok, None, cfg)
        margins.clear()
        result = generate(backend, prompt, params, lvr)
        out.append({"prompt_tokens": len(prompt.input_ids), "tokens": list(result.output_ids),
                    "margins": margins[: len(result.output_ids)]})
    return {"strategy": lvr.strategy, "steps": lvr.steps, "prompts": out}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--out", required=True)
    ap.add_argument("--deadline", type=float, required=True, help="epoch seconds: skip parts that would start later")
    ap.add_argument("--compile-deadline", type=float, default=float("inf"),
                    help="epoch seconds: skip the batch-8 compile (and its timing) if it would start later")
    ap.add_argument("--batch32", action="store_true", help="also compile and time the static cache at batch 32")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out (e.g. hf_eager_b1,parity_fp16)")
    args = ap.parse_args()
    skipped = set(filter(None, args.skip.split(",")))
    work = Path(args.work)
    out: dict = {"card": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu", "torch": torch.__version__, "n_tokens": N_TOKENS,
                 "prompt_len": PROMPT_LEN, "errors": {}}

    def save():
        Path(args.out).write_text(json.dumps(out, indent=2))

    def part(name, fn):
        if name in skipped:
            out["errors"][name] = "skipped: --skip"
            return
        if time.time() > args.deadline:
            out["errors"][name] = "skipped: time budget"
            return
        t = time.time()
        try:
            out[name] = fn()
        except Exception as e:  # a failed part is reported, the others still run
            out["errors"][name] = f"{type(e).__name__}: {e}"[:500]
        out.setdefault("part_s", {})[name] = round(time.time() - t, 1)
        save()

    import transformers

    out["transformers"] = transformers.__version__
    if not wait_for(work / "ckpt" / "_READY", args.deadline):
        out["errors"]["checkpoint"] = "not ready in time"
        save()
        return 1
    # One model per batch size for the static cache: each keeps its own cache (sized by its first, longest call, so
    # later calls reuse it) and its own compiled decode step; the compiles happen here, while the exporter still runs.
    # The eager side has a model of its own: a model whose forward was auto-compiled must not time the dynamic cache.
    m1, m8 = hf_model(work / "ckpt"), hf_model(work / "ckpt")
    eager = None if {"hf_eager_b1", "hf_eager_b8"} <= skipped else hf_model(work / "ckpt")
    m32 = hf_model(work / "ckpt") if args.batch32 else None
    part("compile_static_b1_s", lambda: gen_time(m1, 1, N_TOKENS + 1, True))
    if time.time() < args.compile_deadline:
        part("compile_static_b8_s", lambda: gen_time(m8, 8, N_TOKENS + 1, True))
    else:
        out["errors"]["compile_static_b8_s"] = "skipped: time budget (the b1 compile took too long)"
    if m32 is not None and time.time() < args.compile_deadline:
        part("compile_static_b32_s", lambda: gen_time(m32, 32, N_TOKENS + 1, True))
    if eager is not None:
        part("warm_eager_s", lambda: gen_time(eager, 1, 4, False) + gen_time(eager, 8, 4, False))
    out["exporter_done_before_timing"] = wait_for(work / "export.done", args.deadline)
    part("bandwidth", bandwidth)
    part("hf_static_compile_b1", lambda: hf_decode(m1, True, 1))
    part("hf_eager_b1", lambda: hf_decode(eager, False, 1))
    part("lvr_torch_ttft", lambda: lvr_ttft(work))
    if "compile_static_b8_s" in out:
        part("hf_static_compile_b8", lambda: hf_decode(m8, True, 8))
    part("hf_eager_b8", lambda: hf_decode(eager, False, 8))
    if "compile_static_b32_s" in out:
        part("hf_static_compile_b32", lambda: hf_decode(m32, True, 32))
    part("parity_fp16", lambda: parity_fp16(work))
    del m1, m8, m32, eager
    torch.cuda.empty_cache()
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
