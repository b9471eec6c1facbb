"""The base model: writes the first answer (the draft)."""

from __future__ import annotations

from ..backends import GenerateRequest
from ..messages import Draft
from ._base import Agent, EpisodeContext, register_role


@register_role("base")
class BaseAgent(Agent):
    """Answers the conversation as a plain assistant would."""

    async def draft(self, ctx: EpisodeContext) -> Draft:
        assert self.backend is not None
        settings = ctx.settings
        request = GenerateRequest(
            messages=tuple(ctx.messages),
            max_new_tokens=int(self.options.get("max_new_tokens", settings.max_new_tokens)),
            temperature=float(self.options.get("temperature", settings.temperature)),
            seed=settings.seed,
            meta=ctx.meta(self, "draft"),
        )
        (generation,) = await self.backend.generate([request])
        return Draft(candidate_id="c0", text=generation.text.strip(), model=self.name)
