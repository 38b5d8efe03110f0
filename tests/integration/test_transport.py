"""Secure transports: Docker over TCP with TLS client certificates, Redis over TLS (rediss://).

``scripts/test`` makes a throwaway CA, starts its private dockerd on a loopback TLS port as well
as its unix socket, and its private redis-server with a TLS port.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from containerlease_tui.config import DockerSettings, Settings
from containerlease_tui.engine import Engine, EngineError
from containerlease_tui.leases import LeaseService, ProvisionRequest, ServiceUnavailable
from containerlease_tui.store import LeaseStore, StoreError


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} unset: scripts/test sets it when it starts its own services")
    return value


@pytest.fixture
def tls_dir() -> Path:
    return Path(_env("CONTAINERLEASE_TEST_TLS_DIR"))


async def test_docker_over_tcp_with_client_certificates(tls_dir: Path, tmp_path: Path) -> None:
    url = _env("CONTAINERLEASE_TEST_DOCKER_TLS_URL")
    engine = Engine(DockerSettings(url=url, tls_verify=True, cert_path=tls_dir))
    try:
        assert await engine.ping()
        assert await engine.image_present(_env("CONTAINERLEASE_TEST_IMAGE"))
    finally:
        await engine.close()

    # Without a client certificate the engine refuses us, and we say so in one line.
    only_ca = tmp_path / "only-ca"
    only_ca.mkdir()
    shutil.copy(tls_dir / "ca.pem", only_ca / "ca.pem")
    engine = Engine(DockerSettings(url=url, tls_verify=True, cert_path=only_ca))
    try:
        with pytest.raises(EngineError) as caught:
            await engine.ping()
        assert "cert.pem" in str(caught.value)
        assert "\n" not in str(caught.value)
    finally:
        await engine.close()

    # Plain TCP to a TLS port fails cleanly too.
    engine = Engine(DockerSettings(url=url, tls_verify=False))
    try:
        with pytest.raises(EngineError):
            await engine.ping()
    finally:
        await engine.close()


async def test_redis_over_tls(settings: Settings, tls_dir: Path) -> None:
    url = _env("CONTAINERLEASE_TEST_REDIS_TLS_URL")
    secure = settings.model_copy(deep=True)
    secure.redis.url = url
    secure.redis.tls_ca = tls_dir / "ca.pem"
    svc = LeaseService.open(secure, user="alice")
    try:
        lease = await svc.submit(ProvisionRequest("busybox", "10m"))
        assert [x.id for x in await svc.list()] == [lease.id]
    finally:
        await svc.close()

    # Without our CA the server's certificate is not trusted: a clear error, no traceback.
    untrusted = settings.model_copy(deep=True)
    untrusted.redis.url = url
    store = LeaseStore.from_settings(untrusted)
    try:
        with pytest.raises(StoreError) as caught:
            await store.ping()
        assert "\n" not in str(caught.value)
    finally:
        await store.close()
    svc = LeaseService.open(untrusted, user="alice")
    try:
        with pytest.raises(ServiceUnavailable):
            await svc.list()
    finally:
        await svc.close()
