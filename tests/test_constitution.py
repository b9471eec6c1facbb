from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from oversight.cli.constitution import register
from oversight.constitution import (
    Constitution,
    Overlay,
    Principle,
    apply_overlay,
    load_cai_principles,
    load_constitution,
    load_overlay,
)
from oversight.errors import ConfigError, PriorityCycleError, UnknownPrincipleError
from oversight.paths import DATA_DIR

DEFAULT = "constitutions/default.yaml"
OVERLAYS = sorted((DATA_DIR / "constitutions" / "overlays").glob("*.yaml"))

PRINCIPLE = """\
  - id: {id}
    version: "1"
    name: {id}
    category: test
    purpose: testing
    critique_prompt: "Request {{request}} response {{response}}. Violates? Answer Yes or No."
    revision_prompt: "Fix {{response}} given {{critique}}"
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def doc(*ids: str, extra: str = "") -> str:
    return "name: t\nprinciples:\n" + "".join(PRINCIPLE.format(id=i) for i in ids) + extra


# ------------------------------------------------------------------ the shipped constitution


def test_default_has_the_seven_principles_helpfulness_and_the_conflicts_other_sides() -> None:
    c = load_constitution(DEFAULT)
    categories = {p.id: p.category for p in c.principles}
    assert categories == {
        "harm": "safety",
        "privacy": "security",
        "honesty": "honesty",
        "fairness": "fairness",
        "lawful": "compliance",
        "manipulation": "ethical interaction",
        "balance": "reliability",
        "helpfulness": "helpfulness",
        "transparency": "transparency",
        "moral_judgment": "ethics",
        "personalisation": "helpfulness",
        "politeness": "ethical interaction",  # issue 14: below honesty
        "tool_use": "security",  # issue 15: tool results are data, never instructions
    }
    for p in c.principles:
        assert p.critique_prompt.rstrip().endswith("Answer Yes or No."), p.id
        assert 1 <= len(p.examples) <= 2, p.id
        assert p.version and p.purpose
    for pid in ("harm", "privacy", "lawful"):
        assert c.principle(pid).refusal_template
    assert ("harm", "helpfulness") in c.priorities
    assert ("tool_use", "helpfulness") in c.priorities
    assert {r.id for r in c.rules} >= {"high-stakes-honesty", "minor-audience"}


def test_templates_render_with_request_response_and_critique() -> None:
    harm = load_constitution(DEFAULT).principle("harm")
    text = harm.render_critique("REQ-1", "RESP-2")
    assert "REQ-1" in text and "RESP-2" in text and "{" not in text
    revised = harm.render_revision("REQ-1", "RESP-2", "CRIT-3")
    assert "CRIT-3" in revised and "RESP-2" in revised


def test_loads_from_packaged_data_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    c = load_constitution("constitutions/default.yaml", overlays=["overlays/eu-gdpr.yaml"])
    assert c.overlays == ("eu-gdpr",)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.stem)
def test_every_shipped_overlay_applies_to_default(overlay: Path) -> None:
    base = load_constitution(DEFAULT)
    c = load_constitution(DEFAULT, overlays=[overlay])
    assert c.overlays == (overlay.stem,)
    assert c != base
    assert set(base.ids) <= set(c.ids)


def test_at_least_two_overlays_ship() -> None:
    assert len(OVERLAYS) >= 2


def test_eu_gdpr_raises_privacy_and_adds_edges() -> None:
    base = load_constitution(DEFAULT)
    c = load_constitution(DEFAULT, overlays=["overlays/eu-gdpr.yaml"])
    assert c.principle("privacy").weight > base.principle("privacy").weight
    assert ("privacy", "balance") in c.priorities
    assert "data-minimisation" in c.ids
    # the input constitution is unchanged
    assert ("privacy", "balance") not in base.priorities


# ------------------------------------------------------------------ overlays


def test_overlay_removing_a_principle_drops_its_edges_and_rule_edges() -> None:
    base = load_constitution(DEFAULT)
    c = apply_overlay(base, Overlay(name="no-honesty", remove_principles=("honesty",)))
    assert "honesty" not in c.ids
    assert all("honesty" not in edge for edge in c.priorities)
    assert "high-stakes-honesty" not in {r.id for r in c.rules}  # left with no edges
    minor = next(r for r in c.rules if r.id == "minor-audience")
    assert ("privacy", "balance") in minor.add_edges
    assert all("honesty" not in e for e in minor.add_edges)


def test_overlay_errors_name_the_key(tmp_path: Path) -> None:
    base = load_constitution(DEFAULT)
    with pytest.raises(UnknownPrincipleError, match=r"weights\.privcy.*'privacy'"):
        apply_overlay(base, Overlay(name="x", weights={"privcy": 2.0}))
    with pytest.raises(ConfigError, match=r"remove_priorities\[0\].*balance > harm"):
        apply_overlay(base, Overlay(name="x", remove_priorities=(("balance", "harm"),)))
    with pytest.raises(ConfigError, match=r"add_principles.*already exists"):
        apply_overlay(base, Overlay(name="x", add_principles=(base.principle("harm"),)))
    with pytest.raises(ConfigError, match="written for constitution 'other'"):
        apply_overlay(base, Overlay(name="x", base="other"))
    with pytest.raises(ConfigError, match="remove_rules"):
        apply_overlay(base, Overlay(name="x", remove_rules=("nope",)))
    bad = write(tmp_path, "name: x\nweights: {harm: -1}\n", "o.yaml")
    with pytest.raises(ConfigError, match=r"o\.yaml.*weights.*>= 0"):
        load_overlay(bad)


def test_overlay_that_creates_a_cycle_is_rejected() -> None:
    base = load_constitution(DEFAULT)
    overlay = Overlay(name="loop", add_priorities=(("helpfulness", "harm"),))
    with pytest.raises(PriorityCycleError) as info:
        apply_overlay(base, overlay)
    assert set(info.value.cycle) == {"harm", "helpfulness"}


def test_overlay_edges_accept_arrow_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nadd_priorities: [balance > helpfulness]\n", "o.yaml")
    c = load_constitution(DEFAULT, overlays=[path])
    assert ("balance", "helpfulness") in c.priorities


# ------------------------------------------------------------------ bad input


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: t\nprinciples:\n  - id: a\n    name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: line \d+, column \d+: malformed YAML"):
        load_constitution(path)


def test_missing_key_names_key_and_line(tmp_path: Path) -> None:
    text = doc("a", "b").replace("    purpose: testing\n", "", 1)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_constitution(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 3: principles[0] (a).purpose: required key is missing" in message


def test_wrong_type_names_key(tmp_path: Path) -> None:
    path = write(tmp_path, doc("a") + "    weight: heavy\n")
    with pytest.raises(ConfigError, match=r"principles\[0\] \(a\)\.weight.*'heavy'"):
        load_constitution(path)


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, doc("a") + "    wieght: 1\n")
    with pytest.raises(ConfigError, match=r"principles\[0\] \(a\)\.wieght: unknown key"):
        load_constitution(path)


def test_unknown_principle_in_edge_suggests_a_fix(tmp_path: Path) -> None:
    path = write(tmp_path, doc("harm", "helpfulness", extra="priorities: [harm > helpfulnes]\n"))
    with pytest.raises(
        UnknownPrincipleError, match=r"priorities\[0\].*'helpfulnes'.*'helpfulness'\?"
    ):
        load_constitution(path)


def test_unknown_principle_in_rule(tmp_path: Path) -> None:
    rules = "rules:\n  - id: r\n    when: {domain: medical}\n    add_edges: [[a, zz]]\n"
    path = write(tmp_path, doc("a", "b", extra=rules))
    with pytest.raises(UnknownPrincipleError, match=r"rules\[0\] \(r\)\.add_edges.*'zz'"):
        load_constitution(path)


def test_duplicate_ids(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"principles\[1\]\.id: duplicate principle id 'a'"):
        load_constitution(write(tmp_path, doc("a", "a")))
    rules = "rules:\n" + "  - {id: r, when: {x: y}, add_edges: [a > b]}\n" * 2
    with pytest.raises(ConfigError, match="duplicate rule id 'r'"):
        load_constitution(write(tmp_path, doc("a", "b", extra=rules)))


def test_self_edge_and_bad_edge_syntax(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="points a principle at itself"):
        load_constitution(write(tmp_path, doc("a", extra="priorities: [a > a]\n")))
    with pytest.raises(ConfigError, match="must read 'winner > loser'"):
        load_constitution(write(tmp_path, doc("a", "b", extra="priorities: [a >> b]\n")))


def test_unknown_placeholder_is_rejected(tmp_path: Path) -> None:
    text = doc("a").replace("Request {request}", "Request {prompt}")
    with pytest.raises(
        ConfigError, match=r"critique_prompt uses unknown placeholder\(s\) \{prompt\}"
    ):
        load_constitution(write(tmp_path, text))
    text = doc("a").replace("Fix {response}", "Fix {response")
    with pytest.raises(ConfigError, match="revision_prompt is not a valid template"):
        load_constitution(write(tmp_path, text))


def test_critique_prompt_must_show_the_response(tmp_path: Path) -> None:
    text = doc("a").replace("response {response}.", "no placeholder.")
    with pytest.raises(ConfigError, match=r"critique_prompt never shows the model the response"):
        load_constitution(write(tmp_path, text))


def test_literal_braces_survive_rendering() -> None:
    p = Principle(
        id="a", version="1", name="a", category="c", purpose="p",
        critique_prompt='JSON {{"ok": true}} for {response}', revision_prompt="{response}",
    )  # fmt: skip
    assert p.render_critique("q", "r") == 'JSON {"ok": true} for r'


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        load_constitution(write(tmp_path, ""))
    with pytest.raises(ConfigError, match="top level must be a YAML mapping"):
        load_constitution(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_constitution(tmp_path / "missing.yaml")


def test_principle_lookup_suggests_close_ids() -> None:
    c = load_constitution(DEFAULT)
    with pytest.raises(UnknownPrincipleError, match="did you mean 'privacy'"):
        c.principle("privcy")


def test_constitution_is_frozen() -> None:
    c = load_constitution(DEFAULT)
    with pytest.raises(ValueError, match="frozen"):
        c.name = "other"  # type: ignore[misc]
    assert isinstance(c, Constitution)


# ------------------------------------------------------------------ Anthropic's CAI prompts


def test_load_cai_principles_from_the_published_files(shared_data: Path) -> None:
    folder = shared_data / "constitutional-harmlessness-paper" / "prompts"
    c = load_cai_principles(folder)
    assert c.ids == [f"harmful{i}" for i in range(16)]
    first = c.principle("harmful0")
    assert "harmful, unethical, racist, sexist, toxic, dangerous, or illegal" in first.purpose
    critique = first.render_critique("How do I pick a lock?", "Use a tension wrench.")
    assert critique.startswith("Human: How do I pick a lock?\n\nAssistant: Use a tension wrench.")
    assert critique.endswith("Answer Yes or No.")
    revision = first.render_revision("q", "r", "it is harmful")
    assert "Critique: it is harmful\n\nRevisionRequest: Please rewrite" in revision
    assert revision.endswith("Revision:")
    examples = first.examples
    assert len(examples) == 5
    assert all(e.request and e.response and e.critique and e.revision for e in examples)
    assert examples[0].request.startswith("Could you help me burn down my house")
    assert not examples[0].revision.endswith("Human:")
    same = load_cai_principles(folder / "CritiqueRevisionInstructions.json")
    assert same.ids == c.ids


def test_load_cai_principles_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_cai_principles(tmp_path)
    write(tmp_path, "[1, 2]", "CritiqueRevisionInstructions.json")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_cai_principles(tmp_path)
    write(tmp_path, '{"h0": {"prompt": []}}', "CritiqueRevisionInstructions.json")
    with pytest.raises(ConfigError, match="h0: expected"):
        load_cai_principles(tmp_path)


def test_duplicate_yaml_key_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, doc("a") + "    weight: 1\n    weight: 2\n")
    with pytest.raises(
        ConfigError,
        match=r"line 11: principles\[0\] \(a\)\.weight: duplicate key 'weight' "
        r"\(first defined at line 10\)",
    ):
        load_constitution(path)


def test_rule_conditions_accept_scalars_and_numbers(tmp_path: Path) -> None:
    rules = "rules:\n  - {id: r, when: {domain: medical, age: 12}, add_edges: [a > b]}\n"
    c = load_constitution(write(tmp_path, doc("a", "b", extra=rules)))
    assert c.rules[0].when == {"domain": ["medical"], "age": ["12"]}
    assert c.rules[0].applies({"domain": "medical", "age": 12})
    assert not c.rules[0].applies({"domain": "medical"})


def test_rule_without_edges_is_rejected(tmp_path: Path) -> None:
    rules = "rules:\n  - {id: r, when: {domain: medical}}\n"
    with pytest.raises(ConfigError, match=r"rules\[0\] \(r\): the rule has neither"):
        load_constitution(write(tmp_path, doc("a", "b", extra=rules)))


# ------------------------------------------------------------------ CLI


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def test_cli_show_applies_overlays_and_context() -> None:
    result = CliRunner().invoke(
        _cli(),
        ["constitution", "show", DEFAULT, "-o", "overlays/eu-gdpr.yaml",
         "-c", "domain=medical", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["overlays"] == ["eu-gdpr"]
    assert data["rules_applied"] == ["high-stakes-honesty"]
    assert ["honesty", "helpfulness"] in data["edges"]
    assert ["privacy", "balance"] in data["edges"]
    table = CliRunner().invoke(_cli(), ["constitution", "show"])
    assert table.exit_code == 0
    assert "  harm > helpfulness\n" in table.output
    assert "honesty > helpfulness" not in table.output


def test_cli_resolve_prints_strategy_and_winner() -> None:
    result = CliRunner().invoke(
        _cli(), ["constitution", "resolve", "c0=harm", "c1=helpfulness,balance", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["strategy"], data["winner"]) == ("priority", "c1")
    result = CliRunner().invoke(_cli(), ["constitution", "resolve", "c0=harm", "c1=privcy"])
    assert result.exit_code == 2
    assert "privcy" in result.output
    result = CliRunner().invoke(_cli(), ["constitution", "resolve", "c0", "-c", "x"])
    assert result.exit_code == 2
