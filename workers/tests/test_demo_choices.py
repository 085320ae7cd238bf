"""The demo's GRPO rewards and ship choice (scripts/demo): the rules that decide what the demo model becomes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo"
sys.path.insert(0, str(DEMO))

import demo_rewards  # noqa: E402


def test_letter_accuracy_reads_the_last_answer_tag_of_both_sides():
    solution = "It is blue (B)\n<answer>\nB\n</answer>"
    completions = [
        "<|lvr_start|><|lvr|><|lvr_end|>It is blue (B)\n<answer>\nb) blue\n</answer>",
        "<answer>B</answer> no, <answer>C</answer>",
        "It is blue (B)",
        "<answer>\n\n</answer>",
    ]
    assert demo_rewards.letter_accuracy(completions, [solution] * 4) == [1.0, 0.0, 0.0, 0.0]


def test_latent_block_needs_an_end_after_the_start():
    completions = [
        "<|lvr_start|><|lvr|><|lvr|><|lvr_end|>It is red (A)",
        "<|lvr_start|><|lvr|><|lvr|>It is red (A)",
        "<|lvr_end|> then <|lvr_start|>",
        "It is red (A)",
    ]
    assert demo_rewards.latent_block(completions) == [1.0, 0.0, 0.0, 0.0]


def _validation(path: Path, name: str, accuracy: float) -> None:
    overall = {"correct": 0, "n": 300, "accuracy": accuracy, "wilson95": [0, 1], "unparsed": 0}
    path.write_text(json.dumps({"models": {name: {"4": {"overall": overall}}}}))


def _choose(results: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEMO / "choose_bundle.py"), "chain", str(results)],
                          capture_output=True, text=True)


@pytest.mark.parametrize(("a", "c", "ship"), [(0.40, 0.38, "a"), (0.40, 0.40, "c"), (0.33, 0.41, "c")])
def test_chain_ships_c_only_when_it_scores_at_least_a_on_validation(tmp_path, a, c, ship):
    _validation(tmp_path / "a.validation.json", "a", a)
    _validation(tmp_path / "c.validation.json", "c", c)
    chosen = _choose(tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() == ship


def test_chain_without_c_ships_a_and_without_scores_refuses(tmp_path):
    _validation(tmp_path / "a.validation.json", "a", 0.3)
    assert _choose(tmp_path).stdout.strip() == "a"
    (tmp_path / "a.validation.json").unlink()
    refused = _choose(tmp_path)
    assert refused.returncode != 0
    assert "no validation scores" in refused.stderr
