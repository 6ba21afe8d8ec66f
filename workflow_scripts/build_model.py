"""Build the demo's tiny mT5-shaped model: a SentencePiece unigram tokenizer trained on the demo corpus
with mT5's 100 sentinels, and a randomly initialised MT5ForConditionalGeneration with an untied
output layer, saved with save_pretrained so that every later stage loads it like google/mt5-base.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from workflow_scripts import cli
from workflow_scripts.files import write_json
from workflow_scripts.tasks import UPOS

# Words the templates and labels put into inputs and targets (tasks.py), so they get pieces of their own.
TEMPLATE_LINES = ["story: title:", "Yes. No.", " ".join(UPOS)]


def corpus_lines(languages: list[str], per_language: int) -> list[str]:
    from workflow_scripts import demo_corpus

    lines = list(TEMPLATE_LINES)
    text_fields = ("document", "summary", "sentence1", "sentence2", "question", "context", "text")
    for lang in languages:
        for task in demo_corpus.TASKS:
            if task == "pos":
                continue
            for record in demo_corpus.generate(task, lang, "train", per_language // 5):
                lines += [record[f] for f in text_fields if f in record]
    return lines


def train_tokenizer(lines: list[str], vocab_size: int, out_dir: Path):
    import sentencepiece as spm
    from transformers import T5Tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        # T5/mT5 ids: pad 0, eos 1, unk 2, no bos; sentinels are appended after the pieces.
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_prefix=f"{tmp}/spiece", vocab_size=vocab_size,
            model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
            hard_vocab_limit=False, num_threads=1, minloglevel=2)
        tokenizer = T5Tokenizer.from_pretrained(tmp, extra_ids=100)
    return tokenizer


def untie_output_layer(model):
    """T5-family configs force tying in transformers 5.x; give lm_head its own weights, as mT5/umT5/ByT5 have,
    initialised as T5 initialises an untied head."""
    import torch

    head = torch.nn.Linear(model.config.d_model, model.config.vocab_size, bias=False)
    torch.nn.init.normal_(head.weight, mean=0.0, std=model.config.initializer_factor * 1.0)
    model.lm_head = head
    return model


def build(spec: dict, out_dir: Path) -> None:
    import torch
    from transformers import MT5Config, MT5ForConditionalGeneration

    from workflow_scripts import modeling

    params = spec["build"]
    tokenizer = train_tokenizer(corpus_lines(spec["tokenizer_languages"], params["tokenizer_sentences"]),
                                params["vocab_size"], out_dir)
    config = MT5Config(vocab_size=len(tokenizer), d_model=params["d_model"], d_ff=params["d_ff"],
                       d_kv=params["d_kv"], num_heads=params["num_heads"], num_layers=params["num_layers"],
                       num_decoder_layers=params["num_decoder_layers"], dropout_rate=params["dropout_rate"],
                       decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(params["seed"])
    model = untie_output_layer(MT5ForConditionalGeneration(config))
    modeling.save_model(model, tokenizer, out_dir)
    reloaded = modeling.load_model(str(out_dir), device=torch.device("cpu"))
    write_json(out_dir / "build.json", {"spec": spec, "parameters": sum(p.numel() for p in reloaded.parameters()),
                                        "vocab_size": len(tokenizer)})


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--out-dir", type=Path, required=True,
                   help="the model's directory: weights, tokenizer and build.json, for from_pretrained")
    args = p.parse_args()
    build(args.spec, args.out_dir)


if __name__ == "__main__":
    cli.run(main)
