"""Shared fixtures: real files in tmp_path, the real CLI, no mocks of costguard code."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "focus" / "focus_sample.csv"


class Cli:
    """Runs the real `costguard` typer app in-process and keeps stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, expect: int | None = 0):
        from costguard.cli import app

        result = self.runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, (
                f"exit {result.exit_code} != {expect}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    def json(self, *args: str):
        r = self(*args, "--format", "json")
        return json.loads(r.stdout)


@pytest.fixture
def cli() -> Cli:
    return Cli()


def write_config(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "costguard.yaml"
    p.write_text(textwrap.dedent(body).lstrip())
    return p


@pytest.fixture
def sample_project(tmp_path: Path) -> Path:
    """A project folder with the FOCUS sample as an export and no rules yet."""
    (tmp_path / "exports").mkdir()
    shutil.copy(SAMPLE, tmp_path / "exports" / "focus_sample.csv")
    write_config(
        tmp_path,
        """
        state: {url: "sqlite:///state/state.db", lake: state/lake}
        providers:
          - name: sample
            type: focus
            paths: ["exports/*.csv"]
        rules: []
        """,
    )
    return tmp_path
