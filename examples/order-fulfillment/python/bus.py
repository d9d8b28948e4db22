"""A small client for eventbus (the Salesforce Pub/Sub API), shared by
sales.py and fulfillment.py.

It holds what every Pub/Sub API program needs and nothing about orders:
the gRPC channel and call headers, Avro encoding with the topic's schema
(fetched once per schema id with GetSchema), unary Publish, a managed
subscription with commits and a keepalive timeout, and `read_to_end`,
which replays a topic from EARLIEST up to its newest event.

The gRPC modules come from our own protos: run ./gen.sh once.
"""

from __future__ import annotations

import io
import json
import queue
import sys
import threading
import time
import uuid
from pathlib import Path

import fastavro
import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent / "gen"))
try:
    import admin_pb2  # noqa: E402
    import admin_pb2_grpc  # noqa: E402
    import pubsub_api_pb2 as pb  # noqa: E402
    import pubsub_api_pb2_grpc  # noqa: E402
except ImportError as err:
    sys.exit(f"cannot import the generated gRPC modules ({err}); run ./gen.sh first")

# eventbus with `--auth none` ignores these headers; a server with
# `--auth static` or `jwt` needs a real token and the token's tenant.
HEADERS = (
    ("accesstoken", "00D000000000001!order-fulfillment-example"),
    ("instanceurl", "https://example.my.salesforce.com"),
    ("tenantid", "00D000000000000EAA"),
)
# The user id a program writes into CreatedById (user ids start with 005).
USER_ID = "005000000000001AAA"
UNARY_TIMEOUT_S = 30
# Salesforce sends a keepalive on an idle subscription at least every 270 s;
# a stream silent for longer than this is presumed dead.
KEEPALIVE_TIMEOUT_S = 300


def log(program: str, message: str) -> None:
    """Progress goes to stderr, so stdout stays machine-readable."""
    # One write per line, so lines of two threads never mix.
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {program}: {message}\n")
    sys.stderr.flush()


def describe(err: grpc.RpcError) -> str:
    """A failed call in one line: status, message and Salesforce's
    `error-code` trailer when there is one."""
    trailers = dict(getattr(err, "trailing_metadata", lambda: None)() or ())
    code = trailers.get("error-code")
    return f"{err.code().name}: {err.details()}" + (f" [{code}]" if code else "")


def now_ms() -> int:
    return int(time.time() * 1000)


class Schema:
    """One Avro schema, parsed once. Payloads are plain binary datums."""

    def __init__(self, schema_id: str, schema_json: str):
        self.id = schema_id
        self.parsed = fastavro.parse_schema(json.loads(schema_json))

    def encode(self, record: dict) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.parsed, record)
        return buf.getvalue()

    def decode(self, payload: bytes) -> dict:
        return fastavro.schemaless_reader(io.BytesIO(payload), self.parsed, None)


class Bus:
    """A connection to eventbus."""

    def __init__(self, server: str):
        self.channel = grpc.insecure_channel(server)
        self.stub = pubsub_api_pb2_grpc.PubSubStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        self._schemas: dict[str, Schema] = {}
        self._lock = threading.Lock()  # the schema cache is used by two threads in sales.py

    def close(self) -> None:
        self.channel.close()

    def schema(self, schema_id: str) -> Schema:
        """GetSchema, once per id: a schema id never changes meaning."""
        with self._lock:
            if schema_id not in self._schemas:
                info = self.stub.GetSchema(pb.SchemaRequest(schema_id=schema_id),
                                           metadata=HEADERS, timeout=UNARY_TIMEOUT_S)
                self._schemas[schema_id] = Schema(schema_id, info.schema_json)
            return self._schemas[schema_id]

    def topic_schema(self, topic: str) -> Schema:
        """The topic's current schema, to publish with (GetTopic + GetSchema)."""
        info = self.stub.GetTopic(pb.TopicRequest(topic_name=topic),
                                  metadata=HEADERS, timeout=UNARY_TIMEOUT_S)
        if not info.can_publish:
            raise RuntimeError(f"this client may not publish to {topic}")
        return self.schema(info.schema_id)

    def decode(self, event) -> dict:
        """The record of a received ProducerEvent, with the schema it names."""
        return self.schema(event.schema_id).decode(event.payload)

    def publish(self, topic: str, schema: Schema, record: dict) -> bytes:
        """Unary Publish of one event; returns its replay id.

        The event id is a fresh UUID; the server echoes it as correlation key.
        Raises RuntimeError when the event failed and grpc.RpcError when the
        call did. Either way the caller cannot know whether it was stored.
        """
        event = pb.ProducerEvent(id=str(uuid.uuid4()), schema_id=schema.id,
                                 payload=schema.encode(record))
        response = self.stub.Publish(pb.PublishRequest(topic_name=topic, events=[event]),
                                     metadata=HEADERS, timeout=UNARY_TIMEOUT_S)
        result = response.results[0]
        if result.HasField("error"):
            raise RuntimeError(f"publish failed: {result.error.msg}")
        if result.correlation_key != event.id:
            raise RuntimeError(f"result for {result.correlation_key!r}, expected {event.id!r}")
        return result.replay_id

    def read_to_end(self, topic: str) -> list[dict]:
        """Every retained event of `topic`, oldest first, up to the newest one.

        The newest replay id comes from eventbus's Admin API (DescribeTopic);
        the events come from a Subscribe from EARLIEST, which stops once the
        event with that replay id has arrived.
        """
        described = self.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(topic_name=topic),
                                             metadata=HEADERS, timeout=UNARY_TIMEOUT_S)
        last = described.last_replay_id
        if not described.first_replay_id or not any(last):
            return []  # nothing retained
        outbox: queue.Queue = queue.Queue()
        outbox.put(pb.FetchRequest(topic_name=topic, replay_preset=pb.ReplayPreset.EARLIEST,
                                   num_requested=100))
        call = self.stub.Subscribe(iter(outbox.get, None), metadata=HEADERS)
        records = []
        try:
            for response in call:
                for consumer_event in response.events:
                    records.append(self.decode(consumer_event.event))
                    if consumer_event.replay_id == last:
                        return records
                if response.events and response.pending_num_requested == 0:
                    outbox.put(pb.FetchRequest(num_requested=100))
        finally:
            outbox.put(None)  # half-close
            call.cancel()
        raise RuntimeError(f"{topic} ended before its newest event {last.hex()}")


class KeepaliveTimeout(RuntimeError):
    """A stream sent nothing, not even a keepalive, for too long."""


class Watchdog:
    """Cancels a call that has been waiting for a message longer than
    `timeout_s`. `arm()` before each wait for the next message, `disarm()`
    once it came: the time the program spends on a message does not count.
    """

    def __init__(self, call, timeout_s: float):
        self.call, self.timeout_s = call, timeout_s
        self.waiting_since: float | None = None
        self.expired = False
        self.stopped = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def arm(self) -> None:
        self.waiting_since = time.monotonic()

    def disarm(self) -> None:
        self.waiting_since = None

    def stop(self) -> None:
        self.stopped.set()

    def _watch(self) -> None:
        while not self.stopped.wait(min(self.timeout_s / 4, 1.0)):
            since = self.waiting_since
            if since is not None and time.monotonic() - since > self.timeout_s:
                self.expired = True
                self.call.cancel()  # the waiting next() raises CANCELLED
                return


class ManagedSubscription:
    """One ManagedSubscribe stream: events come in batches, the server keeps
    the position, and the client commits what it has processed.

        sub = ManagedSubscription(bus, "Fulfillment", batch=25)
        for response in sub.responses():
            ...process response.events...
            sub.commit(response.events[-1].replay_id)

    A new stream for the same subscription starts right after the last
    commit the server confirmed. Only one stream per subscription may be
    open at a time. A stream that sends nothing for `keepalive_timeout_s`
    (the server sends keepalives while there is nothing new) is cancelled
    and responses() raises KeepaliveTimeout: reconnect as after any failure.
    """

    def __init__(self, bus: Bus, developer_name: str, batch: int, program: str,
                 keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S):
        self.bus = bus
        self.name = developer_name
        self.batch = batch
        self.program = program
        self.keepalive_timeout_s = keepalive_timeout_s
        self._outbox: queue.Queue = queue.Queue()
        self._call = None

    def responses(self):
        """Yields the ManagedFetchResponses that carry events.

        Commit acknowledgements are checked and logged here; keepalives are
        skipped. Credit is topped up whenever the server reports none left
        after a batch. Ends when the server ends the stream; raises
        grpc.RpcError when the stream fails and KeepaliveTimeout when it
        went silent.
        """
        # The first request names the subscription and asks for a batch; it
        # may not carry a commit.
        self._outbox.put(pb.ManagedFetchRequest(developer_name=self.name,
                                                num_requested=self.batch))
        self._call = self.bus.stub.ManagedSubscribe(iter(self._outbox.get, None),
                                                    metadata=HEADERS)
        watchdog = Watchdog(self._call, self.keepalive_timeout_s)
        try:
            yield from self._read(watchdog)
        except grpc.RpcError as err:
            if watchdog.expired:
                raise KeepaliveTimeout(f"no message, not even a keepalive, for "
                                       f"{self.keepalive_timeout_s:g}s") from err
            raise
        finally:
            watchdog.stop()

    def _read(self, watchdog: Watchdog):
        responses = iter(self._call)
        while True:
            watchdog.arm()
            try:
                response = next(responses)
            except StopIteration:
                return
            finally:
                watchdog.disarm()
            if response.HasField("commit_response"):
                ack = response.commit_response
                if ack.HasField("error"):
                    log(self.program, f"commit {ack.commit_request_id} failed: {ack.error.msg}")
            if response.events:
                yield response
                if response.pending_num_requested == 0:
                    self._outbox.put(pb.ManagedFetchRequest(num_requested=self.batch))

    def commit(self, replay_id: bytes) -> None:
        """Tells the server everything up to `replay_id` is processed."""
        self._outbox.put(pb.ManagedFetchRequest(
            num_requested=0,
            commit_replay_id_request=pb.CommitReplayRequest(
                commit_request_id=str(uuid.uuid4()), replay_id=replay_id)))

    def close(self) -> None:
        """Half-closes: the server answers what is pending, ends the stream
        and frees the subscription; responses() then ends."""
        self._outbox.put(None)

    def cancel(self) -> None:
        """Drops the stream at once (the server frees the subscription too)."""
        self._outbox.put(None)
        if self._call is not None:
            self._call.cancel()
