"""Probe for issue #14's native path: the bundle's fused decoder (`graphs.decoder_fused`, lvr.fused_decoder) on ONNX
Runtime's CUDA execution provider, every input and output bound once to a fixed GPU buffer (torch-allocated), the KV
buffers shared by past and present, with and without ORT's CUDA graph capture. This is what the Node addon would
run; its numbers decide whether the addon over the CUDA EP can meet the issue's goals.

Per (batch, context): ms per decode step (one new position per row, all rows at `context`), over `--steps` steps
after warm-up. The KV buffers are not prefilled: attention reads `context` cached positions either way, so the work
per step is the same. Checks: logits with the CUDA graph equal those without (same inputs), the fused graph's logits
match the bundle's plain decoder.onnx on the same prefill + step (fp16 noise), and a latent step (the hidden state
copied device-to-device into the next input) costs about a token step.

    python bench/engine/gpu/ort_fused_probe.py WORK --out fused.json [--batches 1,8,32] [--contexts 32,1024]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


class FusedStep:
    """One ORT session over decoder_fused.onnx with all I/O bound to torch CUDA buffers for `batch` rows."""

    def __init__(self, path: Path, arch: dict, batch: int, capacity: int, cuda_graph: bool):
        import onnxruntime as ort

        opts = {"device_id": "0", "enable_cuda_graph": "1" if cuda_graph else "0"}
        self.sess = ort.InferenceSession(str(path), providers=[("CUDAExecutionProvider", opts)])
        H, L = arch["hidden_size"], arch["num_hidden_layers"]
        kvh, D, V = arch["num_key_value_heads"], arch["head_dim"], arch["vocab_size"]
        dev, f16 = "cuda", torch.float16
        self.kv = [torch.zeros(batch, kvh, capacity, D, dtype=f16, device=dev) for _ in range(2 * L)]
        self.embeds = torch.randn(batch, 1, H, dtype=f16, device=dev)
        self.pos = torch.zeros(3, batch, 1, dtype=torch.int64, device=dev)
        self.seqlens = torch.zeros(batch, dtype=torch.int32, device=dev)
        self.last_index = torch.zeros(batch, dtype=torch.int64, device=dev)  # S = 1: position 0 of every row
        self.total = ort.OrtValue.ortvalue_from_numpy(np.array(1, np.int32))
        self.logits = torch.empty(batch, V, dtype=torch.float32, device=dev)
        self.hidden = torch.empty(batch, H, dtype=f16, device=dev)
        io = self.sess.io_binding()

        def bind_in(name, t):
            io.bind_input(name, "cuda", 0, _np_type(t), list(t.shape), t.data_ptr())

        bind_in("inputs_embeds", self.embeds)
        bind_in("position_ids", self.pos)
        bind_in("seqlens_k", self.seqlens)
        bind_in("last_index", self.last_index)
        io.bind_ortvalue_input("total_sequence_length", self.total)
        io.bind_output("logits", "cuda", 0, np.float32, list(self.logits.shape), self.logits.data_ptr())
        io.bind_output("last_hidden_state", "cuda", 0, np.float16, list(self.hidden.shape), self.hidden.data_ptr())
        for i in range(L):
            for j, kind in enumerate(("key", "value")):
                t = self.kv[2 * i + j]
                bind_in(f"past_key_values.{i}.{kind}", t)
                io.bind_output(f"present.{i}.{kind}", "cuda", 0, np.float16, list(t.shape), t.data_ptr())
        self.io = io

    def step(self, position: int, latent: bool = False) -> None:
        if latent:
            self.embeds.copy_(self.hidden.view_as(self.embeds))
        self.pos.fill_(position)
        self.seqlens.fill_(position)
        self.total.update_inplace(np.array(position + 1, np.int32))
        torch.cuda.synchronize()
        self.sess.run_with_iobinding(self.io)


def _np_type(t: torch.Tensor):
    return {torch.float16: np.float16, torch.float32: np.float32, torch.int64: np.int64,
            torch.int32: np.int32}[t.dtype]


def time_steps(step: FusedStep, context: int, steps: int, latent: bool = False, warmup: int = 6) -> float:
    for s in range(warmup):
        step.step(context + s, latent)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(steps):
        step.step(context + warmup + s, latent)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps * 1e3


def graph_equals_eager(bundle: Path, arch: dict, context: int) -> dict:
    """Same inputs through the captured and the uncaptured session: logits must agree."""
    out = {}
    for graph in (False, True):
        st = FusedStep(bundle / "decoder_fused.onnx", arch, 1, context + 64, graph)
        torch.manual_seed(0)
        for t in st.kv:
            t.normal_()
        st.embeds.copy_(torch.randn_like(st.embeds))
        for s in range(8):
            st.step(context + s)
        torch.cuda.synchronize()
        out[graph] = st.logits.clone()
        del st
    return {"max_abs_diff": float((out[True] - out[False]).abs().max()),
            "argmax_equal": bool(torch.equal(out[True].argmax(-1), out[False].argmax(-1)))}


def fused_vs_plain(bundle: Path, arch: dict, prompt: int = 24, decode: int = 4) -> dict:
    """Prefill + a few steps through decoder_fused.onnx and decoder.onnx (both on the CUDA EP), same inputs."""
    import onnxruntime as ort

    H, L = arch["hidden_size"], arch["num_hidden_layers"]
    kvh, D = arch["num_key_value_heads"], arch["head_dim"]
    prov = [("CUDAExecutionProvider", {"device_id": "0"})]
    fused = ort.InferenceSession(str(bundle / "decoder_fused.onnx"), providers=prov)
    plain = ort.InferenceSession(str(bundle / "decoder.onnx"), providers=prov)
    rng = np.random.default_rng(0)
    cap = prompt + decode
    kv = [ort.OrtValue.ortvalue_from_numpy(np.zeros((1, kvh, cap, D), np.float16), "cuda", 0) for _ in range(2 * L)]
    past = [np.zeros((1, kvh, 0, D), np.float16)] * (2 * L)
    worst, argmax_equal = 0.0, True
    x = rng.standard_normal((1, prompt, H)).astype(np.float16)
    pos = np.stack([np.arange(prompt), np.arange(prompt) // 4, np.arange(prompt) % 4])[:, None].astype(np.int64)
    total = 0
    for step in range(decode + 1):
        total += x.shape[1]
        feeds = {"inputs_embeds": x, "attention_mask": np.ones((1, total), np.int64), "position_ids": pos}
        feeds.update({f"past_key_values.{i}.{k}": past[2 * i + j] for i in range(L)
                      for j, k in enumerate(("key", "value"))})
        res = dict(zip([o.name for o in plain.get_outputs()], plain.run(None, feeds)))
        past = [res[f"present.{i}.{k}"] for i in range(L) for k in ("key", "value")]
        io = fused.io_binding()
        io.bind_cpu_input("inputs_embeds", x)
        io.bind_cpu_input("position_ids", pos)
        io.bind_cpu_input("seqlens_k", np.array([total - 1], np.int32))
        io.bind_cpu_input("total_sequence_length", np.array(total, np.int32))
        io.bind_cpu_input("last_index", np.array([x.shape[1] - 1], np.int64))
        io.bind_output("logits")
        io.bind_output("last_hidden_state")
        for i in range(L):
            for j, k in enumerate(("key", "value")):
                io.bind_ortvalue_input(f"past_key_values.{i}.{k}", kv[2 * i + j])
                io.bind_ortvalue_output(f"present.{i}.{k}", kv[2 * i + j])
        fused.run_with_iobinding(io)
        fl, fh = (o.numpy() for o in io.get_outputs()[:2])
        pl = res["logits"]
        worst = max(worst, float(np.abs(fl - pl).max() / max(np.abs(pl).max(), 1e-6)))
        argmax_equal &= bool(np.array_equal(fl.argmax(-1), pl.argmax(-1)))
        x = fh.reshape(1, 1, H)
        pos = np.full((3, 1, 1), total + 3, np.int64)
    return {"max_rel_logits": worst, "argmax_equal": argmax_equal, "prompt": prompt, "decode_steps": decode}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--contexts", default="32,1024")
    ap.add_argument("--steps", type=int, default=64)
    args = ap.parse_args()
    import onnxruntime as ort

    bundle = Path(args.work) / "bundle-fp16"
    arch = json.loads((bundle / "manifest.json").read_text())["architecture"]
    out: dict = {"probe": "ort_fused", "ort_version": ort.__version__, "layers": arch["num_hidden_layers"],
                 "runs": [], "errors": {}}

    def save():
        Path(args.out).write_text(json.dumps(out, indent=2))

    def part(name, fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - the probe reports what failed and goes on
            out["errors"][name] = repr(e)[:1500]
        finally:
            save()

    out["fused_vs_plain"] = part("fused_vs_plain", lambda: fused_vs_plain(bundle, arch))
    out["graph_equals_eager"] = part("graph_equals_eager", lambda: graph_equals_eager(bundle, arch, 100))
    contexts = [int(c) for c in args.contexts.split(",")]
    for batch in (int(b) for b in args.batches.split(",")):
        for graph in (False, True):
            def run(batch=batch, graph=graph):
                st = FusedStep(bundle / "decoder_fused.onnx", arch, batch, max(contexts) + 256, graph)
                res = []
                for c in contexts:
                    ms = time_steps(st, c, args.steps)
                    r = {"batch": batch, "cuda_graph": graph, "context": c, "ms_per_step": ms}
                    if batch == 1:
                        r["ms_per_latent_step"] = time_steps(st, c + 128, args.steps, latent=True)
                    r["aggregate_tok_s"] = batch * 1e3 / r["ms_per_step"]
                    res.append(r)
                return res
            out["runs"] += part(f"b{batch}_graph{int(graph)}", run) or []
    save()
    print("PROBE " + json.dumps(out))


if __name__ == "__main__":
    main()
