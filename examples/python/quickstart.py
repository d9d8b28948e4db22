#!/usr/bin/env python3
"""Quick-start client for eventbus, a server for the Salesforce Pub/Sub API.

It talks to `eventbus.v1.PubSub` over plaintext gRPC with stubs generated from
this repo's own proto (run ./gen.sh once) and encodes event payloads as Avro
binary datums with fastavro, exactly as Salesforce clients do.

    python quickstart.py topic /event/Order_Event__e
    python quickstart.py publish /event/Order_Event__e --count 5 [--stream]
    python quickstart.py subscribe /event/Order_Event__e --from earliest --count 10 --credit 3

`publish` and `subscribe` print one JSON object per event on stdout, with the
replay id in hex; progress and warnings go to stderr, so stdout can be piped.
"""

from __future__ import annotations

import argparse
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

DEFAULT_SERVER = "127.0.0.1:7011"

# Salesforce clients send these three headers on every call. eventbus ignores
# their values for now, so the defaults are dummies in the shape Salesforce
# uses (an 18-character org id, a My Domain URL).
DUMMY_ACCESS_TOKEN = "00D000000000001!quickstart-dummy-token"
DUMMY_INSTANCE_URL = "https://example.my.salesforce.com"
DUMMY_TENANT_ID = "00D000000000001AAA"

# The user id written into CreatedById (Salesforce user ids start with 005).
DUMMY_USER_ID = "005000000000001AAA"

# Deadline of each unary call and of a whole PublishStream exchange.
UNARY_TIMEOUT_S = 30
PUBLISH_STREAM_TIMEOUT_S = 60

# Salesforce recommends at most 200 events per PublishRequest.
MAX_EVENTS_PER_REQUEST = 200

# How long `subscribe` waits for the server to end the call after the client
# half-closes. The server should answer a half-close with OK promptly.
CLOSE_GRACE_S = 5


def load_stubs():
    """Imports the generated modules from ./gen (made by gen.sh)."""
    gen = Path(__file__).resolve().parent / "gen"
    sys.path.insert(0, str(gen))
    try:
        import pubsub_api_pb2
        import pubsub_api_pb2_grpc
    except ImportError as err:
        sys.exit(f"error: cannot import the generated stubs from {gen} ({err}); run ./gen.sh first")
    return pubsub_api_pb2, pubsub_api_pb2_grpc


def note(message: str) -> None:
    """Progress and diagnostics: stderr, so stdout stays machine-readable."""
    print(message, file=sys.stderr, flush=True)


def emit(obj) -> None:
    """One JSON object per line on stdout."""
    print(json.dumps(obj, default=_json_default), flush=True)


def _json_default(value):
    # Avro `bytes`/`fixed` fields decode to bytes; JSON has no bytes type.
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


# --- Avro ------------------------------------------------------------------


class Schema:
    """One Avro schema as GetSchema returned it, parsed once."""

    def __init__(self, schema_id: str, schema_json: str):
        self.id = schema_id
        self.json = json.loads(schema_json)
        self.parsed = fastavro.parse_schema(self.json)

    def encode(self, record: dict) -> bytes:
        """A plain Avro binary datum: no container header, no fingerprint."""
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.parsed, record)
        return buf.getvalue()

    def decode(self, payload: bytes) -> dict:
        buf = io.BytesIO(payload)
        record = fastavro.schemaless_reader(buf, self.parsed, None)
        if buf.tell() != len(payload):
            note(f"warning: payload has {len(payload) - buf.tell()} bytes left over "
                 f"after decoding with schema {self.id}")
        return record


def base_type(avro_type) -> tuple[str | None, bool]:
    """Returns (primitive type name or None, nullable) of a field type.

    `["null", "string"]` gives ("string", True); records, arrays, logical
    types and unions of several non-null types give (None, ...).
    """
    nullable = False
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        nullable = len(branches) < len(avro_type)
        if len(branches) != 1:
            return None, nullable
        avro_type = branches[0]
    if isinstance(avro_type, dict) and "logicalType" not in avro_type:
        avro_type = avro_type.get("type")
    return (avro_type if isinstance(avro_type, str) else None), nullable


def sample_record(schema: dict, seq: int) -> dict:
    """Makes up event number `seq` the way a Salesforce publisher fills it.

    CreatedDate is epoch milliseconds, CreatedById a user id; custom `__c`
    string and double fields get values derived from `seq`. Other fields take
    their default, or null when nullable.
    """
    record = {}
    for field in schema.get("fields", []):
        name = field["name"]
        kind, nullable = base_type(field["type"])
        if name == "CreatedDate" and kind == "long":
            record[name] = int(time.time() * 1000)
        elif name == "CreatedById" and kind == "string":
            record[name] = DUMMY_USER_ID
        elif name.endswith("__c") and kind == "string":
            record[name] = f"{name[:-3]}-{seq}"
        elif name.endswith("__c") and kind in ("double", "float"):
            record[name] = seq * 12.5  # exact in binary, so it round-trips
        elif "default" in field:
            record[name] = field["default"]
        elif nullable:
            record[name] = None
        else:
            sys.exit(f"error: cannot make up a value for required field {name} "
                     f"of type {json.dumps(field['type'])}")
    return record


# --- gRPC ------------------------------------------------------------------


class Client:
    """The generated stub plus the call metadata and a schema cache."""

    def __init__(self, args, pb2, pb2_grpc):
        self.pb2 = pb2
        self.channel = grpc.insecure_channel(args.server)
        self.stub = pb2_grpc.PubSubStub(self.channel)
        self.metadata = (
            ("accesstoken", args.access_token),
            ("instanceurl", args.instance_url),
            ("tenantid", args.tenant_id),
        )
        self._schemas: dict[str, Schema] = {}

    def get_topic(self, topic_name: str):
        return self.stub.GetTopic(self.pb2.TopicRequest(topic_name=topic_name),
                                  metadata=self.metadata, timeout=UNARY_TIMEOUT_S)

    def schema(self, schema_id: str) -> Schema:
        """GetSchema, once per schema id: ids are immutable, so caching is safe."""
        if schema_id not in self._schemas:
            info = self.stub.GetSchema(self.pb2.SchemaRequest(schema_id=schema_id),
                                       metadata=self.metadata, timeout=UNARY_TIMEOUT_S)
            self._schemas[schema_id] = Schema(schema_id, info.schema_json)
        return self._schemas[schema_id]


def cmd_topic(client: Client, args) -> int:
    info = client.get_topic(args.topic)
    schema = client.stub.GetSchema(client.pb2.SchemaRequest(schema_id=info.schema_id),
                                   metadata=client.metadata, timeout=UNARY_TIMEOUT_S)
    print(json.dumps({
        "topic": {
            "topic_name": info.topic_name,
            "tenant_guid": info.tenant_guid,
            "can_publish": info.can_publish,
            "can_subscribe": info.can_subscribe,
            "schema_id": info.schema_id,
            "rpc_id": info.rpc_id,
        },
        "schema": {
            "schema_id": schema.schema_id,
            "rpc_id": schema.rpc_id,
            "schema_json": json.loads(schema.schema_json),
        },
    }, indent=2))
    return 0


def cmd_publish(client: Client, args) -> int:
    pb2 = client.pb2
    info = client.get_topic(args.topic)
    if not info.can_publish:
        sys.exit(f"error: GetTopic says this client may not publish to {args.topic}")
    # Later calls use the name GetTopic returned, as the official clients do.
    topic_name = info.topic_name or args.topic
    schema = client.schema(info.schema_id)

    records = [sample_record(schema.json, seq) for seq in range(1, args.count + 1)]
    events = [
        pb2.ProducerEvent(id=str(uuid.uuid4()), schema_id=schema.id, payload=schema.encode(record))
        for record in records
    ]

    if args.stream:
        results_by_id = publish_stream(client, topic_name, events)
    else:
        results_by_id = publish_unary(client, topic_name, events)

    failed = 0
    for event, record in zip(events, records):
        result = results_by_id.get(event.id)
        if result is None:
            note(f"error: no PublishResult for event {event.id}")
            failed += 1
        elif result.HasField("error"):
            note(f"error: event {event.id} failed: {pb2.ErrorCode.Name(result.error.code)}: {result.error.msg}")
            failed += 1
        else:
            emit({"replay_id": result.replay_id.hex(), "id": event.id,
                  "correlation_key": result.correlation_key, "payload": record})
    how = "PublishStream" if args.stream else "Publish"
    note(f"published {len(events) - failed} of {len(events)} events to {topic_name} with {how}")
    return 1 if failed else 0


def publish_unary(client: Client, topic_name: str, events) -> dict:
    """Unary Publish. Results come back in the order of the request's events."""
    results = {}
    for start in range(0, len(events), MAX_EVENTS_PER_REQUEST):
        batch = events[start:start + MAX_EVENTS_PER_REQUEST]
        response = client.stub.Publish(
            client.pb2.PublishRequest(topic_name=topic_name, events=batch),
            metadata=client.metadata, timeout=UNARY_TIMEOUT_S)
        if len(response.results) != len(batch):
            note(f"warning: sent {len(batch)} events, got {len(response.results)} results")
        for event, result in zip(batch, response.results):
            results[event.id] = result
    return results


def publish_stream(client: Client, topic_name: str, events) -> dict:
    """PublishStream with one event per request, all sent without waiting.

    Responses may come back in any order across requests, so results are
    matched to events by correlation key (the event id we set). The client
    half-closes only after the last response, like the official Java client.
    """
    all_answered = threading.Event()

    def requests():
        for event in events:
            yield client.pb2.PublishRequest(topic_name=topic_name, events=[event])
        all_answered.wait()  # returning here is the half-close

    results = {}
    call = client.stub.PublishStream(requests(), metadata=client.metadata,
                                     timeout=PUBLISH_STREAM_TIMEOUT_S)
    try:
        for response in call:
            if not response.results:
                note("publish stream keepalive")
                continue
            for result in response.results:
                results[result.correlation_key] = result
            if len(results) >= len(events):
                all_answered.set()
    finally:
        all_answered.set()  # never leave the request thread waiting
    return results


def parse_start(text: str, pb2):
    """--from: latest, earliest, or a replay id in hex (CUSTOM)."""
    if text.lower() == "latest":
        return pb2.ReplayPreset.LATEST, b""
    if text.lower() == "earliest":
        return pb2.ReplayPreset.EARLIEST, b""
    try:
        replay_id = bytes.fromhex(text)
    except ValueError:
        sys.exit(f"error: --from takes latest, earliest or a replay id in hex, not {text!r}")
    if not replay_id:
        sys.exit("error: --from got an empty replay id")
    return pb2.ReplayPreset.CUSTOM, replay_id


def cmd_subscribe(client: Client, args) -> int:
    """Subscribe with explicit flow control.

    The first FetchRequest names the topic and the start and grants `--credit`
    events. Whenever a response that carries events reports
    pending_num_requested == 0, the client grants more (never more than it
    still wants). After `--count` events it half-closes its side and waits for
    the server to end the call.
    """
    pb2 = client.pb2
    preset, replay_id = parse_start(args.start, pb2)
    wanted = args.count  # None: until Ctrl-C

    def next_grant(received: int) -> int:
        return args.credit if wanted is None else min(args.credit, wanted - received)

    # The request stream is fed from a queue; None ends it (half-close).
    outbox: queue.Queue = queue.Queue()

    def requests():
        while (request := outbox.get()) is not None:
            yield request

    granted = next_grant(0)
    outbox.put(pb2.FetchRequest(topic_name=args.topic, replay_preset=preset,
                                replay_id=replay_id, num_requested=granted))
    note(f"subscribing to {args.topic} from {pb2.ReplayPreset.Name(preset)}"
         f"{' ' + replay_id.hex() if replay_id else ''}, credit {granted}")

    call = client.stub.Subscribe(requests(), metadata=client.metadata, timeout=args.timeout)
    received = 0
    try:
        for response in call:
            if not response.events:
                note(f"keepalive: latest_replay_id={response.latest_replay_id.hex()} "
                     f"pending={response.pending_num_requested}")
                continue
            if received + len(response.events) > granted:
                note(f"warning: {received + len(response.events) - granted} events "
                     "arrived beyond the credit granted")
            for consumer_event in response.events:
                if wanted is not None and received >= wanted:
                    break
                event = consumer_event.event
                emit({
                    "replay_id": consumer_event.replay_id.hex(),
                    "id": event.id,
                    "schema_id": event.schema_id,
                    "payload": client.schema(event.schema_id).decode(event.payload),
                })
                received += 1
            expected_pending = max(granted - received, 0)
            # Above 100 the server clamps the credit, so the count is its own.
            if args.credit <= 100 and response.pending_num_requested != expected_pending:
                note(f"warning: pending_num_requested={response.pending_num_requested}, "
                     f"expected {expected_pending}")
            if wanted is not None and received >= wanted:
                break
            if response.pending_num_requested == 0:
                grant = next_grant(received)
                granted += grant
                outbox.put(pb2.FetchRequest(topic_name=args.topic, num_requested=grant))
                note(f"credit used up after {received} events; requested {grant} more")
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            note(f"error: --timeout {args.timeout}s passed after {received} events"
                 + (f" of {wanted}" if wanted is not None else ""))
            return 1
        raise
    except KeyboardInterrupt:
        call.cancel()
        note(f"interrupted after {received} events")
        return 130

    note(f"received {received} events; half-closing the request stream")
    finish_after_half_close(call, outbox)
    return 0


def finish_after_half_close(call, outbox: queue.Queue) -> None:
    """Half-closes and waits (briefly) for the server to end the call."""
    outbox.put(None)
    timer = threading.Timer(CLOSE_GRACE_S, call.cancel)
    timer.start()
    try:
        for response in call:
            if response.events:
                note(f"warning: {len(response.events)} events arrived after the half-close")
        note(f"server ended the stream: {call.code().name}")
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.CANCELLED:
            note(f"warning: the server did not end the stream within {CLOSE_GRACE_S}s "
                 "of the half-close; cancelled it")
        else:
            note(f"warning: the stream ended with {err.code().name}: {err.details()}")
    finally:
        timer.cancel()


def describe_rpc_error(err: grpc.RpcError) -> str:
    """Status code, message and the eventbus/Salesforce error trailers."""
    text = f"{err.code().name}: {err.details()}"
    trailers = dict(err.trailing_metadata() or ())
    for key in ("error-code", "rpc-id"):
        if key in trailers:
            text += f" [{key}={trailers[key]}]"
    return text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Quick-start client for eventbus (Salesforce Pub/Sub API, plaintext gRPC).")
    parser.add_argument("--server", default=DEFAULT_SERVER,
                        help=f"host:port of the eventbus server (default {DEFAULT_SERVER})")
    parser.add_argument("--access-token", default=DUMMY_ACCESS_TOKEN, help="accesstoken header")
    parser.add_argument("--instance-url", default=DUMMY_INSTANCE_URL, help="instanceurl header")
    parser.add_argument("--tenant-id", default=DUMMY_TENANT_ID, help="tenantid header")
    commands = parser.add_subparsers(dest="command", required=True)

    topic = commands.add_parser("topic", help="GetTopic and GetSchema, printed as JSON")
    topic.add_argument("topic", help="topic name, e.g. /event/Order_Event__e")
    topic.set_defaults(run=cmd_topic)

    publish = commands.add_parser("publish", help="publish sample events with the topic's schema")
    publish.add_argument("topic")
    publish.add_argument("--count", type=positive_int, default=1, help="events to publish (default 1)")
    publish.add_argument("--stream", action="store_true",
                         help="use PublishStream (one request per event) instead of unary Publish")
    publish.set_defaults(run=cmd_publish)

    subscribe = commands.add_parser("subscribe", help="subscribe and print events as JSON lines")
    subscribe.add_argument("topic")
    subscribe.add_argument("--from", dest="start", default="latest", metavar="latest|earliest|HEX",
                           help="where to start: latest (default), earliest, or after this replay id")
    subscribe.add_argument("--count", type=positive_int, default=None,
                           help="stop after this many events (default: run until Ctrl-C)")
    subscribe.add_argument("--credit", type=positive_int, default=10,
                           help="events requested per FetchRequest (default 10; the server caps at 100)")
    subscribe.add_argument("--timeout", type=float, default=None,
                           help="give up after this many seconds (default: no deadline)")
    subscribe.set_defaults(run=cmd_subscribe)
    return parser.parse_args(argv)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv=None) -> int:
    args = parse_args(argv)
    pb2, pb2_grpc = load_stubs()
    client = Client(args, pb2, pb2_grpc)
    try:
        return args.run(client, args)
    except grpc.RpcError as err:
        note(f"error: {describe_rpc_error(err)}")
        return 1
    finally:
        client.channel.close()


if __name__ == "__main__":
    sys.exit(main())
