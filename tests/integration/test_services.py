"""The private services scripts/test starts are real: a Docker engine and a redis-server."""

from __future__ import annotations

import re
import secrets

import aiodocker
import pytest
import redis.asyncio as aioredis

pytestmark = pytest.mark.integration

LABEL_LEASE = "containerlease.lease"  # what conftest's cleanup_containers looks for
LABEL_INSTANCE = "containerlease.instance"
BUSYBOX_CMD = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 1; done"]


async def test_docker_runs_a_container_from_the_offline_image(
    docker: aiodocker.Docker, test_image: str, key_prefix: str, cleanup_containers: list[str]
) -> None:
    version = await docker.version()
    assert re.match(r"^\d+\.\d+", version["Version"]), version

    image = await docker.images.inspect(test_image)
    assert test_image in image["RepoTags"]

    name = f"cl-{key_prefix}-svc"
    container = await docker.containers.create(
        {
            "Image": test_image,
            "Cmd": BUSYBOX_CMD,
            "Labels": {LABEL_LEASE: key_prefix, LABEL_INSTANCE: key_prefix},
            "HostConfig": {"NetworkMode": "none", "Memory": 64 * 1024**2, "PidsLimit": 64},
        },
        name=name,
    )
    cleanup_containers.append(container.id)

    info = await container.show()
    assert info["State"]["Status"] == "created"
    assert info["Name"] == f"/{name}"

    await container.start()
    info = await container.show()
    assert info["State"]["Running"] is True
    assert info["State"]["Status"] == "running"
    assert info["Config"]["Labels"][LABEL_LEASE] == key_prefix
    assert info["HostConfig"]["Memory"] == 64 * 1024**2

    await container.delete(force=True)
    with pytest.raises(aiodocker.DockerError) as gone:
        await docker.containers.get(container.id)
    assert gone.value.status == 404


async def test_redis_set_with_expiry_and_ttl(redis_client: aioredis.Redis, key_prefix: str) -> None:
    key = f"{key_prefix}:probe"
    value = secrets.token_hex(8)
    assert await redis_client.set(key, value, ex=120) is True
    assert await redis_client.get(key) == value
    ttl = await redis_client.ttl(key)
    assert 0 < ttl <= 120
    pttl = await redis_client.pttl(key)
    assert 0 < pttl <= 120_000

    # NX refuses a second writer: the primitive the reaper's claims rely on.
    assert await redis_client.set(key, "other", nx=True, px=5000) is None
    assert await redis_client.get(key) == value

    assert await redis_client.persist(key) is True
    assert await redis_client.ttl(key) == -1
    assert await redis_client.delete(key) == 1
    assert await redis_client.ttl(key) == -2


async def test_redis_reports_a_real_version(redis_client: aioredis.Redis) -> None:
    info = await redis_client.info("server")
    version = str(info["redis_version"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert int(version.split(".")[0]) >= 5  # streams (XADD) exist from 5.0
    assert info["redis_mode"] == "standalone"
    assert await redis_client.ping() is True
