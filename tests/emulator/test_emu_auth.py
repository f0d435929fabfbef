"""Authentication, scopes and OAuth (POST /oauth2/access_token)."""

from __future__ import annotations

import time
from typing import Any

import jwt


def test_missing_unknown_token_401(emulator: Any, http_for: Any) -> None:
    for http in (http_for(emulator, token=None), http_for(emulator, token="nope")):
        r = http.drive("GET", "/v1.0/files")
        assert r.status_code == 401
        assert set(r.json()) >= {"title", "type", "status", "detail"} and r.json()["status"] == 401
        a = http.account("GET", "/api/v4/account")
        assert a.status_code == 401 and a.headers["content-type"] == "application/problem+json"
    bad_scheme = http_for(emulator, token=None)
    r = bad_scheme.drive("GET", "/v1.0/files", headers={"Authorization": f"Basic {emulator.token}"})
    assert r.status_code == 401


def test_scopes(emulator: Any, http_for: Any) -> None:
    uuid = emulator.seed_file("a.txt", b"a")
    emulator.add_token("files-only", {"files"})
    emulator.add_token("nothing", set())
    files_only = http_for(emulator, token="files-only")
    assert files_only.drive("GET", "/v1.0/files").status_code == 200
    r = files_only.drive("DELETE", "/v1.0/files", json=[{"uuid": uuid}])
    assert r.status_code == 403 and "files_delete" in r.json()["detail"]
    assert emulator.file(uuid)["is_trashed"] is False
    nothing = http_for(emulator, token="nothing")
    assert nothing.drive("GET", "/v1.0/files").status_code == 403
    assert nothing.drive("POST", "/v1.0/sessions", json={"file_name": "a", "file_size": 1}).status_code == 403
    assert nothing.account("GET", "/api/v4/account").status_code == 200  # account methods need no file scope
    assert nothing.account("GET", "/_emulator/state").status_code == 403  # control needs the main token


def test_revoked_token(emulator: Any, http_for: Any) -> None:
    emulator.add_token("temp", {"files"})
    http = http_for(emulator, token="temp")
    assert http.drive("GET", "/v1.0/files").status_code == 204
    emulator.revoke_token("temp")
    assert http.drive("GET", "/v1.0/files").status_code == 401


def _oauth(emulator: Any, http: Any, **fields: str) -> Any:
    base = {"client_id": "cid", "client_secret": "secret", "redirect_uri": "https://example.com/cb"}
    return http.bare.post(emulator.account_url + "/oauth2/access_token", json=base | fields)


def test_oauth_code_then_single_use_refresh(emulator: Any, http_for: Any) -> None:
    http = http_for(emulator, token=None)
    emulator.add_oauth_client("cid", "secret", "https://example.com/cb")
    code = emulator.issue_auth_code("cid")
    r = _oauth(emulator, http, grant_type="authorization_code", code=code)
    assert r.status_code == 200
    tok = r.json()
    assert set(tok) == {"token_type", "expires_in", "access_token", "refresh_token"}
    assert (tok["token_type"], tok["expires_in"]) == ("Bearer", 86400)
    claims = jwt.decode(tok["access_token"], options={"verify_signature": False})
    assert claims["exp"] - time.time() > 86000
    assert http_for(emulator, token=tok["access_token"]).drive("GET", "/v1.0/files").status_code == 204
    assert _oauth(emulator, http, grant_type="authorization_code", code=code).status_code == 400  # code reused
    r2 = _oauth(emulator, http, grant_type="refresh_token", refresh_token=tok["refresh_token"])
    assert r2.status_code == 200 and r2.json()["refresh_token"] != tok["refresh_token"]
    again = _oauth(emulator, http, grant_type="refresh_token", refresh_token=tok["refresh_token"])
    assert again.status_code == 401 and "hint" in again.json()
    r3 = _oauth(emulator, http, grant_type="refresh_token", refresh_token=r2.json()["refresh_token"])
    assert r3.status_code == 200


def test_oauth_form_encoded_and_errors(emulator: Any, http_for: Any) -> None:
    http = http_for(emulator, token=None)
    emulator.add_oauth_client("cid", "secret", "https://example.com/cb")
    form = {
        "client_id": "cid",
        "client_secret": "secret",
        "redirect_uri": "https://example.com/cb",
        "grant_type": "authorization_code",
        "code": emulator.issue_auth_code("cid"),
    }
    assert http.bare.post(emulator.account_url + "/oauth2/access_token", data=form).status_code == 200
    code = emulator.issue_auth_code("cid")
    assert _oauth(emulator, http, client_secret="wrong", grant_type="authorization_code", code=code).status_code == 401
    assert _oauth(emulator, http, client_id="other", grant_type="authorization_code", code=code).status_code == 401
    assert (
        _oauth(emulator, http, redirect_uri="https://evil/", grant_type="authorization_code", code=code).status_code
        == 400
    )
    assert _oauth(emulator, http, grant_type="password", code=code).status_code == 400
    assert _oauth(emulator, http, grant_type="authorization_code").status_code == 400  # no code
    assert _oauth(emulator, http, grant_type="authorization_code", code="made-up").status_code == 400
    assert _oauth(emulator, http, grant_type="authorization_code", code=code).status_code == 200  # still unused


def test_access_token_expires(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(access_token_ttl=600)
    http = http_for(emu, token=None)
    emu.add_oauth_client("cid", "secret", "https://example.com/cb")
    tok = _oauth(emu, http, grant_type="authorization_code", code=emu.issue_auth_code("cid")).json()
    claims = jwt.decode(tok["access_token"], options={"verify_signature": False})
    assert tok["expires_in"] == 600 and claims["exp"] - claims["iat"] == 600
    emu.add_token("short", {"files"}, expires_at=time.time() + 0.2)
    user = http_for(emu, token="short")
    assert user.drive("GET", "/v1.0/files").status_code == 204
    time.sleep(0.25)
    r = user.drive("GET", "/v1.0/files")
    assert r.status_code == 401 and "expired" in r.json()["detail"]
