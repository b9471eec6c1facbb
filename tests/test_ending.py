"""How answers end: the first repeated stretch, and trimming to whole sentences."""

from __future__ import annotations

import pytest

from oversight.backends._ending import first_repeat, whole_sentences


@pytest.mark.parametrize(
    ("tokens", "n", "expected"),
    [
        ([1, 2, 3, 4, 1, 2, 3, 4, 1, 2], 3, 4),  # the loop's second turn starts at 4
        ([5, 5, 5, 5], 2, 1),
        ([1, 2, 3], 2, None),
        ([1, 2, 1, 3, 1, 2, 1, 3], 4, 4),
        ([1, 2, 1, 2], 0, None),  # 0: never
    ],
)
def test_first_repeat(tokens: list[int], n: int, expected: int | None) -> None:
    assert first_repeat(tokens, n) == expected
    if expected is not None:
        assert first_repeat(tokens[:expected], n) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The capital of Australia is Canberra.", "The capital of Australia is Canberra."),
        ("It rains. The leaves fall and", "It rains."),
        ("Tips:\n1. Sleep well\n2. Eat", "Tips:\n1. Sleep well"),
        ('He said "stop." Then he', 'He said "stop."'),
        ("Steps:\n1.", "Steps:"),  # a list number is not a sentence end
        ("x = 3.14 is", ""),
        ("no sentence ends here", ""),
        ("```python\nprint(1)\n```", "```python\nprint(1)\n```"),
        ("Done! And then", "Done!"),
        ("   ", ""),
    ],
)
def test_whole_sentences(text: str, expected: str) -> None:
    assert whole_sentences(text) == expected


class _Recorder:
    """A backend test double: answers every request with ``reply`` and how it ended."""

    def __init__(self, reply: str, finish: str) -> None:
        self.reply, self.finish = reply, finish
        self.requests: list[object] = []

    async def generate(self, requests: list[object]) -> list[object]:
        from oversight.backends import Generation

        self.requests.extend(requests)
        return [Generation(texts=(self.reply,), finish=(self.finish,)) for _ in requests]


def _context(messages: list[dict[str, str]]) -> object:
    from oversight.agents._base import EpisodeContext
    from oversight.constitution import load_constitution
    from oversight.hierarchy import HierarchySettings
    from oversight.messages import Prompt, Turn

    prompt = Prompt(prompt_id="p", messages=tuple(Turn(**m) for m in messages))
    constitution = load_constitution("constitutions/default.yaml")
    return EpisodeContext("run", "ep", prompt, constitution, HierarchySettings())


async def test_the_base_agent_keeps_whole_sentences_of_a_cut_draft_and_asks_its_system() -> None:
    from oversight.agents.base import BaseAgent

    backend = _Recorder("Rain falls on the roof. The leaves turn gold and", "length")
    agent = BaseAgent("base", backend, {"system": "Answer briefly."})  # type: ignore[arg-type]
    draft = await agent.draft(_context([{"role": "user", "content": "Describe autumn."}]))  # type: ignore[arg-type]
    assert draft.text == "Rain falls on the roof." and draft.finish == "length"
    (request,) = backend.requests
    assert [m["role"] for m in request.messages] == ["system", "user"]  # type: ignore[attr-defined]
    assert request.messages[0]["content"] == "Answer briefly."  # type: ignore[attr-defined]

    # A conversation that brings its own system message keeps it, alone; a finished draft
    # is kept as written.
    backend = _Recorder("Fine, thanks", "stop")
    agent = BaseAgent("base", backend, {"system": "Answer briefly."})  # type: ignore[arg-type]
    own = [{"role": "system", "content": "Be formal."}, {"role": "user", "content": "Hi?"}]
    draft = await agent.draft(_context(own))  # type: ignore[arg-type]
    assert draft.text == "Fine, thanks" and draft.finish == "stop"
    (request,) = backend.requests
    assert [m["content"] for m in request.messages] == ["Be formal.", "Hi?"]  # type: ignore[attr-defined]


def test_the_run_summary_counts_how_answers_ended() -> None:
    from oversight.critiques import feedback_summary
    from oversight.messages import Draft, Revision, envelope

    def draft(ep: str, finish: str) -> object:
        return envelope(Draft(candidate_id="c0", text="x", model="base", finish=finish),
                        run="r", episode=ep, sender="base", topic="t")  # fmt: skip

    envs = [draft("a", "stop"), draft("b", "length"), draft("c", "repetition"), draft("d", "stop")]
    revision = Revision(candidate_id="c1", revises="c0", round=1, text="y", finish="length")
    guided = Revision(candidate_id="c2", revises="c0", round=1, text="z", source="guided")
    envs += [
        envelope(r, run="r", episode="a", sender="reviser", topic="t") for r in (revision, guided)
    ]
    answers = feedback_summary(envs)["answers"]
    assert answers["drafts"]["by_finish"] == {"length": 1, "repetition": 1, "stop": 2}
    assert answers["drafts"]["cut_by_limit_share"] == 0.25
    assert answers["model_revisions"] == {
        "total": 1, "by_finish": {"length": 1}, "cut_by_limit_share": 1.0,
    }  # fmt: skip
