"""The docs and the help agree: every option of every command is in docs/CONFIGURATION.md and every option the
docs' tables name exists; every setting has its variable and config key documented; the README's links lead
somewhere; the messages docs/TROUBLESHOOTING.md quotes are ones amofs prints."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from amofs import config
from amofs.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = (ROOT / "docs" / "CONFIGURATION.md").read_text(encoding="utf-8")
TROUBLESHOOTING = (ROOT / "docs" / "TROUBLESHOOTING.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCE = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "amofs").rglob("*.py"))


def subparser(name: str) -> argparse.ArgumentParser:
    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    parser: argparse.ArgumentParser = actions[0].choices[name]
    return parser


def help_options(name: str) -> set[str]:
    """Every option string of ``amofs NAME`` but -h/--help, plus positional metavars in capitals."""
    out: set[str] = set()
    for action in subparser(name)._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        out.update(action.option_strings or [str(action.metavar)])
    return out


def section(heading: str) -> str:
    """The text of one ``## heading`` section of CONFIGURATION.md."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## )", CONFIGURATION + "\n## ", flags=re.S | re.M)
    assert match, f"docs/CONFIGURATION.md has no section '## {heading}'"
    return match.group(1)


def first_column_options(text: str, table_head: str) -> set[str]:
    """Options named in the first column of the table whose header row starts with ``table_head``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(table_head))
    out: set[str] = set()
    for ln in lines[start + 2 :]:
        if not ln.startswith("|"):
            break
        first = ln.split("|")[1]
        out.update(re.findall(r"`(-{1,2}[a-z][a-z-]*|[A-Z]+)\b", first))
    return out


def test_mount_help_and_the_settings_table_agree() -> None:
    documented = first_column_options(section("Settings"), "| flag |")
    assert help_options("mount") == documented | {"MOUNTPOINT"}


@pytest.mark.parametrize("command", ["login", "status"])
def test_login_and_status_help_and_their_tables_agree(command: str) -> None:
    documented = first_column_options(section(f"amofs {command}"), "| option |")
    assert help_options(command) == documented


def test_every_command_is_documented() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    block = section("Commands")
    for name in commands:
        assert f"amofs {name} " in block, name
        assert f"amofs {name}" in README, name


def test_every_setting_has_its_variable_and_key_documented() -> None:
    table = section("Settings")
    for key in config._PARSERS:
        if key != "profile":
            assert f"`{key}`" in table, f"config key {key} is not in the settings table"
        assert f"`{config.ENV_PREFIX}{key.upper()}`" in table or f"{config.ENV_PREFIX}{key.upper()}" in table, key
    assert "`AMOFS_CONFIG`" in table


def test_every_mount_option_is_documented() -> None:
    text = section("mount(8) and /etc/fstab")
    for key in config.MOUNT_OPTION_KEYS:
        assert re.search(rf"`{key}[=`]", text), f"-o {key} is not documented"
    for key in ("ro", "demo", "setuid=USER"):
        assert f"`{key}`" in text


def test_readme_links_lead_somewhere() -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to a missing {target}"
    for doc in ("docs/CONFIGURATION.md", "docs/TROUBLESHOOTING.md", "docs/SEMANTICS.md", "docs/ARCHITECTURE.md"):
        assert doc in README


def test_readme_quick_start_is_two_commands() -> None:
    match = re.search(r"## Quick start\n.*?```(?:console|sh|bash)?\n(.*?)```", README, flags=re.S)
    assert match, "README has a '## Quick start' with a code block"
    commands = [ln for ln in match.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert commands == [
        "bash scripts/setup && mkdir -p ~/amo && .venv/bin/amofs mount ~/amo --demo",
        "bash scripts/test",
    ]


#: messages TROUBLESHOOTING.md quotes, as fragments of the code that prints them
MESSAGES = [
    "FUSE is not available: ",
    "is already mounted (unmount it first: amofs umount ",
    "is a stale FUSE mount (its process has ended); clear it with: fusermount3 -uz ",
    "does not exist (create it with: mkdir -p ",
    "cannot unmount ",
    "the access token was refused (",
    "give a valid one with AMOFS_TOKEN, --token or",
    "the refresh token was refused (",
    "OAuth refresh refused by %s: log in again",
    "blocks this client (",
    "the block stays until ",
    "throttled (429)",
    "upload of %r failed: %s; its bytes are kept at %s",
    "failed uploads kept locally (",
    "cannot reach ",
    "the authorization code was refused",
    "not readable by you (mounted by another user without --allow-other)",
    "is in use by another amofs mount (pid ",
]


@pytest.mark.parametrize("fragment", MESSAGES)
def test_troubleshooting_quotes_real_messages(fragment: str) -> None:
    assert fragment in SOURCE, f"amofs no longer prints {fragment!r}"
    shown = fragment.replace("%r", "'").split("%s")[0].split("'")[0]
    assert shown in TROUBLESHOOTING, f"docs/TROUBLESHOOTING.md does not quote {shown!r}"
