"""`.env.example` documents every setting, and only settings."""

from __future__ import annotations

import re
from pathlib import Path

from clara_core.config import Settings, env_names
from clara_core.config.envexample import SECTIONS, render

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=")


def _documented() -> list[str]:
    return [
        m.group(1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if (m := LINE.match(line))
    ]


def test_every_setting_is_in_env_example_and_vice_versa():
    documented = _documented()
    expected = set(env_names().values())
    assert len(documented) == len(set(documented)), "a variable is listed twice"
    assert set(documented) - expected == set(), "documented but not a setting"
    assert expected - set(documented) == set(), "a setting missing from .env.example"


def test_each_variable_has_a_comment_line():
    lines = (ROOT / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if LINE.match(line):
            assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 4, line


def test_sections_cover_all_fields_and_file_is_current():
    covered = {f for _, section in SECTIONS for f in section.model_fields}
    assert covered == set(Settings.model_fields)
    assert (ROOT / ".env.example").read_text() == render(), (
        "regenerate: python -m clara_core.config.envexample > .env.example"
    )
