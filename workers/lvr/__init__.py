"""LVR (Latent Visual Reasoning) worker package: PyTorch reference model, reference decoding, bundle exporter.

Modules (import what you need; nothing heavy is imported here):
- `lvr.tokens`        LVR special token ids and tokenizer loading
- `lvr.bbox`          smart_resize and bbox -> latent-token indices (LVR-SPEC §2.2, §2.5)
- `lvr.mrope`         M-RoPE position ids (LVR-SPEC Appendix A)
- `lvr.vision_inputs` host-side vision graph inputs (window index, window ids, rotary position ids)
- `lvr.preprocess`    image -> pixel_values; chat prompt -> token ids
- `lvr.model`         the LVR model on transformers' Qwen2.5-VL (config fields, optional head / latent-end vector)
- `lvr.backends`      forward-step backends (PyTorch model, ONNX bundle) used by decoding
- `lvr.decoding`      reference LVR decoding: steps / latent / end_token (LVR-SPEC §4)
- `lvr.tiny`          deterministic tiny random models for tests
- `lvr.export`        HF checkpoint -> model bundle
- `lvr.bundle`        manifest, checksums, completion marker, verification
- `lvr.storage`       local / s3:// (MinIO) file transfer
- `lvr.golden`        golden-output generator for the TypeScript parity tests
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
