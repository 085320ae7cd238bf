"""HF checkpoint (local, s3:// or `tiny:SEED[:latent_end]`) -> model bundle (local or s3://), verified against PyTorch.

See docs/bundle-format.md for the output. Graphs are traced with `torch.onnx.export` from `lvr.graphs`; int4 uses
ONNX Runtime's `MatMulNBitsQuantizer` (weight-only, block 32, symmetric) on the fp32 decoder.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import bundle as B
from . import storage
from . import tokens as T
from .data.sft import SYSTEM_PROMPT as DEFAULT_SYSTEM_PROMPT
from .fused_decoder import FUSED_DECODER_FILE, FUSED_LVR_FILE, build_fused_decoder, lvr_ops_graph
from .graphs import DecoderGraph, EmbedGraph, HeadGraph, VisionGraph
from .model import LVRSettings, load_lvr_model, weights_digest
from .preprocess import ImageConfig
from .tiny import GENERATION_DEFAULTS
from .vision_inputs import VisionGeometry, vision_host_inputs

#: Activation (embeds, KV, hidden state) dtype of each precision: int4 keeps float32 activations (ONNX Runtime's CPU
#: int4 kernels), int4-fp16 float16 ones (the CUDA EP: GroupQueryAttention has no float32 CUDA kernel).
ACTIVATIONS = {"fp32": torch.float32, "fp16": torch.float16, "int4": torch.float32, "int4-fp16": torch.float16}
#: Precisions whose decoder MatMuls are int4 weight-only.
QUANTIZED = {"int4", "int4-fp16"}
#: Default bound on max relative error (max|ort-torch| / max|torch|) per output, by precision.
DEFAULT_BOUNDS = {"fp32": 1e-4, "fp16": 2e-2, "int4": 0.5, "int4-fp16": 0.5}
OPSET = 18
LVR_DEFAULTS = {"strategy": "steps", "steps": 8, "latent_criterion": "mse", "latent_threshold": 0.02,
                "upstream_compat": False, "max_new_tokens": 512}


class ExportError(RuntimeError):
    """Export failed (including: verification error above the bound)."""


# -- source resolution -------------------------------------------------------------------------------------------
def resolve_source(src: str, work: Path) -> Path:
    """Local HF checkpoint folder for `src` (a path, s3://bucket/prefix, or tiny:SEED[:latent_end])."""
    if src.startswith("tiny:"):
        from .tiny import parse_tiny_spec, save_tiny_checkpoint

        try:
            seed, kwargs = parse_tiny_spec(src.split(":", 1)[1])
        except ValueError as e:
            raise ExportError(str(e)) from None
        return save_tiny_checkpoint(work / "src", seed=seed, **kwargs)
    if storage.is_s3(src):
        return storage.download_prefix(src, work / "src")
    path = Path(src)
    if not (path / "config.json").is_file():
        raise ExportError(f"{src}: not a Hugging Face checkpoint folder (no config.json)")
    return path


def _chat_template(src: Path) -> str:
    if (src / "chat_template.jinja").is_file():
        return (src / "chat_template.jinja").read_text()
    if (src / "chat_template.json").is_file():
        return json.loads((src / "chat_template.json").read_text())["chat_template"]
    cfg = src / "tokenizer_config.json"
    if cfg.is_file() and "chat_template" in json.loads(cfg.read_text()):
        return json.loads(cfg.read_text())["chat_template"]
    raise ExportError(f"{src}: no chat template (chat_template.jinja / chat_template.json / tokenizer_config.json)")


def with_default_system_prompt(template: str, prompt: str) -> str:
    """The chat template with `prompt` as the system message it writes when a chat has none. The Qwen2.5-VL templates
    write the default as a literal line; it becomes a Jinja string expression (quotes, braces and newlines stay
    text)."""
    line = f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>"
    if prompt == DEFAULT_SYSTEM_PROMPT:
        return template
    if line not in template:
        raise ExportError("the chat template has no default system prompt line to replace with the run's systemPrompt")
    return template.replace(line, "<|im_start|>system\n{{ " + json.dumps(prompt, ensure_ascii=False) + " }}<|im_end|>")


def _image_config(src: Path) -> ImageConfig:
    p = src / "preprocessor_config.json"
    if not p.is_file():
        return ImageConfig()
    d = json.loads(p.read_text())
    size = d.get("size") or {}
    return ImageConfig(
        patch_size=int(d.get("patch_size", 14)), temporal_patch_size=int(d.get("temporal_patch_size", 2)),
        merge_size=int(d.get("merge_size", 2)),
        min_pixels=int(d.get("min_pixels", size.get("shortest_edge", 3136))),
        max_pixels=int(d.get("max_pixels", size.get("longest_edge", 12845056))),
        image_mean=tuple(d.get("image_mean", ImageConfig.image_mean)),
        image_std=tuple(d.get("image_std", ImageConfig.image_std)),
        rescale_factor=float(d.get("rescale_factor", 1 / 255)))


def _generation(src: Path) -> dict:
    p = src / "generation_config.json"
    g = json.loads(p.read_text()) if p.is_file() else dict(GENERATION_DEFAULTS)
    keep = ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "eos_token_id", "pad_token_id",
            "bos_token_id", "max_new_tokens")
    out = {k: g[k] for k in keep if k in g}
    out.setdefault("max_new_tokens", LVR_DEFAULTS["max_new_tokens"])
    return out


# -- graph export --------------------------------------------------------------------------------------------------
def _onnx_export(module, args, path: Path, inputs, outputs, dynamic_axes) -> None:
    """Trace `module` into a private temporary folder, then save as one .onnx + one .onnx.data next to `path`."""
    import onnx

    with tempfile.TemporaryDirectory(prefix=".trace-", dir=path.parent) as tmp:
        tmp_path = Path(tmp) / "graph.onnx"
        with torch.no_grad():
            torch.onnx.export(module, args, str(tmp_path), input_names=inputs, output_names=outputs,
                              dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False,
                              do_constant_folding=True)
        model = onnx.load(str(tmp_path), load_external_data=True)
    _save_onnx(model, path)


def _save_onnx(model, path: Path, size_threshold: int = 0) -> None:
    import onnx

    data = path.name + ".data"
    if (path.parent / data).exists():
        (path.parent / data).unlink()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data,
                    size_threshold=size_threshold)


def _decoder_io(n_layers: int):
    ins = ["inputs_embeds", "attention_mask", "position_ids"]
    outs = ["logits", "last_hidden_state"]
    dyn = {"inputs_embeds": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
           "position_ids": {1: "batch", 2: "seq"}, "logits": {0: "batch"}, "last_hidden_state": {0: "batch"}}
    for i in range(n_layers):
        for kv in ("key", "value"):
            ins.append(f"past_key_values.{i}.{kv}")
            outs.append(f"present.{i}.{kv}")
            dyn[f"past_key_values.{i}.{kv}"] = {0: "batch", 2: "past"}
            dyn[f"present.{i}.{kv}"] = {0: "batch", 2: "total"}
    return ins, outs, dyn


def export_vision_graph(model, path: Path, image_cfg: ImageConfig | None = ImageConfig(),
                        conv_patch_embed: bool = False) -> None:
    """Trace the vision graph (`lvr.graphs.VisionGraph`) of `model` to `path`, with a 1x8x12 grid (non-square, two
    windows wide): with `image_cfg` it takes the resized image (`image_bytes`, uint8 [H, W, 3]) and computes its pixel
    values in the graph, with None the float `pixel_values`; `conv_patch_embed` as in VisionGraph."""
    vcfg = model.config.vision_config
    dev = next(model.parameters()).device
    grid = (1, 8, 12)
    host = {k: torch.as_tensor(v, device=dev)
            for k, v in vision_host_inputs(grid, VisionGeometry.from_config(vcfg)).items()}
    ps, c = vcfg.patch_size, vcfg.in_channels
    if image_cfg is None:
        width = c * vcfg.temporal_patch_size * ps ** 2
        name, pixels = "pixel_values", torch.zeros(grid[1] * grid[2], width, device=dev)
        axes = {0: "patches"}
    else:
        if (image_cfg.patch_size, image_cfg.temporal_patch_size, len(image_cfg.image_mean)) != (
                ps, vcfg.temporal_patch_size, c):
            raise ValueError("preprocessing: patch_size, temporal_patch_size and image_mean must match the vision "
                             "config")
        name, pixels = "image_bytes", torch.zeros(grid[1] * ps, grid[2] * ps, c, dtype=torch.uint8, device=dev)
        axes = {0: "height", 1: "width"}
    _onnx_export(VisionGraph(model, image_cfg, conv_patch_embed),
                 (pixels, host["rotary_pos_ids"], host["window_index"], host["reverse_window_index"],
                  host["window_slots"], host["patch_slots"]),
                 path,
                 [name, "rotary_pos_ids", "window_index", "reverse_window_index", "window_slots", "patch_slots"],
                 ["image_features"],
                 {name: axes, "rotary_pos_ids": {0: "patches"}, "window_index": {0: "tokens"},
                  "reverse_window_index": {0: "tokens"}, "window_slots": {0: "windows"},
                  "patch_slots": {0: "patches"}, "image_features": {0: "tokens"}})


def export_graphs(model, out: Path, dtype: torch.dtype, fused_decoder: bool = False,
                  image_cfg: ImageConfig = ImageConfig(), quantized: bool = False) -> dict:
    """Trace vision, embed_tokens, decoder (and lvr_head) of `model` (already in `dtype`) into `out`; with
    `fused_decoder`, also build the GPU serving flavour of the decoder (`lvr.fused_decoder`) and, unless `quantized`
    (its MatMuls become MatMulNBits afterwards), the same graph over the engine addon's custom projection ops;
    `image_cfg`: the preprocessing constants the vision graph computes pixel values with."""
    text = model.config.text_config
    H = text.hidden_size
    kvh, hd, L = text.num_key_value_heads, text.hidden_size // text.num_attention_heads, text.num_hidden_layers
    graphs = {}
    dev = next(model.parameters()).device
    # embed_tokens
    _onnx_export(EmbedGraph(model), (torch.tensor([[1, 2, 3]], dtype=torch.int64, device=dev),), out / "embed_tokens.onnx",
                 ["input_ids"], ["inputs_embeds"],
                 {"input_ids": {0: "batch", 1: "seq"}, "inputs_embeds": {0: "batch", 1: "seq"}})
    graphs["embed_tokens"] = "embed_tokens.onnx"
    # decoder: trace with past length 2, seq 3
    ins, outs, dyn = _decoder_io(L)
    past = [torch.zeros(1, kvh, 2, hd, dtype=dtype, device=dev) for _ in range(2 * L)]
    args = (torch.zeros(1, 3, H, dtype=dtype, device=dev), torch.ones(1, 5, dtype=torch.int64, device=dev),
            torch.arange(2, 5, device=dev).view(1, 1, 3).expand(3, 1, 3).contiguous(), *past)
    _onnx_export(DecoderGraph(model), args, out / "decoder.onnx", ins, outs, dyn)
    graphs["decoder"] = "decoder.onnx"
    if fused_decoder:
        _save_onnx(build_fused_decoder(model, np.float16 if dtype == torch.float16 else np.float32,
                                       weights_nk=not quantized),
                   out / FUSED_DECODER_FILE, size_threshold=1024)  # small shape inputs stay inline
        graphs["decoder_fused"] = FUSED_DECODER_FILE
        if not quantized:
            write_lvr_ops_graph(out / FUSED_DECODER_FILE, out / FUSED_LVR_FILE)
            graphs["decoder_fused_lvr"] = FUSED_LVR_FILE
    export_vision_graph(model, out / "vision.onnx", image_cfg)
    graphs["vision"] = "vision.onnx"
    if getattr(model, "lvr_head", None) is not None:
        _onnx_export(HeadGraph(model), (torch.zeros(1, H, dtype=dtype, device=dev),), out / "lvr_head.onnx", ["hidden_state"],
                     ["head_state", "logits"], {"hidden_state": {0: "batch"}, "head_state": {0: "batch"},
                                                 "logits": {0: "batch"}})
        graphs["lvr_head"] = "lvr_head.onnx"
    return graphs


def write_lvr_ops_graph(fused_path: Path, path: Path) -> None:
    """`lvr_ops_graph` of the saved fused decoder at `path`, reading the fused decoder's data file (no copy)."""
    import onnx

    onnx.save_model(lvr_ops_graph(onnx.load(str(fused_path), load_external_data=False)), str(path))


def quantize_int4(path: Path, block_size: int = 32) -> None:
    """Weight-only int4 (MatMulNBits) of every MatMul with a constant weight, in place, ONNX Runtime's quantizer."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    model = onnx.load(str(path), load_external_data=True)
    cfg = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, accuracy_level=None)
    import logging

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    q = MatMulNBitsQuantizer(model, algo_config=cfg)
    q.process()
    _save_onnx(q.model.model, path, size_threshold=1024)  # shape inputs (Split sizes) inline


# -- verification ----------------------------------------------------------------------------------------------------
def _err(ref: np.ndarray, got: np.ndarray) -> dict:
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        raise ExportError(f"shape mismatch: torch {ref.shape} vs onnxruntime {got.shape}")
    if not np.isfinite(got).all():
        return {"max_abs": float("inf"), "max_rel": float("inf")}
    d = float(np.abs(ref - got).max())
    return {"max_abs": d, "max_rel": d / max(float(np.abs(ref).max()), 1e-6)}


def _merge(acc: dict, name: str, e: dict) -> None:
    cur = acc.setdefault(name, {"max_abs": 0.0, "max_rel": 0.0})
    cur["max_abs"] = max(cur["max_abs"], e["max_abs"])
    cur["max_rel"] = max(cur["max_rel"], e["max_rel"])


def verify_against_torch(model, bundle_dir: Path, manifest: dict, grids=((1, 8, 12), (1, 6, 4)),
                         prompt_len: int = 5, decode_steps: int = 3, seed: int = 0,
                         providers: list[str] | None = None, fused: bool = False) -> dict:
    """Run the bundle in onnxruntime and the fp32 PyTorch model (transformers' forward) on the same inputs; `fused`:
    the decoder steps also go through `graphs.decoder_fused` (its errors under `fused.*`), against the same reference
    steps."""
    from .backends import FusedOrtBackend, OrtBackend, TorchBackend

    ort_b = OrtBackend(bundle_dir, manifest, providers=providers)
    decoders = {"": ort_b}
    if fused:
        decoders["fused."] = FusedOrtBackend(bundle_dir, manifest, providers=providers)
    ref = TorchBackend(model, ImageConfig.from_json(manifest["preprocessing"]))
    rng = np.random.default_rng(seed)
    errs: dict = {}
    vcfg = model.config.vision_config
    feats = None
    for grid in grids:
        ps = vcfg.patch_size
        rgb = rng.integers(0, 256, (grid[1] * ps, grid[2] * ps, vcfg.in_channels), dtype=np.uint8)
        r = ref.vision(rgb)
        _merge(errs, "image_features", _err(r, ort_b.vision(rgb)))
        feats = r if feats is None else feats
    ids = rng.integers(0, 151000, size=prompt_len).tolist()
    _merge(errs, "inputs_embeds", _err(ref.embed(ids), ort_b.embed(ids)))
    emb = np.concatenate([ref.embed(ids), feats[None]], axis=1)  # text then image tokens
    s = emb.shape[1]
    pos = np.tile(np.arange(s, dtype=np.int64), (3, 1, 1))
    ref.reset()
    for b in decoders.values():
        b.reset()
    x = emb
    for step in range(decode_steps + 1):
        total = s + step
        mask = np.ones((1, total), dtype=np.int64)
        rl, rh = ref.forward(x, mask, pos)
        for prefix, b in decoders.items():
            ol, oh = b.forward(x, mask, pos)
            _merge(errs, f"{prefix}logits", _err(rl, ol))
            _merge(errs, f"{prefix}last_hidden_state", _err(rh, oh))
        # alternate a text step and a latent step (the fed-back hidden state)
        x = rh.reshape(1, 1, -1) if step % 2 == 0 else ref.embed([int(np.argmax(rl))])
        pos = np.full((3, 1, 1), total + 7, dtype=np.int64)
    if ort_b.has_head:
        h = ref.forward(x, np.ones((1, s + decode_steps + 2), dtype=np.int64), pos)[1]
        rh, rl = ref.head(h)
        oh, ol = ort_b.head(h)
        _merge(errs, "head_state", _err(rh, oh))
        _merge(errs, "head_logits", _err(rl, ol))
    return {"reference": "pytorch-fp32 (transformers forward, eager attention)", "outputs": errs,
            "decoders": ["decoder", "decoder_fused"] if fused else ["decoder"],
            "image_grids": [list(g) for g in grids], "decode_steps": decode_steps}


# -- top level ---------------------------------------------------------------------------------------------------------
def _git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=T.repo_root(), capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return None


def _architecture(model) -> dict:
    t, v = model.config.text_config, model.config.vision_config
    rp = getattr(t, "rope_parameters", None) or {}
    return {
        "model_type": "qwen2_5_vl", "hidden_size": t.hidden_size, "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads, "num_key_value_heads": t.num_key_value_heads,
        "head_dim": t.hidden_size // t.num_attention_heads, "intermediate_size": t.intermediate_size,
        "vocab_size": t.vocab_size, "max_position_embeddings": t.max_position_embeddings,
        "rms_norm_eps": t.rms_norm_eps, "rope_theta": rp.get("rope_theta", 1e6),
        "mrope_section": list(model.model.language_model.rotary_emb.mrope_section),
        "tie_word_embeddings": bool(getattr(model.config, "tie_word_embeddings", False)),
        "vision": {"depth": v.depth, "hidden_size": v.hidden_size, "num_heads": v.num_heads,
                   "intermediate_size": v.intermediate_size, "patch_size": v.patch_size,
                   "temporal_patch_size": v.temporal_patch_size, "spatial_merge_size": v.spatial_merge_size,
                   "window_size": v.window_size, "fullatt_block_indexes": list(v.fullatt_block_indexes),
                   "out_hidden_size": v.out_hidden_size, "in_channels": v.in_channels},
    }


def export_bundle(src: str, dest: str, precision: str = "fp32", run_id: str | None = None,
                  max_error: float | None = None, verify: bool = True, log=print,
                  system_prompt: str = DEFAULT_SYSTEM_PROMPT, lvr_steps: int = LVR_DEFAULTS["steps"],
                  fused_decoder: bool = False) -> dict:
    """Export `src` to a bundle at `dest`; returns the manifest. Raises ExportError on failure, CheckpointError when
    the source's weights do not match its config.json (no marker written in either case). `system_prompt` (a
    training run's `systemPrompt`) is the bundle's default system message: in its chat template and in
    `manifest.default_system_prompt`, which libs/engine reads. `lvr_steps`: the latent steps a request that names
    none decodes with (`manifest.lvr.steps`; a model trained on blocks of N latents answers best with N)."""
    if precision not in B.PRECISIONS:
        raise ExportError(f"precision must be one of {B.PRECISIONS}, got {precision!r}")
    if lvr_steps < 1:
        raise ExportError(f"lvr_steps must be >= 1, got {lvr_steps}")
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="lvr-export-") as tmp:
        work = Path(tmp)
        src_dir = resolve_source(src, work)
        stage = work / "bundle" if storage.is_s3(dest) else Path(dest)
        stage.mkdir(parents=True, exist_ok=True)
        for name in (B.MARKER, B.MANIFEST):  # an existing bundle here is no longer complete
            (stage / name).unlink(missing_ok=True)
        if storage.is_s3(dest):
            storage.delete_object(dest, B.MARKER)
        log(f"[export] loading {src}")
        model = load_lvr_model(str(src_dir), dtype=torch.float32)  # CheckpointError names missing/unexpected keys
        source_weights = weights_digest(src_dir)
        settings = LVRSettings.from_config(model.config)
        tok = T.load_tokenizer(src_dir)  # checks the LVR token ids
        del tok
        dtype = ACTIVATIONS[precision]
        export_model = copy.deepcopy(model).to(dtype) if dtype != torch.float32 else model
        log(f"[export] tracing graphs ({precision})")
        t1 = time.time()
        graphs = export_graphs(export_model, stage, dtype, fused_decoder=fused_decoder,
                               image_cfg=_image_config(src_dir), quantized=precision in QUANTIZED)
        if precision in QUANTIZED:
            for name in ("decoder", "decoder_fused"):
                if name in graphs:
                    quantize_int4(stage / graphs[name])
        export_s = time.time() - t1
        del export_model
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(src_dir / name, stage / name)
        (stage / "chat_template.jinja").write_text(with_default_system_prompt(_chat_template(src_dir), system_prompt))
        lvr_files = {}
        if getattr(model, "lvr_latent_end_emb", None) is not None:
            model.lvr_latent_end_emb.detach().float().numpy().astype("<f4").tofile(stage / "lvr_latent_end_emb.bin")
            lvr_files["latent_end_emb"] = "lvr_latent_end_emb.bin"
        np_dt = "float16" if dtype == torch.float16 else "float32"
        manifest = {
            "format": B.FORMAT, "format_version": B.FORMAT_VERSION, "precision": precision,
            "architecture": _architecture(model),
            "special_tokens": T.SpecialIds().to_json(),
            "preprocessing": _image_config(src_dir).to_json(),
            "generation": _generation(src_dir),
            "lvr": {"lvr_head": settings.lvr_head, "lvr_head_type": settings.lvr_head_type,
                    "latent_end_token": settings.latent_end_token, **LVR_DEFAULTS, "steps": lvr_steps},
            "graphs": graphs, "lvr_files": lvr_files,
            "io_dtypes": {"embeds": np_dt, "kv": np_dt, "logits": "float32", "image_bytes": "uint8",
                          "image_features": np_dt},
            "chat_template": "chat_template.jinja", "default_system_prompt": system_prompt,
            "tokenizer": "tokenizer.json",
            "provenance": {"source": src, "source_weights": source_weights, "run_id": run_id,
                           "exporter": "lvr.export", "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                           "git_sha": _git_sha(), "versions": _versions()},
        }
        if verify:
            log("[export] verifying onnxruntime vs PyTorch")
            ver = verify_against_torch(model, stage, manifest, fused=fused_decoder)
            bound = DEFAULT_BOUNDS[precision] if max_error is None else max_error
            worst = max(e["max_rel"] for e in ver["outputs"].values())
            ver.update({"bound": {"max_rel": bound}, "worst_max_rel": worst, "passed": bool(worst <= bound)})
            manifest["verification"] = ver
            if not ver["passed"]:
                raise ExportError(f"verification failed: max relative error {worst:.3g} > bound {bound:.3g} "
                                  f"({json.dumps(ver['outputs'])})")
        else:
            manifest["verification"] = {"passed": None, "skipped": True}
        manifest["export_seconds"] = round(export_s, 3)
        manifest = _finish(stage, manifest)
        if storage.is_s3(dest):
            names = [f["path"] for f in manifest["files"]] + [B.MANIFEST, B.MARKER]
            storage.upload_files(stage, dest, names)
        log(f"[export] done in {time.time() - t0:.1f}s -> {dest}")
        return manifest


def _finish(stage: Path, manifest: dict) -> dict:
    B.write_manifest(stage, manifest)
    B.write_marker(stage)
    return B.read_manifest(stage)


def _versions() -> dict:
    import onnx
    import onnxruntime
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}
