// The fulfillment system: takes new orders from eventbus, fulfils each one,
// and answers with an OrderStatusUpdated__e event.
//
//     node fulfillment.js [--server 127.0.0.1:7011] [--batch 25] [--keepalive-timeout 300]
//
// It reads /event/OrderCreated__e through the managed subscription
// "Fulfillment" (topics/managed/Fulfillment.toml): the server remembers how
// far fulfillment got, so this program stores nothing between runs. After
// each batch it commits the last order it processed.
//
// Exactly one status per order, even across a crash: a crash after a status
// was published but before its commit landed makes the server deliver that
// order again. So before it handles the first batch of a new stream, the
// program reads its own output topic to the end and skips every order that
// already has a status (see README.md, "One status per order").
//
// When the stream fails (the server ends it with an error, the connection
// drops, or nothing arrives for --keepalive-timeout seconds, not even a
// keepalive), the program opens a new one after a backoff; the server resumes
// after the last commit.
import { parseArgs } from 'node:util';
import { Bus, KEEPALIVE_TIMEOUT_MS, ManagedSubscription, USER_ID, describe, log, sleep } from './bus.js';

const SUBSCRIPTION = 'Fulfillment';
const STATUS_TOPIC = '/event/OrderStatusUpdated__e';
const PROGRAM = 'fulfillment';
// Orders above this amount fail the (made-up) credit check.
const CREDIT_LIMIT = 4000;
// gRPC status codes that retrying cannot fix: INVALID_ARGUMENT, NOT_FOUND,
// PERMISSION_DENIED, UNIMPLEMENTED (a server without ManagedSubscribe),
// UNAUTHENTICATED.
const FATAL = new Set([3, 5, 7, 12, 16]);

class WarehouseBusy extends Error {}

/** The step that talks to another system: here, a simulation that takes
 * `workMs` and fails now and then. */
async function reserveStock(order, workMs, failureRate) {
    await sleep(workMs); // simulated work, not synchronisation
    if (Math.random() < failureRate) throw new WarehouseBusy('warehouse did not answer');
    return `reserved ${order.Quantity__c} x ${order.Item__c}`;
}

/** Runs `step()`; on WarehouseBusy waits 50 ms, 100 ms, 200 ms, ... (with
 * jitter, so many workers do not retry in step) and tries again. Returns
 * { result } or { error } once the attempts are used up. */
async function withRetries(step, attempts = 5, firstDelayMs = 50) {
    let delay = firstDelayMs;
    for (let attempt = 1; ; attempt++) {
        try {
            return { result: await step() };
        } catch (error) {
            if (!(error instanceof WarehouseBusy)) throw error;
            if (attempt === attempts) return { error };
            await sleep(delay * (0.5 + Math.random())); // backoff
            delay *= 2;
        }
    }
}

/** Decides an order's status: [Status__c, Detail__c]. */
async function fulfil(order, opts) {
    const missing = ['Item__c', 'Quantity__c', 'Amount__c'].filter((f) => order[f] === null);
    if (missing.length > 0) return ['Rejected', `incomplete order: no ${missing.join(', ')}`];
    if (order.Amount__c > CREDIT_LIMIT) {
        return ['Rejected', `amount ${order.Amount__c.toFixed(2)} is over the credit limit`];
    }
    const { result, error } = await withRetries(() => reserveStock(order, opts.workMs, opts.failureRate));
    if (error) return ['OnHold', `${error.message}; will be retried by hand`];
    return ['Shipped', result];
}

/** One ManagedSubscribe stream, until it ends or fails. */
async function runStream(bus, opts, done) {
    const statusSchema = await bus.topicSchema(STATUS_TOPIC);
    const sub = new ManagedSubscription(bus, SUBSCRIPTION, opts.batch, PROGRAM, opts.keepaliveTimeoutMs);
    let first = true;
    try {
        for await (const response of sub.responses()) {
            if (first) {
                // Events on this stream prove the server gave the
                // subscription to us, so no older instance is still
                // publishing: now the status topic holds everything it ever
                // published.
                first = false;
                const answered = (await bus.readToEnd(STATUS_TOPIC)).map((r) => r.OrderNumber__c);
                for (const number of answered) done.add(number);
                log(PROGRAM, `stream open; ${new Set(answered).size} orders already have a status`);
            }
            for (const consumerEvent of response.events) {
                const order = await bus.decode(consumerEvent.event);
                const number = order.OrderNumber__c;
                if (number === null) {
                    log(PROGRAM, `skipped event ${consumerEvent.event.id}: no OrderNumber__c to answer`);
                    continue;
                }
                if (done.has(number)) {
                    log(PROGRAM, `skipped ${number}: it already has a status`);
                    continue;
                }
                const [status, detail] = await fulfil(order, opts);
                await bus.publish(STATUS_TOPIC, statusSchema, {
                    CreatedDate: Date.now(),
                    CreatedById: USER_ID,
                    OrderNumber__c: number, // the correlation: which order this answers
                    Status__c: status,
                    Detail__c: detail
                });
                done.add(number);
                log(PROGRAM, `published status ${status} for ${number}`);
            }
            // The whole batch is processed and answered: commit its last event.
            sub.commit(response.events.at(-1).replay_id);
        }
    } finally {
        sub.cancel(); // frees the subscription for the next stream
    }
}

async function main() {
    const { values } = parseArgs({
        options: {
            server: { type: 'string', default: '127.0.0.1:7011' },
            batch: { type: 'string', default: '25' }, // orders to ask for at a time
            'work-ms': { type: 'string', default: '5' }, // simulated work per attempt
            'failure-rate': { type: 'string', default: '0.2' }, // chance that one attempt fails
            // Seconds without any message (events or keepalives) after which
            // the stream counts as dead and is opened again.
            'keepalive-timeout': { type: 'string', default: String(KEEPALIVE_TIMEOUT_MS / 1000) }
        }
    });
    const opts = {
        batch: Number(values.batch),
        workMs: Number(values['work-ms']),
        failureRate: Number(values['failure-rate']),
        keepaliveTimeoutMs: Number(values['keepalive-timeout']) * 1000
    };
    const bus = new Bus(values.server);
    const done = new Set(); // orders answered by this process or found answered
    let delay = 500;
    for (;;) {
        const answeredBefore = done.size;
        let why = 'the server ended the stream';
        try {
            await runStream(bus, opts, done);
        } catch (err) {
            if (FATAL.has(err.code)) {
                log(PROGRAM, `giving up: ${describe(err)}`);
                return 1;
            }
            // For example INTERNAL service.unavailable, UNAVAILABLE after a
            // dropped connection or while the server restarts, a
            // KeepaliveTimeout, or the subscription still held by an
            // instance that is shutting down.
            why = `stream failed (${describe(err)})`;
        }
        if (done.size > answeredBefore) delay = 500; // it worked for a while: start over
        log(PROGRAM, `${why}; reconnecting in ${delay / 1000}s`);
        await sleep(delay); // backoff before reconnecting
        delay = Math.min(delay * 2, 10000);
    }
}

process.exit(await main());
