"""The review app from outside, as an attacker on loopback: the real server (uvicorn on a
free port) and a plain HTTP client, no test shortcuts. A cookie copied before logout is dead
after it; 25 logins under different names from one address are throttled; the security
headers are sent; absurd integers never give a 5xx."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.builders import OWN, PASSWORD

HUGE = "9" * 30


def csrf(client: httpx.Client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def signed_in(live_app: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=live_app, follow_redirects=False)
    r = client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": csrf(client, "/login")})  # fmt: skip
    assert r.status_code == 303
    return client


def test_copied_cookie_is_dead_after_logout(live_app: str) -> None:
    victim = signed_in(live_app, "rev")
    stolen = dict(victim.cookies)
    attacker = httpx.Client(base_url=live_app, cookies=stolen, follow_redirects=False)
    assert attacker.get(f"/calls/{OWN}").status_code == 200
    victim.post("/logout", data={"csrf_token": csrf(victim, "/")})
    assert attacker.get(f"/calls/{OWN}").status_code == 303
    assert attacker.get(f"/calls/{OWN}/audio").status_code == 303


def test_headers_and_absurd_integers(live_app: str) -> None:
    client = signed_in(live_app, "admin")
    h = client.get(f"/calls/{OWN}").headers
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert "'unsafe-inline'" not in re.search(r"script-src ([^;]+)", h["content-security-policy"]).group(1)  # fmt: skip
    assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert h["cache-control"] == "no-store"
    token = csrf(client, "/")
    for path in (f"/?page={HUGE}", f"/?per_page={HUGE}", f"/search?q=x&page={HUGE}", f"/api/calls?page={HUGE}"):  # fmt: skip
        assert client.get(path).status_code < 500, path
    for path in (f"/disputes/{HUGE}/ruling", f"/calls/{OWN}/items/{HUGE}/override", f"/filters/{HUGE}/delete"):  # fmt: skip
        assert client.post(path, data={"csrf_token": token, "verdict": "fail", "decision": "reject"}).status_code < 500, path  # fmt: skip


@pytest.mark.slow
def test_password_spraying_is_throttled(live_app: str) -> None:
    """Last in this module: it throttles 127.0.0.1."""
    client = httpx.Client(base_url=live_app, follow_redirects=False)
    token = csrf(client, "/login")
    codes = [
        client.post(
            "/login", data={"username": f"guess{n}", "password": "123456", "csrf_token": token}
        ).status_code  # fmt: skip
        for n in range(25)
    ]
    assert 429 in codes and codes.index(429) <= 20
    assert all(c == 429 for c in codes[codes.index(429) :])
