"""Golden outputs of the PyTorch LVR reference for the TS parity test.

Usage: python golden_oracle.py INPUT.json  (prints JSON)
Input: {"seed": int, "bundle": dir, "image_dir": dir, "model": {tiny_config kwargs}, "requests": [...]}
Exports the tiny model `tiny:SEED` to `bundle` (ONNX, via lvr.export), writes each synthetic image as PNG into
`image_dir`, and decodes every request with the PyTorch reference (lvr.decoding.generate over TorchBackend),
recording every forward's post-norm hidden state.
Request: {"messages": [...], "images": [{"seed","width","height"}], "max_new_tokens", "strategy", "steps"}; image
parts in messages are {"type": "image", "index": i}.
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
    with contextlib.redirect_stdout(sys.stderr):
        export_bundle(f"tiny:{p['seed']}", p["bundle"])
    manifest = json.load(open(os.path.join(p["bundle"], "manifest.json")))
    tok = Tokenizer.from_file(os.path.join(p["bundle"], "tokenizer.json"))
    template = open(os.path.join(p["bundle"], "chat_template.jinja")).read()
    cfg = ImageConfig.from_json(manifest["preprocessing"])
    model = make_tiny_model(p["seed"]).eval()

    class Recording(TorchBackend):
        def forward(self, embeds, attention_mask, position_ids):
            logits, h = super().forward(embeds, attention_mask, position_ids)
            self.hiddens.append(np.asarray(h, dtype=np.float32).reshape(-1).tolist())
            return logits, h

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
        res = generate(backend, prompt, SamplingParams(max_new_tokens=req["max_new_tokens"]),
                       LVROptions(strategy=req.get("strategy", "steps"), steps=req.get("steps", 8)))
        out.append({"prompt_ids": res.prompt_ids, "output_ids": res.output_ids, "finish_reason": res.finish_reason,
                    "latent_steps": res.latent_steps, "hiddens": backend.hiddens, "image_paths": paths})
    json.dump({"results": out}, sys.stdout)


if __name__ == "__main__":
    main()
