"""Data pipeline: validation messages, `<lvr>` expansion (§2.4), labels (§2.6), packing (§2.7)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lvr import tokens as T
from lvr.data.errors import DataError
from lvr.data.packing import PackedBuffer, PackedStream, PackingOptions, collate, truncate_long
from lvr.data.records import parse_meta, validate_grpo_record, validate_sft_record
from lvr.data.sft import IGNORE, Sample, SftDataOptions, build_sft_sample, expand_lvr

from _train_helpers import sft_record, tiny_opts


def test_lvr_expansion_with_and_without_latent_end():
    text = "pre <lvr>\n<answer> x </answer>"
    assert expand_lvr(text, [3], SftDataOptions()) == \
        "pre <|lvr_start|><|lvr|><|lvr|><|lvr|><|lvr_latent_end|><|lvr_end|>\n<answer> x </answer>"
    assert expand_lvr(text, [2], SftDataOptions(insert_latent_end=False, keep_text_before_lvr=False)) == \
        "<|lvr_start|><|lvr|><|lvr|><|lvr_end|>\n<answer> x </answer>"


def test_sample_labels_and_latent_indices(codec, data_dir):
    rec = validate_sft_record(sft_record(2), "sft.json", 0, str(data_dir))
    s = build_sft_sample(rec, codec, str(data_dir), tiny_opts())
    ids, labels = s.input_ids, s.labels
    # image 120x150 -> 112x140 -> grid 8x10 patches -> 4x5 = 20 merged tokens
    assert s.image_grid_thw == [(1, 8, 10)] and ids.count(T.IMAGE_PAD_ID) == 20
    assert s.pixel_values.shape == (80, 1176)
    from lvr.bbox import bbox_to_token_indices
    assert s.lvr_index == bbox_to_token_indices((0.1, 0.1, 0.6, 0.9), 8, 10)
    assert ids.count(T.LVR_ID) == len(s.lvr_index) > 0
    start = ids.index(T.LVR_START_ID)
    # everything up to and including the assistant header is ignored
    assert all(lab == IGNORE for lab in labels[:start])
    assert codec.decode(ids[:start], False).endswith("<|im_start|>assistant\n")
    # <|lvr|> never a target; the delimiters, answer, <|im_end|> and trailing newline are
    for tid, lab in zip(ids, labels):
        if tid == T.LVR_ID:
            assert lab == IGNORE
    supervised = [t for t, lab in zip(ids, labels) if lab != IGNORE]
    assert supervised[0] == T.LVR_START_ID and T.LVR_LATENT_END_ID in supervised and T.LVR_END_ID in supervised
    assert codec.decode(supervised, False).endswith("<answer> thing2 </answer><|im_end|>\n")
    assert ids[0] == T.IM_START_ID  # no BOS


@pytest.mark.parametrize("mutate,field,needle", [
    (lambda r: r.pop("image"), "image", "missing"),
    (lambda r: r.update(bboxes=[[0.1, 0.2, 1.5, 0.9]]), "bboxes[0]", "normalised"),
    (lambda r: r.update(bboxes=[]), "bboxes", "placeholder"),
    (lambda r: r["conversations"][1].update({"from": "human"}), "conversations[1]", "'gpt'"),
    (lambda r: r["conversations"][0].update(value="no image here"), "conversations", "<image>"),
    (lambda r: r.update(bboxes=[[0.5, 0.2, 0.1, 0.9]]), "bboxes[0]", "x0 <= x1"),
])
def test_validation_names_record_and_field(mutate, field, needle):
    raw = sft_record(0)
    mutate(raw)
    with pytest.raises(DataError) as e:
        validate_sft_record(raw, "viscot.json", 7)
    assert e.value.index == 7 and e.value.field == field
    assert "viscot.json" in str(e.value) and "record 7" in str(e.value) and needle in str(e.value)


def test_stage2_record_and_meta_validation():
    r = validate_grpo_record({"image": "x.png", "conversations": [
        {"from": "human", "value": "<image>How many?"}, {"from": "gpt", "value": "<answer>4</answer>"}]}, "s", 0)
    assert r.question == "How many?" and r.solution == "<answer>4</answer>"
    with pytest.raises(DataError, match="field 'data_path'"):
        parse_meta([{"image_folder": "x"}], "meta.json")


def test_missing_image_is_a_data_error(codec, tmp_path):
    rec = validate_sft_record(sft_record(0, "nope.png"), "sft.json", 3, str(tmp_path))
    with pytest.raises(DataError, match="record 3.*field 'image'"):
        build_sft_sample(rec, codec, str(tmp_path), tiny_opts())


def _sample(n: int, key=(0, 0)) -> Sample:
    ids = [T.IM_START_ID, T.VISION_START_ID, T.IMAGE_PAD_ID, T.VISION_END_ID] + [5] * (n - 4)
    return Sample(ids, [IGNORE] * n, np.zeros((16, 1176), np.float32), [(1, 4, 4)], [], key)


def test_packing_buffer_rules():
    buf = PackedBuffer(PackingOptions(max_packed_tokens=100, long_seq_threshold=40, max_instance_per_batch=4))
    assert buf.add(_sample(10)) == [] and buf.add(_sample(10)) == [] and buf.add(_sample(10)) == []
    ready = buf.add(_sample(10))                   # 4 instances -> emitted
    assert [len(g) for g in ready] == [4]
    long = buf.add(_sample(50))                    # >= threshold: alone, never merged
    assert [len(g) for g in long] == [1] and len(long[0][0]) == 50
    assert [len(b) for b in buf.buffers] == []
    buf.add(_sample(35)); buf.add(_sample(35))
    buf.add(_sample(35))                           # 105 > 100 -> new buffer
    assert [len(b) for b in buf.buffers] == [2, 1]


def test_truncation_drops_cut_images_and_trims_latents():
    s = _sample(50)
    s.input_ids[30:33] = [T.LVR_ID] * 3
    s.lvr_index = [0, 1, 2]
    cut = truncate_long(s, 31)
    assert len(cut) == 31 and cut.lvr_index == [0]
    assert truncate_long(_sample(50), 2) is None   # the cut falls inside the image


def test_stream_state_resumes_identically():
    build = lambda d, i: _sample(8 + (i % 5) + 3 * d, key=(d, i))
    opts = PackingOptions(max_packed_tokens=40, long_seq_threshold=30, max_instance_per_batch=3)
    a = PackedStream([7, 3], build, seed=42, opts=opts)
    first = [[s.key for s in next(a)] for _ in range(3)]
    st = json.loads(json.dumps(a.state()))         # JSON round trip, as in a checkpoint
    rest_a = [[s.key for s in next(a)] for _ in range(5)]
    b = PackedStream([7, 3], build, seed=42, opts=opts)
    b.load_state(st)
    assert [[s.key for s in next(b)] for _ in range(5)] == rest_a
    assert first  # the stream produced groups before the snapshot


def test_collate_offsets_latent_targets_per_row():
    s1, s2 = _sample(8), _sample(9)
    s1.lvr_index, s2.lvr_index = [1, 3], [0, 2]
    b = collate([s1, s2], "pad")
    assert b["lvr_target"].tolist() == [1, 3, 4 + 0, 4 + 2]
    assert b["input_ids"].shape == (2, 9) and b["attention_mask"].sum().item() == 17
    f = collate([s1, s2], "flat")
    assert f["input_ids"].shape == (1, 17) and f["seq_lens"] == [8, 9]
