"""PyTorch CUDA fp16 side of the GPU bench: TTFT and decode tokens/s for the image prompt of bench.ts."""
import json
import sys
import time

import torch
from tokenizers import Tokenizer
from transformers import AutoConfig

from lvr.backends import TorchBackend
from lvr.decoding import LVROptions, SamplingParams, generate
from lvr.model import LVRForConditionalGeneration
from lvr.preprocess import ImageConfig, build_prompt

work = sys.argv[1]
model = LVRForConditionalGeneration.from_pretrained(f"{work}/ckpt", torch_dtype=torch.float16).cuda().eval()
manifest = json.load(open(f"{work}/bundle/manifest.json"))
tok = Tokenizer.from_file(f"{work}/bundle/tokenizer.json")
cfg = ImageConfig.from_json(manifest["preprocessing"])
msgs = [{"role": "user", "content": [{"type": "image", "image": f"{work}/image.png"}, {"type": "text", "text": "Describe it."}]}]
backend = TorchBackend(model)


def run(n):
    """Records each forward's span. TTFT runs from before preprocessing to the end of the first forward (vision + prefill),
    the same span the TS side measures."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    prompt = build_prompt(msgs, tok, None, cfg)
    spans = []
    orig = backend.forward

    def timed(*a):
        torch.cuda.synchronize()
        start = time.perf_counter()
        r = orig(*a)
        torch.cuda.synchronize()
        spans.append((start, time.perf_counter()))
        return r

    backend.forward = timed
    generate(backend, prompt, SamplingParams(max_new_tokens=n, eos_ids=()), LVROptions())
    backend.forward = orig
    return t0, spans


run(4)
t0, spans = run(128)
# The TS side divides its token steps by the wall time from the end of prefill to the end of the sequence
# (forwards, input embeddings and sampling); time the same span here, not the forwards alone.
decode_steps = len(spans) - 1
decode_s = spans[-1][1] - spans[0][1]
json.dump({"ttft_ms": (spans[0][1] - t0) * 1000, "decode_tok_s": decode_steps / decode_s}, sys.stdout)
