// What the npm package `salesforce-pubsub-api-client` does, unmodified, when
// the server ends its Subscribe stream with Salesforce's
// `service.unavailable` in the middle of a stream (a fault rule of eventbus
// serve --fault-injection, added by run-reconnect.sh):
//   1. it publishes EVENTS events, then subscribes from EARLIEST asking for
//      all of them; the rule ends the stream after AFTER events;
//   2. it records every callback the client makes, in order (event, error,
//      grpcStatus, end, grpcKeepalive, lastEvent), and waits QUIET_MS after
//      the failure for anything more: does the client subscribe again by
//      itself? (Observed with 5.5.2: the events before the fault, then
//      'error', 'grpcStatus' and 'end', then nothing.)
//   3. it does what the application has to do: subscribe again from the
//      last replay id the client saw (subscribeFromReplayId with
//      `subscription.lastReplayId`), and checks that the rest arrives, each
//      event once.
// Prints the callbacks it saw (`seen: ...`), `ok` / `FAIL` lines and `N
// passed, N failed`; exits non-zero on any failure.
//
// Usage: node reconnect.js ENDPOINT TOKEN TENANT TOPIC EVENTS AFTER
import PubSubApiClient from 'salesforce-pubsub-api-client';

const [endpoint, token, tenant, topic, eventsArg, afterArg] = process.argv.slice(2);
if (!afterArg) {
    console.error('usage: node reconnect.js ENDPOINT TOKEN TENANT TOPIC EVENTS AFTER');
    process.exit(2);
}
const EVENTS = Number(eventsArg);
const AFTER = Number(afterArg);
// How long to watch for the client doing anything by itself after the failure.
const QUIET_MS = 3000;
// Upper bound of any wait on the server; only ends a hang.
const WAIT_MS = 20000;
const INTERNAL = 13;
const UNAVAILABLE = 'sfdc.platform.eventbus.grpc.service.unavailable';

let passed = 0;
let failed = 0;
function check(what, ok, detail) {
    if (ok) passed++;
    else failed++;
    console.log(`${ok ? 'ok   -' : 'FAIL -'} ${what}${ok || detail === undefined ? '' : `: ${detail}`}`);
}

const logLines = [];
const keep = (level) => (...args) => logLines.push(`[${level}] ${args.join(' ')}`);
const client = new PubSubApiClient(
    {
        authType: 'user-supplied',
        accessToken: token,
        instanceUrl: 'https://eventbus.localhost',
        organizationId: tenant,
        pubSubEndpoint: endpoint,
        // eventbus serves a development certificate the client cannot be told to trust.
        rejectUnauthorizedSsl: false
    },
    { debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') }
);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function errorCodeTrailer(err) {
    const md = err?.metadata ?? err?.cause?.metadata;
    return md?.get ? md.get('error-code')[0] : undefined;
}

// Waits until `done()` holds, polling every 20 ms; false after WAIT_MS.
async function until(done) {
    for (const start = Date.now(); Date.now() - start < WAIT_MS; await sleep(20)) {
        if (done()) return true;
    }
    return done();
}

async function main() {
    await client.connect();
    for (let i = 0; i < EVENTS; i++) {
        await client.publish(topic, {
            CreatedDate: Date.now(),
            CreatedById: '005000000000001AAA',
            OrderNumber__c: { string: `R-${i + 1}` },
            Amount__c: null,
            Status__c: null
        });
    }

    // 1-2. The first subscription, and everything the client reports.
    const seen = []; // callback types in order; events as their order number
    const received = []; // order numbers of the events, both subscriptions
    let error;
    let status;
    let info;
    const callback = (subscription, type, data) => {
        info = subscription;
        if (type === 'event') {
            received.push(data.payload.OrderNumber__c);
            seen.push(`event ${data.payload.OrderNumber__c}`);
        } else {
            seen.push(type);
        }
        if (type === 'error') error = data;
        if (type === 'grpcStatus') status = data;
    };
    client.subscribeFromEarliestEvent(topic, callback, EVENTS);
    const ended = await until(() => status !== undefined);
    const failedAt = seen.length;
    await sleep(QUIET_MS); // anything the client does by itself
    console.log(`seen: ${seen.join(', ')}`);
    check('the first subscription ends', ended, seen.join(', '));
    check(
        `it delivered the ${AFTER} events before the fault`,
        received.length === AFTER && received.every((n, i) => n === `R-${i + 1}`),
        received.join(', ')
    );
    check(
        `the client reports 'error' with code ${INTERNAL}, Salesforce's message and the error-code trailer ${UNAVAILABLE}`,
        error?.code === INTERNAL &&
            /^The service is unavailable\. Try again later\. rpcId: /.test(error?.details ?? '') &&
            errorCodeTrailer(error) === UNAVAILABLE,
        `code=${error?.code} details=${error?.details} error-code=${errorCodeTrailer(error)}`
    );
    check(
        `after the events: 'error', then 'grpcStatus' with the same code ${INTERNAL}, then 'end' (the client forgets the subscription)`,
        status?.code === INTERNAL && seen.slice(AFTER).join(', ') === 'error, grpcStatus, end',
        seen.join(', ')
    );
    check(
        `it does not subscribe again by itself: nothing in the ${QUIET_MS} ms after the failure`,
        seen.length === failedAt,
        seen.slice(failedAt).join(', ')
    );

    // 3. What the application has to do: subscribe again after the last
    // replay id the client saw.
    const lastReplayId = info?.lastReplayId;
    console.log(`resubscribing from lastReplayId ${lastReplayId}`);
    client.subscribeFromReplayId(topic, callback, EVENTS - AFTER, lastReplayId);
    await until(() => received.length >= EVENTS);
    await sleep(300); // anything more would be a duplicate
    const expected = Array.from({ length: EVENTS }, (_, i) => `R-${i + 1}`);
    check(
        `subscribeFromReplayId(topic, callback, ${EVENTS - AFTER}, subscription.lastReplayId) delivers the rest: all ${EVENTS} events once, in order`,
        received.length === EVENTS && received.every((n, i) => n === expected[i]),
        received.join(', ')
    );
}

try {
    await main();
} catch (err) {
    check('the run itself', false, err.stack);
} finally {
    client.close();
}
if (failed > 0) console.log(logLines.slice(-30).join('\n'));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
