"""One Settings for every QA_* variable, documented in the README, with no import side effects."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from pipeline.config import (
    OFFLINE_ENV,
    PROJECT_ROOT,
    Settings,
    SettingsError,
    VaultSettings,
    enforce_offline,
    env_names,
    load_settings,
    settings_from,
)

README = PROJECT_ROOT / "README.md"
ROW = re.compile(r"^\| `(QA_[A-Z0-9_]+)` \| (`[^`]*`|unset) \| .+ \|$")


def _readme_table() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Reference: settings") :]
    return {m[1]: m[2].strip("`") for line in section.splitlines() if (m := ROW.match(line))}


def _field(dotted: str):
    model, *path = (Settings, *dotted.split("."))
    for name in path[:-1]:
        model = model.model_fields[name].annotation
    return model.model_fields[path[-1]]


def _variables_in_code() -> set[str]:
    found: set[str] = set()
    for folder in ("pipeline", "flows"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            found |= set(re.findall(r"\bQA_[A-Z0-9_]*[A-Z0-9]\b", path.read_text("utf-8")))
    return found


def test_every_variable_in_the_code_is_a_setting() -> None:
    assert _variables_in_code() - set(env_names()) == set()


def test_readme_table_lists_every_setting_and_nothing_else() -> None:
    assert sorted(_readme_table()) == sorted(env_names())


def test_readme_defaults_are_the_settings_defaults() -> None:
    for var, default in _readme_table().items():
        field = _field(env_names()[var])
        value = field.get_default(call_default_factory=True)
        if value is None or value == []:
            assert default == "unset", var
        elif isinstance(value, bool):
            assert default == str(value).lower(), var
        else:
            assert default == str(value), var


def test_environment_then_arguments(monkeypatch) -> None:
    monkeypatch.setenv("QA_BEAM_SIZE", "4")  # not the default
    monkeypatch.setenv("QA_LANGUAGE", "")  # empty: unset
    monkeypatch.setenv("QA_VAD", "off")
    monkeypatch.setenv("QA_RUBRIC_ROOTS", os.pathsep.join(["/a", "/b"]))
    settings = load_settings(rubric=None, asr_model="small")
    assert (settings.beam_size, settings.language, settings.vad) == (4, "auto", False)
    assert settings.rubric_roots == ["/a", "/b"] and settings.asr_model == "small"
    assert load_settings(beam_size=7).beam_size == 7
    assert Settings().beam_size == 4  # the class itself reads the environment too


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("QA_BEAM_SIZE", "wide", "QA_BEAM_SIZE='wide': Input should be a valid integer"),
        ("QA_DEVICE", "tpu", "QA_DEVICE='tpu': Input should be 'cpu', 'cuda' or 'auto'"),
        ("QA_KEEP_UNREDACTED", "maybe", "QA_KEEP_UNREDACTED='maybe': Input should be a valid boolean"),
        ("QA_MAX_CONCURRENCY", "0", "QA_MAX_CONCURRENCY='0': Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_a_refused_value_names_its_variable(monkeypatch, var, value, message) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(message), str(info.value)


def test_secrets_are_neither_shown_nor_recorded_nor_sent_to_workers(monkeypatch) -> None:
    monkeypatch.setenv("QA_PII_KEY", "not-a-secret-to-print")
    monkeypatch.setenv("QA_SECRET_KEY", "cookie-key")
    monkeypatch.setenv("QA_KEEP_UNREDACTED", "1")
    settings = load_settings()
    assert settings.vault.pii_key.get_secret_value() == "not-a-secret-to-print"
    assert settings.app.secret_key.get_secret_value() == "cookie-key"
    dumped = settings.model_dump_json()
    assert "not-a-secret" not in dumped and "cookie-key" not in dumped
    assert "not-a-secret" not in repr(settings)
    assert {"app", "vault", "voiceprints"}.isdisjoint(settings.model_dump())
    # a worker rebuilds the run's settings from the dump and its groups from its own environment
    monkeypatch.setenv("QA_PII_KEY", "worker-key")
    worker = Settings.model_validate_json(dumped)
    assert worker.vault.pii_key.get_secret_value() == "worker-key" and worker.vault.keep_unredacted
    monkeypatch.setenv("QA_PII_KEY", "sneaky")
    with pytest.raises(SettingsError) as info:
        load_settings(max_concurrency=0)
    assert "sneaky" not in str(info.value)


def test_settings_from_a_mapping_ignore_the_process_environment(monkeypatch) -> None:
    monkeypatch.setenv("QA_KEEP_UNREDACTED", "1")
    monkeypatch.setenv("QA_BEAM_SIZE", "7")
    assert settings_from({}, VaultSettings).keep_unredacted is False
    assert settings_from({"QA_PII_KEY": "  "}, VaultSettings).pii_key is None  # blank: unset
    mapped = settings_from({"QA_LANGUAGE": "zh", "QA_KEEP_UNREDACTED": "yes"})
    assert (mapped.language, mapped.beam_size, mapped.vault.keep_unredacted) == ("zh", None, True)


def _run(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )


def test_importing_the_settings_changes_no_environment() -> None:
    out = _run(
        "import os; before = dict(os.environ); import pipeline.config, pipeline.routing; "
        "print(dict(os.environ) == before)"
    )
    assert out.stdout.strip() == "True", out.stderr


def test_entry_points_keep_hugging_face_offline(monkeypatch) -> None:
    out = _run(
        "import os; from pipeline.cli import main; main(['--version']); "
        "print(','.join(os.environ.get(k, '-') for k in "
        "('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'HF_HUB_DISABLE_TELEMETRY')))"
    )
    assert out.stdout.strip().splitlines()[-1] == "1,1,1", out.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # an explicit choice is kept
    enforce_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "0"


def test_readme_still_starts_with_the_two_commands() -> None:
    first_block = README.read_text(encoding="utf-8").split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line]
    assert commands == ["make run", "make test"]
