"""Forward-step backends for reference decoding: the PyTorch LVR model, or an exported bundle in onnxruntime.

Both expose the same numpy interface, so `lvr.decoding` runs one state machine over either:
- `embed(ids)` -> [1, S, H] in the model dtype
- `vision(rgb, pixel_values=None)` -> [M, H] merged visual tokens (raster order) in the model dtype, from the resized
  image as uint8 [H, W, 3] (`lvr.preprocess.resized_rgb`); `pixel_values`: the processor's values of that image when
  the caller has them (`Prompt.pixel_values`), so that a backend that needs them does not compute them again
- `forward(embeds, attention_mask, position_ids)` -> (logits float32 [V], hidden [1, H] model dtype); the backend
  keeps the KV cache; `reset()` drops it.
- `head(hidden)` -> (head_hidden, logits) for configs with an LVR head; `latent_end_emb` (float32 [H] or None).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .preprocess import ImageConfig, rgb_grid, rgb_to_pixel_values
from .vision_inputs import VisionGeometry, vision_host_inputs


class TorchBackend:
    """transformers' own modules (eager attention, DynamicCache) — the reference; `image_cfg`: the processor
    constants that turn an image into its pixel values."""

    def __init__(self, model, image_cfg: ImageConfig = ImageConfig()):
        from transformers import DynamicCache

        self.model = model
        self.image_cfg = image_cfg
        self._cache_cls = DynamicCache
        self.cache = None
        self.dtype = next(model.parameters()).dtype
        self.device = next(model.parameters()).device
        self.np_dtype = np.float16 if self.dtype == torch.float16 else np.float32
        emb = getattr(model, "lvr_latent_end_emb", None)
        self.latent_end_emb = None if emb is None else emb.detach().float().numpy()
        self.has_head = getattr(model, "lvr_head", None) is not None

    def reset(self) -> None:
        self.cache = None

    def _np(self, t: torch.Tensor) -> np.ndarray:
        return t.detach().to(torch.float16 if self.dtype == torch.float16 else torch.float32).cpu().numpy()

    @torch.no_grad()
    def embed(self, ids) -> np.ndarray:
        t = torch.as_tensor(np.asarray(ids, dtype=np.int64)).reshape(1, -1).to(self.device)
        return self._np(self.model.model.language_model.embed_tokens(t))

    @torch.no_grad()
    def vision(self, rgb: np.ndarray, pixel_values: np.ndarray | None = None) -> np.ndarray:
        if pixel_values is None:
            pixel_values = rgb_to_pixel_values(rgb, self.image_cfg)
        pv = torch.as_tensor(pixel_values).to(self.device, self.dtype)
        grid = torch.as_tensor([list(rgb_grid(rgb, self.image_cfg))], dtype=torch.int64, device=self.device)
        out = self.model.model.get_image_features(pv, grid, return_dict=True).pooler_output
        return self._np(torch.cat(list(out), dim=0))

    @torch.no_grad()
    def forward(self, embeds: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray):
        if self.cache is None:
            self.cache = self._cache_cls(config=self.model.config.text_config)
        out = self.model.model.language_model(
            inputs_embeds=torch.as_tensor(embeds).to(self.device, self.dtype),
            attention_mask=torch.as_tensor(attention_mask, dtype=torch.int64, device=self.device),
            position_ids=torch.as_tensor(position_ids, dtype=torch.int64, device=self.device),
            past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        h = out.last_hidden_state[:, -1, :]
        logits = self.model.lm_head(h).float()
        return logits[0].cpu().numpy(), self._np(h)

    @torch.no_grad()
    def head(self, hidden: np.ndarray):
        h = self.model.apply_head(torch.as_tensor(hidden).to(self.device, self.dtype))
        return self._np(h), self.model.lm_head(h).float()[0].cpu().numpy()


class OrtBackend:
    """An exported bundle (docs/bundle-format.md) in onnxruntime (CPU EP by default)."""

    unused_graphs = ("decoder_fused", "decoder_fused_lvr")

    def __init__(self, bundle_dir: str | Path, manifest: dict | None = None, providers: list[str] | None = None,
                 threads: int | None = None):
        import json

        import onnxruntime as ort

        self.dir = Path(bundle_dir)
        self.manifest = manifest or json.loads((self.dir / "manifest.json").read_text())
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        prov = providers or ["CPUExecutionProvider"]
        graphs = self.manifest["graphs"]
        # Each backend opens the one decoder flavour it steps through, not both.
        self.sessions = {k: ort.InferenceSession(str(self.dir / f), so, providers=prov) for k, f in graphs.items()
                         if k not in self.unused_graphs}
        arch = self.manifest["architecture"]
        self.layers = int(arch["num_hidden_layers"])
        self.kv_heads = int(arch["num_key_value_heads"])
        self.head_dim = int(arch["head_dim"])
        self.np_dtype = np.float16 if self.manifest["io_dtypes"]["embeds"] == "float16" else np.float32
        v = arch["vision"]
        self.geo = VisionGeometry(int(v["spatial_merge_size"]), int(v["window_size"]), int(v["patch_size"]))
        self.image_cfg = ImageConfig.from_json(self.manifest["preprocessing"])
        self.latent_end_emb = None
        end = self.manifest.get("lvr_files", {}).get("latent_end_emb")
        if end:
            self.latent_end_emb = np.fromfile(self.dir / end, dtype="<f4")
        self.has_head = "lvr_head" in self.sessions
        self.past = None

    def reset(self) -> None:
        self.past = None

    def embed(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).reshape(1, -1)
        return self.sessions["embed_tokens"].run(None, {"input_ids": ids})[0]

    def vision(self, rgb: np.ndarray, pixel_values: np.ndarray | None = None) -> np.ndarray:
        session = self.sessions["vision"]
        # Graphs exported before `image_bytes` take the processor's float pixel values.
        images = {"image_bytes": lambda: np.ascontiguousarray(rgb, dtype=np.uint8),
                  "pixel_values": lambda: rgb_to_pixel_values(rgb, self.image_cfg) if pixel_values is None
                  else np.asarray(pixel_values, dtype=np.float32)}
        host = vision_host_inputs(rgb_grid(rgb, self.image_cfg), self.geo)
        feeds = {i.name: images[i.name]() if i.name in images else host[i.name] for i in session.get_inputs()}
        return session.run(None, feeds)[0]

    def forward(self, embeds: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray):
        b = embeds.shape[0]
        if self.past is None:
            empty = np.zeros((b, self.kv_heads, 0, self.head_dim), dtype=self.np_dtype)
            self.past = [(empty, empty) for _ in range(self.layers)]
        feeds = {"inputs_embeds": embeds.astype(self.np_dtype), "attention_mask": attention_mask.astype(np.int64),
                 "position_ids": position_ids.astype(np.int64)}
        for i, (k, v) in enumerate(self.past):
            feeds[f"past_key_values.{i}.key"] = k
            feeds[f"past_key_values.{i}.value"] = v
        outs = self.sessions["decoder"].run(None, feeds)
        names = [o.name for o in self.sessions["decoder"].get_outputs()]
        res = dict(zip(names, outs))
        self.past = [(res[f"present.{i}.key"], res[f"present.{i}.value"]) for i in range(self.layers)]
        return res["logits"][0].astype(np.float32), res["last_hidden_state"]

    def head(self, hidden: np.ndarray):
        h, logits = self.sessions["lvr_head"].run(None, {"hidden_state": hidden.astype(self.np_dtype)})
        return h, logits[0]


class FusedOrtBackend(OrtBackend):
    """The bundle with its fused decoder graph (`lvr.fused_decoder`): KV buffers of `capacity` positions allocated once,
    bound as both past and present so GroupQueryAttention appends in place. Batch 1 (the reference-decoding shape)."""

    unused_graphs = ("decoder", "decoder_fused_lvr")

    def __init__(self, bundle_dir: str | Path, manifest: dict | None = None, providers: list[str] | None = None,
                 threads: int | None = None, capacity: int = 4096):
        super().__init__(bundle_dir, manifest, providers, threads)
        self.capacity = capacity
        self.length = 0
        self.kv = None

    def reset(self) -> None:
        super().reset()
        self.length = 0

    def forward(self, embeds: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray):
        import onnxruntime as ort

        sess = self.sessions["decoder_fused"]
        s = embeds.shape[1]
        total = self.length + s
        if attention_mask.shape[-1] != total or not np.all(attention_mask):
            raise ValueError("the fused decoder takes an all-ones mask over past + new positions")
        if total > self.capacity:
            raise ValueError(f"sequence of {total} positions exceeds the KV capacity {self.capacity}")
        if self.kv is None:
            shape = (1, self.kv_heads, self.capacity, self.head_dim)
            self.kv = [ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, self.np_dtype)) for _ in range(2 * self.layers)]
        io = sess.io_binding()
        io.bind_cpu_input("inputs_embeds", np.ascontiguousarray(embeds, dtype=self.np_dtype))
        io.bind_cpu_input("position_ids", np.ascontiguousarray(position_ids, dtype=np.int64))
        io.bind_cpu_input("seqlens_k", np.array([total - 1], np.int32))
        io.bind_cpu_input("total_sequence_length", np.array(total, np.int32))
        io.bind_cpu_input("last_index", np.array([s - 1], np.int64))
        io.bind_output("logits")  # bound first: get_outputs() keeps the binding order
        io.bind_output("last_hidden_state")
        for i in range(self.layers):
            for j, kind in enumerate(("key", "value")):
                io.bind_ortvalue_input(f"past_key_values.{i}.{kind}", self.kv[2 * i + j])
                io.bind_ortvalue_output(f"present.{i}.{kind}", self.kv[2 * i + j])
        sess.run_with_iobinding(io)
        self.length = total
        logits, hidden = (o.numpy() for o in io.get_outputs()[:2])
        return logits[0].astype(np.float32), hidden
