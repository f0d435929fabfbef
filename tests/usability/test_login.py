"""``amofs login`` end to end against the emulator's OAuth endpoint: the code caught on the loopback redirect, a
pasted address, a pasted bare code, a long-lived token; then ``amofs mount --profile``. The browser is played by
an HTTP request to the redirect address, as amoCRM's authorization page would send it."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from mounthelpers import AMOFS, amofs, is_amofs_mount, stop_daemon

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

CLIENT_ID = "amofs-test-client"
SECRET = "client-secret-XYZ-123"
PROC_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Login:
    """A running ``amofs login`` with its stdin and stdout connected to the test."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*AMOFS, "login", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, AMOFS_CLIENT_SECRET=SECRET) if env is None else env,
        )

    def authorize_url(self) -> str:
        assert self.proc.stdout is not None
        for _ in range(10):
            line = self.proc.stdout.readline()
            if line.strip().startswith("https://"):
                return line.strip()
        raise AssertionError("amofs login printed no authorization address")

    def state(self) -> str:
        return parse_qs(urlsplit(self.authorize_url()).query)["state"][0]

    def finish(self, stdin: str = "") -> tuple[int, str, str]:
        out, err = self.proc.communicate(stdin, timeout=PROC_TIMEOUT)
        return self.proc.returncode, out, err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=PROC_TIMEOUT)


@pytest.fixture
def logins() -> Iterator[list[Login]]:
    made: list[Login] = []
    yield made
    for lg in made:
        lg.stop()


def start_login(logins: list[Login], *args: str, env: dict[str, str] | None = None) -> Login:
    lg = Login(*args, env=env)
    logins.append(lg)
    return lg


def profile(config_file: Path, name: str) -> dict[str, object]:
    table: dict[str, object] = tomllib.loads(config_file.read_text())["profiles"][name]
    return table


@pytest.mark.mount
def test_login_catches_the_code_on_the_loopback_redirect_then_mounts(
    emulator: Emulator, config_file: Path, mnt: Path, logins: list[Login]
) -> None:
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/amofs/"  # kept exactly: amoCRM compares it verbatim
    emulator.add_oauth_client(CLIENT_ID, SECRET, redirect)
    emulator.seed_file("hello.txt", b"hello from oauth")
    lg = start_login(
        logins,
        "--profile", "crm", "--account-url", emulator.account_url,
        "--client-id", CLIENT_ID, "--redirect-uri", redirect,
    )  # fmt: skip
    url = lg.authorize_url()
    assert url.startswith("https://www.amocrm.ru/oauth?") and f"client_id={CLIENT_ID}" in url
    state = parse_qs(urlsplit(url).query)["state"][0]
    with httpx.Client(timeout=10) as browser:
        # stray requests and another login's answer do not end the login
        assert browser.get(f"http://127.0.0.1:{port}/favicon.ico").status_code == 404
        wrong = browser.get(f"{redirect}?{urlencode({'code': 'x', 'state': 'other'})}")
        assert wrong.status_code == 400
        code = emulator.issue_auth_code(CLIENT_ID)
        referer = urlsplit(emulator.account_url).netloc
        page = browser.get(f"{redirect}?{urlencode({'code': code, 'state': state, 'referer': referer})}")
    assert page.status_code == 200 and "amofs is logged in" in page.text
    rc, out, err = lg.finish()
    assert rc == 0, err
    assert f"logged in to {emulator.account_url}" in out and "profile crm" in out
    assert "amofs mount ~/amo --profile crm" in out
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    saved = profile(config_file, "crm")
    assert saved["account_url"] == emulator.account_url and saved["client_id"] == CLIENT_ID
    assert saved["client_secret"] == SECRET and saved["redirect_uri"] == redirect
    assert saved["token"] and saved["refresh_token"]
    for secret in (SECRET, str(saved["token"]), str(saved["refresh_token"]), code):
        assert secret not in out + err
    # the profile is all a mount needs
    env = {k: v for k, v in os.environ.items() if k != "AMOFS_CLIENT_SECRET"}
    try:
        res = amofs("mount", str(mnt), "--profile", "crm", env=env)
        assert res.returncode == 0, res.stderr
        assert is_amofs_mount(mnt)
        assert (mnt / "files" / "hello.txt").read_bytes() == b"hello from oauth"
        res = amofs("umount", str(mnt))
        assert res.returncode == 0, res.stderr
    finally:
        stop_daemon(mnt)


def test_login_with_a_pasted_address(emulator: Emulator, config_file: Path, logins: list[Login]) -> None:
    redirect = "https://example.com/amofs-callback"
    emulator.add_oauth_client(CLIENT_ID, SECRET, redirect)
    lg = start_login(
        logins,
        "--profile", "crm", "--account-url", emulator.account_url,
        "--client-id", CLIENT_ID, "--redirect-uri", redirect,
    )  # fmt: skip
    state = lg.state()
    code = emulator.issue_auth_code(CLIENT_ID)
    address = f"{redirect}?{urlencode({'code': code, 'state': state, 'referer': 'example.amocrm.ru'})}"
    # a line that is no code, an address from another attempt, then the right one
    stale = f"{redirect}?{urlencode({'code': 'c', 'state': 'old'})}"
    rc, _, err = lg.finish(f"what is this\n{stale}\n{address}\n")
    # the referer names another account than the profile's: refused before the code is spent
    assert rc == 1
    assert "access was allowed for example.amocrm.ru, but the profile's account is" in err
    assert "paste it again" in err and "belongs to another login attempt" in err
    # again, with the right account
    lg = start_login(
        logins,
        "--profile", "crm", "--account-url", emulator.account_url,
        "--client-id", CLIENT_ID, "--redirect-uri", redirect,
    )  # fmt: skip
    state = lg.state()
    referer = urlsplit(emulator.account_url).netloc
    rc, _, err = lg.finish(f"{redirect}?{urlencode({'code': code, 'state': state, 'referer': referer})}\n")
    assert rc == 0, err
    assert profile(config_file, "crm")["refresh_token"]


def test_login_with_a_bare_code_from_the_integration_window(emulator: Emulator, config_file: Path) -> None:
    emulator.add_oauth_client(CLIENT_ID, SECRET, "https://example.com/cb")
    config_file.parent.mkdir(parents=True)
    config_file.write_text(
        f'[profiles.p]\naccount_url = "{emulator.account_url}"\nclient_id = "{CLIENT_ID}"\n'
        'redirect_uri = "https://example.com/cb"\ncache_ttl = 5\n'
    )
    code = emulator.issue_auth_code(CLIENT_ID)
    res = subprocess.run(
        [*AMOFS, "login", "--profile", "p"],
        input=code + "\n",
        capture_output=True,
        text=True,
        timeout=PROC_TIMEOUT,
        env=dict(os.environ, AMOFS_CLIENT_SECRET=SECRET),
    )
    assert res.returncode == 0, res.stderr
    assert "paste the code" in res.stdout
    saved = profile(config_file, "p")
    assert saved["cache_ttl"] == 5 and saved["token"] and saved["client_secret"] == SECRET
    # the code is spent: --code with it again is refused in one line
    res = amofs("login", "--profile", "p", "--code", code, env=dict(os.environ, AMOFS_CLIENT_SECRET=SECRET))
    assert res.returncode == 1
    assert res.stderr.startswith("amofs: error: ") and "the authorization code was refused" in res.stderr


def test_login_refused_in_the_browser(emulator: Emulator, logins: list[Login]) -> None:
    port = free_port()
    redirect = f"http://localhost:{port}/"
    emulator.add_oauth_client(CLIENT_ID, SECRET, redirect)
    lg = start_login(
        logins, "--account-url", emulator.account_url, "--client-id", CLIENT_ID, "--redirect-uri", redirect
    )
    state = lg.state()
    httpx.get(f"http://127.0.0.1:{port}/?{urlencode({'error': 'access_denied', 'state': state})}", timeout=10)
    rc, _, err = lg.finish()
    assert rc == 1
    assert "amofs: error: amoCRM refused the authorization: access_denied" in err


def test_login_gives_up_after_the_timeout(emulator: Emulator, logins: list[Login]) -> None:
    port = free_port()
    lg = start_login(
        logins,
        "--account-url", emulator.account_url, "--client-id", CLIENT_ID,
        "--redirect-uri", f"http://127.0.0.1:{port}/", "--timeout", "1",
    )  # fmt: skip
    rc, _, err = lg.finish()
    assert rc == 1
    assert "amofs: error: no authorization code arrived in 1 s" in err


def test_login_with_a_long_lived_token(emulator: Emulator, config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text('default = "old"\n[profiles.work]\nrefresh_token = "stale"\ncache_ttl = 9\n')
    res = subprocess.run(
        [*AMOFS, "login", "--long-lived", "--profile", "work", "--account-url", emulator.account_url],
        input=emulator.token + "\n",
        capture_output=True,
        text=True,
        timeout=PROC_TIMEOUT,
    )
    assert res.returncode == 0, res.stderr
    assert emulator.token not in res.stdout + res.stderr
    saved = profile(config_file, "work")
    assert saved == {"cache_ttl": 9, "account_url": emulator.account_url, "token": emulator.token}
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600


def test_a_refused_long_lived_token_is_not_saved(emulator: Emulator, config_file: Path) -> None:
    res = subprocess.run(
        [*AMOFS, "login", "--long-lived", "--account-url", emulator.account_url],
        input="not-a-valid-token\n",
        capture_output=True,
        text=True,
        timeout=PROC_TIMEOUT,
    )
    assert res.returncode == 1
    assert f"amofs: error: {emulator.account_url} refused this token (GET /api/v4/account: HTTP 401)" in res.stderr
    assert "not-a-valid-token" not in res.stderr
    assert not config_file.exists()


def test_login_cannot_listen_on_a_busy_port(emulator: Emulator) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run(
            [
                *AMOFS,
                "login",
                "--account-url",
                emulator.account_url,
                "--client-id",
                CLIENT_ID,
                "--redirect-uri",
                f"http://127.0.0.1:{port}/",
            ],
            capture_output=True,
            text=True,
            timeout=PROC_TIMEOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, AMOFS_CLIENT_SECRET=SECRET),
        )
    assert res.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for the redirect" in res.stderr
