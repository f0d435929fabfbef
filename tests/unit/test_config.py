"""Settings: precedence (flags > AMOFS_* env > config profile > defaults), XDG locations, value checks, secrets
kept out of repr, and save_tokens' atomic 0600 rewrite."""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from pathlib import Path

import pytest

from amofs.config import (
    Settings,
    UsageError,
    config_path,
    default_cache_dir,
    demo_data_dir,
    load_settings,
    parse_mount_options,
    read_config,
    runtime_dir,
    save_profile,
    save_tokens,
)


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment with no AMOFS_* variables and every XDG folder under tmp_path."""
    for key in list(os.environ):
        if key.startswith("AMOFS_") or key.startswith("XDG_"):
            monkeypatch.delenv(key)
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def write_config(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config" / "amofs" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


CONFIG = """
default = "work"

[profiles.work]
account_url = "https://work.amocrm.ru"
token = "profile-token"
cache_ttl = 30
umask = 0o027

[profiles.home]
account_url = "https://home.amocrm.ru/"
drive_url = "https://drive-b.amocrm.ru"
local_patterns = ["*.tmp"]
"""


def test_defaults_without_any_source(tmp_path: Path) -> None:
    s = load_settings({})
    assert s.account_url is None and s.token is None and s.profile is None
    assert s.cache_ttl == 60.0 and s.rate == 7.0 and s.foreground is False
    assert s.local_patterns is None  # the facade's default list applies
    assert s.cache_dir == tmp_path / "cache" / "amofs" / "default"
    assert s.config_path == tmp_path / "config" / "amofs" / "config.toml"


def test_default_profile_is_used(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    s = load_settings({})
    assert s.profile == "work"
    assert s.account_url == "https://work.amocrm.ru"
    assert s.token == "profile-token"
    assert s.cache_ttl == 30.0
    assert s.umask == 0o027
    assert s.cache_dir == tmp_path / "cache" / "amofs" / "work"


def test_profile_flag_selects_another_profile(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    s = load_settings({"profile": "home"})
    assert s.account_url == "https://home.amocrm.ru"  # trailing slash dropped
    assert s.drive_url == "https://drive-b.amocrm.ru"
    assert s.token is None
    assert s.local_patterns == ("*.tmp",)


def test_profile_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, CONFIG)
    monkeypatch.setenv("AMOFS_PROFILE", "home")
    assert load_settings({}).profile == "home"
    assert load_settings({"profile": "work"}).profile == "work"


def test_precedence_flag_over_env_over_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, CONFIG)
    monkeypatch.setenv("AMOFS_TOKEN", "env-token")
    monkeypatch.setenv("AMOFS_CACHE_TTL", "45")
    s = load_settings({})
    assert s.token == "env-token" and s.cache_ttl == 45.0
    assert s.account_url == "https://work.amocrm.ru"  # only in the profile
    s = load_settings({"token": "flag-token", "cache_ttl": "5", "account_url": None})
    assert s.token == "flag-token" and s.cache_ttl == 5.0
    assert s.token_on_command_line
    assert not load_settings({}).token_on_command_line


def test_env_booleans_and_octal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMOFS_ALLOW_OTHER", "yes")
    monkeypatch.setenv("AMOFS_DEBUG", "0")
    monkeypatch.setenv("AMOFS_UMASK", "077")
    monkeypatch.setenv("AMOFS_UID", "1000")
    s = load_settings({})
    assert s.allow_other is True and s.debug is False and s.umask == 0o077 and s.uid == 1000


def test_config_location_honours_xdg_and_amofs_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_path() == tmp_path / "config" / "amofs" / "config.toml"
    other = tmp_path / "elsewhere.toml"
    other.write_text('[profiles.x]\naccount_url = "https://x.amocrm.ru"\n')
    monkeypatch.setenv("AMOFS_CONFIG", str(other))
    assert load_settings({"profile": "x"}).account_url == "https://x.amocrm.ru"
    monkeypatch.delenv("AMOFS_CONFIG")
    assert load_settings({"profile": "x", "config": str(other)}).account_url == "https://x.amocrm.ru"


def test_relative_xdg_value_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    assert config_path() == Path.home() / ".config" / "amofs" / "config.toml"


def test_unknown_profile_named_explicitly_is_an_error(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    with pytest.raises(UsageError, match=r"no profile 'nope'.*home, work"):
        load_settings({"profile": "nope"})


def test_unknown_setting_in_profile_is_an_error(tmp_path: Path) -> None:
    write_config(tmp_path, '[profiles.p]\naccount_ulr = "https://x.amocrm.ru"\n')
    with pytest.raises(UsageError, match="unknown setting 'account_ulr'"):
        load_settings({"profile": "p"})


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    write_config(tmp_path, "this is = = not toml")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_settings({})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"cache_ttl": "soon"}, "--cache-ttl must be a number"),
        ({"cache_ttl": "-1"}, "--cache-ttl must be a non-negative number"),
        ({"rate": "0"}, "--rate must be a positive number"),
        ({"umask": "999"}, "--umask must be an octal mask"),
        ({"uid": "-3"}, "--uid must be a non-negative integer"),
        ({"account_url": "example.amocrm.ru"}, "--account-url must be an http"),
        ({"account_url": "ftp://example.amocrm.ru"}, "--account-url must be an http"),
        ({"drive_url": "https://x:notaport"}, "--drive-url has a bad port"),
    ],
)
def test_bad_values_name_their_source(flags: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_settings(flags)


def test_bad_value_in_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMOFS_RATE", "fast")
    with pytest.raises(UsageError, match="AMOFS_RATE must be a number"):
        load_settings({})


def test_bad_value_in_profile_names_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[profiles.p]\ncache_ttl = "x"\n')
    with pytest.raises(UsageError, match=f"{path}: cache_ttl must be a number"):
        load_settings({"profile": "p"})


def test_cache_dir_default_is_per_profile_or_host(tmp_path: Path) -> None:
    base = tmp_path / "cache" / "amofs"
    assert default_cache_dir("work", "https://x.amocrm.ru") == base / "work"
    assert default_cache_dir(None, "https://x.amocrm.ru:8443") == base / "x.amocrm.ru"
    assert default_cache_dir(None, None) == base / "default"
    assert default_cache_dir("../evil", None) == base / "_evil"
    assert load_settings({"account_url": "https://y.amocrm.ru"}).cache_dir == base / "y.amocrm.ru"
    assert load_settings({"cache_dir": str(tmp_path / "c")}).cache_dir == tmp_path / "c"


def test_data_and_runtime_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert demo_data_dir() == tmp_path / "data" / "amofs" / "demo"
    assert runtime_dir() == tmp_path / "cache" / "amofs" / "run"
    (tmp_path / "run").mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert runtime_dir() == tmp_path / "run" / "amofs"


def test_secrets_never_in_repr() -> None:
    s = Settings(
        account_url="https://x.amocrm.ru",
        token="tok-SECRET-1",
        client_secret="cs-SECRET-2",
        refresh_token="rt-SECRET-3",
        client_id="id",
    )
    text = repr(s) + str(s)
    assert "SECRET" not in text
    assert "https://x.amocrm.ru" in text
    assert set(s.secrets()) == {"tok-SECRET-1", "cs-SECRET-2", "rt-SECRET-3"}
    assert s.has_oauth


def test_world_readable_config_with_token_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_config(tmp_path, CONFIG, mode=0o644)
    with caplog.at_level(logging.WARNING, logger="amofs.config"):
        read_config(path)
    assert "chmod 600" in caplog.text
    assert "profile-token" not in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="amofs.config"):
        read_config(path)
    assert caplog.text == ""


def test_save_tokens_creates_a_private_file(tmp_path: Path) -> None:
    path = save_tokens("work", {"access_token": "a1", "refresh_token": "r1"})
    assert path == tmp_path / "config" / "amofs" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    assert data == {"default": "work", "profiles": {"work": {"token": "a1", "refresh_token": "r1"}}}
    assert load_settings({}).token == "a1"


def test_save_tokens_keeps_everything_else(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG, mode=0o644)
    save_tokens("work", {"token": 'new"\\token\n', "refresh_token": "r2", "expires_at": 1700000000})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    before = tomllib.loads(CONFIG)
    before["profiles"]["work"].update(token='new"\\token\n', refresh_token="r2", expires_at=1700000000)
    assert data == before
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temp file left


def test_save_tokens_uses_the_default_profile_and_removes_none(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    path = save_tokens(None, {"refresh_token": None, "token": "t2"})
    work = tomllib.loads(path.read_text())["profiles"]["work"]
    assert work["token"] == "t2" and "refresh_token" not in work


def test_save_tokens_refuses_other_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a token field"):
        save_tokens("p", {"account_url": "https://x"})
    assert not config_path().exists()


# --- save_profile (amofs login) ---------------------------------------------------------------------------


def test_save_profile_creates_the_first_profile_as_default(tmp_path: Path) -> None:
    path = save_profile("crm", {"account_url": "https://crm.amocrm.ru", "client_id": "cid", "token": "t"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    assert data["default"] == "crm"
    assert data["profiles"]["crm"] == {"account_url": "https://crm.amocrm.ru", "client_id": "cid", "token": "t"}
    s = load_settings({})
    assert s.profile == "crm" and s.token == "t"


def test_a_saved_umask_reads_as_octal_and_keeps_its_value(tmp_path: Path) -> None:
    path = save_profile("crm", {"account_url": "https://crm.amocrm.ru", "umask": 0o027})
    assert "umask = 0o027" in path.read_text()
    assert tomllib.loads(path.read_text())["profiles"]["crm"]["umask"] == 0o027
    assert load_settings({}).umask == 0o027


def test_save_profile_adds_a_profile_and_keeps_the_default(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    path = save_profile("new", {"account_url": "https://new.amocrm.ru", "cache_dir": tmp_path / "c"})
    data = tomllib.loads(path.read_text())
    assert data["default"] == "work"
    assert data["profiles"]["new"] == {"account_url": "https://new.amocrm.ru", "cache_dir": str(tmp_path / "c")}
    assert data["profiles"]["work"] == tomllib.loads(CONFIG)["profiles"]["work"]


def test_save_profile_refuses_bad_values_and_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="account_url must be an http"):
        save_profile("p", {"account_url": "nope"})
    with pytest.raises(ValueError, match="not a profile setting"):
        save_profile("p", {"colour": "red"})
    assert not config_path().exists()


def test_a_named_profile_may_be_new_for_login(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    with pytest.raises(UsageError, match="no profile 'fresh'"):
        load_settings({"profile": "fresh"})
    s = load_settings({"profile": "fresh", "account_url": "https://f.amocrm.ru"}, new_profile_ok=True)
    assert s.profile == "fresh" and s.account_url == "https://f.amocrm.ru" and s.token is None


def test_log_level_and_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings({}).log_level == "info"
    assert load_settings({"log_level": "DEBUG"}).log_level == "debug"
    monkeypatch.setenv("AMOFS_READ_ONLY", "yes")
    assert load_settings({}).read_only is True
    with pytest.raises(UsageError, match="--log-level must be one of debug, info, warning, error"):
        load_settings({"log_level": "loud"})


# --- mount options (-o, fstab) ------------------------------------------------------------------------------


def test_mount_options_split_by_meaning() -> None:
    opts = parse_mount_options("rw,nosuid,nodev,noauto,user,_netdev,x-systemd.automount,ro,allow_other,uid=1000")
    assert opts.flags == {"read_only": True, "allow_other": True, "uid": "1000"}
    assert "x-systemd.automount" in opts.ignored and "nosuid" in opts.ignored
    assert opts.demo is False and opts.setuid is None
    opts = parse_mount_options("cache-ttl=30,log_level=debug,demo,setuid=alice,debug=false")
    assert opts.flags == {"cache_ttl": "30", "log_level": "debug", "debug": False}
    assert opts.demo is True and opts.setuid == "alice"
    # what the options give goes through the same checks as flags
    assert load_settings(parse_mount_options("cache_ttl=30,umask=027").flags).umask == 0o027


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour=red", "unknown mount option 'colour=red'"),
        ("token=abc", "a secret does not belong in mount options"),
        ("client_secret=abc", "a secret does not belong"),
        ("cache_ttl", "needs a value"),
        ("allow_other=maybe", "must be true or false"),
    ],
)
def test_bad_mount_options(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_mount_options(text)


def test_a_redirect_uri_is_kept_exactly() -> None:
    # amoCRM compares redirect_uri verbatim: a trailing slash must survive
    assert load_settings({"redirect_uri": "http://127.0.0.1:8765/"}).redirect_uri == "http://127.0.0.1:8765/"
    assert load_settings({"account_url": "https://x.amocrm.ru/"}).account_url == "https://x.amocrm.ru"
    with pytest.raises(UsageError, match="--redirect-uri must be an http"):
        load_settings({"redirect_uri": "127.0.0.1:8765"})
