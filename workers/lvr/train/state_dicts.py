"""Checkpoint contents: full (unsharded) model and optimizer state dicts, and the saved HF model folder."""

from __future__ import annotations

from pathlib import Path

from .distributed import unwrap
from .processes import Env

AUX_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json",
             "generation_config.json", "preprocessor_config.json")


def full_state(objective, optimizer, env: Env) -> tuple[dict, dict]:
    """Full (unsharded) model and optimizer state dicts, gathered to CPU; keys of the inner HF model."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    obj = unwrap(objective)
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    msd = get_model_state_dict(obj, options=opts)
    osd = get_optimizer_state_dict(obj, optimizer, options=opts)
    strip = lambda d: {k[len("model."):] if k.startswith("model.") else k: v for k, v in d.items()}
    msd = strip(msd)
    if "state" in osd:
        osd = {"state": strip(osd["state"]), "param_groups": [
            {**g, "params": [k[len("model."):] if k.startswith("model.") else k for k in g["params"]]}
            for g in osd["param_groups"]]}
    return msd, osd


def load_optimizer_state(objective, optimizer, osd: dict) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    add = lambda k: "model." + k
    osd = {"state": {add(k): v for k, v in osd["state"].items()},
           "param_groups": [{**g, "params": [add(k) for k in g["params"]]} for g in osd["param_groups"]]}
    set_optimizer_state_dict(unwrap(objective), optimizer, osd,
                             options=StateDictOptions(full_state_dict=True))


def save_model_folder(model, state_dict: dict, source_dir: Path, dest: Path) -> None:
    model.save_pretrained(dest, state_dict=state_dict)
    for name in AUX_FILES:
        if (source_dir / name).is_file():
            (dest / name).write_bytes((source_dir / name).read_bytes())
