"""Can a decoder of the demo model's size learn the option lookup, and in which answer layout? Text only, on CPU in a
few minutes: the lookup drill of `npm run data -- training-records --lookup` ("Which option is red?" + four option
lines) with the demo decoder's shapes (hidden 64, 4 layers) over the Qwen2.5 tokens the prompts use (remapped to a
small vocabulary: the question is the attention circuit, not the embedding table). Prints one JSON line per 50 steps
with the training loss and the teacher-forced accuracy of the answer's first letter token (the lookup itself; a
letter repeated later in the answer is a copy of it and is not counted).

    PYTHONPATH=workers python scripts/demo/lookup_probe.py TOKENIZER_JSON [--layout aligned|tag-only]
        [--hidden 64] [--layers 4] [--heads 2] [--rope-theta 10000] [--steps 2000] [--lr 3e-3] [--seed 0]

Layouts: `aligned` is the training records' (`It is red (B)\\n<answer>\\nB\\n</answer>`: the letter one token after
the word); `tag-only` writes the letter only inside the tag (`It is red\\n<answer>\\nB\\n</answer>`: four tokens
after the word).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch
from tokenizers import Tokenizer
from transformers import Qwen2Config, Qwen2ForCausalLM

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink"]
SHAPES = ["circle", "square", "triangle", "diamond", "star", "cross"]
LETTERS = "ABCD"
INSTRUCTION = "Answer with the option's letter from the given choices directly."


class SmallVocab:
    """Qwen2.5 token ids renumbered in order of first use."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer, self.ids = tokenizer, {}

    def encode(self, text: str) -> list[int]:
        return [self.ids.setdefault(i, len(self.ids)) for i in self.tokenizer.encode(text).ids]


def drill(vocab: SmallVocab, layout: str) -> tuple[list[int], list[int]]:
    options = random.sample(random.choice([COLOURS, SHAPES]), 4)
    k = random.randrange(4)
    lines = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
    prompt = (f"<|im_start|>user\nWhich option is {options[k]}?\nOptions:\n{lines}\n{INSTRUCTION}<|im_end|>\n"
              "<|im_start|>assistant\n")
    said = {"aligned": f"It is {options[k]} ({LETTERS[k]})", "comma": f"It is {options[k]}, {LETTERS[k]}",
            "tag-only": f"It is {options[k]}"}[layout]
    return vocab.encode(prompt), vocab.encode(f"{said}\n<answer>\n{LETTERS[k]}\n</answer><|im_end|>")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tokenizer")
    ap.add_argument("--layout", choices=["aligned", "comma", "tag-only"], default="aligned")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(1)
    vocab = SmallVocab(Tokenizer.from_file(args.tokenizer))
    letter_ids = {vocab.encode(x)[0] for x in LETTERS} | {vocab.encode(f" {x}")[-1] for x in LETTERS}
    cfg = Qwen2Config(vocab_size=512, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                      num_hidden_layers=args.layers,
                      num_attention_heads=args.heads, num_key_value_heads=args.heads, tie_word_embeddings=True,
                      max_position_embeddings=4096)
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": args.rope_theta}
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0, 0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        batch = [drill(vocab, args.layout) for _ in range(args.batch)]
        width = max(len(p) + len(a) for p, a in batch)
        ids = torch.zeros(args.batch, width, dtype=torch.long)
        labels = torch.full((args.batch, width), -100)
        lookup = torch.zeros(args.batch, width, dtype=torch.bool)  # the first letter token of each answer
        mask = torch.zeros(args.batch, width, dtype=torch.long)
        for i, (p, a) in enumerate(batch):
            ids[i, :len(p) + len(a)] = torch.tensor(p + a)
            mask[i, :len(p) + len(a)] = 1
            labels[i, len(p):len(p) + len(a)] = torch.tensor(a)
            lookup[i, len(p) + next(j for j, t in enumerate(a) if t in letter_ids)] = True
        h = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        y = labels[:, 1:]
        logits = h[:, :-1][y != -100] @ model.model.embed_tokens.weight.T  # answer rows only
        target = y[y != -100]
        is_lookup = lookup[:, 1:][y != -100]
        loss = torch.nn.functional.cross_entropy(logits, target)
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, step / 50)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            acc = (logits.argmax(-1)[is_lookup] == target[is_lookup]).float().mean().item()
            print(json.dumps({"step": step, "loss": round(loss.item(), 4), "lookup_accuracy": round(acc, 3),
                              "seconds": round(time.time() - t0)}), flush=True)


if __name__ == "__main__":
    main()
