"""LVR token ids (LVR-SPEC §1.2), smart_resize and bbox -> latent-token indices (§2.2, §2.5)."""

import json

import pytest

from lvr import tokens as T
from lvr.bbox import STAGE1_MAX_PIXELS, STAGE1_MIN_PIXELS, bbox_to_token_indices, smart_resize


def test_lvr_token_ids_are_the_spec_ids(tokenizer):
    assert [tokenizer.token_to_id(t) for t in T.LVR_TOKENS] == [151665, 151666, 151667, 151668]
    assert tokenizer.encode("<|lvr_start|><|lvr|><|lvr_latent_end|><|lvr_end|>", add_special_tokens=False).ids == [
        151665, 151666, 151667, 151668]
    assert (T.LVR_START_ID, T.LVR_ID, T.LVR_LATENT_END_ID, T.LVR_END_ID) == (151665, 151666, 151667, 151668)
    assert tokenizer.token_to_id("<|image_pad|>") == T.IMAGE_PAD_ID == 151655
    assert tokenizer.token_to_id("<|im_end|>") == T.IM_END_ID == 151645


def test_transformers_add_tokens_gives_the_same_ids_as_upstream_training():
    """train_lvr.py does tokenizer.add_tokens([...4 tokens...], special_tokens=True) on the base tokenizer."""
    from transformers import PreTrainedTokenizerFast

    base = T.qwen_tokenizer_dir() / "tokenizer.json"
    tok = PreTrainedTokenizerFast(tokenizer_file=str(base))
    assert len(tok) == T.BASE_VOCAB_ENTRIES
    tok.add_tokens(list(T.LVR_TOKENS), special_tokens=True)
    T.check_lvr_token_ids(tok)


def test_adding_tokens_twice_is_idempotent_and_wrong_ids_are_rejected():
    base = json.loads((T.qwen_tokenizer_dir() / "tokenizer.json").read_text())
    once = T.add_lvr_tokens_to_tokenizer_json(base)
    assert T.add_lvr_tokens_to_tokenizer_json(once)["added_tokens"] == once["added_tokens"]
    shifted = json.loads(json.dumps(base))
    shifted["added_tokens"].append({"id": 151665, "content": "<|other|>", "special": True, "single_word": False,
                                    "lstrip": False, "rstrip": False, "normalized": False})
    with pytest.raises(ValueError, match="151665"):
        T.add_lvr_tokens_to_tokenizer_json(shifted)


def test_smart_resize_worked_examples_and_bankers_rounding():
    assert smart_resize(500, 375, 28, STAGE1_MIN_PIXELS, STAGE1_MAX_PIXELS) == (504, 364)
    assert smart_resize(1080, 1920, 28, STAGE1_MIN_PIXELS, STAGE1_MAX_PIXELS) == (1092, 1932)
    assert smart_resize(70, 700, 28, 4 * 28 * 28, 16384 * 28 * 28) == (56, 700)  # 70/28 = 2.5 -> 2 (banker's)
    with pytest.raises(ValueError):
        smart_resize(10, 2500)


def test_bbox_worked_example_500x375():
    h, w = smart_resize(500, 375, 28, STAGE1_MIN_PIXELS, STAGE1_MAX_PIXELS)
    grid_h, grid_w = h // 14, w // 14
    assert (grid_h, grid_w) == (36, 26) and (grid_h // 2) * (grid_w // 2) == 234
    idx = bbox_to_token_indices((0.382, 0.456, 0.718, 0.656), grid_h, grid_w)
    assert len(idx) == 24
    assert idx[:7] == [108, 109, 110, 111, 112, 113, 121]
    assert idx == [yy * 13 + xx for yy in range(8, 12) for xx in range(4, 10)]


def test_bbox_worked_example_1080x1920():
    h, w = smart_resize(1080, 1920, 28, STAGE1_MIN_PIXELS, STAGE1_MAX_PIXELS)
    grid_h, grid_w = h // 14, w // 14
    assert (grid_h, grid_w) == (78, 138) and (grid_h // 2) * (grid_w // 2) == 2691
    assert len(bbox_to_token_indices((0.382, 0.456, 0.718, 0.656), grid_h, grid_w)) == 216


def test_bbox_edges_clamp_and_degenerate_box_gives_zero_tokens():
    assert bbox_to_token_indices((0.0, 0.0, 1.0, 1.0), 4, 6) == list(range(6))
    assert bbox_to_token_indices((-0.5, -0.5, 2.0, 2.0), 4, 6) == list(range(6))
    # a point box: x0g = x1g = 2 -> x0t = 1, x1t = (2+1)//2 = 1 -> no token (upstream has no >=1 guard)
    assert bbox_to_token_indices((0.5, 0.5, 0.5, 0.5), 4, 4) == []
    # a zero-width box on the right edge: x0g clamps to w-1 = 3 -> x0t = 1, x1t = 2 -> one column, rows 0..1
    assert bbox_to_token_indices((1.0, 0.0, 1.0, 1.0), 4, 4) == [1, 3]
