"""Every command-line flag says what it does and, when it has one, its default (issue 22)."""

from __future__ import annotations

import argparse

import pytest

from spec_core.cli.entry import COMMANDS, build_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _options(sub: argparse.ArgumentParser):
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        yield action


def test_every_command_is_walked():
    names = set(_subparsers())
    assert {"compare", "scales", "align", "align-model", "models", "embed", "cache", "app"} <= names
    assert len(names) == len(COMMANDS)


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_option_has_help_and_its_default(command):
    sub = _subparsers()[command]
    missing, no_default = [], []
    for action in _options(sub):
        flag = action.option_strings[-1]
        text = (action.help or "").strip()
        if not text or text == argparse.SUPPRESS:
            missing.append(flag)
            continue
        default = action.default
        if default is None or default is argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._StoreTrueAction) and default is False:
            continue
        shown = sub._get_formatter()._expand_help(action)  # the help as --help prints it
        if isinstance(action, argparse.BooleanOptionalAction):
            wanted = [o for o in action.option_strings if o.startswith("--no-") != bool(default)]
        else:
            wanted = [str(default)]
        if "default" not in shown or not any(w in shown for w in wanted):
            no_default.append(f"{flag} (default {default!r}): {shown!r}")
    assert not missing, f"{command}: options without help: {missing}"
    assert not no_default, f"{command}: help does not state the default: {no_default}"


def test_help_prints_for_every_command(capsys):
    parser = build_parser()
    for command in _subparsers():
        with pytest.raises(SystemExit) as stop:
            parser.parse_args([command, "--help"])
        assert stop.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage:")
