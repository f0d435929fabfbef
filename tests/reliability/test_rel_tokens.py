"""Tokens against the emulator's OAuth endpoint (``POST /oauth2/access_token``: single-use refresh tokens, JWT
access tokens with ``exp``): one refresh however many requests wait; ahead of ``exp`` without a 401; the new
pair saved (atomically, 0600) before it is used; a revoked token is one clear error, never a loop; long-lived
tokens never refresh. First on the client, then on real mounts with an OAuth profile in the config file."""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
from mounthelpers import AMOFS, is_amofs_mount, sh, start_foreground
from relhelpers import file_mode, log_lines, mount_log

from amofs.api.auth import OAuthTokens, StaticToken
from amofs.api.client import AmoClient
from amofs.errors import AuthError

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

REDIRECT = "https://example.test/amofs"
OAUTH = "/oauth2/access_token"


def oauth_client(emu: Emulator, cid: str = "cid") -> None:
    emu.add_oauth_client(cid, f"{cid}-secret", REDIRECT)


def grant(emu: Emulator, cid: str = "cid", refresh: str | None = None) -> dict[str, Any]:
    """Tokens from the endpoint, as another program (or the browser login) would get them."""
    body: dict[str, str] = {"client_id": cid, "client_secret": f"{cid}-secret", "redirect_uri": REDIRECT}
    if refresh is None:
        body |= {"grant_type": "authorization_code", "code": emu.issue_auth_code(cid)}
    else:
        body |= {"grant_type": "refresh_token", "refresh_token": refresh}
    r = httpx.post(emu.account_url + OAUTH, json=body, timeout=10)
    r.raise_for_status()
    return dict(r.json())


def tokens(emu: Emulator, first: dict[str, Any], saved: list[dict[str, Any]], **kw: Any) -> OAuthTokens:
    return OAuthTokens(
        emu.account_url,
        "cid",
        "cid-secret",
        REDIRECT,
        first["access_token"],
        first.get("refresh_token"),
        saved.append,
        timeout=10,
        **kw,
    )


def client(emu: Emulator, auth: Any) -> AmoClient:
    return AmoClient(emu.account_url, auth=auth, drive_url=emu.drive_url, rate=10_000, timeout=10)


# --- the client against the OAuth endpoint ---------------------------------------------------------------------


async def test_many_waiting_requests_make_one_refresh(emulator: Emulator) -> None:
    oauth_client(emulator)
    first = grant(emulator)
    uuid = emulator.seed_file("a.txt", b"a")
    saved: list[dict[str, Any]] = []
    auth = tokens(emulator, first, saved)
    emulator.revoke_token(first["access_token"])  # expired, as far as the service is concerned
    emulator.reset_log()
    got: list[str] = []
    async with client(emulator, auth) as c:

        async def one() -> None:
            got.append((await c.get_file(uuid)).uuid)

        async with trio.open_nursery() as n:
            for _ in range(25):
                n.start_soon(one)
    assert got == [uuid] * 25
    assert emulator.count("POST", OAUTH) == 1
    assert len(saved) == 1 and saved[0]["refresh_token"] != first["refresh_token"]
    assert emulator.count(status=401) <= 25


async def test_the_new_pair_is_saved_before_it_is_used(emulator: Emulator) -> None:
    oauth_client(emulator)
    first = grant(emulator)
    uuid = emulator.seed_file("a.txt", b"a")
    order: list[tuple[str, int]] = []

    def save(t: dict[str, Any]) -> None:
        log = emulator.log
        order.append(("saved", len(log)))
        assert log[-1].path == OAUTH, "a request went out between the exchange and the save"

    auth = OAuthTokens(
        emulator.account_url, "cid", "cid-secret", REDIRECT, first["access_token"], first["refresh_token"], save
    )
    emulator.revoke_token(first["access_token"])
    emulator.reset_log()
    async with client(emulator, auth) as c, trio.open_nursery() as n:
        for _ in range(5):
            n.start_soon(c.get_file, uuid)
    assert [o[0] for o in order] == ["saved"]
    after_save = emulator.log[order[0][1] :]
    assert after_save and all(r.status == 200 for r in after_save)


async def test_refresh_ahead_of_exp_without_a_401(emulator: Emulator) -> None:
    oauth_client(emulator)
    emulator.options.access_token_ttl = 3600
    first = grant(emulator)
    uuid = emulator.seed_file("a.txt", b"a")
    saved: list[dict[str, Any]] = []
    auth = tokens(emulator, first, saved, leeway=3598.5)  # due in about 1.5 s
    async with client(emulator, auth) as c:
        await c.get_file(uuid)
        assert emulator.count("POST", OAUTH) == 1  # only the grant
        await trio.sleep(2.0)
        emulator.reset_log()
        await c.get_file(uuid)
    assert next((r.path, r.status) for r in emulator.log) == (OAUTH, 200)
    assert emulator.count(status=401) == 0
    assert len(saved) == 1


async def test_a_refused_refresh_token_is_one_clear_error_not_a_loop(emulator: Emulator) -> None:
    oauth_client(emulator)
    first = grant(emulator)
    grant(emulator, refresh=first["refresh_token"])  # someone else used it: single-use, so it is dead now
    uuid = emulator.seed_file("a.txt", b"a")
    saved: list[dict[str, Any]] = []
    auth = tokens(emulator, first, saved)
    emulator.revoke_token(first["access_token"])
    emulator.reset_log()
    async with client(emulator, auth) as c:
        for _ in range(10):
            with pytest.raises(AuthError) as exc:
                await c.get_file(uuid)
            assert "log in again" in str(exc.value)
    assert emulator.count("POST", OAUTH) == 1
    assert emulator.count(status=401) <= 10 + 1
    assert saved == []


async def test_long_lived_tokens_never_refresh(emulator: Emulator) -> None:
    uuid = emulator.seed_file("a.txt", b"a")
    emulator.add_token("long-lived-private-integration-token", {"files", "files_delete"})
    oauth_client(emulator)
    for auth in (
        StaticToken(emulator.token),
        # an OAuth profile whose access token is not a JWT (a private integration's): used until refused
        OAuthTokens(
            emulator.account_url,
            "cid",
            "cid-secret",
            REDIRECT,
            "long-lived-private-integration-token",
            "some-refresh-token",
            lambda t: None,
        ),
    ):
        emulator.reset_log()
        async with client(emulator, auth) as c:
            for _ in range(20):
                await c.get_file(uuid)
        assert emulator.count("POST", OAUTH) == 0
        assert emulator.count(status=200) == 20


def sharing(emu: Emulator, path: Path) -> OAuthTokens:
    """What a mount of the profile in ``path`` makes (mount._auth): the pair read from the file, saved back to
    it, and shared with every other process that mounts the same profile."""
    from amofs.config import ProfileTokens, save_tokens

    store = ProfileTokens(None, path)
    pair = store.load()
    assert pair is not None

    def save(t: dict[str, Any]) -> None:
        save_tokens(None, {"token": t["access_token"], "refresh_token": t["refresh_token"]}, path=path)

    return OAuthTokens(emu.account_url, "cid", "cid-secret", REDIRECT, *pair, save, timeout=10, shared=store)


def two_holders(emu: Emulator, cfg: Path) -> tuple[str, OAuthTokens, OAuthTokens]:
    """A profile in ``cfg`` held by two token sources (two mounts of it), its access token now refused, and a
    file to ask for: (the file's uuid, first, second)."""
    oauth_client(emu)
    write_profile(cfg, emu, grant(emu))
    uuid = emu.seed_file("a.txt", b"a")
    first, second = sharing(emu, cfg), sharing(emu, cfg)
    emu.revoke_token(str(first._access))
    emu.reset_log()
    return uuid, first, second


async def test_two_mounts_of_one_profile_never_spend_the_same_refresh_token(emulator: Emulator, tmp_path: Path) -> None:
    """Refresh tokens are single-use. A second process holding the same pair, once its access token is
    refused, takes the pair the first one saved instead of spending the dead refresh token (401, mount lost)."""
    cfg = tmp_path / "config.toml"
    uuid, first, second = two_holders(emulator, cfg)
    async with client(emulator, first) as c:
        await c.get_file(uuid)
    async with client(emulator, second) as c:
        await c.get_file(uuid)
    assert emulator.count("POST", OAUTH) == 1
    assert emulator.count(status=200) >= 3  # the exchange and both reads
    assert file_mode(cfg.with_name("config.toml.refresh-lock")) == 0o600


async def test_simultaneous_refreshes_of_one_profile_make_one_exchange(emulator: Emulator, tmp_path: Path) -> None:
    uuid, a, b = two_holders(emulator, tmp_path / "config.toml")
    async with client(emulator, a) as ca, client(emulator, b) as cb, trio.open_nursery() as n:
        for c in (ca, cb, ca, cb):
            n.start_soon(c.get_file, uuid)
    assert emulator.count("POST", OAUTH) == 1
    assert emulator.count("GET", status=200) == 4


# --- real mounts with an OAuth profile ----------------------------------------------------------------------------


def write_profile(path: Path, emu: Emulator, pair: dict[str, Any], mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        'default = "crm"\n[profiles.crm]\n'
        f'account_url = "{emu.account_url}"\ndrive_url = "{emu.drive_url}"\n'
        f'client_id = "cid"\nclient_secret = "cid-secret"\nredirect_uri = "{REDIRECT}"\n'
        f'token = "{pair["access_token"]}"\nrefresh_token = "{pair["refresh_token"]}"\n'
    )
    path.chmod(mode)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config" / "amofs" / "config.toml"  # the XDG location (rel_env)


@pytest.mark.mount
def test_mount_refreshes_once_for_many_readers_and_saves_the_pair_0600(
    emulator: Emulator, mnt: Path, tmp_path: Path, config: Path
) -> None:
    oauth_client(emulator)
    for i in range(8):
        emulator.seed_file(f"doc{i}.txt", f"document {i}".encode())
    first = grant(emulator)
    write_profile(config, emulator, first, mode=0o644)  # too open: it will be rewritten 0600
    m = start_foreground(mnt, tmp_path, ["--cache-dir", str(tmp_path / "cache")])
    try:
        os.listdir(mnt / "files")
        emulator.revoke_token(first["access_token"])  # the access token runs out while mounted
        emulator.reset_log()
        import subprocess

        cats = [subprocess.Popen(["cat", str(mnt / "files" / f"doc{i}.txt")], stdout=subprocess.PIPE) for i in range(8)]
        outs = [p.communicate(timeout=60)[0] for p in cats]
        assert outs == [f"document {i}".encode() for i in range(8)]
        assert emulator.count("POST", OAUTH) == 1
    finally:
        m.stop()
    profile = tomllib.loads(config.read_text())["profiles"]["crm"]
    assert profile["refresh_token"] != first["refresh_token"] and profile["token"] != first["access_token"]
    assert profile["client_secret"] == "cid-secret"  # the rest of the profile kept
    assert file_mode(config) == 0o600
    text = mount_log(m)
    assert log_lines(text, "readable by other users")
    for secret in (
        first["access_token"],
        first["refresh_token"],
        profile["token"],
        profile["refresh_token"],
        "cid-secret",
    ):
        assert secret not in text and secret not in m.log()
    # the saved pair works for the next mount, which needs no refresh
    emulator.reset_log()
    m2 = start_foreground(mnt, tmp_path, ["--cache-dir", str(tmp_path / "cache")])
    try:
        assert (mnt / "files" / "doc0.txt").read_bytes() == b"document 0"
    finally:
        m2.stop()
    assert emulator.count("POST", OAUTH) == 0


@pytest.mark.mount
def test_mount_with_a_dead_refresh_token_fails_with_one_line(
    emulator: Emulator, mnt: Path, tmp_path: Path, config: Path
) -> None:
    import subprocess

    oauth_client(emulator)
    first = grant(emulator)
    grant(emulator, refresh=first["refresh_token"])  # used elsewhere: dead
    emulator.revoke_token(first["access_token"])
    write_profile(config, emulator, first)
    emulator.reset_log()
    t0 = time.monotonic()
    res = subprocess.run([*AMOFS, "mount", str(mnt), "--foreground"], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 15
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("amofs: error: ") and "log in again" in lines[0], res.stderr
    assert emulator.count("POST", OAUTH) == 1
    assert not is_amofs_mount(mnt)
    for secret in (first["access_token"], first["refresh_token"], "cid-secret"):
        assert secret not in res.stderr


@pytest.mark.mount
def test_tokens_revoked_while_mounted_give_eacces_and_one_log_line(
    emulator: Emulator, mnt: Path, tmp_path: Path, config: Path
) -> None:
    oauth_client(emulator)
    emulator.seed_file("a.txt", b"a")
    first = grant(emulator)
    write_profile(config, emulator, first)
    m = start_foreground(mnt, tmp_path, ["--cache-ttl", "0", "--cache-dir", str(tmp_path / "cache")])
    try:
        assert (mnt / "files" / "a.txt").read_bytes() == b"a"
        # the user revoked the integration: the access token is refused, the refresh token dead
        grant(emulator, refresh=first["refresh_token"])
        emulator.revoke_token(first["access_token"])
        emulator.reset_log()
        for _ in range(5):
            res = sh("ls", mnt / "files", timeout=30)
            assert res.returncode != 0 and b"Permission denied" in res.stderr, res.stderr
        assert emulator.count("POST", OAUTH) == 1, "the refresh was tried again"
        assert m.proc.poll() is None
    finally:
        m.stop()
    lines = log_lines(mount_log(m), "refresh refused")
    assert len(lines) == 1, mount_log(m)
