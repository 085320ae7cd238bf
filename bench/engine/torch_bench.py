"""PyTorch-reference side of `npm run bench -- engine`: builds/exports a bundle and times the reference.

Usage: python torch_bench.py OUT_DIR SIZE(tiny|mid) IMAGE_PNG  -> prints JSON
"""
import contextlib
import json
import statistics
import sys
import time

import torch

REPEATS = 5


def main():
    out, size, image = sys.argv[1], sys.argv[2], sys.argv[3]
    from tokenizers import Tokenizer

    from lvr.backends import TorchBackend
    from lvr.decoding import LVROptions, SamplingParams, generate
    from lvr.export import export_bundle
    from lvr.preprocess import ImageConfig, build_prompt
    from lvr.tiny import make_tiny_model, save_tiny_checkpoint

    kwargs = {} if size == "tiny" else {"hidden": 512, "layers": 8, "heads": 8, "kv_heads": 2, "intermediate": 1536}
    with contextlib.redirect_stdout(sys.stderr):
        if size == "tiny":
            export_bundle("tiny:0", f"{out}/bundle")
        else:
            ckpt = save_tiny_checkpoint(f"{out}/ckpt", 0, **kwargs)
            export_bundle(str(ckpt), f"{out}/bundle")
    model = make_tiny_model(0, **kwargs).eval()
    torch.set_num_threads(torch.get_num_threads())
    manifest = json.load(open(f"{out}/bundle/manifest.json"))
    tok = Tokenizer.from_file(f"{out}/bundle/tokenizer.json")
    cfg = ImageConfig.from_json(manifest["preprocessing"])
    msgs = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Describe it."}]}]
    backend = TorchBackend(model)

    def run(prefix, n, steps):
        prompt = build_prompt(msgs, tok, None, cfg, assistant_prefix=prefix)
        t0 = time.perf_counter()
        times = []
        orig = backend.forward

        def timed(*a):
            s = time.perf_counter()
            r = orig(*a)
            times.append(time.perf_counter() - s)
            return r
        backend.forward = timed
        res = generate(backend, prompt, SamplingParams(max_new_tokens=n, eos_ids=()), LVROptions(steps=steps))
        backend.forward = orig
        return res, times, time.perf_counter() - t0

    run("", 4, 8)  # warm-up
    prefills, rates = [], []
    for _ in range(REPEATS):  # medians: single runs on a shared 2-core machine are noisy
        res, times, _ = run("", 64, 8)
        prefills.append(times[0] * 1000)
        rates.append((len(times) - 1) / sum(times[1:]))
    prefill_ms, decode_tps = statistics.median(prefills), statistics.median(rates)
    res2, times2, _ = run("<|lvr_start|>", 24, 16)
    kinds = [s.input_kind for s in res2.steps]
    latent = [t for t, k in zip(times2, kinds) if k == "latent"]
    json.dump({"prefill_ms": prefill_ms, "decode_tok_s": decode_tps, "latent_step_ms": 1000 * sum(latent) / max(len(latent), 1),
               "prompt_tokens": len(res.prompt_ids), "threads": torch.get_num_threads()}, sys.stdout)


if __name__ == "__main__":
    main()
