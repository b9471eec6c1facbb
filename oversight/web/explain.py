"""The preference-chain pages of the review app (``oversight explain`` as a page).

``/explain/{run}`` lists a run's episodes; ``/explain/{run}/{episode}`` and
``/cases/{case_id}/explain`` show one episode's chain: prompt and context, the constitution and
overlays that applied, candidates, findings with principle versions, the judge's ranking, the
priority path, the decision and people's decisions. Same rules as every page: a session cookie
(else the login page), the app's CSP (no inline script or style), every text autoescaped, and a
reviewer sees other reviewers' decisions on an open case only after deciding it.

Kept apart from :mod:`oversight.web.app`, which only calls :func:`add_explain_routes`.
"""

# No `from __future__ import annotations`: FastAPI reads the session dependency's annotation
# (a local of add_explain_routes) when the routes are defined.
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from ..errors import CaseNotFound
from ..explain import PreferenceChain, chain_from_case, chain_from_journal
from ..messages import ENVELOPE_ADAPTER, Envelope, Escalation, Prompt

_RUN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_EPISODE = re.compile(r"^[0-9a-f]{6,64}$")
MAX_LISTED = 1000
"""Episodes listed on a run's page (the first ones in the journal)."""


def _journal(runs: Path, run: str) -> Path:
    if not _RUN.match(run) or ".." in run:
        raise HTTPException(404, f"no run {run[:80]!r}")
    path = runs / run / "journal.jsonl"
    if not path.is_file():
        raise HTTPException(404, f"run {run!r} has no journal here")
    return path


def episode_envelopes(path: Path, episode: str) -> list[Envelope]:
    """One episode's envelopes, parsing only the journal lines that name it."""
    needle = f'"episode":"{episode}"'.encode()
    out = []
    with path.open("rb") as fh:
        for line in fh:
            if needle in line:
                try:
                    out.append(ENVELOPE_ADAPTER.validate_json(line))
                except ValueError:
                    continue  # a torn or corrupt line: the journal reader reports those
    return out


def episode_index(path: Path, limit: int = MAX_LISTED) -> list[dict[str, Any]]:
    """``{episode, prompt_id, outcome}`` per episode of a journal, in order (at most ``limit``)."""
    rows: dict[str, dict[str, Any]] = {}
    with path.open("rb") as fh:
        for line in fh:
            if b'"kind":"prompt"' not in line and not any(
                k in line for k in (b'"kind":"consensus"', b'"kind":"escalation"', b"failure")
            ):
                continue
            try:
                env = ENVELOPE_ADAPTER.validate_json(line)
            except ValueError:
                continue
            if isinstance(env.payload, Prompt):
                if len(rows) >= limit:
                    continue
                rows.setdefault(env.episode, {"episode": env.episode, "outcome": "unfinished"})
                rows[env.episode]["prompt_id"] = env.payload.prompt_id
            elif env.episode in rows and env.kind in ("consensus", "escalation", "failure"):
                rows[env.episode]["outcome"] = env.kind
    return list(rows.values())


def add_explain_routes(
    app: FastAPI,
    *,
    page: Callable[..., HTMLResponse],
    session_dependency: Any,
    get_case: Callable[[str], Any],
    queue: Any,
    runs: Path,
    can_see_decisions: Callable[[Any, Any], bool],
    visible_decisions: Callable[[Any, Any], list[Any]],
) -> None:
    """Register the explain pages on ``app`` (``page`` renders a template for a session)."""

    def for_session(chain: PreferenceChain, case: Any, session: Any) -> PreferenceChain:
        if case is not None and not can_see_decisions(case, session):
            mine = session.reviewer.name
            chain.human = [h for h in chain.human if h.get("reviewer") == mine]
            if chain.target is not None and chain.target.get("by") == "human":
                chain.target = None
        return chain

    def case_of(envs: list[Envelope]) -> Any:
        escalation = next((e.payload for e in envs if isinstance(e.payload, Escalation)), None)
        if escalation is None:
            return None
        try:
            return queue.get(escalation.case_id)
        except CaseNotFound:
            return None

    def render(chain: PreferenceChain, session: Any, case: Any) -> HTMLResponse:
        return page("explain.html", session, chain=chain, case=case)

    @app.get("/explain/{run}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(run: str, session: session_dependency) -> HTMLResponse:
        path = _journal(runs, run)
        return page("explain_run.html", session, run=run, episodes=episode_index(path))

    @app.get("/explain/{run}/{episode}", response_class=HTMLResponse, include_in_schema=False)
    def episode_page(run: str, episode: str, session: session_dependency) -> HTMLResponse:
        path = _journal(runs, run)
        if not _EPISODE.match(episode):
            raise HTTPException(404, "no such episode")
        envs = episode_envelopes(path, episode)
        if not envs:
            raise HTTPException(404, f"run {run!r} has no episode {episode[:16]!r}")
        case = case_of(envs)
        decisions = visible_decisions(case, session) if case is not None else []
        chain = for_session(chain_from_journal(envs, decisions), case, session)
        return render(chain, session, case)

    @app.get("/cases/{case_id}/explain", response_class=HTMLResponse, include_in_schema=False)
    def case_page(case_id: str, session: session_dependency) -> HTMLResponse:
        case = get_case(case_id)
        decisions = visible_decisions(case, session)
        envs: list[Envelope] = []
        if _RUN.match(case.run) and ".." not in case.run:
            path = runs / case.run / "journal.jsonl"
            if path.is_file() and _EPISODE.match(case.episode):
                envs = episode_envelopes(path, case.episode)
        chain = chain_from_journal(envs, decisions) if envs else chain_from_case(case, decisions)
        return render(for_session(chain, case, session), session, case)


__all__ = ["add_explain_routes", "episode_envelopes", "episode_index"]
