"""Golden outputs of the PyTorch LVR reference for the TS parity test.

Usage: python golden_oracle.py INPUT.json  (prints JSON)
Input: {"seed": int, "bundle": dir, "image_dir": dir, "model": {"latent_end": bool, "head": "simple"|"glu"},
"requests": [...]}
Exports the tiny model `tiny:SEED` (`:latent_end` with the latent-end vector, so `strategy: latent` runs; `lvr_head` /
`glu_head` with an LVR head, whose output replaces the hidden state and logits of latent-input forwards) to
`bundle` (ONNX, via lvr.export), writes each synthetic image as PNG into
`image_dir`, and decodes every request with the PyTorch reference (lvr.decoding.generate over TorchBackend),
recording every forward's post-norm hidden state.
Request: {"messages": [...], "images": [{"seed","width","height"}], "max_new_tokens", "strategy", "steps",
"criterion", "threshold", "upstream_compat", "repetition_penalty", "top_logprobs"}; image parts in messages are {"type": "image", "index": i}. With "top_logprobs" K, every forward's
chosen-token log_softmax (of the raw logits, vLLM's convention) and top-K ids are recorded as "logprobs".
"""
import json
import os
import sys

import numpy as np


def main():
    p = json.load(open(sys.argv[1]))
    from tokenizers import Tokenizer

    from lvr.backends import TorchBackend
    from lvr.decoding import LVROptions, SamplingParams, generate
    from lvr.export import export_bundle
    from lvr.preprocess import ImageConfig, build_prompt, load_image
    from lvr.tiny import make_tiny_model

    import contextlib
    from lvr.tiny import parse_tiny_spec

    model_opts = p.get("model", {})
    options = (["latent_end"] if model_opts.get("latent_end") else []) + \
        ({"simple": ["lvr_head"], "glu": ["glu_head"]}[model_opts["head"]] if model_opts.get("head") else [])
    spec = f"{p['seed']}:{','.join(options)}"
    with contextlib.redirect_stdout(sys.stderr):
        export_bundle(f"tiny:{spec}", p["bundle"])
    manifest = json.load(open(os.path.join(p["bundle"], "manifest.json")))
    tok = Tokenizer.from_file(os.path.join(p["bundle"], "tokenizer.json"))
    template = open(os.path.join(p["bundle"], "chat_template.jinja")).read()
    cfg = ImageConfig.from_json(manifest["preprocessing"])
    seed, tiny_kwargs = parse_tiny_spec(spec)
    model = make_tiny_model(seed, **tiny_kwargs).eval()

    import torch

    class Recording(TorchBackend):
        def forward(self, embeds, attention_mask, position_ids):
            logits, h = super().forward(embeds, attention_mask, position_ids)
            self.hiddens.append(np.asarray(h, dtype=np.float32).reshape(-1).tolist())
            if self.top_logprobs is not None:  # raw distribution: log_softmax of the unprocessed logits
                self.logprobs.append(torch.log_softmax(torch.from_numpy(np.asarray(logits, np.float32)), -1).numpy())
            return logits, h

        def head(self, hidden):  # the head output replaces the forward's hidden state and logits (LVR-SPEC §4.5)
            h, logits = super().head(hidden)
            self.hiddens[-1] = np.asarray(h, dtype=np.float32).reshape(-1).tolist()
            if self.top_logprobs is not None:
                self.logprobs[-1] = torch.log_softmax(torch.from_numpy(np.asarray(logits, np.float32)), -1).numpy()
            return h, logits

    backend = Recording(model)
    out = []
    for ri, req in enumerate(p["requests"]):
        paths = []
        for ii, spec in enumerate(req.get("images", [])):
            path = os.path.join(p["image_dir"], f"r{ri}_i{ii}.png")
            load_image(spec).save(path)
            paths.append(path)
        messages = []
        for m in req["messages"]:
            if isinstance(m["content"], str):
                messages.append(m)
                continue
            parts = [{"type": "image", "image": paths[c["index"]]} if c["type"] == "image" else c for c in m["content"]]
            messages.append({"role": m["role"], "content": parts})
        prompt = build_prompt(messages, tok, template, cfg, assistant_prefix=req.get("prefix", ""))
        backend.hiddens = []
        backend.logprobs = []
        backend.top_logprobs = req.get("top_logprobs")
        sampling = SamplingParams(max_new_tokens=req["max_new_tokens"])
        if "repetition_penalty" in req:
            sampling.repetition_penalty = float(req["repetition_penalty"])
        lvr = LVROptions(strategy=req.get("strategy", "steps"), steps=req.get("steps", 8),
                         criterion=req.get("criterion", "mse"), threshold=float(req.get("threshold", 0.02)),
                         upstream_compat=bool(req.get("upstream_compat", False)))
        res = generate(backend, prompt, sampling, lvr)
        logprobs = None
        if backend.top_logprobs is not None:  # forward k picked output_ids[k]
            logprobs = [{"logprob": float(lp[tok]),
                         "top": [int(i) for i in np.argsort(-lp, kind="stable")[:backend.top_logprobs]]}
                        for lp, tok in zip(backend.logprobs, res.output_ids)]
        out.append({"prompt_ids": res.prompt_ids, "output_ids": res.output_ids, "finish_reason": res.finish_reason,
                    "latent_steps": res.latent_steps, "hiddens": backend.hiddens, "image_paths": paths,
                    "logprobs": logprobs})
    json.dump({"results": out}, sys.stdout)


if __name__ == "__main__":
    main()
