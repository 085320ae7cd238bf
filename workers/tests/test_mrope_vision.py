"""M-RoPE positions against transformers' get_rope_index; host-side vision inputs against transformers' helpers."""

import numpy as np
import pytest
import torch
from transformers.vision_utils import get_vision_position_ids, get_vision_window_index

from _lvr_helpers import image_message
from lvr import tokens as T
from lvr.backends import TorchBackend
from lvr.decoding import prefill_embeds
from lvr.graphs import VisionGraph
from lvr.mrope import rope_index
from lvr.preprocess import build_prompt
from lvr.tiny import TINY_IMAGE_CONFIG
from lvr.vision_inputs import VisionGeometry, vision_host_inputs

GRIDS = [(1, 4, 8), (1, 6, 4), (1, 8, 8), (1, 10, 6), (1, 16, 18), (1, 2, 2)]


def _ids_with_images(grids, text_lens):
    ids = list(range(10, 10 + text_lens[0]))
    for g, n in zip(grids, text_lens[1:]):
        ids += [T.VISION_START_ID] + [T.IMAGE_PAD_ID] * (g[1] * g[2] // 4) + [T.VISION_END_ID]
        ids += list(range(100, 100 + n))
    return ids


@pytest.mark.parametrize("grids,text_lens", [([(1, 4, 8)], [5, 3]), ([(1, 6, 4), (1, 8, 12)], [3, 2, 4]),
                                             ([(1, 16, 2)], [1, 1])])
def test_rope_index_matches_transformers(tiny_model, grids, text_lens):
    ids = _ids_with_images(grids, text_lens)
    ours, delta = rope_index(ids, grids)
    t_ids = torch.tensor([ids])
    mm = (t_ids == T.IMAGE_PAD_ID).int()
    ref, ref_delta = tiny_model.model.get_rope_index(t_ids, mm, image_grid_thw=torch.tensor(grids))
    assert np.array_equal(ours, ref[:, 0].numpy())
    assert delta == int(ref_delta[0, 0])


def test_rope_index_with_left_padding_matches_transformers(tiny_model):
    ids = _ids_with_images([(1, 4, 6)], [4, 2])
    padded = [T.PAD_ID] * 3 + ids
    mask = [0] * 3 + [1] * len(ids)
    ours, delta = rope_index(padded, [(1, 4, 6)], mask)
    t_ids = torch.tensor([padded])
    ref, ref_delta = tiny_model.model.get_rope_index(t_ids, (t_ids == T.IMAGE_PAD_ID).int(),
                                                     image_grid_thw=torch.tensor([[1, 4, 6]]),
                                                     attention_mask=torch.tensor([mask]))
    assert np.array_equal(ours[:, 3:], ref[:, 0, 3:].numpy())
    assert delta == int(ref_delta[0, 0])


def test_prefill_matches_transformers_full_forward(tiny_model, tokenizer):
    """Our prompt path (embeds + scattered vision + host M-RoPE) == transformers' forward with mm_token_type_ids."""
    prompt = build_prompt(image_message(120, 80, seed=5), tokenizer, image_cfg=TINY_IMAGE_CONFIG)
    backend = TorchBackend(tiny_model, TINY_IMAGE_CONFIG)
    pos, _ = rope_index(prompt.input_ids, prompt.image_grids)
    emb = prefill_embeds(backend, prompt)
    logits, _ = backend.forward(emb, np.ones((1, len(prompt.input_ids)), np.int64), pos[:, None])
    ids = torch.tensor([prompt.input_ids])
    with torch.no_grad():
        ref = tiny_model(input_ids=ids, pixel_values=torch.as_tensor(np.concatenate(prompt.pixel_values)),
                         image_grid_thw=torch.tensor(prompt.image_grids),
                         mm_token_type_ids=(ids == T.IMAGE_PAD_ID).int()).logits[0, -1].numpy()
    assert np.abs(ref - logits).max() < 1e-4  # logits are O(10); fp32 summation-order noise only
    # without mm_token_type_ids transformers silently uses text positions (LVR-SPEC Appendix A pitfall)
    with torch.no_grad():
        wrong = tiny_model(input_ids=ids, pixel_values=torch.as_tensor(np.concatenate(prompt.pixel_values)),
                           image_grid_thw=torch.tensor(prompt.image_grids)).logits[0, -1].numpy()
    assert np.abs(wrong - logits).max() > 1e-3


@pytest.mark.parametrize("grid", GRIDS)
def test_vision_host_inputs_match_transformers_helpers(grid):
    geo = VisionGeometry()
    host = vision_host_inputs(grid, geo)
    g = torch.tensor([grid])
    assert np.array_equal(host["rotary_pos_ids"], get_vision_position_ids(g, 2).numpy())
    win, cu = get_vision_window_index(g, spatial_merge_size=2, window_size=112, patch_size=14)
    assert np.array_equal(host["window_index"], win.numpy())
    assert np.array_equal(host["window_index"][host["reverse_window_index"]], np.arange(len(win)))
    # window_ids: patches of window k are exactly the range cu[k]..cu[k+1] in window order
    ids = host["window_ids"]
    cu = cu.tolist()
    assert len(ids) == cu[-1] == grid[1] * grid[2]
    for k in range(len(cu) - 1):
        assert set(ids[cu[k]:cu[k + 1]].tolist()) == {k}
    # window_slots: window k's patch rows cu[k]..cu[k+1] in its first slots, then -1; patch_slots the inverse map
    slots, patch_slots = host["window_slots"], host["patch_slots"]
    assert slots.shape == (len(cu) - 1, 64)
    for k in range(len(cu) - 1):
        size = cu[k + 1] - cu[k]
        assert slots[k, :size].tolist() == list(range(cu[k], cu[k + 1]))
        assert (slots[k, size:] == -1).all()
    assert np.array_equal(slots.reshape(-1)[patch_slots], np.arange(cu[-1]))


@pytest.mark.parametrize("grid", GRIDS)
def test_vision_graph_module_matches_transformers_visual(tiny_model, grid):
    rng = np.random.default_rng(grid[1] * 100 + grid[2])
    rgb = rng.integers(0, 256, (grid[1] * 14, grid[2] * 14, 3), dtype=np.uint8)
    ref = TorchBackend(tiny_model, TINY_IMAGE_CONFIG).vision(rgb)
    host = {k: torch.as_tensor(v) for k, v in vision_host_inputs(grid).items() if k != "window_ids"}
    with torch.no_grad():
        out = VisionGraph(tiny_model, TINY_IMAGE_CONFIG)(torch.as_tensor(rgb), **host).numpy()
    assert out.shape == (grid[1] * grid[2] // 4, 64)
    assert np.abs(out - ref).max() < 1e-5


@pytest.mark.parametrize("grid", [(1, 8, 12), (1, 6, 4), (1, 2, 2)])
def test_vision_graph_computes_the_processors_pixel_values_from_the_image(tiny_model, grid):
    """The graph's layout and normalisation of `image_bytes` give exactly the processor's float32 pixel_values, so the
    image graph and the float graph (bundles exported before `image_bytes`) compute the same features."""
    from lvr.preprocess import rgb_to_pixel_values

    rgb = np.random.default_rng(grid[2]).integers(0, 256, (grid[1] * 14, grid[2] * 14, 3), dtype=np.uint8)
    graph = VisionGraph(tiny_model, TINY_IMAGE_CONFIG)
    expected = rgb_to_pixel_values(rgb, TINY_IMAGE_CONFIG)
    assert np.array_equal(graph.pixel_values(torch.as_tensor(rgb)).numpy(), expected)
    host = {k: torch.as_tensor(v) for k, v in vision_host_inputs(grid).items() if k != "window_ids"}
    with torch.no_grad():
        from_image = graph(torch.as_tensor(rgb), **host)
        from_floats = VisionGraph(tiny_model)(torch.as_tensor(expected), **host)
    assert torch.equal(from_image, from_floats)


def test_vision_graph_with_the_conv_patch_embedding_is_the_same_function(tiny_model):
    """The MatMul patch embedding (the export) and the model's Conv3d (`conv_patch_embed`, the vision bench's
    baseline) compute the same features."""
    grid = (1, 8, 12)
    pv = torch.as_tensor(np.random.default_rng(7).standard_normal((grid[1] * grid[2], 1176)).astype(np.float32))
    host = {k: torch.as_tensor(v) for k, v in vision_host_inputs(grid).items() if k != "window_ids"}
    with torch.no_grad():
        matmul = VisionGraph(tiny_model)(pv, **host)
        conv = VisionGraph(tiny_model, conv_patch_embed=True)(pv, **host)
    assert torch.allclose(matmul, conv, atol=1e-5)


def test_pixel_values_match_transformers_image_processor():
    """Our numpy patchify equals transformers' Qwen2-VL image processor on the same resized image."""
    from PIL import Image
    from transformers import Qwen2VLImageProcessor

    from lvr.preprocess import image_to_pixel_values, load_image

    img = load_image({"width": 84, "height": 56, "seed": 2})  # already a multiple of 28: no resize involved
    ours, grid = image_to_pixel_values(img, TINY_IMAGE_CONFIG)
    proc = Qwen2VLImageProcessor(min_pixels=TINY_IMAGE_CONFIG.min_pixels, max_pixels=TINY_IMAGE_CONFIG.max_pixels)
    ref = proc(images=[img], return_tensors="np", do_resize=False)
    assert tuple(ref["image_grid_thw"][0]) == grid == (1, 4, 6)
    assert np.abs(np.asarray(ref["pixel_values"]) - ours).max() < 1e-5
    assert isinstance(img, Image.Image)
