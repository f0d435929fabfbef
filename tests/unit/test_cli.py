"""The command line in-process: help text, one-line errors with exit status 1 and no traceback, tokens kept out
of every line printed or logged. (Real mounts are in tests/mount/.)"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from amofs.cli import RedactingFormatter, guarded, helper_args, main, mount_helper, setup_logging
from amofs.config import UsageError, load_settings
from amofs.errors import AuthError


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No AMOFS_*/XDG_* from the outside, and the root logger restored (main() installs its handlers)."""
    for key in list(os.environ):
        if key.startswith("AMOFS_") or key.startswith("XDG_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("amofs: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], err


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("mount", "umount", "status", "login", "emulator"):
        assert command in out


def test_mount_help_explains_flags_and_precedence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["mount", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--account-url", "--drive-url", "--token", "--foreground", "--cache-ttl", "--demo"):
        assert flag in out
    assert "AMOFS_TOKEN" in out and "config.toml" in out


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_mount_point_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mount", str(tmp_path / "nope"), "--account-url", "https://x.amocrm.ru")
    assert code == 1
    assert_one_error_line(err, "does not exist", str(tmp_path / "nope"))


def test_mount_point_not_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "mount", str(tmp_path / "file"), "--account-url", "https://x.amocrm.ru")
    assert code == 1
    assert_one_error_line(err, "not a directory")


def test_bad_account_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mount", str(tmp_path), "--account-url", "not a url")
    assert code == 1
    assert_one_error_line(err, "--account-url must be an http(s) URL")


def test_no_account_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mount", str(tmp_path))
    assert code == 1
    assert_one_error_line(err, "no account URL")


def test_demo_refuses_account_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mount", str(tmp_path), "--demo", "--token", "t0ken-xyz")
    assert code == 1
    assert_one_error_line(err, "--demo cannot be combined with --token")
    assert "t0ken-xyz" not in err


def test_token_on_command_line_warns_and_is_never_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = "SeCrEt-t0ken-123"
    code, out, err = run(
        capsys, "mount", str(tmp_path / "nope"), "--account-url", "https://x.amocrm.ru", "--token", token
    )
    assert code == 1
    assert "visible to other users" in err
    assert token not in err and token not in out


def test_umount_of_a_plain_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "umount", str(tmp_path))
    assert code == 1
    assert_one_error_line(err, "is not mounted")


def test_bad_profile_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mount", str(tmp_path), "--profile", "ghost")
    assert code == 1
    assert_one_error_line(err, "no profile 'ghost'")


def test_guarded_turns_everything_into_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> int:
        raise RuntimeError("kaboom\nsecond line with SECRET")

    assert guarded(boom, ["SECRET"]) == 1
    err = capsys.readouterr().err
    assert_one_error_line(err, "unexpected RuntimeError: kaboom second line with ***", "--debug")
    assert "SECRET" not in err


def test_guarded_unwraps_exception_groups(capsys: pytest.CaptureFixture[str]) -> None:
    def grouped() -> int:
        raise ExceptionGroup("nursery", [ExceptionGroup("inner", [UsageError("the real reason")])])

    assert guarded(grouped) == 1
    assert_one_error_line(capsys.readouterr().err, "the real reason")


def test_guarded_shows_api_errors_and_oserrors_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    def auth() -> int:
        raise AuthError("token rejected", status=401, method="GET", path="/api/v4/account")

    def oserr() -> int:
        raise PermissionError(13, "Permission denied", "/some/file")

    assert guarded(auth) == 1
    assert_one_error_line(capsys.readouterr().err, "GET /api/v4/account HTTP 401: token rejected")
    assert guarded(oserr) == 1
    assert_one_error_line(capsys.readouterr().err, "/some/file: Permission denied")


def test_guarded_interrupt(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert guarded(interrupted) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_redacting_formatter_covers_tracebacks() -> None:
    fmt = RedactingFormatter("%(message)s", ["tok-123"])
    try:
        raise ValueError("bad tok-123")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "using %s", ("tok-123",), sys.exc_info())
    text = fmt.format(record)
    assert "tok-123" not in text
    assert "using ***" in text and "bad ***" in text


def test_umount_refuses_a_mount_that_is_not_amofs(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "umount", "/proc")
    assert code == 1
    assert_one_error_line(err, "/proc is not an amofs mount (it is proc)")


def test_error_line_also_reaches_the_log_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "amofs.log"
    code, _, err = run(
        capsys, "mount", str(tmp_path / "nope"), "--account-url", "https://x.amocrm.ru", "--log-file", str(log_file)
    )
    assert code == 1
    assert_one_error_line(err, "does not exist")
    assert err.count("does not exist") == 1
    assert "does not exist" in log_file.read_text()


# --- -o options and the mount(8) helper -----------------------------------------------------------------------


def test_o_options_go_through_the_same_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mount", str(tmp_path), "--account-url", "https://x.amocrm.ru", "-o", "cache_ttl=abc")
    assert code == 1
    assert_one_error_line(err, "--cache-ttl must be a number")


def test_o_option_and_flag_must_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mount", str(tmp_path), "--cache-ttl", "5", "-o", "cache_ttl=6")
    assert code == 1
    assert_one_error_line(err, "--cache-ttl and -o cache_ttl disagree")


def test_o_setuid_is_only_for_mount8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mount", str(tmp_path), "-o", "setuid=alice")
    assert code == 1
    assert_one_error_line(err, "setuid=USER is for mount(8)")


def test_o_demo_refuses_account_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mount", str(tmp_path), "-o", "demo", "--account-url", "https://x.amocrm.ru")
    assert code == 1
    assert_one_error_line(err, "--demo cannot be combined with --account-url")


@pytest.mark.parametrize(
    ("argv", "expected", "setuid"),
    [
        (["work", "/m", "-o", "rw,cache_ttl=30"], ["mount", "/m", "--profile", "work", "-o", "rw,cache_ttl=30"], None),
        (["amofs", "/m"], ["mount", "/m"], None),
        (["-", "/m", "-ocache_ttl=1", "-n", "-t", "fuse.amofs"], ["mount", "/m", "-o", "cache_ttl=1"], None),
        (["w", "/m", "-o", "setuid=alice,noauto"], ["mount", "/m", "--profile", "w", "-o", "noauto"], "alice"),
        (["w", "/m", "-s", "-o", "bogus,ro"], ["mount", "/m", "--profile", "w", "-o", "ro"], None),
        (["w", "/m", "-f", "-o", "ro"], [], None),
    ],
)
def test_helper_args(argv: list[str], expected: list[str], setuid: str | None) -> None:
    assert helper_args(argv) == (expected, setuid)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["only-one"], "usage: mount.fuse.amofs PROFILE MOUNTPOINT"),
        (["w", "/m", "-N", "/proc/1/ns/mnt"], "another mount namespace"),
        (["w", "/m", "--weird"], "unknown argument '--weird'"),
    ],
)
def test_helper_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert mount_helper(argv) == 1
    assert_one_error_line(capsys.readouterr().err, message)


def test_helper_unknown_option_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mount_helper(["work", str(tmp_path), "-o", "what"]) == 1
    assert_one_error_line(capsys.readouterr().err, "unknown mount option 'what'")


def test_helper_fake_mount_does_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mount_helper(["ghost-profile", str(tmp_path / "absent"), "-f"]) == 0
    assert capsys.readouterr().err == ""


# --- logging levels --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "seen"), [("warning", {"W"}), ("info", {"I", "W"}), ("debug", {"D", "I", "W"})])
def test_log_level_sets_what_the_log_file_gets(tmp_path: Path, level: str, seen: set[str]) -> None:
    log_file = tmp_path / "amofs.log"
    setup_logging(load_settings({"log_file": str(log_file), "log_level": level}))
    lg = logging.getLogger("amofs.test")
    lg.debug("D")
    lg.info("I")
    lg.warning("W")
    got = {line.rsplit(": ", 1)[1] for line in log_file.read_text().splitlines()}
    assert got == seen


def test_foreground_without_log_file_logs_to_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(load_settings({"foreground": True, "log_level": "info"}))
    logging.getLogger("amofs.test").info("visible")
    assert "amofs: info: visible" in capsys.readouterr().err
    setup_logging(load_settings({"log_level": "info"}))  # background: only warnings reach stderr
    logging.getLogger("amofs.test").info("hidden")
    assert "hidden" not in capsys.readouterr().err


def test_status_of_a_plain_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", str(tmp_path))
    assert code == 1
    assert_one_error_line(err, "is not mounted")
    code, _, err = run(capsys, "status", "/proc")
    assert_one_error_line(err, "/proc is not an amofs mount (it is proc)")


def test_login_needs_the_integration_when_not_interactive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run(capsys, "login", "--profile", "p", "--account-url", "https://x.amocrm.ru")
    assert code == 1
    assert_one_error_line(err, "login needs the integration ID (client_id): give --client-id")
