"""Property-based fuzzing of every parser users reach: nothing may raise an unhandled exception."""

from __future__ import annotations

import json
import string
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from containerlease_tui.cli import cli
from containerlease_tui.config import ConfigError, Settings, load_settings
from containerlease_tui.durations import DurationError, format_duration, parse_duration
from containerlease_tui.leases import InvalidInput, LeaseService, ProvisionRequest
from containerlease_tui.models import parse_memory, validate_name
from containerlease_tui.redact import redact_url

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(max_size=30))
def test_parse_duration_total(text: str) -> None:
    try:
        value = parse_duration(text)
    except DurationError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert value >= timedelta(0)


@FUZZ
@given(st.integers(min_value=0, max_value=10 * 365 * 86400))
def test_duration_round_trip(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@FUZZ
@given(st.text(max_size=20))
def test_parse_memory_total(text: str) -> None:
    try:
        assert parse_memory(text) >= 6 * 1024**2
    except ValueError as exc:
        assert str(exc)


@FUZZ
@given(st.text(max_size=50))
def test_validate_name_total(text: str) -> None:
    try:
        assert validate_name(text) == text
    except ValueError as exc:
        assert "invalid name" in str(exc)


_scalar = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
# Strings that get past the first checks more often than random text does.
_plausible = st.sampled_from(
    [
        "CHOWN",
        "cap_kill",
        "ALL",
        "",
        "5m",
        "/srv/shared",
        "/srv/shared:/data:ro",
        "relative:/x",
        "redis://h/0",
        "unix:///x.sock",
        "host",
        "busybox:1.36",
        "root",
    ]
)
_item = st.one_of(_scalar, _plausible)
_value = st.one_of(
    _item,
    st.lists(_item, max_size=4),
    st.lists(st.lists(_item, max_size=2), max_size=2),
    st.dictionaries(st.sampled_from(["a", "ref", "url"]), _item, max_size=2),
)
_section = st.sampled_from(["redis", "docker", "limits", "reaper", "security", "images.x", "bogus"])
_key = st.sampled_from(
    [
        "url",
        "key_prefix",
        "tls_ca",
        "network",
        "min_duration",
        "max_duration",
        "default_duration",
        "max_leases_per_user",
        "interval",
        "retries",
        "warnings",
        "ref",
        "hourly_rate",
        "memory",
        "cpus",
        "cmd",
        "cap_add",
        "binds",
        "init",
        "no_new_privileges",
        "admins",
        "admin_group",
        "cap_allowlist",
        "bind_allowlist",
        "service_user",
        "nope",
    ]
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


@FUZZ
@given(entries=st.lists(st.tuples(_section, _key, _value), max_size=6), garble=st.booleans())
def test_config_loader_total(
    entries: list[tuple[str, str, object]], garble: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    sections: dict[str, dict[str, object]] = {}
    for section, key, value in entries:
        sections.setdefault(section, {})[key] = value
    text = "".join(
        f"[{section}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in body.items())
        for section, body in sections.items()
    )
    if garble:
        text = text.replace("=", "", 1) + "\n[unterminated"
    path.write_text(text)
    try:
        result = load_settings(path)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and str(path) in message
    else:
        assert isinstance(result, Settings)


@FUZZ
@given(
    key=st.sampled_from(
        ["SECURITY_CAP_ALLOWLIST", "SECURITY_BIND_ALLOWLIST", "REAPER_WARNINGS", "REDIS_URL"]
    ),
    value=st.one_of(st.text(max_size=20), st.lists(_item, max_size=3).map(json.dumps)),
)
def test_config_loader_total_from_the_environment(key: str, value: str) -> None:
    """Lists come from the environment as JSON; broken JSON is a config error too."""
    if "\x00" in value:
        return  # an environment variable cannot hold a NUL byte
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(f"CONTAINERLEASE_{key}", value)
        try:
            result = load_settings(None)
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("config error in environment")
        else:
            assert isinstance(result, Settings)


_SECRET = st.text(
    alphabet=string.ascii_letters + string.digits + "/?#:%!$&'()*+,;=-._~[]",
    min_size=1,
    max_size=20,
)


@FUZZ
@given(
    scheme=st.sampled_from(["redis", "rediss", "unix", "tcp"]),
    user=st.text(alphabet=string.ascii_lowercase, max_size=6),
    secret=_SECRET,
    host=st.sampled_from(["h", "127.0.0.1:6379", "[::1]:6379", "redis.example.com"]),
    tail=st.sampled_from(["", "/0", "/0?db=1", "?ssl_cert_reqs=none"]),
    param=st.sampled_from(["password", "ssl_password", "token", "Secret", "passwd"]),
)
def test_redact_url_hides_every_secret(
    scheme: str, user: str, secret: str, host: str, tail: str, param: str
) -> None:
    marked = "Zx" + secret.replace("@", "")  # the marker never appears in the rest of the URL
    in_userinfo = redact_url(f"{scheme}://{user}:{marked}@{host}{tail}")
    assert "Zx" not in in_userinfo and "***" in in_userinfo
    value = "Zx" + "".join(c for c in secret if c not in "&;#")
    in_query = redact_url(f"{scheme}://{host}/0?db=0&{param}={value}")
    assert "Zx" not in in_query and f"{param}=***" in in_query


def _offline_settings(tmp_path: Path) -> Settings:
    path = tmp_path / "c.toml"
    path.write_text(
        '[redis]\nurl = "redis://127.0.0.1:1/0"\nsocket_timeout = 0.5\n'
        f'[docker]\nurl = "unix://{tmp_path}/none.sock"\ntimeout = 0.5\n'
        '[limits]\nmin_duration = "1s"\n'
    )
    return load_settings(path)


@FUZZ
@given(
    image=st.one_of(st.sampled_from(["ubuntu", "alpine"]), st.text(max_size=12)),
    duration=st.one_of(st.none(), st.text(max_size=10)),
    name=st.one_of(st.none(), st.text(max_size=45)),
    cpus=st.one_of(st.none(), st.text(max_size=6)),
    memory=st.one_of(st.none(), st.text(max_size=8)),
    env=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_request_validation_total(
    image: str,
    duration: str | None,
    name: str | None,
    cpus: str | None,
    memory: str | None,
    env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    svc_settings = _offline_settings(tmp_path_factory.mktemp("s"))
    service = LeaseService.__new__(LeaseService)
    service.settings = svc_settings
    service.user = "fuzz"
    service.host = "h"
    try:
        lease = service.check(ProvisionRequest(image, duration, name, cpus, memory, env))
    except InvalidInput as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert lease.expires_at > lease.created_at


_arg = st.one_of(
    st.sampled_from(
        ["provision", "ls", "extend", "rm", "logs", "status", "stop", "--json", "--all", "--by"]
    ),
    st.sampled_from(["--duration", "--env", "--memory", "--cpus", "--name", "--tail", "-f"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=st.lists(_arg, max_size=5))
def test_cli_arguments_total(args: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    if not args or args[0] in ("shell",):
        return
    runner = CliRunner()
    result = runner.invoke(cli, args, obj=_offline_settings(tmp_path_factory.mktemp("c")))
    assert result.exit_code in (0, 1, 2), (args, result.output, result.exception)
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), (args, result.exception)
    everything = result.output + result.stderr
    assert "Traceback" not in everything
    # The catch-all exits 1 too: only its wording tells a crash from a runtime failure.
    assert "internal error" not in everything, (args, everything)
