"""The ``clustra`` command as a whole: every option documented, --version, library errors shown
with the flag concerned, and a bug reported as one line with its traceback kept."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from cluster_core import __version__
from cluster_core.errors import ClustraError, InvalidInputError
from clustra.cli import build_parser, library, main
from clustra.cli._args import describe_error, flag_for


def _parsers(parser: argparse.ArgumentParser, path: str = "clustra"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_option_and_argument_has_help_text():
    missing = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"options without help text: {missing}"


def test_version():
    result = subprocess.run([sys.executable, "-m", "clustra.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"clustra {__version__}"


@pytest.mark.parametrize(
    "error, shown",
    [
        (InvalidInputError("'runs/x' already exists; choose another output or set `overwrite`", field="output"),
         "--out: 'runs/x' already exists; choose another output or set --overwrite"),
        (InvalidInputError("cluster counts must be >= 2, got [1]", field="k"), "--k: cluster counts must be >= 2, got [1]"),
        (InvalidInputError("4 exceeds `max_k`=3", field="k"), "--k: 4 exceeds --max-k=3"),
        (InvalidInputError("column(s) ['x'] not in the dataset", field="kinds"), "--kind: column(s) ['x'] not in the dataset"),
        (ClustraError("no field here"), "no field here"),
    ],
)
def test_library_errors_are_shown_with_the_flag(error, shown):
    assert describe_error(error) == shown
    assert flag_for("view_sample_rows") == "--view-rows" and flag_for("max_iter") == "--max-iter"


def test_a_user_error_is_one_line_with_status_2(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clustra: error: ") and err.count("\n") == 1


def test_a_bug_is_one_line_with_status_1_and_its_traceback_in_a_log(monkeypatch, capsys):
    def broken(args):
        raise KeyError("a programming error")

    monkeypatch.setattr(library, "cmd_leaderboard", broken)
    assert main(["leaderboard", "anything"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("clustra: internal error: KeyError: 'a programming error'") and err.count("\n") == 1
    log = Path(err.split("traceback in ", 1)[1].split(";", 1)[0])
    assert "Traceback" in log.read_text() and "a programming error" in log.read_text()
    log.unlink()
    assert main(["--debug", "leaderboard", "anything"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.rstrip().endswith("(traceback above)")
