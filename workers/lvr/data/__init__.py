"""Training data for the LVR worker (LVR-SPEC §2): records, validation, `<lvr>` expansion, labels, packing.

- `lvr.data.errors`   DataError: names the record and the field at fault
- `lvr.data.records`  stage-1 LLaVA records, the meta-JSON of several datasets, stage-2 records
- `lvr.data.text`     tokenizer loading/encoding (the `tokenizers` JSON of the model folder)
- `lvr.data.sft`      one stage-1 sample: sequence assembly (§2.3), `<lvr>` expansion (§2.4), labels (§2.6)
- `lvr.data.packing`  the InternVL-style greedy buffer (§2.7), the sampled multi-dataset stream, the collator
- `lvr.data.images`   image sources: local folders or s3:// (MinIO) prefixes

bbox -> latent-token mapping (§2.5) and image preprocessing (§2.2) come from `lvr.bbox` / `lvr.preprocess`.
"""
