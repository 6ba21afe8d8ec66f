"""Synthetic data for the benchmark: token-id sequences, and a tokenizer-shaped adapter over them.

No tokenizer needs training: a "text" is its token ids written in decimal ("17 5 1"), which IdTokenizer
turns back into ids, so the product functions (finetune.encode_pairs, decode.generate, xlrs.tokenize_parallel,
modeling.save_model) run unchanged on exactly the ids the Hugging Face baseline gets.
"""
from __future__ import annotations

import random
from pathlib import Path

from workflow_scripts.modeling import pad_rows


class IdTokenizer:
    """What finetune.encode_pairs, modeling.tokenize, decode.generate/clean and modeling.save_model
    call on a tokenizer, for texts of decimal token ids (modeling.tokenize cuts them)."""
    pad_token, eos_token, pad_token_id, eos_token_id = "<pad>", "</s>", 0, 1

    def __call__(self, texts: list[str]) -> dict:
        return {"input_ids": [[int(t) for t in s.split()] for s in texts]}

    def num_special_tokens_to_add(self, pair=False):
        return 0  # a text's ids already end with EOS

    def batch_decode(self, sequences, skip_special_tokens=False):
        names = {self.pad_token_id: self.pad_token, self.eos_token_id: self.eos_token}
        return [" ".join(names.get(i, str(i)) for i in row) for row in sequences.tolist()]

    def save_pretrained(self, directory):
        Path(directory, "tokenizer.txt").write_text("benchmarks.synthetic.IdTokenizer: texts are decimal token ids\n")


def hf_collator(features):
    """The baseline's collator: what DataCollatorForSeq2Seq gives for pre-tokenized examples."""
    ids, mask = pad_rows([f["input_ids"] for f in features], 0)
    return {"input_ids": ids, "attention_mask": mask, "labels": pad_rows([f["labels"] for f in features], -100)[0]}


def synthetic(rng: random.Random, n: int, lengths: tuple[int, int], vocab: int) -> list[list[int]]:
    """n id sequences, lengths uniform in `lengths` (EOS included); ids avoid pad 0, eos 1, unk 2."""
    return [[rng.randrange(3, vocab) for _ in range(rng.randint(*lengths) - 1)] + [1] for _ in range(n)]


def text(ids: list[int]) -> str:
    return " ".join(map(str, ids))
