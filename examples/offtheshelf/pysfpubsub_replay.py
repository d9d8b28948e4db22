#!/usr/bin/env python3
"""Publish and replay with pysfpubsub, an unmodified Salesforce Pub/Sub client.

pysfpubsub 0.1.2 (PyPI) wraps the generated stub of Salesforce's own proto.
Its constructor only knows TLS and its auth() logs in to Salesforce over
SOAP, so this driver uses neither; it sets two public attributes instead:

* `client.stub`: a stub of the package's own generated module on a plaintext
  channel (grpc.insecure_channel). Every RPC method of the client goes
  through this attribute.
* `client.metadata`: the accesstoken / instanceurl / tenantid headers,
  which auth() would otherwise fill from the SOAP login response.

Everything else is the package's code: get_topic, get_schema_json, encode
(via format_payload), publish, subscribe and decode.

Usage: python pysfpubsub_replay.py HOST:PORT [TOPIC]
Prints one line per check and ends with `N passed, N failed`.
"""

import sys
import threading
import time
import uuid

import grpc
import pysfpubsub.pubsub_api_pb2_grpc as pb2_grpc
from pysfpubsub import Client

EVENTS = 3
# Events requested per FetchRequest; pysfpubsub asks for the same number
# again each time a batch uses up the credit.
CREDIT = 5
REPLAY_TIMEOUT_S = 60

server = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7011"
topic_name = sys.argv[2] if len(sys.argv) > 2 else "/event/Order_Event__e"
host, _, port = server.rpartition(":")

passed = failed = 0


def check(name: str, ok: bool, detail: str = "") -> bool:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   - {name}")
    else:
        failed += 1
        print(f"FAIL - {name}" + (f": {detail}" if detail else ""))
    return ok


def finish() -> None:
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


# The constructor opens a TLS channel lazily: nothing connects until the
# first call, and the stub on it is replaced below before any call.
client = Client(url="https://example.my.salesforce.com", username="unused", password="unused",
                grpc_host=host, grpc_port=int(port))
client.stub = pb2_grpc.PubSubStub(grpc.insecure_channel(server))
client.metadata = (
    ("accesstoken", "00D000000000001!offtheshelf-dummy-token"),
    ("instanceurl", "https://example.my.salesforce.com"),
    ("tenantid", "00D000000000001AAA"),
)

# --- GetTopic + GetSchema, as pysfpubsub's publish flow needs them ---------
try:
    topic = client.get_topic(topic_name)
    schema_json = client.get_schema_json(topic.schema_id)
except grpc.RpcError as err:
    check(f"GetTopic/GetSchema of {topic_name}", False, f"{err.code().name}: {err.details()}")
    finish()
check("GetTopic gives a schema id and GetSchema its JSON", bool(topic.schema_id and schema_json))

# --- Publish 3 events, one unary Publish each (as Salesforce's sample does) -
run = uuid.uuid4().hex[:8]  # tells this run's events apart from older ones
sent = []  # (OrderNumber__c, record, PublishResult)
for i in range(1, EVENTS + 1):
    record = {
        "CreatedDate": int(time.time() * 1000),
        "CreatedById": "005000000000001AAA",
        "OrderNumber__c": f"OTS-{run}-{i}",
        "Amount__c": i * 10.5,
        "Status__c": "Shipped",
    }
    try:
        response = client.publish(topic_name, [client.format_payload(schema_json, topic.schema_id, record)])
    except grpc.RpcError as err:
        check(f"Publish event {i}", False, f"{err.code().name}: {err.details()}")
        finish()
    result = response.results[0] if response.results else None
    ok = result is not None and not result.HasField("error") and bool(result.replay_id)
    check(f"Publish event {i} gets a replay id", ok, str(result))
    if ok:
        sent.append((record["OrderNumber__c"], record, result))
if len(sent) != EVENTS:
    finish()
check("each result carries a correlation key (server-made, as the client sets no id)",
      all(result.correlation_key for _, _, result in sent))

# --- Replay from EARLIEST with pysfpubsub's subscribe ----------------------
wanted = {number for number, _, _ in sent}
seen = []  # (OrderNumber__c, replay_id, decoded record) of this run's events
done = threading.Event()


class ReplayDone(Exception):
    """Raised from the callback to leave pysfpubsub's endless subscribe loop."""


def on_response(response, client):
    # pysfpubsub's documented callback pattern: top up when a batch used up
    # the credit, then decode each event with the schema of its schema_id.
    if response.events and response.pending_num_requested == 0:
        client.release_subscription_semaphore()
    for consumer_event in response.events:
        record = client.decode(client.get_schema_json(consumer_event.event.schema_id),
                               consumer_event.event.payload)
        if record.get("OrderNumber__c") in wanted:
            seen.append((record["OrderNumber__c"], consumer_event.replay_id, record))
    if len(seen) >= EVENTS:
        raise ReplayDone


replay_error = []


def replay():
    try:
        client.subscribe(topic_name, "EARLIEST", b"", CREDIT, on_response)
    except ReplayDone:
        pass
    except grpc.RpcError as err:
        replay_error.append(f"{err.code().name}: {err.details()}")
    finally:
        done.set()


# subscribe() blocks for good, so it runs on a daemon thread with a deadline.
threading.Thread(target=replay, daemon=True).start()
finished = done.wait(REPLAY_TIMEOUT_S)
check("Subscribe from EARLIEST returns this run's 3 events",
      finished and not replay_error and len(seen) == EVENTS,
      replay_error[0] if replay_error else f"saw {len(seen)} of {EVENTS} within {REPLAY_TIMEOUT_S}s")
if len(seen) == EVENTS:
    check("they come back in publish order",
          [number for number, _, _ in seen] == [number for number, _, _ in sent])
    check("with the replay ids that Publish returned",
          [replay_id for _, replay_id, _ in seen] == [result.replay_id for _, _, result in sent])
    replay_ids = [int.from_bytes(replay_id, "big") for _, replay_id, _ in seen]
    check("replay ids strictly increase", all(a < b for a, b in zip(replay_ids, replay_ids[1:])))
    check("payloads decode to what was sent",
          [record for _, _, record in seen] == [record for _, record, _ in sent])
finish()
