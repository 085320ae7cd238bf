"""A run's `systemPrompt`: mapped from the contract, the system message of SFT samples and GRPO prompts, and the
default system prompt of the bundle a run exports (chat template and manifest)."""

from __future__ import annotations

import json

import pytest
import torch

from lvr.data.records import validate_grpo_record, validate_sft_record
from lvr.data.sft import SYSTEM_PROMPT, SftDataOptions, build_sft_sample
from lvr.export import ExportError, with_default_system_prompt
from lvr.preprocess import CHAT_TEMPLATE_PATH, ImageConfig, render_chat
from lvr.train.errors import ConfigError
from lvr.train.grpo import make_prompt
from lvr.train.spec import config_from_message

from _train_helpers import spec

CUSTOM = 'You see "latent" images.\nAnswer with {one} letter.'


def test_contract_field_reaches_the_config_and_is_validated():
    msg = spec("r1", "grpo", "tiny:0", "/tmp/d.json", "/tmp/ck", "/tmp/b", systemPrompt=CUSTOM)
    assert config_from_message(msg).system_prompt == CUSTOM
    assert config_from_message(spec("r2", "sft", "tiny:0", "/tmp/d.json", "/tmp/ck", "/tmp/b")).system_prompt == \
        SYSTEM_PROMPT
    with pytest.raises(ConfigError, match="systemPrompt"):
        config_from_message(spec("r3", "sft", "tiny:0", "/tmp/d.json", "/tmp/ck", "/tmp/b", systemPrompt=""))


def test_sft_samples_render_the_run_system_prompt(codec, data_dir):
    rec = json.loads((data_dir / "sft.json").read_text())[0]
    record = validate_sft_record(rec, "sft.json", 0, str(data_dir))
    opts = dict(min_pixels=3136, max_pixels=50176)
    custom = build_sft_sample(record, codec, str(data_dir), SftDataOptions(system_prompt=CUSTOM, **opts))
    default = build_sft_sample(record, codec, str(data_dir), SftDataOptions(**opts))
    text = lambda s: codec.decode(s.input_ids, skip_special_tokens=False)  # noqa: E731
    assert text(custom).startswith(f"<|im_start|>system\n{CUSTOM}<|im_end|>\n<|im_start|>user")
    assert text(default).startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>")
    # the system message is never supervised
    n_sys = len(codec.encode(f"<|im_start|>system\n{CUSTOM}<|im_end|>\n"))
    assert all(label == -100 for label in custom.labels[:n_sys])


def test_grpo_prompts_use_the_run_system_prompt(codec, tiny_dir, data_dir):
    rec = validate_grpo_record({"image": "a.png", "conversations": [
        {"from": "human", "value": "What is 1+1?"}, {"from": "gpt", "value": "<answer>2</answer>"}]},
        "g.json", 0, str(data_dir))
    image_cfg = ImageConfig(min_pixels=3136, max_pixels=50176)
    ids, _, _ = make_prompt(rec, codec, tiny_dir, image_cfg, torch.device("cpu"), CUSTOM)
    text = codec.decode(ids[0].tolist(), skip_special_tokens=False)
    assert text.startswith(f"<|im_start|>system\n{CUSTOM}<|im_end|>\n<|im_start|>user\n")
    assert "What is 1+1?" in text and text.endswith("<|im_start|>assistant\n")


def test_chat_template_default_system_prompt_is_replaced_as_text():
    template = with_default_system_prompt(CHAT_TEMPLATE_PATH.read_text(), CUSTOM)
    user = [{"role": "user", "content": "hi"}]
    assert render_chat(user, template).startswith(f"<|im_start|>system\n{CUSTOM}<|im_end|>\n<|im_start|>user\nhi")
    own = [{"role": "system", "content": "mine"}, *user]
    assert render_chat(own, template) == render_chat(own, CHAT_TEMPLATE_PATH.read_text())
    assert with_default_system_prompt(CHAT_TEMPLATE_PATH.read_text(), SYSTEM_PROMPT) == CHAT_TEMPLATE_PATH.read_text()
    with pytest.raises(ExportError, match="no default system prompt"):
        with_default_system_prompt("{{ messages }}", CUSTOM)
