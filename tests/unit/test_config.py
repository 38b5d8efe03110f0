"""Settings: defaults < TOML file < CONTAINERLEASE_* env; one-line errors naming file and key."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel

from containerlease_tui.config import (
    DEFAULT_DOCKER_SOCKET,
    ConfigError,
    DockerSettings,
    ImageSpec,
    LimitSettings,
    ReaperSettings,
    RedisSettings,
    SecuritySettings,
    ServiceSettings,
    Settings,
    config_path,
    load_settings,
)
from containerlease_tui.redact import redact_url

MIB = 1024**2
GIB = 1024**3


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/test exports CONTAINERLEASE_REDIS_URL & co.; these tests start from nothing."""
    for name in list(os.environ):
        if name.upper().startswith("CONTAINERLEASE_") or name == "DOCKER_HOST":
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def use_file(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv("CONTAINERLEASE_CONFIG", str(path))


def config_error(path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings() if path is None else load_settings(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith("config error in "), message
    return message


# --- defaults ------------------------------------------------------------------------------


def test_defaults_without_file_or_env() -> None:
    assert config_path() is None
    s = load_settings()
    assert s.redis.url == "redis://127.0.0.1:6379/0"
    assert s.redis.key_prefix == "cl"
    assert s.redis.retention == timedelta(days=7)
    assert s.redis.stream_maxlen == 10_000
    assert s.redis.socket_timeout == 5.0
    assert s.redis.tls_ca is None
    assert s.docker.url == DEFAULT_DOCKER_SOCKET == "unix:///var/run/docker.sock"
    assert s.docker.tls_verify is False
    assert s.docker.cert_path is None
    assert s.docker.network == "default"
    assert s.docker.timeout == 30.0
    assert s.limits.min_duration == timedelta(minutes=1)
    assert s.limits.default_duration == timedelta(hours=1)
    assert s.limits.max_duration == timedelta(hours=8)
    assert s.limits.max_lifetime == timedelta(hours=24)
    assert s.limits.max_leases_per_user == 5
    assert s.limits.max_leases_total == 50
    assert s.limits.daily_budget_hours is None
    assert s.limits.max_cpus == 4.0
    assert s.limits.max_memory == 8 * GIB
    assert s.reaper.interval == timedelta(seconds=30)
    assert s.reaper.retries == 5
    assert s.reaper.backoff == timedelta(milliseconds=200)
    assert s.reaper.grace == timedelta(minutes=5)
    assert s.reaper.sweep_interval == timedelta(minutes=1)
    assert s.reaper.lock_ttl == timedelta(seconds=2)
    assert s.reaper.concurrency == 32
    assert s.reaper.warnings == [timedelta(minutes=10), timedelta(minutes=2), timedelta(seconds=30)]
    assert s.security.admins == []
    assert s.security.admin_group is None
    assert s.security.cap_allowlist == [
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "SETGID",
        "SETUID",
        "KILL",
    ]
    assert s.security.bind_allowlist == []
    assert s.security.service_user is None


def test_builtin_catalog() -> None:
    images = load_settings().images
    assert set(images) == {"ubuntu", "alpine"}
    assert images["ubuntu"].ref == "ubuntu:24.04"
    assert images["ubuntu"].hourly_rate == Decimal("0.04")
    assert images["ubuntu"].memory == 512 * MIB
    assert images["alpine"].ref == "alpine:3.20"
    assert images["alpine"].hourly_rate == Decimal("0.01")
    assert images["alpine"].memory == 256 * MIB
    for spec in images.values():
        assert isinstance(spec.hourly_rate, Decimal)
        assert spec.cmd is None
        assert spec.cap_add is None
        assert spec.binds == []
        assert spec.description
        assert spec.init is True
        assert spec.no_new_privileges is True


def test_docker_url_defaults_to_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2376")
    assert load_settings().docker.url == "tcp://10.0.0.5:2376"
    monkeypatch.setenv("DOCKER_HOST", "")
    assert load_settings().docker.url == DEFAULT_DOCKER_SOCKET


def test_docker_url_setting_beats_docker_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2376")
    use_file(monkeypatch, write(tmp_path, '[docker]\nurl = "unix:///run/user/1000/docker.sock"\n'))
    assert load_settings().docker.url == "unix:///run/user/1000/docker.sock"
    monkeypatch.setenv("CONTAINERLEASE_DOCKER_URL", "unix:///tmp/d.sock")
    assert load_settings().docker.url == "unix:///tmp/d.sock"


def test_every_field_is_documented() -> None:
    """The README's reference is derived from these docstrings; none may be missing."""
    sections: list[type[BaseModel]] = [
        Settings,
        RedisSettings,
        DockerSettings,
        ImageSpec,
        LimitSettings,
        ReaperSettings,
        SecuritySettings,
    ]
    for model in sections:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"


# --- precedence ----------------------------------------------------------------------------

FILE = """
[redis]
url = "redis://file-host:6379/1"
key_prefix = "fromfile"

[limits]
max_duration = "4h"
max_leases_per_user = 2

[reaper]
warnings = ["5m"]
"""


def test_file_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path, FILE)
    use_file(monkeypatch, path)
    assert config_path() == path
    s = load_settings()
    assert s.redis.url == "redis://file-host:6379/1"
    assert s.redis.key_prefix == "fromfile"
    assert s.limits.max_duration == timedelta(hours=4)
    assert s.limits.max_leases_per_user == 2
    assert s.reaper.warnings == [timedelta(minutes=5)]
    # Untouched keys, in touched and untouched sections, keep their defaults.
    assert s.redis.retention == timedelta(days=7)
    assert s.limits.min_duration == timedelta(minutes=1)
    assert s.reaper.interval == timedelta(seconds=30)
    assert set(s.images) == {"ubuntu", "alpine"}


def test_env_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_file(monkeypatch, write(tmp_path, FILE))
    monkeypatch.setenv("CONTAINERLEASE_REDIS_URL", "redis://env-host:6380/2")
    monkeypatch.setenv("CONTAINERLEASE_LIMITS_MAX_DURATION", "2h")
    monkeypatch.setenv("CONTAINERLEASE_LIMITS_MAX_LEASES_PER_USER", "7")
    monkeypatch.setenv("CONTAINERLEASE_REAPER_WARNINGS", '["15m", "1m"]')
    monkeypatch.setenv("CONTAINERLEASE_SECURITY_ADMINS", '["root", "ops"]')
    s = load_settings()
    assert s.redis.url == "redis://env-host:6380/2"
    assert s.limits.max_duration == timedelta(hours=2)
    assert s.limits.max_leases_per_user == 7
    assert s.reaper.warnings == [timedelta(minutes=15), timedelta(minutes=1)]
    assert s.security.admins == ["root", "ops"]
    # The file's other keys of the same sections still apply.
    assert s.redis.key_prefix == "fromfile"


def test_env_overrides_defaults_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERLEASE_REDIS_KEY_PREFIX", "envonly")
    monkeypatch.setenv("CONTAINERLEASE_DOCKER_TIMEOUT", "12.5")
    monkeypatch.setenv("containerlease_limits_min_duration", "1s")  # case-insensitive
    s = load_settings()
    assert s.redis.key_prefix == "envonly"
    assert s.docker.timeout == 12.5
    assert s.limits.min_duration == timedelta(seconds=1)


def test_unrelated_containerlease_env_vars_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERLEASE_TEST_IMAGE", "containerlease-test:busybox")
    monkeypatch.setenv("CONTAINERLEASE_TEST_WORKDIR", "/tmp/x")
    monkeypatch.setenv("CONTAINERLEASE_VENV", "/tmp/venv")
    assert load_settings().redis.key_prefix == "cl"


def test_user_config_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # conftest points XDG_CONFIG_HOME at tmp_path/xdg and unsets CONTAINERLEASE_CONFIG.
    assert "CONTAINERLEASE_CONFIG" not in os.environ
    user_file = tmp_path / "xdg" / "containerlease" / "config.toml"
    assert config_path() is None
    user_file.parent.mkdir(parents=True)
    user_file.write_text('[redis]\nkey_prefix = "mine"\n')
    assert config_path() == user_file
    assert load_settings().redis.key_prefix == "mine"
    # CONTAINERLEASE_CONFIG wins over the user's file, and env over both.
    use_file(monkeypatch, write(tmp_path, '[redis]\nkey_prefix = "explicit"\n'))
    assert load_settings().redis.key_prefix == "explicit"
    monkeypatch.setenv("CONTAINERLEASE_REDIS_KEY_PREFIX", "env")
    assert load_settings().redis.key_prefix == "env"


def test_explicit_path_argument(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_file(monkeypatch, write(tmp_path, '[redis]\nkey_prefix = "fromenvpath"\n', "a.toml"))
    other = write(tmp_path, '[redis]\nkey_prefix = "fromarg"\n', "b.toml")
    assert load_settings(other).redis.key_prefix == "fromarg"
    assert load_settings(str(other)).redis.key_prefix == "fromarg"
    assert load_settings(None).redis.key_prefix == "cl"  # None: no file at all
    assert load_settings().redis.key_prefix == "fromenvpath"


def test_config_path_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CONTAINERLEASE_CONFIG", "~/cl.toml")
    assert config_path() == tmp_path / "cl.toml"


def test_file_images_replace_the_builtin_catalog(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[images.busybox]
ref = "busybox:1.36"
hourly_rate = "0.005"
cmd = ["sleep", "infinity"]
memory = "64m"
cpus = 0.5
pids = 64
cap_add = []
binds = ["/srv/data:/data:ro"]
""",
    )
    images = load_settings(path).images
    assert list(images) == ["busybox"]
    spec = images["busybox"]
    assert spec.hourly_rate == Decimal("0.005")
    assert spec.cmd == ["sleep", "infinity"]
    assert spec.memory == 64 * MIB
    assert (spec.cpus, spec.pids) == (0.5, 64)
    assert spec.cap_add == []
    assert spec.binds == ["/srv/data:/data:ro"]
    assert spec.description == ""


def test_float_rate_is_kept_exact(tmp_path: Path) -> None:
    path = write(tmp_path, '[images.x]\nref = "x:1"\nhourly_rate = 0.1\n')
    rate = load_settings(path).images["x"].hourly_rate
    assert rate == Decimal("0.1")
    assert str(rate) == "0.1"


def test_durations_and_sizes_in_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[limits]
min_duration = "1s"
default_duration = 600
max_duration = "1h30m"
max_lifetime = "2d"
max_memory = "1.5g"
daily_budget_hours = "12.5"

[redis]
url = "rediss://redis.example.com:6380/0"
retention = "36h"
tls_ca = "/etc/ssl/redis-ca.pem"
""",
    )
    s = load_settings(path)
    assert s.limits.min_duration == timedelta(seconds=1)
    assert s.limits.default_duration == timedelta(minutes=10)
    assert s.limits.max_duration == timedelta(minutes=90)
    assert s.limits.max_lifetime == timedelta(days=2)
    assert s.limits.max_memory == GIB + 512 * MIB
    assert s.limits.daily_budget_hours == Decimal("12.5")
    assert s.redis.retention == timedelta(hours=36)
    assert s.redis.tls_ca == Path("/etc/ssl/redis-ca.pem")


def test_settings_serialise_durations_humanely() -> None:
    dumped = load_settings().model_dump(mode="json")
    assert dumped["limits"]["max_duration"] == "8h"
    assert dumped["reaper"]["warnings"] == ["10m", "2m", "30s"]


# --- errors --------------------------------------------------------------------------------


def test_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    use_file(monkeypatch, path)
    message = config_error()
    assert message == f"config error in {path}: file not found"


def test_unparsable_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[redis\nurl = \n")
    message = config_error(path)
    assert str(path) in message
    assert "invalid TOML" in message
    assert "line 1" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[redis]\nurll = "redis://x"\n', "redis.urll"),
        ("[limitz]\nmax_duration = 1\n", "limitz"),
        ("colour = 1\n", "colour"),
        ('[images.x]\nref = "x:1"\nhourly_rate = "1"\nram = "1g"\n', "images.x.ram"),
    ],
)
def test_unknown_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    message = config_error(path)
    assert str(path) in message
    assert f": {key}: unknown key" in message


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[limits]\nmax_leases_per_user = "many"\n', "limits.max_leases_per_user", "integer"),
        ('[docker]\ntls_verify = "maybe"\n', "docker.tls_verify", "boolean"),
        ('[reaper]\nwarnings = "5m"\n', "reaper.warnings", "list"),
        ("redis = 5\n", "redis", "dictionary"),
        ('[limits]\nmax_duration = "forever"\n', "limits.max_duration", "cannot parse duration"),
        ('[limits]\nmax_memory = "lots"\n', "limits.max_memory", "invalid memory size"),
        ('[images.x]\nref = "x:1"\nhourly_rate = "cheap"\n', "images.x.hourly_rate", "decimal"),
        ('[images.x]\nref = "x:1"\n', "images.x.hourly_rate", "Field required"),
        ('[redis]\nkey_prefix = "has space"\n', "redis.key_prefix", "pattern"),
        ("[limits]\nmax_leases_per_user = 0\n", "limits.max_leases_per_user", "greater than"),
        ("[docker]\ntimeout = 0\n", "docker.timeout", "greater than"),
    ],
)
def test_wrong_type_or_value(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = write(tmp_path, text)
    message = config_error(path)
    assert str(path) in message
    assert f": {key}: " in message
    assert problem in message


@pytest.mark.parametrize("rate", ['"-0.01"', "-1", "-0.5"])
def test_negative_rate(tmp_path: Path, rate: str) -> None:
    path = write(tmp_path, f'[images.x]\nref = "x:1"\nhourly_rate = {rate}\n')
    message = config_error(path)
    assert str(path) in message
    assert "images.x.hourly_rate: Input should be greater than or equal to 0" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[limits]\nmin_duration = "2h"\n',
            "need min_duration <= default_duration <= max_duration",
        ),
        ('[limits]\ndefault_duration = "9h"\n', "(got 1m, 9h, 8h)"),
        ('[limits]\nmax_duration = "30m"\n', "default_duration <= max_duration"),
        ('[limits]\nmax_lifetime = "1h"\n', "max_lifetime must be at least max_duration"),
        ('[limits]\nmin_duration = "0s"\n', "min_duration must be positive"),
    ],
)
def test_inconsistent_limits(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    message = config_error(path)
    assert str(path) in message
    assert ": limits: " in message
    assert problem in message


def test_min_duration_of_one_second_is_valid(tmp_path: Path) -> None:
    path = write(tmp_path, '[limits]\nmin_duration = "1s"\n')
    assert load_settings(path).limits.min_duration == timedelta(seconds=1)


@pytest.mark.parametrize(
    "text",
    [
        "[images]\n",
        '[images.Ubuntu]\nref = "u"\nhourly_rate = "1"\n',
        '[images."has space"]\nref = "u"\nhourly_rate = "1"\n',
    ],
)
def test_bad_catalog(tmp_path: Path, text: str) -> None:
    message = config_error(write(tmp_path, text))
    assert ": images: " in message


def test_several_problems_reported_as_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[redis]\nurll = 1\n[docker]\ntimeout = -1\nnope = "x"\n')
    message = config_error(path)
    assert "\n" not in message and "more problem" not in message
    # Every problem is named, not just the first.
    for part in ("redis.urll: unknown key", "docker.timeout: ", "docker.nope: unknown key"):
        assert part in message, message


def test_bad_env_value_names_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERLEASE_LIMITS_MAX_DURATION", "bogus")
    message = config_error()
    assert message.startswith("config error in environment: limits.max_duration: ")
    assert "cannot parse duration 'bogus'" in message


def test_bad_env_value_with_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path, FILE)
    use_file(monkeypatch, path)
    monkeypatch.setenv("CONTAINERLEASE_REDIS_SOCKET_TIMEOUT", "-3")
    message = config_error()
    assert f"{path} (or CONTAINERLEASE_* environment)" in message
    assert "redis.socket_timeout" in message


def test_errors_never_show_a_redis_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERLEASE_REDIS_URL", "redis://u:hunter2@host/0")
    monkeypatch.setenv("CONTAINERLEASE_REDIS_KEY_PREFIX", "bad prefix")
    assert "hunter2" not in config_error()


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[docker]\nnetwork = "caf\xe9"\n')
    message = config_error(path)
    assert message == f"config error in {path}: not UTF-8 text"


def test_image_name_with_trailing_newline(tmp_path: Path) -> None:
    config_error(write(tmp_path, '[images."busy\\n"]\nref = "x"\nhourly_rate = "1"\n'))


# --- redaction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://user:s3cret@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:s3cret@host/0", "redis://:***@host/0"),
        (
            "rediss://app:p%40ss@redis.example.com:6380/0",
            "rediss://app:***@redis.example.com:6380/0",
        ),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock"),
        ("tcp://docker.example.com:2376", "tcp://docker.example.com:2376"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://h/0?password=secret", "redis://h/0?password=***"),
        ("redis://h/0?db=1&password=secret&x=2", "redis://h/0?db=1&password=***&x=2"),
        ("redis://h?password=a@b", "redis://h?password=***"),
        ("unix:///run/redis.sock?password=s&db=2", "unix:///run/redis.sock?password=***&db=2"),
        (
            "rediss://h/0?ssl_password=pp&ssl_keyfile=/k.pem&Token=t&api_key=k",
            "rediss://h/0?ssl_password=***&ssl_keyfile=/k.pem&Token=***&api_key=***",
        ),
        ("redis://u:pw@h/0?passwd=x", "redis://u:***@h/0?passwd=***"),
        ("redis://h/0?pass%77ord=x", "redis://h/0?pass%77ord=***"),
        ("redis://h/0?client_name=me", "redis://h/0?client_name=me"),
    ],
)
def test_redact_url_secret_query_parameters(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize(
    "url", ["redis://u:pa/ss@host:6379/0", "redis://u:pa?ss@host/0", "redis://u:pa#ss@h/0"]
)
def test_redact_url_password_with_unescaped_delimiters(url: str) -> None:
    redacted = redact_url(url)
    assert "pa" not in redacted.replace("redis", "")
    assert redacted.startswith("redis://u:***@h")


def test_redact_url_never_leaks() -> None:
    for url in ["redis://u:topsecret@h/0?ssl_cert_reqs=none", "rediss://default:topsecret@h:1"]:
        assert "topsecret" not in redact_url(url)
        assert "***" in redact_url(url)


def test_redact_url_ipv6() -> None:
    assert redact_url("redis://u:pw@[::1]:6379/0") == "redis://u:***@[::1]:6379/0"


def test_redact_url_bad_port() -> None:
    assert "pw" not in redact_url("redis://u:pw@host:notaport/0")


@pytest.mark.parametrize(
    "url", ["u:pw@host", "redis://u:pw@h@st/0", "redis://u:p:w@host/0", "redis://u:pw@/0"]
)
def test_redact_url_odd_urls(url: str) -> None:
    assert "pw" not in redact_url(url)
    assert "p:w" not in redact_url(url)


# --- validation of security-relevant values at load time ---------------------------------


def names(message: str, path: Path, key: str) -> bool:
    """The one-line error names the file and the key."""
    return str(path) in message and f": {key}: " in message


def _one_image(extra: str) -> str:
    return f'[images.x]\nref = "x:1"\nhourly_rate = "1"\n{extra}\n'


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        (["CHOWN", "KILL"], ["CHOWN", "KILL"]),
        (
            ["cap_net_bind_service", "CAP_SYS_TIME", " kill "],
            ["NET_BIND_SERVICE", "SYS_TIME", "KILL"],
        ),
        (["setuid", "SETUID", "CAP_SETUID"], ["SETUID"]),
        (["CHECKPOINT_RESTORE", "bpf", "perfmon"], ["CHECKPOINT_RESTORE", "BPF", "PERFMON"]),
        ([], []),
    ],
)
def test_capabilities_are_normalized(
    tmp_path: Path, given: list[str], normalized: list[str]
) -> None:
    listed = "[" + ", ".join(f'"{c}"' for c in given) + "]"
    path = write(
        tmp_path, f"[security]\ncap_allowlist = {listed}\n" + _one_image(f"cap_add = {listed}")
    )
    s = load_settings(path)
    assert s.security.cap_allowlist == normalized
    assert s.images["x"].cap_add == normalized


@pytest.mark.parametrize(
    ("caps", "problem"),
    [
        ('["ALL"]', "ALL is not allowed"),
        ('["cap_all"]', "ALL is not allowed"),
        ('["CHOWN", "FLY"]', "unknown Linux capability 'FLY'"),
        ('["SYS_ADMINX"]', "unknown Linux capability"),
        ('["CAP_"]', "unknown Linux capability"),
        ('[""]', "unknown Linux capability"),
    ],
)
def test_bad_capabilities_are_refused(tmp_path: Path, caps: str, problem: str) -> None:
    path = write(tmp_path, f"[security]\ncap_allowlist = {caps}\n")
    message = config_error(path)
    assert names(message, path, "security.cap_allowlist") and problem in message
    path = write(tmp_path, _one_image(f"cap_add = {caps}"))
    message = config_error(path)
    assert names(message, path, "images.x.cap_add") and problem in message


def test_bad_capability_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERLEASE_SECURITY_CAP_ALLOWLIST", '["ALL"]')
    message = config_error()
    assert message.startswith("config error in environment: security.cap_allowlist: ALL")


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://localhost",
        "redis://h:6379",
        "redis://h/",
        "rediss://user:p%40ss@redis.example.com:6380/15",
        "redis://[::1]:6379/0",
        "unix:///run/redis/redis.sock",
        "unix:///run/redis/redis.sock?db=2",
        "redis://h/0?socket_timeout=2&client_name=cl",
        "redis://h/0?password=secret",
    ],
)
def test_good_redis_urls(tmp_path: Path, url: str) -> None:
    assert load_settings(write(tmp_path, f'[redis]\nurl = "{url}"\n')).redis.url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://u:hunter2@h:6379/0", "must start with redis://, rediss:// (TLS) or unix://"),
        ("REDIS://h/0", "must start with redis://"),
        ("h:6379", "must start with redis://"),
        ("", "must start with redis://"),
        ("redis://u:hunter2@h:notaport/0", "the port must be a number"),
        ("redis://h:99999/0", "the port must be a number"),
        ("redis://h/zero", "the path must be a database number"),
        ("redis://h/0/1", "the path must be a database number"),
        ("unix://", "needs the socket's path"),
        ("redis://h/0?colour=blue", "unknown query parameter 'colour'"),
        ("redis://h/0?socket_timeout=soon&password=hunter2", "invalid value"),
    ],
)
def test_bad_redis_urls(tmp_path: Path, url: str, problem: str) -> None:
    path = write(tmp_path, f'[redis]\nurl = "{url}"\n')
    message = config_error(path)
    assert names(message, path, "redis.url") and problem in message
    assert "hunter2" not in message


def test_tls_ca_needs_rediss(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, '[redis]\ntls_ca = "/etc/ca.pem"\n'))
    assert ": redis: tls_ca is only used with a rediss:// url" in message
    path = write(tmp_path, '[redis]\nurl = "rediss://h:6380/0"\ntls_ca = "/etc/ca.pem"\n')
    assert load_settings(path).redis.tls_ca == Path("/etc/ca.pem")


def test_bad_redis_url_is_exit_2_on_the_command_line(tmp_path: Path) -> None:
    """It used to reach redis-py and come back as "internal error: ValueError"."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CONTAINERLEASE_")}
    env |= {"XDG_CONFIG_HOME": str(tmp_path), "CONTAINERLEASE_REDIS_URL": "http://u:pw1@h/0"}
    result = subprocess.run(
        [sys.executable, "-m", "containerlease_tui", "ls"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert result.stderr.startswith("containerlease: config error in environment: redis.url: ")
    assert "internal error" not in result.stderr and "pw1" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "binds",
    [
        ["/srv/data:/data"],
        ["/srv/data:/data:ro", "/srv/other:/other:rw"],
        ["/srv/a b:/mnt/a b"],
        ["/:/host"],  # syntax only: the allowlist decides (and refuses "/") at provision time
    ],
)
def test_good_binds(tmp_path: Path, binds: list[str]) -> None:
    listed = "[" + ", ".join(f'"{b}"' for b in binds) + "]"
    assert (
        load_settings(write(tmp_path, _one_image(f"binds = {listed}"))).images["x"].binds == binds
    )


@pytest.mark.parametrize(
    ("bind", "problem"),
    [
        ("srv/data:/data", "the host path must be absolute"),
        ("/srv/data:data", "the container path must be absolute"),
        ("/srv/data", "use /host/path:/container/path[:ro|rw]"),
        ("/srv/data:/data:ro:z", "use /host/path:/container/path[:ro|rw]"),
        ("/srv/data:/data:rx", "the mode must be ro or rw"),
        ("/srv/data:/data:Z", "the mode must be ro or rw"),
        ("/srv/data:/", "cannot mount over the container's /"),
        ("/srv/data:/data,ro", "control characters and ',' are not allowed"),
        ("/srv/data:/da\\nta", "control characters"),
        (":/data", "the host path must be absolute"),
    ],
)
def test_bad_binds(tmp_path: Path, bind: str, problem: str) -> None:
    path = write(tmp_path, _one_image(f'binds = ["{bind}"]'))
    message = config_error(path)
    assert names(message, path, "images.x.binds") and problem in message


def test_two_binds_at_one_container_path(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, _one_image('binds = ["/a:/data", "/b:/data/:ro"]')))
    assert "images.x.binds: two bind mounts at '/data'" in message


@pytest.mark.parametrize(
    ("folder", "problem"),
    [
        ("srv/shared", "must be an absolute path"),
        ("/", "would allow every host path"),
        ("//", "would allow every host path"),
        ("/srv/..", "would allow every host path"),
    ],
)
def test_bad_bind_allowlist(tmp_path: Path, folder: str, problem: str) -> None:
    message = config_error(write(tmp_path, f'[security]\nbind_allowlist = ["{folder}"]\n'))
    assert ": security.bind_allowlist: " in message and problem in message


@pytest.mark.parametrize("network", ["default", "bridge", "none", "lab-net", "team_1.internal"])
def test_good_networks(tmp_path: Path, network: str) -> None:
    path = write(tmp_path, f'[docker]\nnetwork = "{network}"\n')
    assert load_settings(path).docker.network == network


@pytest.mark.parametrize(
    ("network", "problem"),
    [
        ("host", "host is refused"),
        ("container:abc123", "not container:<id>"),
        ("", "must be default, bridge, none or a network name"),
        ("-x", "must be default, bridge, none or a network name"),
        ("my net", "must be default, bridge, none or a network name"),
    ],
)
def test_bad_networks(tmp_path: Path, network: str, problem: str) -> None:
    message = config_error(write(tmp_path, f'[docker]\nnetwork = "{network}"\n'))
    assert ": docker.network: " in message and problem in message


@pytest.mark.parametrize(
    "ref",
    [
        "ubuntu",
        "ubuntu:24.04",
        "library/ubuntu:24.04",
        "docker.io/library/ubuntu:24.04",
        "registry.example.com:5000/team/app:1.2-rc_3",
        "localhost/app",
        "[::1]:5000/app:1",
        "my__app-x.y/sub",
        "ghcr.io/org/app@sha256:" + "a" * 64,
        "ghcr.io/org/app:1@sha256:" + "0" * 64,
    ],
)
def test_good_image_refs(tmp_path: Path, ref: str) -> None:
    path = write(tmp_path, f'[images.x]\nref = "{ref}"\nhourly_rate = "1"\n')
    assert load_settings(path).images["x"].ref == ref


@pytest.mark.parametrize(
    "ref",
    [
        "Ubuntu:24.04",
        "ubuntu:",
        "ubuntu::1",
        "ubuntu:24 04",
        "-ubuntu",
        "/ubuntu",
        "ubuntu/",
        "team//app",
        "app@sha256:abc",
        "app@",
        "app:" + "x" * 129,
        "app;rm -rf /",
        "app\\n",
    ],
)
def test_bad_image_refs(tmp_path: Path, ref: str) -> None:
    path = write(tmp_path, f'[images.x]\nref = "{ref}"\nhourly_rate = "1"\n')
    message = config_error(path)
    assert names(message, path, "images.x.ref")
    assert "not an image reference" in message


def test_hardening_overrides_per_image(tmp_path: Path) -> None:
    path = write(tmp_path, _one_image("init = false\nno_new_privileges = false"))
    spec = load_settings(path).images["x"]
    assert (spec.init, spec.no_new_privileges) == (False, False)
    message = config_error(write(tmp_path, _one_image('init = "maybe"')))
    assert ": images.x.init: " in message and "boolean" in message
    message = config_error(write(tmp_path, _one_image("privileged = true")))
    assert ": images.x.privileged: unknown key" in message


def test_service_user(tmp_path: Path) -> None:
    path = write(tmp_path, '[security]\nservice_user = "containerlease"\n')
    assert load_settings(path).security.service_user == "containerlease"
    message = config_error(write(tmp_path, '[security]\nservice_user = "not a user"\n'))
    assert ": security.service_user: must be a user name" in message


# --- the README's reference stays in step with the code ------------------------------------


def _readme(repo_root: Path) -> str:
    return (repo_root / "README.md").read_text()


def test_readme_documents_every_field(repo_root: Path) -> None:
    readme = _readme(repo_root)
    sections = {
        "[redis]": RedisSettings,
        "[docker]": DockerSettings,
        "[images.NAME]": ImageSpec,
        "[limits]": LimitSettings,
        "[reaper]": ReaperSettings,
        "[security]": SecuritySettings,
        "[service]": ServiceSettings,
    }
    for heading, model in sections.items():
        start = readme.index(f"### `{heading}`")
        end = readme.find("\n### ", start + 1)
        table = readme[start : end if end != -1 else len(readme)]
        for name in model.model_fields:
            assert f"| `{name}` |" in table, f"README lacks {heading} {name}"


def test_readme_example_config_loads(repo_root: Path, tmp_path: Path) -> None:
    readme = _readme(repo_root)
    start = readme.index("```toml\n") + len("```toml\n")
    example = readme[start : readme.index("```", start)]
    s = load_settings(write(tmp_path, example))
    assert s.limits.max_lifetime == timedelta(days=3)
    assert "python" in s.images


def test_service_settings(tmp_path: Path) -> None:
    s = load_settings(
        write(tmp_path, '[service]\nsocket_mode = "0640"\nurl = "unix:///x/a.sock"\n')
    )
    assert s.service.socket_mode == 0o640
    assert s.service.client_socket() == Path("/x/a.sock")
    for bad in ('socket_mode = "0666"', 'socket = "rel/a.sock"', 'url = "http://x"'):
        with pytest.raises(ConfigError, match="service"):
            load_settings(write(tmp_path, f"[service]\n{bad}\n"))
