"""The base model: writes the first answer (the draft)."""

from __future__ import annotations

from ..backends import GenerateRequest, whole_sentences
from ..messages import Draft
from ._base import Agent, EpisodeContext, register_role, with_system


@register_role("base")
class BaseAgent(Agent):
    """Answers the conversation as a plain assistant would.

    Options: ``max_new_tokens`` and ``temperature`` (default: the hierarchy's settings);
    ``system``: a system message put before a conversation that has none (the embedded
    hierarchy asks its small model for brief answers: it loops when it writes long ones). The
    system message only steers the draft; the conversation the episode records and trains on
    is the user's. A draft the token limit cut keeps its whole sentences (counted in the run's
    ``feedback.answers``).
    """

    async def draft(self, ctx: EpisodeContext) -> Draft:
        assert self.backend is not None
        settings = ctx.settings
        messages = with_system(tuple(ctx.messages), self.options.get("system"))
        request = GenerateRequest(
            messages=messages,
            max_new_tokens=int(self.options.get("max_new_tokens", settings.max_new_tokens)),
            temperature=float(self.options.get("temperature", settings.temperature)),
            seed=settings.seed,
            meta=ctx.meta(self, "draft"),
        )
        (generation,) = await self.backend.generate([request])
        text = generation.text.strip()
        finish = generation.finish[0] if generation.finish else ""
        if finish == "length":
            text = whole_sentences(text) or text
        return Draft(candidate_id="c0", text=text, model=self.name, finish=finish)
