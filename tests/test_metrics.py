import math

import pytest
from rouge_score import rouge_scorer

from workflow_scripts.errors import UserError
from workflow_scripts.metrics import (
    LID_176_LABELS,
    PieceTokenizer,
    default_lid_model_path,
    language_probabilities,
    lid_label,
    lid_summary,
    load_lid_model,
    model_labels,
    paraphrase_scores,
    parse_sentinel_tags,
    parse_yes_no,
    pos_accuracy,
    sp_rouge,
    sp_rouge_per_example,
    squad_scores,
    strip_sentinels,
    top_language,
)

CORPUS = [
    "The cat sat on the mat and looked out of the window.",
    "A small dog is running through the park this morning.",
    "We will travel to the mountains next summer with our friends.",
    "She reads a new book every week before going to sleep.",
    "The train to the city leaves at eight o'clock.",
    "My brother cooks dinner for the whole family on Sundays.",
    "The children are playing football in the garden.",
    "It rained all day, so we stayed at home.",
    "Die Katze sitzt auf der Matte und schaut aus dem Fenster.",
    "Ein kleiner Hund läuft heute Morgen durch den Park.",
    "Wir fahren im nächsten Sommer mit unseren Freunden in die Berge.",
    "Sie liest jede Woche ein neues Buch, bevor sie schlafen geht.",
    "Der Zug in die Stadt fährt um acht Uhr ab.",
    "Mein Bruder kocht sonntags das Abendessen für die ganze Familie.",
    "Die Kinder spielen im Garten Fußball.",
    "Es hat den ganzen Tag geregnet, also sind wir zu Hause geblieben.",
    "猫坐在垫子上，看着窗外。",
    "今天早上一只小狗在公园里跑步。",
    "明年夏天我们要和朋友一起去山里旅行。",
    "她每周读一本新书，然后去睡觉。",
    "去城里的火车八点出发。",
    "我哥哥星期天为全家人做晚饭。",
    "孩子们在花园里踢足球。",
    "下了一整天的雨，所以我们待在家里。",
    "北京大学是中国最有名的大学之一。",
    "我们今天去北京大学参观。",
]


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory):
    import sentencepiece
    import transformers

    d = tmp_path_factory.mktemp("spm")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_prefix=str(d / "spiece"), vocab_size=200,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        character_coverage=1.0, minloglevel=2)
    return transformers.T5Tokenizer.from_pretrained(str(d), extra_ids=100)


@pytest.fixture(scope="module")
def lid_model():
    return load_lid_model()


class FakeHF:
    """Mimics an HF tokenizer that emits a bare '▁' before every word."""

    def convert_tokens_to_ids(self, tokens):
        raise NotImplementedError

    def tokenize(self, text):
        return [p for w in text.split() for p in ("\u2581", w)]


# ---------------------------------------------------------------- SP-ROUGE

PAIRS = [
    ("The cat sat on the mat.", "The cat is on the mat."),
    ("Der Hund läuft durch den Park.", "Ein kleiner Hund läuft heute durch den Park."),
    ("我们今天去北京大学。", "北京大学是中国最有名的大学之一。"),
    ("It rained all day.", "Es hat den ganzen Tag geregnet."),
]


def test_sp_rouge_matches_rouge_score(hf_tokenizer):
    preds, refs = zip(*PAIRS)
    tok = PieceTokenizer(hf_tokenizer)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=tok)
    per = [scorer.score(r, p) for p, r in PAIRS]
    expected = {v: 100 * sum(s[v].fmeasure for s in per) / len(per) for v in ("rouge1", "rouge2", "rougeL")}
    got = sp_rouge(preds, refs, tok)
    assert got == pytest.approx(expected)
    assert 0 < got["rouge1"] < 100
    # an unwrapped HF tokenizer is wrapped automatically
    assert sp_rouge(preds, refs, hf_tokenizer) == pytest.approx(expected)
    per_ex = sp_rouge_per_example(preds, refs, tok)
    assert [e["rouge1"] for e in per_ex] == pytest.approx([100 * s["rouge1"].fmeasure for s in per])


def test_sp_rouge_identical_is_100(hf_tokenizer):
    texts = ["The cat sat on the mat.", "北京大学是中国最有名的大学之一。", "Die Kinder spielen."]
    assert sp_rouge(texts, texts, hf_tokenizer) == pytest.approx(
        {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0})


def test_sp_rouge_chinese_nonzero_where_default_rouge_is_zero(hf_tokenizer):
    pred, ref = "我们今天去北京大学", "北京大学很有名"
    default = rouge_scorer.RougeScorer(["rouge1", "rougeL"]).score(ref, pred)
    assert default["rouge1"].fmeasure == 0.0 and default["rougeL"].fmeasure == 0.0
    assert sp_rouge([pred], [ref], hf_tokenizer)["rouge1"] > 0.0


def test_piece_tokenizer_drops_only_bare_marker(hf_tokenizer):
    raw = hf_tokenizer.tokenize("北京大学很有名")
    assert raw[0] == "\u2581"
    pieces = PieceTokenizer(hf_tokenizer).tokenize("北京大学很有名")
    assert pieces == [p for p in raw if p != "\u2581"] and "\u2581" not in pieces
    # pieces that merely start with the marker are kept as-is
    assert any(p.startswith("\u2581") and len(p) > 1 for p in PieceTokenizer(hf_tokenizer).tokenize("the cat sat"))


def test_sp_rouge_hand_computed():
    # pieces: pred [a b x], ref [a b c d] (bare "▁" dropped)
    # rouge1: P=2/3 R=2/4 -> F=4/7; rouge2: P=1/2 R=1/3 -> F=2/5; rougeL: LCS "a b" -> 4/7
    got = sp_rouge(["a b x"], ["a b c d"], FakeHF())
    assert got == pytest.approx({"rouge1": 400 / 7, "rouge2": 40.0, "rougeL": 400 / 7})
    # 2 of 4 pieces shared on both sides -> 50
    assert sp_rouge(["a b x y"], ["a b c d"], PieceTokenizer(FakeHF()), variants=("rouge1",)) == {"rouge1": 50.0}


def test_sp_rouge_edge_cases(hf_tokenizer):
    with pytest.raises(ValueError):
        sp_rouge(["a"], [], hf_tokenizer)
    assert sp_rouge([], [], hf_tokenizer) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    got = sp_rouge(["", "The cat.", ""], ["The cat.", "", ""], hf_tokenizer)
    assert got == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    # rougeLsum: newline-separated sentences scored at summary level
    lsum = sp_rouge(["a b\nc d"], ["c d\na b"], FakeHF(), variants=("rougeL", "rougeLsum"))
    assert lsum["rougeLsum"] == pytest.approx(100.0) and lsum["rougeL"] == pytest.approx(50.0)


# ---------------------------------------------------------------- language ID

SENTENCES = {
    "de": ["Am Wochenende fahren wir mit dem Fahrrad an den See und schwimmen dort.",
           "Meine Großmutter hat mir gestern ein altes Rezept für Apfelkuchen gegeben."],
    "fr": ["Nous avons passé nos vacances dans un petit village au bord de la mer.",
           "Le boulanger du quartier ouvre sa boutique tous les matins à six heures."],
    "es": ["Mi hermana trabaja en un hospital y siempre llega tarde a la cena.",
           "El domingo pasado fuimos al mercado para comprar frutas y verduras frescas."],
    "zh": ["我们周末打算骑自行车去湖边游泳，然后在那里吃午饭。",
           "昨天奶奶给了我一个做苹果蛋糕的老食谱，我非常高兴。"],
    "en": ["The library downtown is closed on Mondays, so we will go there tomorrow.",
           "My neighbour has been learning to play the piano for almost three years."],
}


def test_load_lid_model_paths(tmp_path):
    assert default_lid_model_path().name == "lid.176.ftz" and default_lid_model_path().is_file()
    missing = tmp_path / "nope.bin"
    with pytest.raises(UserError, match=r"model .*nope.bin: no such file; give fastText's lid.176.bin or .ftz"):
        load_lid_model(missing)
    (tmp_path / "page.bin").write_text("<html>Not Found</html>")  # a failed download
    with pytest.raises(UserError, match=r"page.bin: not a fastText model \(it starts with b'<htm'\)"):
        load_lid_model(tmp_path / "page.bin")


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_lid_identifies_language(lid_model, lang):
    for text in SENTENCES[lang]:
        assert top_language(lid_model, text) == lang
        probs = language_probabilities(lid_model, text, [lang, "en", "xx"])
        assert probs[lang] > 0.5
        assert math.isnan(probs["xx"])  # no such language: not "never produced"


def test_lid_empty_and_newlines(lid_model):
    assert language_probabilities(lid_model, "  \n ", ["de", "en"]) == {"de": 0.0, "en": 0.0}
    assert top_language(lid_model, "") == ""
    text = SENTENCES["de"][0].replace(" und ", "\nund ")
    assert top_language(lid_model, text) == "de"
    assert language_probabilities(lid_model, text, ["de"])["de"] > 0.5


def test_lid_summary(lid_model):
    outputs = [SENTENCES["de"][0], SENTENCES["en"][0]]  # target de, source en
    got = lid_summary(lid_model, outputs, target="de", sources=["en"])
    p = [language_probabilities(lid_model, t, ["de", "en"]) for t in outputs]
    assert got["accidental_translation"] == 50.0
    assert got["n"] == 2
    assert got["lid_de"] == pytest.approx(100 * (p[0]["de"] + p[1]["de"]) / 2)
    assert got["lid_en"] == pytest.approx(100 * (p[0]["en"] + p[1]["en"]) / 2)
    # a source equal to the target is never "accidental"
    same = lid_summary(lid_model, outputs, target="de", sources=["de"])
    assert same["accidental_translation"] == 0.0 and set(same) == {"lid_de", "accidental_translation", "n"}
    assert lid_summary(lid_model, [], target="de", sources=["en"]) == {
        "lid_de": 0.0, "lid_en": 0.0, "accidental_translation": 0.0, "n": 0}
    # a code with a region or script subtag is read by fastText's label for its language
    tagged = lid_summary(lid_model, outputs, target="de-AT", sources=["en-GB"])
    assert (tagged["lid_de-AT"], tagged["lid_en-GB"], tagged["accidental_translation"]) == (
        got["lid_de"], got["lid_en"], 50.0)
    # so is a three-letter or deprecated code, through the standard
    three = lid_summary(lid_model, outputs, target="deu", sources=["eng"])
    assert (three["lid_deu"], three["lid_eng"], three["accidental_translation"]) == (
        got["lid_de"], got["lid_en"], 50.0)


def test_lid_label_reads_codes_through_the_standard(lid_model):
    known = model_labels(lid_model)
    assert len(known) == 176 and {"de", "zh", "tl", "sh", "als", "sq"} <= known
    assert known == LID_176_LABELS  # what the digests read (lid_labels_version) is the model's
    expected = {"de": "de", "zh-Hans": "zh", "pt-BR": "pt", "deu": "de", "ger": "de", "cmn": "zh", "iw": "he",
                "fil": "tl", "tl": "tl", "sh": "sh", "sq": "sq", "als": "als", "sr-Latn": "sr", "nb": "no", "quy": "qu",
                "yue": "yue", "zu": None, "xx": None}
    assert {code: lid_label(code, known) for code in expected} == expected


def test_a_language_without_a_label_scores_nan_with_a_warning_once_per_job(lid_model, caplog):
    import types

    from workflow_scripts import score

    outputs = [SENTENCES["de"][0], SENTENCES["en"][0]]
    got = lid_summary(lid_model, outputs, target="xx", sources=["en"])
    assert math.isnan(got["lid_xx"]) and got["lid_en"] > 0 and got["accidental_translation"] == 50.0
    decodes = [{"step": step, "prediction": text, "record": {"summary": "x"}} for step in (1, 2) for text in outputs]
    spec = {"kind": "generation", "lang": "xx", "sources": ["en"], "rouge_l": "rougeL", "lid_model": None}
    rows = score.score_file(decodes, spec, tokenizer=types.SimpleNamespace(tokenize=str.split), lid_model=lid_model)
    assert [math.isnan(row["lid_xx"]) for row in rows] == [True, True]
    assert caplog.text.count("no label for 'xx'") == 1
    assert math.isnan(lid_summary(lid_model, [], target="xx", sources=["en"])["lid_xx"])


# ---------------------------------------------------------------- POS

GOLD = ["DET", "NOUN", "VERB"]


@pytest.mark.parametrize("text,expected", [
    ("<extra_id_0>DET <extra_id_1>NOUN <extra_id_2>VERB", ["DET", "NOUN", "VERB"]),
    ("<extra_id_2>VERB <extra_id_0>DET <extra_id_1>ADJ", ["DET", "ADJ", "VERB"]),
    ("<extra_id_0>DET <extra_id_2>VERB", ["DET", None, "VERB"]),
    ("<extra_id_0>DET <extra_id_0>NOUN <extra_id_1>NOUN <extra_id_2>NOUN", ["DET", "NOUN", "NOUN"]),
    ("hello", [None, None, None]),
    ("", [None, None, None]),
    ("junk <extra_id_0> DET <extra_id_1><extra_id_2>VERB</s><pad> <extra_id_7>X", ["DET", None, "VERB"]),
])
def test_parse_sentinel_tags(text, expected):
    assert parse_sentinel_tags(text, 3) == expected


def test_pos_accuracy():
    preds = [
        "<extra_id_0>DET <extra_id_1>NOUN <extra_id_2>VERB",                       # 3 correct
        "<extra_id_2>VERB <extra_id_0>DET <extra_id_1>ADJ",                        # 2
        "<extra_id_0>DET <extra_id_2>VERB",                                        # 2, malformed
        "<extra_id_0>DET <extra_id_0>NOUN <extra_id_1>NOUN <extra_id_2>NOUN",      # 2
        "hello",                                                                   # 0, malformed
        "",                                                                        # 0, malformed
    ]
    got = pos_accuracy(preds, [GOLD] * 6)
    assert got == {"accuracy": 50.0, "n_tokens": 18, "n_malformed": 3}
    assert pos_accuracy(["hello"], [["NOUN", "VERB"]]) == {"accuracy": 0.0, "n_tokens": 2, "n_malformed": 1}
    assert pos_accuracy([], []) == {"accuracy": 0.0, "n_tokens": 0, "n_malformed": 0}


# ---------------------------------------------------------------- paraphrase

@pytest.mark.parametrize("text,expected", [
    ("<extra_id_0>Yes.", 1), ("No.", 0), ("  yes ", 1), ("NO!", 0), ("<extra_id_0> Yes </s>", 1),
    ("maybe", None), ("", None), ("yes no", None), ("Yesterday", None),
])
def test_parse_yes_no(text, expected):
    assert parse_yes_no(text) == expected


def test_paraphrase_scores():
    preds = ["<extra_id_0>Yes.", "No.", "yes", "maybe", " NO ", "<extra_id_0> Yes </s>", "Yes"]
    labels = [1, 0, 0, 1, 0, 1, 1]
    # correct: 0,1,4,5,6 -> 5/7; tp=3 (0,5,6) fp=1 (2) fn=1 (3, invalid) -> F1 = 6/8
    got = paraphrase_scores(preds, labels)
    assert got["accuracy"] == pytest.approx(500 / 7)
    assert got["f1"] == pytest.approx(75.0)
    assert got["n_invalid"] == 1
    assert paraphrase_scores(["No", "maybe"], [1, 0]) == {"accuracy": 0.0, "f1": 0.0, "n_invalid": 1}


def test_paraphrase_labels_read_as_text_score_as_numbers():
    """A jsonl file may hold PAWS-X's labels as "1"/"0"; an unparseable answer is never right."""
    assert paraphrase_scores(["Yes.", "No."], ["1", "0"])["accuracy"] == 100.0
    assert paraphrase_scores(["Maybe", "??"], ["1", "0"])["accuracy"] == 0.0
    with pytest.raises(ValueError, match="'2' is neither"):
        paraphrase_scores(["Yes."], ["2"])


# ---------------------------------------------------------------- QA

def test_squad_scores_english():
    preds = ["The Eiffel Tower.", "in Paris, France", "a big red dog"]
    answers = ["eiffel tower", "Paris", ["the dog", "red dog"]]
    # F1: 1; P=1/3 R=1 -> 0.5; best of (0.5, P=2/3 R=1 -> 0.8) -> 0.8
    got = squad_scores(preds, answers)
    assert got["exact_match"] == pytest.approx(100 / 3)
    assert got["f1"] == pytest.approx(100 * (1 + 0.5 + 0.8) / 3)


def test_squad_scores_chinese_partial_credit():
    # 4 chars predicted, all in the 7-char answer (punctuation removed): P=1, R=4/7 -> F1 = 8/11
    got = squad_scores(["北京大学"], ["北京大学很有名。"])
    assert got["exact_match"] == 0.0
    assert got["f1"] == pytest.approx(800 / 11)
    assert squad_scores(["北京 大学"], ["北京大学"])["exact_match"] == 100.0


def test_squad_scores_empty_and_sentinels():
    assert squad_scores([""], ["Paris"])["f1"] == 0.0
    assert squad_scores(["Paris"], [""])["exact_match"] == 0.0
    both = squad_scores([""], [""])
    assert both["exact_match"] == 100.0 and both["f1"] == 100.0
    assert squad_scores(["<extra_id_0> Paris </s>"], ["Paris"])["exact_match"] == 100.0
    assert squad_scores([], [])["f1"] == 0.0
    with pytest.raises(ValueError):
        squad_scores(["a"], [])


def test_strip_sentinels():
    assert strip_sentinels("<pad> <extra_id_0>Hello   <extra_id_12> world</s>") == "Hello world"
    assert strip_sentinels("") == ""


def test_accidental_translation_into_sources_it_cannot_name_is_nan(lid_model):
    """With no source the model names, no output can be caught in one: the share is unknown, not 0."""
    outputs = [SENTENCES["de"][0], SENTENCES["en"][0]]
    got = lid_summary(lid_model, outputs, target="de", sources=["zu"])
    assert math.isnan(got["accidental_translation"]) and math.isnan(got["lid_zu"]) and got["lid_de"] > 0
    assert lid_summary(lid_model, outputs, target="de", sources=["zu", "en"])["accidental_translation"] == 50.0
    assert lid_summary(lid_model, outputs, target="en", sources=["en"])["accidental_translation"] == 0.0
