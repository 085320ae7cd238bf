"""Golden outputs of a bundle for the TypeScript parity tests: `python -m lvr golden BUNDLE REQUESTS.json OUT.json`.

REQUESTS.json: a list (or {"requests": [...]}) of
  {"id": "...", "messages": [chat messages; image parts {"type":"image","image": PATH | data-URL |
                             {"width","height","seed"} (synthetic noise)}],
   "assistant_prefix": "" (text appended after the generation prompt, e.g. "<|lvr_start|>"),
   "sampling": {"max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "seed"}
               (missing fields: the bundle's generation defaults),
   "lvr": {"strategy": "steps"|"latent"|"end_token", "steps", "criterion", "threshold", "upstream_compat"},
   "image_config": {"min_pixels", "max_pixels"} (optional override of the bundle's preprocessing)}
OUT.json: {"bundle": {...}, "cases": [{"id", "messages" (synthetic images resolved to PNG data URLs), "prompt_text",
  "prompt_ids", "image_grids", "pixel_values": [{"shape","sum","abs_sum"}], "rope_delta", "output_ids",
  "text", "text_skip_special", "finish_reason", "latent_steps", "steps": [{index, input_kind, input_token, token,
  mode_after, hidden:{sum, abs_sum, l2, head, sha256}}]}]}
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from . import storage
from .backends import OrtBackend
from .bundle import verify_bundle
from .decoding import LVROptions, SamplingParams, generate
from .preprocess import ImageConfig, build_prompt, load_image
from .tokens import load_tokenizer


@contextlib.contextmanager
def open_bundle(uri: str):
    """Yield (local folder, manifest) of a verified bundle (marker + checksums); s3:// is downloaded first."""
    if storage.is_s3(uri):
        with tempfile.TemporaryDirectory(prefix="lvr-bundle-") as tmp:
            folder = storage.download_prefix(uri, Path(tmp))
            yield folder, verify_bundle(folder)
    else:
        yield Path(uri), verify_bundle(uri)


def _png_data_url(src) -> str:
    buf = io.BytesIO()
    load_image(src).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _resolve_messages(messages: list[dict]) -> list[dict]:
    """Replace synthetic/path images by PNG data URLs so any client can reproduce the exact pixels."""
    out = copy.deepcopy(messages)
    for msg in out:
        if isinstance(msg.get("content"), list):
            for part in msg["content"]:
                if part.get("type") == "image" and not (isinstance(part["image"], str)
                                                         and part["image"].startswith("data:")):
                    part["image"] = _png_data_url(part["image"])
    return out


def sampling_from(manifest: dict, overrides: dict | None) -> SamplingParams:
    g = dict(manifest.get("generation", {}))
    eos = g.get("eos_token_id", manifest["special_tokens"]["eos_ids"])
    p = SamplingParams(
        max_new_tokens=int(g.get("max_new_tokens", 512)), do_sample=bool(g.get("do_sample", False)),
        temperature=float(g.get("temperature", 1.0)), top_k=int(g.get("top_k", 0) or 0),
        top_p=float(g.get("top_p", 1.0)), repetition_penalty=float(g.get("repetition_penalty", 1.0)),
        eos_ids=tuple(eos if isinstance(eos, list) else [eos]))
    for k, v in (overrides or {}).items():
        if not hasattr(p, k):
            raise ValueError(f"unknown sampling field {k!r}")
        setattr(p, k, tuple(v) if k == "eos_ids" else v)
    return p


def lvr_from(manifest: dict, overrides: dict | None) -> LVROptions:
    d = manifest.get("lvr", {})
    kw = {"strategy": d.get("strategy", "steps"), "steps": int(d.get("steps", 8)),
          "criterion": d.get("latent_criterion", "mse"), "threshold": float(d.get("latent_threshold", 0.02)),
          "upstream_compat": bool(d.get("upstream_compat", False))}
    kw.update(overrides or {})
    return LVROptions(**kw)


def golden_case(backend, tokenizer, template: str, manifest: dict, req: dict) -> dict:
    img_cfg = ImageConfig.from_json({**manifest["preprocessing"], **(req.get("image_config") or {})})
    messages = _resolve_messages(req["messages"])
    prompt = build_prompt(messages, tokenizer, template, img_cfg, req.get("assistant_prefix", ""))
    params = sampling_from(manifest, req.get("sampling"))
    lvr = lvr_from(manifest, req.get("lvr"))
    res = generate(backend, prompt, params, lvr, int(manifest["architecture"]["vision"]["spatial_merge_size"]))
    return {
        "id": req.get("id"), "messages": messages, "assistant_prefix": req.get("assistant_prefix", ""),
        "image_config": img_cfg.to_json(), "sampling": params.__dict__ | {"eos_ids": list(params.eos_ids)},
        "lvr": {k: v for k, v in lvr.__dict__.items() if k != "ids"},
        "prompt_text": prompt.text, "prompt_ids": res.prompt_ids, "image_grids": [list(g) for g in prompt.image_grids],
        "pixel_values": [{"shape": list(pv.shape), "sum": float(pv.sum(dtype=np.float64)),
                          "abs_sum": float(np.abs(pv).sum(dtype=np.float64))} for pv in prompt.pixel_values],
        "rope_delta": res.rope_delta, "output_ids": res.output_ids,
        "text": tokenizer.decode(res.output_ids, skip_special_tokens=False),
        "text_skip_special": tokenizer.decode(res.output_ids, skip_special_tokens=True),
        "finish_reason": res.finish_reason, "latent_steps": res.latent_steps,
        "steps": [s.to_json() for s in res.steps],
    }


def run_golden(bundle: str, requests_path: str, out_path: str) -> dict:
    with open_bundle(bundle) as (folder, manifest):  # refuse an incomplete/tampered bundle before anything else
        reqs = json.loads(Path(requests_path).read_text())
        if isinstance(reqs, dict):
            reqs = reqs["requests"]
        backend = OrtBackend(folder, manifest)
        tokenizer = load_tokenizer(folder)
        template = (folder / manifest["chat_template"]).read_text()
        cases = [golden_case(backend, tokenizer, template, manifest, r) for r in reqs]
        out = {"bundle": {"uri": bundle, "precision": manifest["precision"],
                          "manifest_sha256": json.loads((folder / "_COMPLETE").read_text()).get("manifest_sha256")},
               "cases": cases}
    Path(out_path).write_text(json.dumps(out, indent=1))
    return out
