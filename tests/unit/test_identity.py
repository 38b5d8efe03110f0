"""Who is acting: the uid, or behind a sudo rule (``[security] service_user``) sudo's SUDO_UID."""

from __future__ import annotations

import grp
import os
import pwd

import pytest

from containerlease_tui.config import SecuritySettings, Settings
from containerlease_tui.leases import current_user, is_admin

ME = pwd.getpwuid(os.getuid())


def _other_user() -> pwd.struct_passwd:
    for entry in pwd.getpwall():
        if entry.pw_uid != ME.pw_uid:
            return entry
    pytest.skip("needs a second account in the password database")


def _unknown_uid() -> int:
    known = {entry.pw_uid for entry in pwd.getpwall()}
    return next(uid for uid in range(3_999_999_000, 4_000_000_000) if uid not in known)


def _settings(**security: object) -> Settings:
    return Settings(security=SecuritySettings(**security))  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_UID", raising=False)


def test_the_uid_decides_not_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "somebody-else")
    assert current_user() == ME.pw_name
    assert current_user(_settings()) == ME.pw_name


def test_sudo_uid_is_ignored_without_a_service_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_UID", str(_other_user().pw_uid))
    assert current_user() == ME.pw_name
    assert current_user(_settings()) == ME.pw_name


def test_behind_sudo_the_caller_acts(monkeypatch: pytest.MonkeyPatch) -> None:
    other = _other_user()
    monkeypatch.setenv("SUDO_UID", str(other.pw_uid))
    assert current_user(_settings(service_user=ME.pw_name)) == other.pw_name


def test_an_unknown_sudo_uid_is_named_by_number(monkeypatch: pytest.MonkeyPatch) -> None:
    uid = _unknown_uid()
    monkeypatch.setenv("SUDO_UID", str(uid))
    assert current_user(_settings(service_user=ME.pw_name)) == f"uid{uid}"


def test_sudo_uid_is_ignored_for_anybody_but_the_service_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = _other_user()
    monkeypatch.setenv("SUDO_UID", str(other.pw_uid))
    # The process is not the service user: whoever it claims to be, it is itself.
    assert current_user(_settings(service_user=other.pw_name)) == ME.pw_name
    assert current_user(_settings(service_user="no-such-user-xyz")) == ME.pw_name


@pytest.mark.parametrize("value", ["", "abc", "-1", " 1", "1.0", "٣", "99999999999", "4294967296"])
def test_a_malformed_sudo_uid_is_ignored(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SUDO_UID", value)
    assert current_user(_settings(service_user=ME.pw_name)) == ME.pw_name


def test_admins_list() -> None:
    settings = _settings(admins=["ops"])
    assert is_admin("ops", settings)
    assert not is_admin("dev", settings)
    assert not is_admin("dev", _settings())


def test_admin_group_members_and_primary_group(monkeypatch: pytest.MonkeyPatch) -> None:
    group = grp.struct_group(("devops", "x", 4242, ["ann"]))
    people = {
        "ann": pwd.struct_passwd(("ann", "x", 5001, 100, "", "/", "/bin/sh")),
        "bea": pwd.struct_passwd(("bea", "x", 5002, 4242, "", "/", "/bin/sh")),
        "cid": pwd.struct_passwd(("cid", "x", 5003, 100, "", "/", "/bin/sh")),
    }

    def getgrnam(name: str) -> grp.struct_group:
        if name == "devops":
            return group
        raise KeyError(name)

    def getpwnam(name: str) -> pwd.struct_passwd:
        return people[name]

    monkeypatch.setattr(grp, "getgrnam", getgrnam)
    monkeypatch.setattr(pwd, "getpwnam", getpwnam)
    settings = _settings(admin_group="devops")
    assert is_admin("ann", settings)  # a listed member
    assert is_admin("bea", settings)  # devops is her primary group
    assert not is_admin("cid", settings)
    assert not is_admin("nobody-known", settings)
    assert not is_admin("ann", _settings(admin_group="no-such-group"))
