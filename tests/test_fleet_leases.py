"""The in-flight lease against a real redis-server, where a retried command may have gone
through before its answer was lost (a Redis restart ridden out by reconnecting)."""

from __future__ import annotations

import threading
from typing import Any

from executor.fleet.leases import Leases


class Recording:
    """A Redis client that notes the commands it is asked for."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.client, name)


def test_a_lease_already_ours_is_taken_at_once(redis_url: str) -> None:
    import redis
    from rq.serializers import JSONSerializer

    client = Recording(redis.Redis.from_url(redis_url))
    client.client.set("executor:lease:k", "executor-ours")  # SET NX ran; its answer was lost
    leases = Leases(client, JSONSerializer)
    assert leases.claim("executor:lease:k", "executor-ours", threading.Event(), set()) is None
    assert client.calls == ["set", "get"]  # not judged as another's job, nor waited on
    assert client.client.get("executor:lease:k") == b"executor-ours"


def test_a_lease_of_another_job_not_yet_enqueued_is_waited_on(redis_url: str) -> None:
    import redis
    from rq.serializers import JSONSerializer

    client = Recording(redis.Redis.from_url(redis_url))
    client.client.set("executor:lease:k", "executor-theirs", ex=7 * 24 * 3600)
    cancel = threading.Event()
    leases = Leases(client, JSONSerializer)
    timer = threading.Timer(1.0, cancel.set)
    timer.start()
    assert leases.claim("executor:lease:k", "executor-ours", cancel, set()) is None
    timer.join()
    assert "ttl" in client.calls  # judged young and waited for, until cancelled
    assert client.client.get("executor:lease:k") == b"executor-theirs"
