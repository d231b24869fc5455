"""Rubric YAML: every shipped rubric loads; broken files are rejected with file, path, reason."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.config import RUBRICS_DIR
from pipeline.scripts_check import RubricError, load_rubric

GOOD = {
    "id": "t",
    "version": 1,
    "language": "zh",
    "title": "测试表",
    "sections": [
        {
            "id": "opening",
            "title": "开场",
            "items": [
                {
                    "id": "a",
                    "title": "a",
                    "points": 10,
                    "check": {"required": {"role": "agent", "phrases": ["您好"]}},
                },
                {
                    "id": "b",
                    "title": "b",
                    "points": 10,
                    "check": {"forbidden": {"phrases": ["不知道"]}},
                },
                {
                    "id": "c",
                    "title": "c",
                    "points": 5,
                    "check": {"required": {"phrases": ["再见"], "within": {"last_turns": 2}}},
                },
            ],
        }
    ],
}


def _broken(edit) -> dict:
    data = copy.deepcopy(GOOD)
    edit(data)
    return data


def _item(data: dict, k: int) -> dict:
    return data["sections"][0]["items"][k]


BROKEN = [
    (
        lambda d: _item(d, 2)["check"]["required"].update(within={"frist_turns": 3}),
        "sections[0].items[2].check.required.within: unknown key 'frist_turns'",
    ),
    (lambda d: _item(d, 1).update(id="a"), "sections[0].items[1].id: duplicate item id 'a'"),
    (lambda d: _item(d, 0).update(points=0), "sections[0].items[0].points: "),
    (lambda d: _item(d, 0).update(points=-5), "sections[0].items[0].points: "),
    (
        lambda d: _item(d, 0)["check"]["required"].update(min_similarity=1.5),
        "sections[0].items[0].check.required.min_similarity: ",
    ),
    (
        lambda d: _item(d, 0)["check"]["required"].update(phrases=[]),
        "sections[0].items[0].check.required.phrases: ",
    ),
    (
        lambda d: _item(d, 0)["check"]["required"].update(phrases=["  "]),
        "sections[0].items[0].check.required.phrases: phrase 0 is empty",
    ),
    (
        lambda d: _item(d, 0)["check"]["required"].update(phrases=["，。！"]),
        "sections[0].items[0].check.required.phrases[0]: phrase '，。！' is empty once punctuation",
    ),
    (
        lambda d: _item(d, 0)["check"]["required"].update(role="boss"),
        "sections[0].items[0].check.required.role: ",
    ),
    (
        lambda d: _item(d, 0).update(check={}),
        "sections[0].items[0].check: needs exactly one operator, got 0",
    ),
    (
        lambda d: _item(d, 0).update(
            check={"required": {"phrases": ["a"]}, "forbidden": {"phrases": ["b"]}}
        ),
        "sections[0].items[0].check: needs exactly one operator, got 2",
    ),
    (
        lambda d: _item(d, 0).update(check={"mandatory": {"phrases": ["a"]}}),
        "sections[0].items[0].check: unknown operator 'mandatory'; valid: all_of, any_of, duration, forbidden",
    ),
    (
        lambda d: _item(d, 0)["check"]["required"].update(
            within={"first_turns": 2, "last_turns": 2}
        ),
        "sections[0].items[0].check.required.within: needs exactly one of",
    ),
    (
        lambda d: _item(d, 0)["check"]["required"].update(within={"first_turns": 0}),
        "sections[0].items[0].check.required.within.first_turns: ",
    ),
    (lambda d: _item(d, 0).pop("title"), "sections[0].items[0]: missing key 'title'"),
    (lambda d: _item(d, 0).update(wieght=3), "sections[0].items[0]: unknown key 'wieght'"),
    (lambda d: d.update(language="fr"), "language: "),
    (
        lambda d: d["sections"].append(
            copy.deepcopy(d["sections"][0]) | {"items": [_item(d, 0) | {"id": "z"}]}
        ),
        "sections[1].id: duplicate section id 'opening'",
    ),
    (lambda d: d["sections"][0].update(items=[]), "sections[0].items: "),
    (
        lambda d: _item(d, 0).update(check={"forbidden": {"phrases": ["b"], "patterns": ["(x"]}}),
        "sections[0].items[0].check.forbidden.patterns: ",
    ),
    (
        lambda d: _item(d, 0).update(
            check={
                "order": {
                    "first": {"phrases": ["a"]},
                    "then": {"phrases": ["b"]},
                    "if_first_only": "maybe",
                }
            }
        ),
        "sections[0].items[0].check.order.if_first_only: ",
    ),
    (
        lambda d: _item(d, 0).update(fails_with=["x"]),
        "sections[0].items[0].fails_with[0]: no item 'x' in this rubric",
    ),
    (
        lambda d: _item(d, 0).update(fails_with=["a"]),
        "sections[0].items[0].fails_with[0]: item 'a' cannot fail with itself",
    ),
    (
        lambda d: (_item(d, 0).update(fails_with=["c"]), _item(d, 2).update(fails_with=["b"])),
        "sections[0].items[0].fails_with[0]: item 'c' names fails_with itself: no chains",
    ),
    (
        lambda d: _item(d, 0).update(fails_with="c"),
        "sections[0].items[0].fails_with: ",
    ),
]


@pytest.mark.parametrize(("edit", "where"), BROKEN)
def test_broken_rubric_is_rejected_with_location(tmp_path: Path, edit, where: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(_broken(edit), allow_unicode=True), encoding="utf-8")
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    assert str(info.value).startswith(f"{path}: {where}"), str(info.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "file is empty"),
        ("id: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_unreadable_rubric_is_rejected(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RubricError, match=reason):
        load_rubric(path)


def test_good_rubric_loads_with_sha256(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(GOOD, allow_unicode=True), encoding="utf-8")
    rubric = load_rubric(path)
    assert rubric.points == 25 and len(rubric.sha256) == 64
    assert [i.check.op for _, i in rubric.items()] == ["required", "forbidden", "required"]


@pytest.mark.parametrize("path", sorted(RUBRICS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_rubrics_load(path: Path) -> None:
    rubric = load_rubric(path)
    assert rubric.id == path.stem
    assert rubric.points == 100
    assert any(i.critical for _, i in rubric.items())


def test_cli_rubric_check() -> None:
    from pipeline.scripts_check.cli import rubric

    runner = CliRunner()
    ok = runner.invoke(rubric, ["check", "zh_bank_hotline", str(RUBRICS_DIR / "en_telecom.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "8 items, 100 points" in ok.output and "no_forbidden" in ok.output


def test_cli_rubric_check_broken(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(_broken(BROKEN[0][0]), allow_unicode=True), encoding="utf-8")
    code = "import sys; from pipeline.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "rubric", "check", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    want = f"{path}: sections[0].items[2].check.required.within: unknown key 'frist_turns'"
    assert want in proc.stderr


def test_an_items_check_hash_follows_the_items_it_fails_with() -> None:
    """A human override of the bank form's courtesy survives a re-score only while the
    apology check it fails with stays the same too (score.form.item_check_sha256)."""
    from pipeline.contracts import read_yaml
    from pipeline.score.form import item_check_sha256
    from pipeline.scripts_check.rubric import parse_rubric

    data = read_yaml(RUBRICS_DIR / "zh_bank_hotline.yaml")[0]
    before = parse_rubric(copy.deepcopy(data), path="x")
    changed = copy.deepcopy(data)
    for section in changed["sections"]:
        for item in section["items"]:
            if item["id"] == "apology_on_complaint":
                item["check"]["response"]["max_turns"] = 2
    after = parse_rubric(changed, path="y")

    def hashes(r):
        return {i.id: item_check_sha256(r, i) for _, i in r.items()}

    a, b = hashes(before), hashes(after)
    assert a["apology_on_complaint"] != b["apology_on_complaint"]
    assert a["courtesy"] != b["courtesy"]  # fails_with: apology_on_complaint
    assert a["greeting"] == b["greeting"]


# The two Chinese forms each carry the red-line list (a form file is self-contained, so its
# sha256 reproduces a score); what one form bans the other bans too, except these entries of
# one domain (a bank's 公司的规定, a shop's 嫌贵就别买).
RED_LINES_OF_ONE_FORM = {
    "zh_bank_hotline": {
        "phrases": {"不可能", "这是公司的规定"},
        "exclude": {"不知道你现在方便"},
        "patterns": {
            "(?:你|您)[^，。！？,.!?]{0,8}(?:多|好|强)不到哪(?:儿|里)?去|(?:你|您)就?老老实实"
        },
    },
    "zh_ecommerce": {
        "phrases": {"这是平台的规定", "嫌贵就别买"},
        "exclude": set(),
        "patterns": set(),
    },
}


def _red_lines(form: str) -> dict[str, set[str]]:
    rubric = load_rubric(RUBRICS_DIR / f"{form}.yaml")
    (check,) = [item.check for _, item in rubric.items() if item.id == "no_forbidden"]
    return {key: set(getattr(check, key)) for key in ("phrases", "exclude", "patterns")}


@pytest.mark.parametrize("key", ["phrases", "exclude", "patterns"])
def test_the_chinese_forms_red_lines_stay_in_step(key: str) -> None:
    bank, shop = _red_lines("zh_bank_hotline"), _red_lines("zh_ecommerce")
    assert bank[key] - shop[key] == RED_LINES_OF_ONE_FORM["zh_bank_hotline"][key]
    assert shop[key] - bank[key] == RED_LINES_OF_ONE_FORM["zh_ecommerce"][key]
