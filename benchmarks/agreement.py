"""How far two greedy decodings of the same inputs agree, and whether their differences are rounding.

Greedy decoding follows the argmax: where the top two logits are nearly equal, bf16 rounding may pick either
token, and the sequences part from there on. So beside the share of identical sequences, `compare` asks an
fp32 reference model, teacher-forced on the common prefix, how far apart the two chosen tokens' logits are
at each sequence's first difference, and sets that against the usual gap between its top two logits and against
bf16's resolution at those logits' size (a random-init mT5-base's top logits are about 125, where bf16 has steps
of 0.5 below 128 and of 1 above). Differences at gaps far below the usual one, within a few bf16 steps, are
numerical ties, not different math.
"""
from __future__ import annotations

import math
import statistics

import torch

from workflow_scripts.modeling import pad_rows


def first_differences(ours: list[str], theirs: list[str]) -> list[tuple[int, int, int, int]]:
    """(sequence, position, our token, their token) at the first token where two decodings (texts of decimal
    ids, benchmarks.synthetic) differ; sequences that only differ in length are left out."""
    found = []
    for index, (a, b) in enumerate(zip(ours, theirs)):
        a, b = [int(t) for t in a.split()], [int(t) for t in b.split()]
        position = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), None)
        if position is not None:
            found.append((index, position, a[position], b[position]))
    return found


def bf16_steps(gap: float, logits: tuple[float, float]) -> float:
    """`gap` in units of bf16's spacing at the larger of the two logits' magnitudes (one unit in the last place)."""
    size = max(abs(value) for value in logits)
    return gap / (torch.finfo(torch.bfloat16).eps * 2.0 ** math.floor(math.log2(size))) if size else 0.0


def reference_logits(reference, sources: list[list[int]], prefixes: list[list[int]], device) -> torch.Tensor:
    """fp32 logits of `reference` for each source, teacher-forced on each decoder prefix (right-padded: a causal
    decoder's earlier positions ignore the padding)."""
    ids, mask = pad_rows(sources, 0)
    decoder_ids, _ = pad_rows(prefixes, 0)
    with torch.inference_mode():
        return reference(input_ids=ids.to(device), attention_mask=mask.to(device),
                         decoder_input_ids=decoder_ids.to(device)).logits.float()


def compare(reference, sources: list[list[int]], ours: list[str], theirs: list[str], device,
            decoder_start: int = 0, chunk: int = 8) -> dict:
    """The share of identical sequences and, where they differ, the reference's logit gaps (see the module); the
    usual top-2 gap is taken over every position of the first `chunk` sequences."""
    def prefix(index, length=None):
        return [decoder_start] + [int(t) for t in ours[index].split()][:length]

    differences, gaps, steps = first_differences(ours, theirs), [], []
    for start in range(0, len(differences), chunk):
        part = differences[start:start + chunk]
        logits = reference_logits(reference, [sources[index] for index, *_ in part],
                                  [prefix(index, position) for index, position, *_ in part], device)
        for row, (_, position, a, b) in enumerate(part):
            pair = (logits[row, position, a].item(), logits[row, position, b].item())
            gaps.append(abs(pair[0] - pair[1]))
            steps.append(bf16_steps(gaps[-1], pair))
    sample = range(min(chunk, len(ours)))
    top_two = reference_logits(reference, [sources[i] for i in sample], [prefix(i)[:-1] for i in sample],
                               device).topk(2, dim=-1).values

    def summary(values):
        return {"median": statistics.median(values), "min": min(values), "max": max(values), "count": len(values)}

    return {"identical_share": sum(a == b for a, b in zip(ours, theirs)) / len(ours),
            "differing": len(differences), "gap_at_first_difference": summary(gaps) if gaps else None,
            "bf16_steps_at_first_difference": summary(steps) if steps else None,
            "top2_gap": summary((top_two[..., 0] - top_two[..., 1]).flatten().tolist()),
            "top_logit": summary(top_two[..., 0].flatten().tolist())}
