#!/usr/bin/env python3
"""The fulfillment system: takes new orders from eventbus, fulfils each one,
and answers with an OrderStatusUpdated__e event.

    python fulfillment.py [--server 127.0.0.1:7011] [--keepalive-timeout 300]

It reads /event/OrderCreated__e through the managed subscription
"Fulfillment" (topics/managed/Fulfillment.toml): the server remembers how far
fulfillment got, so this program stores nothing between runs. After each
batch it commits the last order it processed.

Exactly one status per order, even across a crash: a crash after a status
was published but before its commit landed makes the server deliver that
order again. So before it handles the first batch of a new stream, the
program reads its own output topic to the end and skips every order that
already has a status (see README.md, "One status per order").

When the stream fails (the server ends it with an error, the connection
drops, or nothing arrives for --keepalive-timeout seconds, not even a
keepalive), the program opens a new one after a backoff; the server resumes
after the last commit.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import grpc

from bus import KEEPALIVE_TIMEOUT_S, USER_ID, Bus, ManagedSubscription, describe, log, now_ms

SUBSCRIPTION = "Fulfillment"
STATUS_TOPIC = "/event/OrderStatusUpdated__e"
PROGRAM = "fulfillment"

# Orders above this amount fail the (made-up) credit check.
CREDIT_LIMIT = 4000.0
# Errors that retrying cannot fix: a wrong subscription name, topic or token,
# or a server without ManagedSubscribe.
FATAL = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
         grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
         grpc.StatusCode.UNIMPLEMENTED}


class WarehouseBusy(Exception):
    """A transient failure of the (simulated) warehouse system."""


def reserve_stock(order: dict, work_s: float, failure_rate: float) -> str:
    """The step that talks to another system: here, a simulation that takes
    `work_s` seconds and fails now and then."""
    time.sleep(work_s)  # simulated work, not synchronisation
    if random.random() < failure_rate:
        raise WarehouseBusy("warehouse did not answer")
    return f"reserved {order['Quantity__c']:g} x {order['Item__c']}"


def with_retries(step, attempts: int = 5, first_delay_s: float = 0.05):
    """Runs `step()`; on WarehouseBusy waits 50 ms, 100 ms, 200 ms, ... (with
    jitter, so many workers do not retry in step) and tries again. Returns
    (result, None) or (None, last error) once the attempts are used up."""
    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            return step(), None
        except WarehouseBusy as err:
            if attempt == attempts:
                return None, err
            time.sleep(delay * random.uniform(0.5, 1.5))  # backoff
            delay *= 2
    raise AssertionError("unreachable")


def fulfil(order: dict, args) -> tuple[str, str]:
    """Decides an order's status: (Status__c, Detail__c)."""
    missing = [f for f in ("Item__c", "Quantity__c", "Amount__c") if order[f] is None]
    if missing:
        return "Rejected", f"incomplete order: no {', '.join(missing)}"
    if order["Amount__c"] > CREDIT_LIMIT:
        return "Rejected", f"amount {order['Amount__c']:.2f} is over the credit limit"
    detail, err = with_retries(lambda: reserve_stock(order, args.work_ms / 1000, args.failure_rate))
    if err is not None:
        return "OnHold", f"{err}; will be retried by hand"
    return "Shipped", detail


def run_stream(bus: Bus, args, done: set[str]) -> None:
    """One ManagedSubscribe stream, until it fails."""
    status_schema = bus.topic_schema(STATUS_TOPIC)
    sub = ManagedSubscription(bus, SUBSCRIPTION, args.batch, PROGRAM,
                              keepalive_timeout_s=args.keepalive_timeout)
    try:
        handle_batches(bus, args, done, sub, status_schema)
    finally:
        sub.cancel()  # frees the subscription for the next stream


def handle_batches(bus: Bus, args, done: set[str], sub: ManagedSubscription, status_schema) -> None:
    """Fulfils each delivered order once, then commits the batch."""
    first = True
    for response in sub.responses():
        if first:
            # Events on this stream prove the server gave the subscription
            # to us, so no older instance is still publishing: now the
            # status topic holds everything it ever published.
            first = False
            answered = {r["OrderNumber__c"] for r in bus.read_to_end(STATUS_TOPIC)}
            done |= answered
            log(PROGRAM, f"stream open; {len(answered)} orders already have a status")
        for consumer_event in response.events:
            order = bus.decode(consumer_event.event)
            number = order["OrderNumber__c"]
            if number is None:
                log(PROGRAM, f"skipped event {consumer_event.event.id}: no OrderNumber__c to answer")
                continue
            if number in done:
                log(PROGRAM, f"skipped {number}: it already has a status")
                continue
            status, detail = fulfil(order, args)
            bus.publish(STATUS_TOPIC, status_schema, {
                "CreatedDate": now_ms(),
                "CreatedById": USER_ID,
                "OrderNumber__c": number,  # the correlation: which order this answers
                "Status__c": status,
                "Detail__c": detail,
            })
            done.add(number)
            log(PROGRAM, f"published status {status} for {number}")
        # The whole batch is processed and answered: commit its last event.
        sub.commit(response.events[-1].replay_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:7011", help="eventbus host:port")
    parser.add_argument("--batch", type=int, default=25, help="orders to ask for at a time")
    parser.add_argument("--work-ms", type=float, default=5, help="simulated work per attempt")
    parser.add_argument("--failure-rate", type=float, default=0.2,
                        help="chance that one warehouse attempt fails (then it is retried)")
    parser.add_argument("--keepalive-timeout", type=float, default=KEEPALIVE_TIMEOUT_S,
                        help="seconds without any message (events or keepalives) after "
                             "which the stream counts as dead and is opened again")
    args = parser.parse_args()

    bus = Bus(args.server)
    done: set[str] = set()  # orders answered by this process or found answered
    delay = 0.5
    while True:
        answered_before = len(done)
        try:
            run_stream(bus, args, done)
            why = "the server ended the stream"
        except grpc.RpcError as err:
            if err.code() in FATAL:
                log(PROGRAM, f"giving up: {describe(err)}")
                return 1
            # For example INTERNAL service.unavailable, UNAVAILABLE after a
            # dropped connection or while the server restarts, or the
            # subscription still held by an instance that is shutting down.
            why = f"stream failed ({describe(err)})"
        except RuntimeError as err:  # KeepaliveTimeout among others
            why = f"stream failed ({err})"
        if len(done) > answered_before:
            delay = 0.5  # the stream worked for a while: start the backoff over
        log(PROGRAM, f"{why}; reconnecting in {delay:.1f}s")
        time.sleep(delay)  # backoff before reconnecting
        delay = min(delay * 2, 10)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
