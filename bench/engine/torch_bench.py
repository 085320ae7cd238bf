"""PyTorch-reference side of `npm run bench -- engine`: builds/exports a bundle and times the reference.

Usage: python torch_bench.py OUT_DIR SIZE(tiny|mid) IMAGE_PNG THREADS  -> prints JSON

Times the same spans as the TypeScript side (bench/engine/run.ts):
- prefill: vision encoder + token embedding + the decoder's prompt forward (not tokenization or image resizing);
- a decode step: the time between two picked tokens (the forward that produced the second pick, its input's
  embedding and the sampling), split by the kind of that forward's input, so latent-step time covers latent steps
  only and decode tokens/s covers token steps only;
- `cpu`: the process CPU time of those steps and of time-to-first-token (prompt preparation included).
"""
import contextlib
import json
import statistics
import sys
import time

import torch

REPEATS = 5


class StepClock:
    """Wraps the backend and `pick_token` to record the prefill span and, per picked token, wall and CPU clocks."""

    def __init__(self, backend, decoding):
        self.backend, self.decoding = backend, decoding
        self.first_call = self.prefill_end = None
        self.picks = []  # (wall s, process CPU s) after each pick
        self.cpu_start = time.process_time()

    def __enter__(self):
        self.orig = {name: getattr(self.backend, name) for name in ("embed", "vision", "forward")}
        self.orig_pick = self.decoding.pick_token
        for name, fn in self.orig.items():
            setattr(self.backend, name, self._timed(name, fn))

        def pick(*a, **k):
            tok = self.orig_pick(*a, **k)
            self.picks.append((time.perf_counter(), time.process_time()))
            return tok
        self.decoding.pick_token = pick
        return self

    def __exit__(self, *exc):
        for name, fn in self.orig.items():
            setattr(self.backend, name, fn)
        self.decoding.pick_token = self.orig_pick

    def _timed(self, name, fn):
        def call(*a):
            if self.first_call is None:
                self.first_call = time.perf_counter()
            result = fn(*a)
            if name == "forward" and self.prefill_end is None:
                self.prefill_end = time.perf_counter()
            return result
        return call

    def step_ms(self, kinds, kind, clock):
        """Mean ms (clock 0: wall, 1: CPU) of the steps whose forward input was `kind` (records[i] made pick i)."""
        spans = [1000 * (self.picks[i][clock] - self.picks[i - 1][clock])
                 for i in range(1, len(self.picks)) if kinds[i] == kind]
        return statistics.mean(spans) if spans else float("nan")


def main():
    out, size, image, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(threads)
    from tokenizers import Tokenizer

    from lvr import decoding
    from lvr.backends import TorchBackend
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
    manifest = json.load(open(f"{out}/bundle/manifest.json"))
    tok = Tokenizer.from_file(f"{out}/bundle/tokenizer.json")
    cfg = ImageConfig.from_json(manifest["preprocessing"])
    msgs = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Describe it."}]}]
    backend = TorchBackend(model)

    def run(prefix, n, steps):
        clock = StepClock(backend, decoding)  # CPU clock starts before prompt preparation, as on the TS side
        prompt = build_prompt(msgs, tok, None, cfg, assistant_prefix=prefix)
        with clock:
            res = decoding.generate(backend, prompt, decoding.SamplingParams(max_new_tokens=n, eos_ids=()),
                                    decoding.LVROptions(steps=steps))
        kinds = [s.input_kind for s in res.steps]
        return {
            "prefill_ms": 1000 * (clock.prefill_end - clock.first_call),
            "token_step_ms": clock.step_ms(kinds, "text", 0),
            "latent_step_ms": clock.step_ms(kinds, "latent", 0),
            "ttft_cpu_ms": 1000 * (clock.picks[0][1] - clock.cpu_start),
            "token_step_cpu_ms": clock.step_ms(kinds, "text", 1),
            "latent_step_cpu_ms": clock.step_ms(kinds, "latent", 1),
            "latent_steps": kinds.count("latent"),
            "prompt_tokens": len(res.prompt_ids),
        }

    run("", 4, 8)  # warm-up
    plain = [run("", 64, 8) for _ in range(REPEATS)]  # medians: single runs on a shared 2-core machine are noisy
    latent = [run("<|lvr_start|>", 24, 16) for _ in range(REPEATS)]
    json.dump({
        "prefill_ms": statistics.median(r["prefill_ms"] for r in plain),
        "decode_tok_s": 1000 / statistics.median(r["token_step_ms"] for r in plain),
        "latent_step_ms": statistics.median(r["latent_step_ms"] for r in latent),
        "cpu": {
            "ttft_ms": statistics.median(r["ttft_cpu_ms"] for r in plain),
            "token_step_ms": statistics.median(r["token_step_cpu_ms"] for r in plain),
            "latent_step_ms": statistics.median(r["latent_step_cpu_ms"] for r in latent),
        },
        "latent_steps_per_run": latent[0]["latent_steps"],
        "prompt_tokens": plain[0]["prompt_tokens"],
        "threads": torch.get_num_threads(),
    }, sys.stdout)


if __name__ == "__main__":
    main()
