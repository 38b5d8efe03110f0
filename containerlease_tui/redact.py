"""Secrets never reach a screen: URLs shown with passwords and secret parameters hidden."""

from __future__ import annotations

import re
from urllib.parse import unquote

# Query parameters whose value is a secret (redis-py passes unknown ones on, e.g. password=).
_SECRET_PARAM = re.compile(
    r"(?i)(?:^|_)(?:pass|passwd|password|pwd|secret|token|auth|credentials?|key|apikey)$"
)
_QUERY_PAIR = re.compile(r"(?<=[?&;#])([^&;=#]*)=([^&;#]*)")


def _redact_query(tail: str) -> str:
    """``/0?password=s&db=1`` → ``/0?password=***&db=1`` (the fragment too, should it hold one)."""
    start = min((i for i in (tail.find("?"), tail.find("#")) if i >= 0), default=-1)
    if start < 0:
        return tail

    def hide(match: re.Match[str]) -> str:
        name = unquote(match.group(1))
        if _SECRET_PARAM.search(name):
            return f"{match.group(1)}=***"
        return match.group(0)

    return tail[:start] + _QUERY_PAIR.sub(hide, tail[start:])


def redact_url(url: str) -> str:
    """``redis://user:secret@host`` → ``redis://user:***@host``: secrets never reach a screen.

    A password in the user info and secret query parameters (``?password=``, ``?token=``) are
    replaced by ``***``; a password with an unescaped ``/``, ``?`` or ``#`` is still hidden.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<url with credentials>" if "@" in url else _redact_query(url)
    return f"{scheme}://{_redact_after_scheme(rest)}"


def _redact_after_scheme(rest: str) -> str:
    ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    end = min(ends, default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        userinfo, _, hostport = authority.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        if colon:  # a user name alone is no secret
            authority = f"{user}:***@{hostport}"
        return authority + _redact_query(tail)
    user, colon, after = authority.partition(":")
    at = rest.find("@", end)
    if colon and at >= 0 and not after.isdigit():
        # "user:pa/ss@host": the password holds a character that ends the authority early.
        return f"{user}:***@{_redact_after_scheme(rest[at + 1 :])}"
    return authority + _redact_query(tail)
