"""Question answering without TensorFlow: SQuAD parsing, windows and offsets, span decoding, SQuAD metrics."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfxformers.errors import UserError
from tfxformers.models.qa import decode, features, metrics
from tfxformers.testing import tiny_vocab

DATA_FILE = Path(__file__).resolve().parents[2] / "data" / "qa_course.json"


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import BertWordPieceTokenizer

    vocab = {t: i for i, t in enumerate(tiny_vocab())}
    return features.fast_tokenizer(BertWordPieceTokenizer(vocab, lowercase=True, strip_accents=True)._tokenizer)


UNICODE_CONTEXT = ("Le café de Zoë ouvre à 8 h. Müller bakes a 🎂 cake at 175 °C for Ēmma, "
                   "and 東京 sells naïve crème brûlée; the story was told by the moving Ångström twins.")


def peaked_logits(window, first: int | None, last: int | None, high: float = 10.0):
    """Logits of a model sure about one span: high at its start and end positions, 0 elsewhere."""
    start, end = [0.0] * len(window), [0.0] * len(window)
    if first is not None:
        start[first] = high
    if last is not None:
        end[last] = high
    return start, end


@pytest.mark.parametrize("answer", ["café de Zoë", "🎂 cake", "Ēmma", "東京", "naïve crème brûlée",
                                    "Ångström twins", "175 °C"])
def test_offsets_map_back_to_the_exact_substring_unicode_included(tokenizer, answer):
    start = UNICODE_CONTEXT.index(answer)
    windows = features.plan_windows(tokenizer, "what is it?", UNICODE_CONTEXT, max_seq_len=384)
    assert len(windows) == 1
    span = features.answer_token_span(windows[0], start, start + len(answer))
    assert span is not None
    found = decode.decode_answers(UNICODE_CONTEXT, windows, *zip(peaked_logits(windows[0], *span)), max_answer_len=40)
    assert found[0]["answer"] == answer
    assert UNICODE_CONTEXT[found[0]["start"]:found[0]["end"]] == answer


def test_every_context_token_offset_is_a_piece_of_the_context(tokenizer):
    windows = features.plan_windows(tokenizer, "who?", UNICODE_CONTEXT * 3, max_seq_len=48, doc_stride=16)
    assert len(windows) > 3
    covered = set()
    for window in windows:
        assert len(window) <= 48
        assert window.input_ids[0] == tokenizer.token_to_id("[CLS]") and window.input_ids[-1] == tokenizer.token_to_id("[SEP]")
        first_context = window.token_type_ids.index(1)
        assert window.offsets[:first_context] == [None] * first_context and window.offsets[-1] is None
        for offset in window.offsets[first_context:-1]:
            a, b = offset
            assert 0 <= a < b <= len(UNICODE_CONTEXT) * 3 and (UNICODE_CONTEXT * 3)[a:b].strip()
            covered.add(offset)
    ids, offsets = features.encode_context(tokenizer, UNICODE_CONTEXT * 3)
    assert covered == set(offsets)  # every token of the context is in some window


def test_windows_overlap_by_doc_stride_and_end_flush(tokenizer):
    context = " ".join(f"word{i}" for i in range(300))
    ids, _ = features.encode_context(tokenizer, context)
    windows = features.plan_windows(tokenizer, "the question", context, max_seq_len=64, doc_stride=20)
    room = 64 - 3 - len(tokenizer.encode("the question", add_special_tokens=False).ids)
    firsts = [w.offsets[w.token_type_ids.index(1)] for w in windows]
    starts = [features.encode_context(tokenizer, context)[1].index(f) for f in firsts]
    assert all(b - a == room - 20 for a, b in zip(starts, starts[1:-1]))
    assert starts[-1] + room == len(ids)


def test_a_context_over_the_window_limit_is_refused_before_windows_are_built(tokenizer):
    context = "the movie was good . " * 400
    with pytest.raises(features.ContextTooLong, match="windows"):
        features.plan_windows(tokenizer, "how was it?", context, max_seq_len=64, max_windows=5)


@pytest.mark.parametrize("question, context, message", [("", "some text", "question is empty"),
                                                        ("   ", "some text", "question is empty"),
                                                        ("what?", "", "context is empty"),
                                                        ("what?", " \n ", "context is empty")])
def test_empty_question_or_context_is_a_user_error(tokenizer, question, context, message):
    with pytest.raises(UserError, match=message):
        features.plan_windows(tokenizer, question, context)


def test_an_answer_split_across_two_windows_is_found_whole(tokenizer):
    words = [f"w{i}" for i in range(120)]
    context = " ".join(words)
    question = "where?"
    windows = features.plan_windows(tokenizer, question, context, max_seq_len=48, doc_stride=16)
    # An answer that starts inside the first window and ends after it.
    first_window_last = max(o[1] for o in windows[0].offsets if o is not None)
    start = context.rfind(" ", 0, first_window_last - 4) + 1
    end = context.find(" ", first_window_last + 4)
    answer = context[start:end]
    assert features.answer_token_span(windows[0], start, end) is None  # not whole in window 0
    logits = []
    for window in windows:
        positions = [p for p, o in enumerate(window.offsets) if o is not None]
        first = next((p for p in positions if window.offsets[p][0] == start), None)
        last = next((p for p in positions if window.offsets[p][1] == end), None)
        logits.append(peaked_logits(window, first, last))
    best = decode.decode_answers(context, windows, [s for s, _ in logits], [e for _, e in logits],
                                 max_answer_len=30)[0]
    assert (best["answer"], best["start"], best["end"]) == (answer, start, end)
    assert best["window"] >= 1
    labelled = features.label_windows(windows, features.QAExample("x", question, context, [(answer, start)]))
    holding = [w for w in labelled if w.start_position]
    assert holding and all(w is not windows[0] for w in holding)


def test_decode_ranks_dedupes_and_respects_max_answer_len(tokenizer):
    context = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    windows = features.plan_windows(tokenizer, "q", context, max_seq_len=20, doc_stride=8)
    assert len(windows) >= 2
    def logits_for(window):
        start, end = [0.0] * len(window), [0.0] * len(window)
        for p, o in enumerate(window.offsets):
            if o is None:
                continue
            word = context[o[0]:o[1]]
            start[p] = {"beta": 6.0, "delta": 5.0}.get(word, 0.0) if context[o[0] - 1:o[0]] in (" ", "") else 0.0
            end[p] = {"gamma": 6.0, "theta": 7.0}.get(word, 0.0) if context[o[1]:o[1] + 1] in (" ", "") else 0.0
        return start, end
    pairs = [logits_for(w) for w in windows]
    starts, ends = [p[0] for p in pairs], [p[1] for p in pairs]
    answers = decode.decode_answers(context, windows, starts, ends, top_k=50, max_answer_len=30)
    texts = [a["answer"] for a in answers]
    assert len(texts) == len(set((a["start"], a["end"]) for a in answers))  # each span once
    assert all(context[a["start"]:a["end"]] == a["answer"] for a in answers)
    assert [a["score"] for a in answers] == sorted((a["score"] for a in answers), reverse=True)
    short = decode.decode_answers(context, windows, starts, ends, top_k=50, max_answer_len=2)
    assert all(len(tokenizer.encode(a["answer"], add_special_tokens=False).ids) <= 2 for a in short)
    with pytest.raises(ValueError):
        decode.decode_answers(context, windows, starts, ends, top_k=0)


def test_null_answer_only_with_handle_impossible_answer(tokenizer):
    context = "the film was long and dull"
    windows = features.plan_windows(tokenizer, "q", context)
    start, end = [0.0] * len(windows[0]), [0.0] * len(windows[0])
    start[0] = end[0] = 8.0  # the model prefers [CLS]: no answer
    with_null = decode.decode_answers(context, windows, [start], [end], handle_impossible_answer=True)
    assert with_null[0]["answer"] == "" and with_null[0]["start"] == with_null[0]["end"] == 0
    without = decode.decode_answers(context, windows, [start], [end])
    assert without[0]["answer"] != ""


def test_squad_metrics_official_definitions():
    assert metrics.normalize_answer("The  Cat, sat!") == "cat sat"
    assert metrics.normalize_answer("An apple a day") == "apple day"
    assert metrics.exact_match("the Eiffel Tower.", "Eiffel tower") == 1
    assert metrics.f1("in the red planet", "red planet") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert metrics.f1("", "") == 1.0 and metrics.f1("x", "") == 0.0 and metrics.f1("", "x") == 0.0
    scores = metrics.score({"a": "Mars", "b": "", "c": "the moon"},
                           {"a": ["Mars", "red planet"], "b": [], "c": ["Moon", "Venus"], "d": ["Earth"]})
    assert scores["exact_match"] == pytest.approx(75.0) and scores["total"] == 4
    assert scores["has_answer_exact_match"] == pytest.approx(200 / 3) and scores["no_answer_exact_match"] == 100.0


def test_parse_squad_fixes_off_by_one_starts_and_refuses_bad_files():
    context = "Preheat the oven to 350 degrees F."
    data = {"data": [{"title": "cake", "paragraphs": [{"context": context, "qas": [
        {"id": "1", "question": "How hot?", "answers": [{"text": "350 degrees F", "answer_start": 21}]},
        {"id": "2", "question": "What to preheat?", "answers": [{"text": "oven", "answer_start": 12}]},
        {"id": "3", "question": "Who?", "answers": [], "is_impossible": True},
        {"id": "4", "question": "Wrong?", "answers": [{"text": "not there", "answer_start": 0}]}]}]}]}
    examples, mismatched = features.parse_squad(data)
    assert [e.id for e in examples] == ["1", "2", "3"] and mismatched == 1
    assert examples[0].answers == [("350 degrees F", 20)] and examples[2].is_impossible
    for bad, message in (([], "not SQuAD"), ({"data": [{"title": "x"}]}, "paragraphs"),
                         ({"data": [{"paragraphs": [{"context": "", "qas": []}]}]}, "context"),
                         ({"data": [{"paragraphs": [{"context": "c", "qas": [{"question": ""}]}]}]}, "question")):
        with pytest.raises(UserError, match=message):
            features.parse_squad(bad)


def test_the_hand_made_course_file_is_valid_squad(tokenizer):
    examples, mismatched = features.load_squad(DATA_FILE)
    assert mismatched == 0 and len(examples) >= 36
    assert len({e.context for e in examples}) >= 24
    for example in examples:
        for text, start in example.answers:
            assert example.context[start:start + len(text)] == text
    built = features.build_features(tokenizer, examples, max_seq_len=128, doc_stride=32)
    assert built.skipped == 0
    train, validation = features.split_examples(examples)
    assert train and validation and not {e.context for e in train} & {e.context for e in validation}
    again, _ = features.parse_squad(features.to_squad(examples))
    assert [(e.question, e.context, e.answers) for e in again] == [(e.question, e.context, e.answers) for e in examples]


def test_decode_and_features_import_no_tensorflow_or_numpy():
    code = ("import sys; import tfxformers.models.qa.decode, tfxformers.models.qa.features, "
            "tfxformers.models.qa.metrics; bad = [m for m in ('tensorflow', 'numpy') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_training_batches_pad_to_the_smallest_bucket_that_fits(tokenizer):
    short = [features.plan_windows(tokenizer, "who?", text, max_seq_len=96)[0] for text in ("ab", "Ann", "cd e", "x")]
    longest = features.plan_windows(tokenizer, "who?", UNICODE_CONTEXT, max_seq_len=96)[0]
    short[1].start_position, short[1].end_position = 9, 11
    assert max(len(w) for w in short) <= 24 < len(longest) == 96
    inputs, labels = features.padded_batch(short, 0, (24, 48, 96), ["input_ids", "attention_mask"])
    assert set(inputs) == {"input_ids", "attention_mask"} and inputs["input_ids"].dtype.name == "int32"
    assert inputs["input_ids"].shape == (4, 24)
    assert inputs["attention_mask"].sum(axis=1).tolist() == [len(w) for w in short]
    assert labels["start_logits"].tolist() == [w.start_position for w in short]
    assert features.padded_batch([*short, longest], 0, (24, 48, 96))[0]["token_type_ids"].shape == (5, 96)
    features.check_buckets([16, 48, 96], 96)
    for bad in ([48, 16, 96], [16, 48], [16, 16, 96], [0, 96], []):
        with pytest.raises(UserError, match="--buckets"):
            features.check_buckets(bad, 96)


def test_questions_cut_to_what_a_window_holds_are_counted_and_a_one_passage_split_refused(tokenizer):
    """Issue 23's audit: questions were cut to the window's share unsaid (a short window holds fewer than 64
    question tokens: counted against that), and one passage made validation the training questions."""
    context = "the oven is hot at 350 degrees and the cake bakes for 30 minutes in the oven"
    examples = [features.QAExample("a", "how hot " * 30, context, [("350 degrees", 19)]),
                features.QAExample("b", "how hot is the oven", context, [("350 degrees", 19)])]
    assert features.question_token_limit(32) == 32 - 3 - features.MIN_CONTEXT_TOKENS == 21
    built = features.build_features(tokenizer, examples, max_seq_len=32, doc_stride=4)
    assert built.truncated_questions == 1
    assert features.build_features(tokenizer, examples[1:], max_seq_len=32, doc_stride=4).truncated_questions == 0
    with pytest.raises(UserError, match="f.json has one passage.*pass --eval-data"):
        features.split_examples(examples, source="f.json")
    assert features.max_doc_stride(384) == 190 and features.max_doc_stride(384, pair_seps=2) == 189
    assert features.default_doc_stride(384) == (128, None) and features.default_doc_stride(64)[0] == 29
