"""Templates of paper Table 10 and the checks on malformed records."""
import pytest

from workflow_scripts import tasks
from workflow_scripts.files import DataError


def test_generation_template():
    pair = tasks.cast_generation({"id": "1", "document": "A dog runs.", "summary": "Dog runs"})
    assert pair == {"input": "story: A dog runs. title: <extra_id_0>", "target": "<extra_id_0>Dog runs"}


def test_tagging_template_is_sentinel_plus_tag():
    pair = tasks.cast_tagging({"id": "1", "tokens": ["In", "my", "view"], "tags": ["ADP", "PRON", "NOUN"]})
    assert pair == {"input": "<extra_id_0>In <extra_id_1>my <extra_id_2>view",
                    "target": "<extra_id_0>ADP <extra_id_1>PRON <extra_id_2>NOUN"}


def test_tagging_keeps_at_most_100_tokens_one_sentinel_each():
    record = {"id": "1", "tokens": ["w"] * 120, "tags": ["X"] * 120}
    pair = tasks.cast_tagging(record)
    assert pair["input"].count("<extra_id_") == 100 and pair["input"].endswith("<extra_id_99>w")
    assert pair["target"].count("<extra_id_") == 100 and pair["target"].endswith("<extra_id_99>X")
    # a 120-word test sentence is scored on the 100 words the model was shown
    assert tasks.score_tagging([pair["target"]], [record])["accuracy"] == 100.0


def test_paraphrase_cloze_yes_no():
    record = {"id": "1", "sentence1": "The original version.", "sentence2": "The mild version.", "label": 0}
    assert tasks.cast_paraphrase(record) == {
        "input": "The original version. <extra_id_0>The mild version.", "target": "<extra_id_0>No."}
    assert tasks.cast_paraphrase({**record, "label": 1})["target"] == "<extra_id_0>Yes."


def test_qa_question_sentinel_then_passage():
    record = {"id": "1", "question": "What is it?", "context": "It is 1.3 square feet.",
              "answer_text": "1.3 square feet", "answer_start": 6}
    assert tasks.cast_qa(record) == {"input": "What is it? <extra_id_0> It is 1.3 square feet.",
                                     "target": "<extra_id_0>1.3 square feet"}


def test_pos_tags_and_tokens_of_different_length_are_refused_by_id():
    with pytest.raises(DataError, match=r"pos de: example 'x7': 2 tokens but 1 tags"):
        tasks.validate_records(tasks.kind("tagging"), [{"id": "x7", "tokens": ["a", "b"], "tags": ["X"]}], "pos de")


def test_qa_answer_outside_context_is_refused():
    record = {"id": "q1", "question": "?", "context": "short", "answer_text": "long answer", "answer_start": 3}
    with pytest.raises(DataError, match="q1.*not a span of its context"):
        tasks.validate_records(tasks.kind("qa"), [record], "qa en")


def test_missing_column_is_named():
    with pytest.raises(DataError, match="lacks column.*summary"):
        tasks.validate_records(tasks.kind("generation"), [{"id": "1", "document": "d"}], "tg en")


def test_the_readme_names_the_fields_of_every_kind():
    """A user writing their own files learns the fields of each kind from the README's table (Your own data)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("#### Your own data")[1].splitlines()
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in section
            if line.startswith("| ") and line.count("|") == 3}
    for name, kind in tasks.KINDS.items():
        assert [field for field in kind.fields if f"`{field}`" not in rows.get(name, "")] == [], name


STANCES = {"favor": "Yes.", "against": "No."}


@pytest.mark.parametrize("name, fields, cast", [
    ("stance", ("id", "document", "stance"), lambda r: {"input": r["document"], "target": STANCES[r["stance"]]}),
    ("rating", ("id", "document", "stars"), lambda r: {"input": r["document"], "target": f"{int(r['stars'])} stars"}),
], ids=["a-label-looked-up", "a-number-parsed"])
def test_a_new_kinds_template_that_fails_only_on_stand_in_values_is_not_refused(name, fields, cast):
    """template_problem names a field the template reads and the kind does not declare; a template that looks its
    label up in a table, or parses a number the stand-in record holds as "x", reads only its own fields."""
    import dataclasses

    new_kind = dataclasses.replace(tasks.KINDS["generation"], name=name, fields=fields, cast=cast)
    assert tasks.template_problem(new_kind) is None
    typo = dataclasses.replace(new_kind, cast=lambda r: cast({**r, "document": r["text"]}))
    assert "reads field 'text'" in tasks.template_problem(typo)
    assert [tasks.template_problem(kind) for kind in tasks.KINDS.values()] == [None] * len(tasks.KINDS)
