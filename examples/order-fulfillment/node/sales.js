// The sales system: publishes new orders to eventbus and applies the status
// updates that fulfillment sends back.
//
//     node sales.js --orders 200 --interval-ms 30 [--server 127.0.0.1:7011]
//                   [--keepalive-timeout 300]
//
// Orders go out as /event/OrderCreated__e on one PublishStream, one every
// --interval-ms; each PublishResult is matched to its order by correlation
// key (the event id we chose). Status updates arrive on
// /event/OrderStatusUpdated__e through the managed subscription
// "SalesStatus" (topics/managed/SalesStatus.toml). The program ends once
// every order it published has a status, or fails after --timeout seconds.
// A status stream that fails or stays silent for --keepalive-timeout seconds
// is opened again after a backoff; updates delivered again (sent before the
// last commit reached the server) are recognised by their event id and
// skipped.
//
// Stdout has one JSON line per published order and per status update received:
//     {"event":"order","order":"SO-...","replay_id":"..."}
//     {"event":"status","order":"SO-...","status":"Shipped","replay_id":"..."}
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Bus, KEEPALIVE_TIMEOUT_MS, ManagedSubscription, USER_ID, describe, log, sleep } from './bus.js';

const ORDER_TOPIC = '/event/OrderCreated__e';
const SUBSCRIPTION = 'SalesStatus';
const PROGRAM = 'sales';
// gRPC status codes that retrying cannot fix (see fulfillment.js).
const FATAL = new Set([3, 5, 7, 12, 16]);

const CUSTOMERS = ['Acme Corp', 'Globex', 'Initech', 'Umbrella', 'Stark Industries'];
const ITEMS = { Widget: 19.99, Gadget: 249.0, Gizmo: 1200.0, Doohickey: 4.5 };

const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const pick = (list) => list[Math.floor(Math.random() * list.length)];

/** The sales side's view of its orders. */
class OrderBook {
    constructor() {
        this.status = new Map(); // order number -> latest status (null: none yet)
        this.updates = new Map(); // order number -> status updates seen
        this.allPublished = false;
        this.complete = false;
        this.failure = null; // why the status listener gave up
        // Resolves once every order has a status or the listener gave up.
        this.finished = new Promise((resolve) => (this.finish = resolve));
    }

    add(number) {
        this.status.set(number, null);
        this.updates.set(number, 0);
    }

    /** Records a status; false when the order is not one of ours (for
     * example from an earlier run). Applying is idempotent: a repeated
     * update sets the same status again, and is reported. */
    apply(number, status) {
        if (!this.status.has(number)) return false;
        const seen = this.updates.get(number) + 1;
        this.updates.set(number, seen);
        if (seen > 1) log(PROGRAM, `warning: ${number} got status update number ${seen}`);
        this.status.set(number, status);
        this.checkComplete();
        return true;
    }

    publishingDone() {
        this.allPublished = true;
        this.checkComplete();
    }

    checkComplete() {
        if (this.allPublished && [...this.status.values()].every((s) => s !== null)) {
            this.complete = true;
            this.finish();
        }
    }

    giveUp(why) {
        this.failure = why;
        this.finish();
    }

    missing() {
        return [...this.status].filter(([, s]) => s === null).map(([n]) => n);
    }
}

function newOrder(number) {
    const item = pick(Object.keys(ITEMS));
    const quantity = 1 + Math.floor(Math.random() * 5);
    return {
        CreatedDate: Date.now(),
        CreatedById: USER_ID,
        OrderNumber__c: number,
        Customer__c: pick(CUSTOMERS),
        Item__c: item,
        Quantity__c: quantity,
        Amount__c: Math.round(quantity * ITEMS[item] * 100) / 100
    };
}

/** Publishes the orders on one PublishStream at a steady pace; returns how
 * many failed. Results may come back in any order, so each one is matched
 * to its order by correlation key. */
async function publishOrders(bus, book, opts) {
    const schema = await bus.topicSchema(ORDER_TOPIC);
    const pending = new Map(); // event id (correlation key) -> order number
    let failed = 0;
    let answered = 0;
    const call = bus.client.PublishStream(bus.metadata);
    const results = (async () => {
        for await (const response of call) {
            for (const result of response.results) { // a response without results is a keepalive
                answered++;
                const number = pending.get(result.correlation_key);
                pending.delete(result.correlation_key);
                if (number === undefined) {
                    log(PROGRAM, `result with unknown correlation key ${result.correlation_key}`);
                    failed++;
                } else if (result.error) {
                    log(PROGRAM, `order ${number} was not published: ${result.error.msg}`);
                    failed++;
                } else {
                    emit({ event: 'order', order: number, replay_id: result.replay_id.toString('hex') });
                }
            }
            // Half-close after the last result; the server then ends the call.
            if (answered >= opts.orders) call.end();
        }
    })();
    for (let i = 1; i <= opts.orders; i++) {
        const number = `${opts.prefix}-${String(i).padStart(5, '0')}`;
        const id = randomUUID();
        pending.set(id, number);
        book.add(number);
        call.write({
            topic_name: ORDER_TOPIC,
            events: [{ id, schema_id: schema.id, payload: schema.encode(newOrder(number)) }]
        });
        await sleep(opts.intervalMs); // the pace of new orders, not synchronisation
    }
    await results;
    return failed + pending.size;
}

/** Applies status updates until every order has one. Reconnects with
 * backoff when the stream fails: the server resumes after the last commit,
 * so updates after it that arrived before the failure come again. */
async function listenForStatuses(bus, book, keepaliveTimeoutMs) {
    let delay = 500;
    const seen = new Set(); // event ids of the updates applied
    while (!book.complete) {
        const sub = new ManagedSubscription(bus, SUBSCRIPTION, 100, PROGRAM, keepaliveTimeoutMs);
        try {
            for await (const response of sub.responses()) {
                for (const consumerEvent of response.events) {
                    if (seen.has(consumerEvent.event.id)) {
                        log(PROGRAM, `skipped update ${consumerEvent.event.id}: delivered again after a reconnect`);
                        continue;
                    }
                    seen.add(consumerEvent.event.id);
                    const update = await bus.decode(consumerEvent.event);
                    if (book.apply(update.OrderNumber__c, update.Status__c)) {
                        emit({
                            event: 'status',
                            order: update.OrderNumber__c,
                            status: update.Status__c,
                            replay_id: consumerEvent.replay_id.toString('hex')
                        });
                    }
                }
                sub.commit(response.events.at(-1).replay_id);
                delay = 500;
                // Half-close; the loop ends when the server has answered the
                // commit and ended the stream.
                if (book.complete) sub.close();
            }
        } catch (err) {
            if (FATAL.has(err.code)) {
                book.giveUp(`status stream failed: ${describe(err)}`);
                return;
            }
            log(PROGRAM, `status stream failed (${describe(err)}); reconnecting in ${delay / 1000}s`);
            await sleep(delay); // backoff before reconnecting
            delay = Math.min(delay * 2, 10000);
        } finally {
            sub.cancel();
        }
    }
}

async function main() {
    const time = new Date().toISOString().slice(11, 19).replaceAll(':', '');
    const { values } = parseArgs({
        options: {
            server: { type: 'string', default: '127.0.0.1:7011' },
            orders: { type: 'string', default: '20' },
            'interval-ms': { type: 'string', default: '100' }, // time between two orders
            prefix: { type: 'string', default: `SO-${time}` }, // order numbers are PREFIX-00001, ...
            timeout: { type: 'string', default: '120' }, // seconds to wait for all status updates
            // Seconds without any message on the status stream after which it
            // counts as dead and is opened again.
            'keepalive-timeout': { type: 'string', default: String(KEEPALIVE_TIMEOUT_MS / 1000) }
        }
    });
    const opts = { orders: Number(values.orders), intervalMs: Number(values['interval-ms']), prefix: values.prefix };
    const bus = new Bus(values.server);
    const book = new OrderBook();
    const listener = listenForStatuses(bus, book, Number(values['keepalive-timeout']) * 1000);
    const failed = await publishOrders(bus, book, opts);
    log(PROGRAM, `published ${opts.orders - failed} of ${opts.orders} orders`);
    book.publishingDone();
    let timer;
    const timedOut = new Promise((resolve) => (timer = setTimeout(resolve, Number(values.timeout) * 1000)));
    await Promise.race([book.finished, timedOut]);
    clearTimeout(timer);
    if (book.failure) {
        log(PROGRAM, book.failure);
        return 1;
    }
    if (!book.complete) {
        const missing = book.missing();
        log(PROGRAM, `timed out: ${missing.length} orders have no status, for example ${missing.slice(0, 5)}`);
        return 1;
    }
    log(PROGRAM, 'every order has a status');
    // Lets the last commit reach the server (bounded: the stream may not end).
    await Promise.race([listener, sleep(5000)]);
    return failed > 0 ? 1 : 0;
}

process.exit(await main());
