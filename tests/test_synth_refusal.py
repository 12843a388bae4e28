"""`refusal` generator: real corpus snippets, a real HTTP target model, span-match and LLM judges."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from pipelines.synth.common import read_conversations
from pipelines.synth.qa import load_documents, rule_questions, span_match
from pipelines.synth.refusal import REFUSALS, RefusalConfig, run_refusal
from tests.test_synth_support import OpenAIServer, last_user, web_documents  # noqa: F401 (fixture)


def test_rule_questions_have_answers_in_their_snippets(web_documents):  # noqa: F811
    docs = load_documents(web_documents)
    items = rule_questions(docs, seed=0)
    assert len(items) >= 30
    for it in items:
        assert it.answer in it.sentence and it.answer in it.snippet
        assert it.answer not in it.question  # the question does not give the answer away
        assert "____" in it.question
    assert rule_questions(docs, seed=0) == items


def test_span_match():
    assert span_match("I think it was in 2,019.", "2019")
    assert span_match("the allen institute!", "Allen Institute")
    assert not span_match("120 people", "12")
    assert not span_match("", "x")


def test_probe_refuses_where_the_model_is_consistently_wrong(web_documents, tmp_path):  # noqa: F811
    docs = load_documents(web_documents)
    truth = {it.question: it for it in rule_questions(docs, seed=0)}

    def target(body):  # knows the years, is wrong on everything else, unsure on numbers
        it = truth[last_user(body)]
        if it.answer_type == "year" or it.answer_type == "number" and body["seed"] % 2 == 0:
            return f"It is {it.answer}."
        return "I believe it is Napoleon Bonaparte in 1066."

    with OpenAIServer(target) as server:
        cfg = RefusalConfig(
            output=str(tmp_path / "r"),
            documents=str(web_documents),
            samples=3,
            target={"base_url": server.base_url, "cache_dir": str(tmp_path / "cache")},
        )
        stats = run_refusal(cfg)
        assert len(server.requests) == 3 * stats["questions"]
    rows = read_conversations(tmp_path / "r")
    by_type = {
        t: [it for it in truth.values() if it.answer_type == t] for t in ("year", "number", "name")
    }
    years_without_1066 = [it for it in by_type["year"] if it.answer != "1066"]
    assert stats["consistently_right"] == len(years_without_1066)
    assert stats["consistently_wrong"] == len(by_type["name"])
    assert stats["mixed"] == len(by_type["number"])
    assert stats["refusal_rate"] == round(len(by_type["name"]) / len(truth), 4)
    for r in rows:
        meta = json.loads(r["meta"])
        it = truth[r["messages"][0]["content"]]
        assert (
            r["doc_id"] == it.doc_id and meta["snippet"] == it.snippet and len(meta["answers"]) == 3
        )
        if r["kind"] == "refusal":
            assert it.answer_type == "name" and r["messages"][1]["content"] in REFUSALS
        else:
            assert r["kind"] == "answered" and it.answer_type == "year"
            assert it.answer in r["messages"][1]["content"]
    assert (
        len({r["messages"][1]["content"] for r in rows if r["kind"] == "refusal"}) > 3
    )  # varied phrasings
    probes = pq.read_table(tmp_path / "r" / "probes").to_pylist()
    assert len(probes) == stats["questions"] and all(len(p["correct"]) == 3 for p in probes)


def test_llm_judge_overrides_span_match(web_documents, tmp_path):  # noqa: F811
    with OpenAIServer(lambda b: "no idea") as target, OpenAIServer(lambda b: "yes") as judge:
        stats = run_refusal(
            RefusalConfig(
                output=str(tmp_path / "j"),
                documents=str(web_documents),
                samples=2,
                max_questions=10,
                target={"base_url": target.base_url},
                judge={"base_url": judge.base_url},
            )
        )
        assert (
            len(judge.requests) == 20
            and "Reference answer" in judge.requests[0]["messages"][0]["content"]
        )
    assert (
        stats["judge"] == "llm" and stats["consistently_right"] == 10 and stats["refusal_rate"] == 0
    )


def test_llm_question_writer_keeps_only_span_answers(web_documents, tmp_path):  # noqa: F811
    def writer(body):
        if "Proposed answer" in last_user(
            body
        ):  # the answerability check (writer doubles as judge)
            return "yes"
        text = last_user(body).split("Text: ", 1)[1]
        word = max(text.split(), key=len).strip(".,;:()\"'")
        return (
            f"Question: Which long word appears here?\nAnswer: {word}"
            if len(text) % 2
            else "Question: What is the airspeed of a swallow?\nAnswer: 11 m/s zzq"
        )

    with OpenAIServer(writer) as w, OpenAIServer(lambda b: "hmm") as target:
        stats = run_refusal(
            RefusalConfig(
                output=str(tmp_path / "w"),
                documents=str(web_documents),
                samples=1,
                questions_per_doc=0,
                target={"base_url": target.base_url},
                question_writer={"base_url": w.base_url},
            )
        )
    rows = read_conversations(tmp_path / "w")
    assert 0 < stats["questions"] < stats["documents"]  # answers not in the snippet were dropped
    assert all(json.loads(r["meta"])["writer"].startswith("llm") for r in rows)
    assert all(
        span_match(json.loads(r["meta"])["snippet"], json.loads(r["meta"])["reference"])
        for r in rows
    )


def test_cloze_slot_types_are_right():
    from pipelines.synth.qa import _spans

    assert ("1998", "year") in _spans("The company was founded in 1998 by two friends from Ohio.")
    assert ("2019", "year") in _spans(
        "The report was published on March 4, 2019 after a long delay."
    )
    spans = _spans("More than 2000 people came to see the 1500 meters race last weekend.")
    assert ("2000", "number") in spans and ("1500", "number") in spans
    assert not any(t == "year" for _, t in spans)
    assert not any(
        s in ("Monday", "January") for s, _ in _spans("We met, as planned, on Monday in January.")
    )


def test_natural_llm_probes_checked_answerable(web_documents, tmp_path):  # noqa: F811
    """With a writer endpoint the probes are natural questions (no cloze), each checked by the
    judge; questions that point at the text, give the answer away or are judged unanswerable go."""
    import re

    def writer(body):
        text = last_user(body).split("Text: ", 1)[1]
        word = max(re.findall(r"[A-Za-z]{6,}", text) or ["nothing"], key=len)
        style = len(text) % 4
        if style == 0:
            return f"Question: According to the text, what is the key term?\nAnswer: {word}"
        if style == 1:
            return f"Question: Is {word} the answer?\nAnswer: {word}"
        return f"Question: Which long word describes the subject of {text.split()[0]}'s story?\nAnswer: {word}"

    def judge(body):
        text = last_user(body)
        if "Proposed answer" in text:  # answerability: reject about half, deterministically
            return "yes" if len(text) % 2 else "no"
        return "no"

    with (
        OpenAIServer(writer) as w,
        OpenAIServer(judge) as j,
        OpenAIServer(lambda b: "hmm") as target,
    ):
        stats = run_refusal(
            RefusalConfig(
                output=str(tmp_path / "n"),
                documents=str(web_documents),
                samples=1,
                target={"base_url": target.base_url},
                question_writer={"base_url": w.base_url},
                judge={"base_url": j.base_url},
            )
        )
        checks = [r for r in j.requests if "Proposed answer" in last_user(r)]
    assert stats["question_style"] == "natural (llm)"
    rej = stats["questions_rejected"]
    assert (
        rej["refers_to_text"] > 0
        and rej["answer_in_question"] > 0
        and rej["judged_unanswerable"] > 0
    )
    assert stats["questions"] == len(checks) - rej["judged_unanswerable"] > 0
    probes = pq.read_table(tmp_path / "n" / "probes").to_pylist()
    assert all("____" not in p["question"] and "the text" not in p["question"] for p in probes)
    rows = read_conversations(tmp_path / "n")
    assert all(json.loads(r["meta"])["question_style"] == "natural (llm)" for r in rows)
    # without an endpoint: cloze questions, labelled as the offline fallback
    with OpenAIServer(lambda b: "hmm") as target:
        stats = run_refusal(
            RefusalConfig(
                output=str(tmp_path / "c"),
                documents=str(web_documents),
                samples=1,
                max_questions=5,
                target={"base_url": target.base_url},
            )
        )
    assert stats["question_style"] == "cloze (offline fallback)"
    assert all(
        json.loads(r["meta"])["writer"] == "rules:cloze" for r in read_conversations(tmp_path / "c")
    )
