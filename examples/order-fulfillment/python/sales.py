#!/usr/bin/env python3
"""The sales system: publishes new orders to eventbus and applies the status
updates that fulfillment sends back.

    python sales.py --orders 200 --interval-ms 30 [--server 127.0.0.1:7011]
                    [--keepalive-timeout 300]

Orders go out as /event/OrderCreated__e on one PublishStream, one every
--interval-ms; each PublishResult is matched to its order by correlation key
(the event id we chose). Status updates arrive on /event/OrderStatusUpdated__e
through the managed subscription "SalesStatus" (topics/managed/
SalesStatus.toml). The program ends once every order it published has a
status, or fails after --timeout seconds. A status stream that fails or
stays silent for --keepalive-timeout seconds is opened again after a
backoff; updates delivered again (sent before the last commit reached the
server) are recognised by their event id and skipped.

Stdout has one JSON line per published order and per status update received:
    {"event": "order", "order": "SO-...", "replay_id": "..."}
    {"event": "status", "order": "SO-...", "status": "Shipped", "replay_id": "..."}
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import uuid

import grpc

from bus import (HEADERS, KEEPALIVE_TIMEOUT_S, USER_ID, Bus, KeepaliveTimeout,
                 ManagedSubscription, describe, log, now_ms, pb)

ORDER_TOPIC = "/event/OrderCreated__e"
STATUS_TOPIC = "/event/OrderStatusUpdated__e"
SUBSCRIPTION = "SalesStatus"
PROGRAM = "sales"

# Errors that retrying cannot fix: a wrong subscription name, topic or token,
# or a server without ManagedSubscribe.
FATAL = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
         grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
         grpc.StatusCode.UNIMPLEMENTED}

CUSTOMERS = ["Acme Corp", "Globex", "Initech", "Umbrella", "Stark Industries"]
ITEMS = {"Widget": 19.99, "Gadget": 249.0, "Gizmo": 1200.0, "Doohickey": 4.5}


_stdout_lock = threading.Lock()


def emit(obj: dict) -> None:
    """One JSON line on stdout. Both threads print: the lock keeps their
    lines whole."""
    with _stdout_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class OrderBook:
    """The sales side's view of its orders; both threads use it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.status: dict[str, str | None] = {}  # order number -> latest status
        self.updates: dict[str, int] = {}  # order number -> status updates seen
        self.all_published = False
        self.complete = threading.Event()  # every order has a status
        self.failure: str | None = None  # why the status listener gave up
        self.finished = threading.Event()  # complete, or the listener gave up

    def add(self, number: str) -> None:
        with self.lock:
            self.status[number] = None
            self.updates[number] = 0

    def apply(self, number: str, status: str) -> bool:
        """Records a status; False when the order is not one of ours (for
        example from an earlier run). Applying is idempotent: a repeated
        update sets the same status again, and is reported."""
        with self.lock:
            if number not in self.status:
                return False
            self.updates[number] += 1
            if self.updates[number] > 1:
                log(PROGRAM, f"warning: {number} got status update number {self.updates[number]}")
            self.status[number] = status
            self._check_complete()
            return True

    def publishing_done(self) -> None:
        with self.lock:
            self.all_published = True
            self._check_complete()

    def _check_complete(self) -> None:
        if self.all_published and all(s is not None for s in self.status.values()):
            self.complete.set()
            self.finished.set()

    def give_up(self, why: str) -> None:
        self.failure = why
        self.finished.set()

    def missing(self) -> list[str]:
        with self.lock:
            return [n for n, s in self.status.items() if s is None]


def new_order(number: str) -> dict:
    item = random.choice(list(ITEMS))
    quantity = random.randint(1, 5)
    return {
        "CreatedDate": now_ms(),
        "CreatedById": USER_ID,
        "OrderNumber__c": number,
        "Customer__c": random.choice(CUSTOMERS),
        "Item__c": item,
        "Quantity__c": float(quantity),
        "Amount__c": round(quantity * ITEMS[item], 2),
    }


def publish_orders(bus: Bus, book: OrderBook, args) -> int:
    """Publishes the orders on one PublishStream at a steady pace; returns
    how many failed. Results may come back in any order, so each one is
    matched to its order by correlation key."""
    schema = bus.topic_schema(ORDER_TOPIC)
    pending: dict[str, str] = {}  # event id (correlation key) -> order number
    lock = threading.Lock()
    all_answered = threading.Event()

    def requests():
        for i in range(1, args.orders + 1):
            number = f"{args.prefix}-{i:05d}"
            event_id = str(uuid.uuid4())
            with lock:
                pending[event_id] = number
            book.add(number)
            event = pb.ProducerEvent(id=event_id, schema_id=schema.id,
                                     payload=schema.encode(new_order(number)))
            yield pb.PublishRequest(topic_name=ORDER_TOPIC, events=[event])
            time.sleep(args.interval_ms / 1000)  # the pace of new orders, not synchronisation
        all_answered.wait()  # half-close only after the last result

    failed = answered = 0
    call = bus.stub.PublishStream(requests(), metadata=HEADERS)
    try:
        for response in call:
            for result in response.results:  # a response without results is a keepalive
                answered += 1
                with lock:
                    number = pending.pop(result.correlation_key, None)
                if number is None:
                    log(PROGRAM, f"result with unknown correlation key {result.correlation_key!r}")
                    failed += 1
                elif result.HasField("error"):
                    log(PROGRAM, f"order {number} was not published: {result.error.msg}")
                    failed += 1
                else:
                    emit({"event": "order", "order": number, "replay_id": result.replay_id.hex()})
            if answered >= args.orders:
                all_answered.set()
                break
    finally:
        all_answered.set()
        call.cancel()
    return failed + len(pending)


def listen_for_statuses(bus: Bus, book: OrderBook, keepalive_timeout_s: float) -> None:
    """Applies status updates until every order has one. Reconnects with
    backoff when the stream fails: the server resumes after the last commit,
    so updates after it that arrived before the failure come again."""
    delay = 0.5
    seen: set[str] = set()  # event ids of the updates applied
    while not book.complete.is_set():
        sub = ManagedSubscription(bus, SUBSCRIPTION, batch=100, program=PROGRAM,
                                  keepalive_timeout_s=keepalive_timeout_s)
        try:
            for response in sub.responses():
                for consumer_event in response.events:
                    if consumer_event.event.id in seen:
                        log(PROGRAM, f"skipped update {consumer_event.event.id}: "
                                     f"delivered again after a reconnect")
                        continue
                    seen.add(consumer_event.event.id)
                    update = bus.decode(consumer_event.event)
                    number, status = update["OrderNumber__c"], update["Status__c"]
                    if book.apply(number, status):
                        emit({"event": "status", "order": number, "status": status,
                              "replay_id": consumer_event.replay_id.hex()})
                sub.commit(response.events[-1].replay_id)
                delay = 0.5
                if book.complete.is_set():
                    # Half-close; the loop ends when the server has answered
                    # the commit and ended the stream.
                    sub.close()
        except (grpc.RpcError, KeepaliveTimeout) as err:
            if isinstance(err, grpc.RpcError):
                if err.code() in FATAL:
                    book.give_up(f"status stream failed: {describe(err)}")
                    return
                why = describe(err)
            else:
                why = str(err)
            log(PROGRAM, f"status stream failed ({why}); reconnecting in {delay:.1f}s")
            time.sleep(delay)  # backoff before reconnecting
            delay = min(delay * 2, 10)
        finally:
            sub.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:7011", help="eventbus host:port")
    parser.add_argument("--orders", type=int, default=20, help="orders to publish")
    parser.add_argument("--interval-ms", type=float, default=100, help="time between two orders")
    parser.add_argument("--prefix", default=time.strftime("SO-%H%M%S"),
                        help="order numbers are PREFIX-00001, PREFIX-00002, ...")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds to wait for all status updates")
    parser.add_argument("--keepalive-timeout", type=float, default=KEEPALIVE_TIMEOUT_S,
                        help="seconds without any message on the status stream after "
                             "which it counts as dead and is opened again")
    args = parser.parse_args()

    bus = Bus(args.server)
    book = OrderBook()
    listener = threading.Thread(target=listen_for_statuses,
                                args=(bus, book, args.keepalive_timeout), daemon=True)
    listener.start()
    failed = publish_orders(bus, book, args)
    log(PROGRAM, f"published {args.orders - failed} of {args.orders} orders")
    book.publishing_done()
    book.finished.wait(args.timeout)
    if book.failure:
        log(PROGRAM, book.failure)
        return 1
    if not book.complete.is_set():
        missing = book.missing()
        log(PROGRAM, f"timed out: {len(missing)} orders have no status, "
                     f"for example {missing[:5]}")
        return 1
    log(PROGRAM, "every order has a status")
    listener.join(timeout=5)  # lets the last commit reach the server
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
