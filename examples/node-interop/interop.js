// Drives the npm package `salesforce-pubsub-api-client`, unmodified, against
// eventbus running with TLS and `--auth static`:
//   1. publish (unary Publish), publishBatch (PublishStream) two
//      batches on the client's cached stream; every result needs a replay id;
//   2. subscribe from EARLIEST with numRequested 3, take exactly 3 events,
//      check that the server sends nothing more while the credit is used up,
//      then requestAdditionalEvents for the rest; every event is decoded by
//      the client (Avro) and compared field by field with what was published;
//   3. an unknown topic must fail with status 5 (publish) or 5/7 (subscribe);
//   4. a wrong token (publish, publishBatch, subscribe) and a tenantid of
//      another org must fail with gRPC status 16 and the Salesforce
//      error-code trailer;
//   5. subscribeWithManagedSubscription: the client looks the managed
//      subscription up with a SOQL query on its instanceUrl (eventbus's
//      Tooling API endpoint, EVENTBUS_TOOLING_URL), consumes, commits with
//      commitReplayId, is refused a second concurrent stream
//      (managed.subscription.already.active), and a new client resumes
//      right after the commit. EVENTBUS_BIN (the eventbus CLI, used to read
//      the stored commit) and EVENTBUS_TLS_CA must be set too; without
//      EVENTBUS_TOOLING_URL this part is skipped.
//
// Usage: node interop.js ENDPOINT TOKEN TENANT [TOPIC]
//   ENDPOINT  host:port of eventbus (TLS; the certificate is not verified,
//             the client can only trust its bundled CA list)
//   TOKEN     an access token granted publish and subscribe on TOPIC
//   TENANT    the token's tenant (org id)
// The topic must be empty (a fresh data folder): the EARLIEST replay must
// return exactly the events this run publishes.
// Prints `ok` / `FAIL` lines, a summary line, then `N passed, N failed`;
// exits non-zero on any failure.
import { execFileSync } from 'node:child_process';
import PubSubApiClient from 'salesforce-pubsub-api-client';

const [endpoint, token, tenant, topic = '/event/Order_Event__e'] = process.argv.slice(2);
if (!endpoint || !token || !tenant) {
    console.error('usage: node interop.js ENDPOINT TOKEN TENANT [TOPIC]');
    process.exit(2);
}

// Upper bound for any single wait on the server. Generous: the debug build on
// a busy 2-core machine answers in milliseconds, so this only ends a hang.
const WAIT_MS = 20000;
// Error codes the server puts in the `error-code` trailer (README "Security").
const AUTH_ERROR = 'sfdc.platform.eventbus.grpc.service.auth.error';
const HEADERS_INVALID = 'sfdc.platform.eventbus.grpc.service.auth.headers.invalid';
const TOPIC_NOT_FOUND = 'sfdc.platform.eventbus.grpc.topic.not.found';
// gRPC status codes.
const NOT_FOUND = 5;
const PERMISSION_DENIED = 7;
const UNAUTHENTICATED = 16;

let passed = 0;
let failed = 0;
const logLines = [];

function check(what, ok, detail) {
    if (ok) {
        passed++;
        console.log(`ok   - ${what}`);
    } else {
        failed++;
        console.log(`FAIL - ${what}${detail === undefined ? '' : `: ${detail}`}`);
    }
    return ok;
}

// The client logs every step through this object; keep it for a failure report.
function makeLogger(label) {
    const keep = (level) => (...args) => {
        logLines.push(`[${label} ${level}] ${args.map((a) => (a instanceof Error ? a.stack : String(a))).join(' ')}`);
    };
    return { debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') };
}

function newClient(label, accessToken, organizationId, instanceUrl = 'https://eventbus.localhost') {
    return new PubSubApiClient(
        {
            authType: 'user-supplied',
            accessToken,
            // Sent as the `instanceurl` header, and where the client sends
            // Tooling API queries (managed subscriptions); https:// only.
            instanceUrl,
            organizationId,
            pubSubEndpoint: endpoint,
            // eventbus serves a development certificate the client cannot be told to trust.
            rejectUnauthorizedSsl: false
        },
        makeLogger(label)
    );
}

// Resolves with `fn(resolve, reject)`'s outcome, or rejects after WAIT_MS.
function within(what, fn) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`)), WAIT_MS);
        fn(
            (v) => {
                clearTimeout(timer);
                resolve(v);
            },
            (e) => {
                clearTimeout(timer);
                reject(e);
            }
        );
    });
}

// One event of the example schema. Nullable fields are Avro unions, which
// avro-js (the client's codec) takes as `{ type: value }` when publishing and
// the client flattens back to plain values when it decodes.
function makeEvent(i) {
    return {
        CreatedDate: 1767225600000 + i, // 2026-01-01T00:00:00Z plus i ms
        CreatedById: '005000000000001AAA',
        OrderNumber__c: { string: `N-${i}` },
        Amount__c: { double: 10.25 * (i + 1) },
        Status__c: i % 2 === 0 ? { string: 'Open' } : null
    };
}

function expectedDecoded(i) {
    const e = makeEvent(i);
    return {
        CreatedDate: e.CreatedDate,
        CreatedById: e.CreatedById,
        OrderNumber__c: e.OrderNumber__c.string,
        Amount__c: e.Amount__c.double,
        Status__c: e.Status__c === null ? null : e.Status__c.string
    };
}

function sameFields(actual, expected) {
    const keys = Object.keys(expected);
    return keys.length === Object.keys(actual).length && keys.every((k) => actual[k] === expected[k]);
}

function grpcCode(err) {
    return err?.code ?? err?.cause?.code;
}

function errorCodeTrailer(err) {
    const md = err?.metadata ?? err?.cause?.metadata;
    return md?.get ? md.get('error-code')[0] : undefined;
}

function describe(err) {
    return `code=${grpcCode(err)} error-code=${errorCodeTrailer(err)} ${err?.cause?.details ?? err?.details ?? err?.message}`;
}

// published[k] = { index, correlationKey, replayId }, in publish order.
const published = [];
let schemaId;

async function publishPhase(client) {
    const key0 = 'node-interop-0';
    const r = await client.publish(topic, makeEvent(0), key0);
    check(
        'publish (unary) returns a replay id and no error',
        Number.isSafeInteger(r.replayId) && !r.error && r.correlationKey === key0,
        JSON.stringify(r)
    );
    published.push({ index: 0, correlationKey: key0, replayId: r.replayId });

    // Two batches on the same PublishStream (the client caches it per topic).
    const batches = [
        [1, 2, 3, 4],
        [5, 6, 7]
    ];
    for (const batch of batches) {
        const events = batch.map((i) => ({ id: `node-interop-${i}`, payload: makeEvent(i) }));
        const response = await within(`the PublishStream response for events ${batch}`, (resolve, reject) => {
            client
                .publishBatch(topic, events, (_info, type, data) => {
                    if (type === 'publishResponse') resolve(data);
                    else if (type === 'error') reject(data);
                })
                .catch(reject);
        });
        const results = response.results ?? [];
        const keys = results.map((x) => x.correlationKey);
        check(
            `publishBatch of ${batch.length} returns ${batch.length} results in order, each with a replay id`,
            results.length === batch.length &&
                results.every((x) => Number.isSafeInteger(x.replayId)) &&
                keys.join() === events.map((e) => e.id).join(),
            JSON.stringify(response)
        );
        results.forEach((x, k) =>
            published.push({ index: batch[k], correlationKey: x.correlationKey, replayId: x.replayId })
        );
    }
    const ids = published.map((p) => p.replayId);
    check(
        'replay ids strictly increase across publish and publishBatch',
        ids.every((id, k) => k === 0 || id > ids[k - 1]),
        ids.join(', ')
    );
}

async function subscribePhase(client) {
    const received = [];
    let lastEventCount = 0;
    let keepalives = 0;
    let info = null; // the client's SubscriptionInfo, updated on every response
    let waiter = null; // { done: () => boolean, resolve, reject }
    const wake = () => {
        if (waiter && waiter.done()) waiter.resolve();
    };
    const waitUntil = (done, what) =>
        within(what, (resolve, reject) => {
            waiter = { done, resolve, reject };
            wake();
        });
    const waitForLastEvent = (count, what) => waitUntil(() => lastEventCount >= count, what);

    const callback = (subscriptionInfo, type, data) => {
        info = subscriptionInfo;
        if (type === 'event') {
            received.push(data);
        } else if (type === 'lastEvent') {
            lastEventCount++;
            wake();
        } else if (type === 'grpcKeepAlive') {
            keepalives++;
            wake();
        } else if (type === 'error') {
            waiter?.reject(new Error(`subscription error: ${describe(data)}`));
        } else if (type === 'end') {
            waiter?.reject(new Error('subscription ended early'));
        }
    };

    client.subscribeFromEarliestEvent(topic, callback, 3);
    await waitForLastEvent(1, 'the first 3 events (numRequested 3)');
    check('subscribe with numRequested 3 delivers exactly 3 events', received.length === 3, `${received.length} events`);

    // The credit is used up: a publish round trip (GetTopic + Publish) must
    // complete while the subscription receives nothing more.
    const late = 8;
    const r = await client.publish(topic, makeEvent(late), `node-interop-${late}`);
    published.push({ index: late, correlationKey: `node-interop-${late}`, replayId: r.replayId });
    check('no event arrives while the credit is used up', received.length === 3, `${received.length} events`);

    const rest = published.length - 3;
    client.requestAdditionalEvents(topic, rest);
    await waitForLastEvent(2, `the remaining ${rest} events (requestAdditionalEvents)`);
    check(
        `requestAdditionalEvents(${rest}) delivers the other ${rest} events`,
        received.length === published.length,
        `${received.length} of ${published.length} events`
    );

    const mismatches = [];
    published.forEach((p, k) => {
        const ev = received[k];
        if (!ev) {
            mismatches.push(`event ${k}: missing`);
            return;
        }
        const want = expectedDecoded(p.index);
        if (ev.replayId !== p.replayId) mismatches.push(`event ${k}: replay id ${ev.replayId}, published ${p.replayId}`);
        if (ev.id !== p.correlationKey) mismatches.push(`event ${k}: id ${ev.id}, published ${p.correlationKey}`);
        if (!sameFields(ev.payload, want))
            mismatches.push(`event ${k}: ${JSON.stringify(ev.payload)} != ${JSON.stringify(want)}`);
        if (k === 0) schemaId = ev.schemaId;
        else if (ev.schemaId !== schemaId) mismatches.push(`event ${k}: schema id ${ev.schemaId}`);
    });
    check(
        `all ${published.length} events decode to the published fields, ids, replay ids and schema id`,
        mismatches.length === 0 && typeof schemaId === 'string' && schemaId.length === 22,
        mismatches.join('; ') || `schema id ${schemaId}`
    );

    // Credit outstanding and nothing new: the server sends keepalives (run.sh
    // starts it with a short --keepalive). The client decodes the
    // latest_replay_id of every response as an 8-byte big-endian id and would
    // crash on any other length; it must be the newest event's id.
    const before = keepalives;
    client.requestAdditionalEvents(topic, 1);
    await waitUntil(() => keepalives > before, 'a keepalive while credit is outstanding');
    const newest = published[published.length - 1].replayId;
    check(
        'a keepalive arrives while credit is outstanding, its latest_replay_id is the newest event',
        received.length === published.length && info?.lastReplayId === newest,
        `${received.length} events, lastReplayId ${info?.lastReplayId}, newest ${newest}`
    );
}

async function expectPublishRejected(what, client, wantErrorCode) {
    try {
        await client.publish(topic, makeEvent(99), 'node-interop-rejected');
        check(what, false, 'publish succeeded');
    } catch (err) {
        check(
            what,
            grpcCode(err) === UNAUTHENTICATED && errorCodeTrailer(err) === wantErrorCode,
            describe(err)
        );
    }
}

async function expectPublishBatchRejected(what, client, wantErrorCode) {
    // publishBatch opens its PublishStream before its GetTopic call and
    // attaches listeners only after GetTopic succeeds. When GetTopic fails,
    // that stream's own UNAUTHENTICATED error has no listener and surfaces as
    // an uncaught exception (a client bug, reported by eventbus' README).
    // Catch it here so that the stream's status is checked as well.
    let streamErr;
    let streamFailed;
    const failedOnce = new Promise((resolve) => {
        streamFailed = resolve;
    });
    const onUncaught = (err) => {
        streamErr = err;
        streamFailed();
    };
    process.on('uncaughtException', onUncaught);
    let callErr;
    try {
        await client.publishBatch(topic, [{ id: 'node-interop-rejected', payload: makeEvent(99) }], () => {});
    } catch (err) {
        callErr = err;
    }
    try {
        await within('the unauthenticated PublishStream to fail', (resolve) => failedOnce.then(resolve));
    } catch {
        // Reported by the check below (no stream error).
    } finally {
        process.off('uncaughtException', onUncaught);
    }
    check(
        what,
        grpcCode(callErr) === UNAUTHENTICATED &&
            errorCodeTrailer(callErr) === wantErrorCode &&
            grpcCode(streamErr) === UNAUTHENTICATED &&
            errorCodeTrailer(streamErr) === wantErrorCode,
        `call: ${callErr ? describe(callErr) : 'resolved'}; stream: ${streamErr ? describe(streamErr) : 'no error'}`
    );
}

// Subscribes to `topicName` and resolves with the stream's end: the events it
// delivered, the error the client reported and the final gRPC status.
function subscribeUntilStatus(client, topicName) {
    let events = 0;
    let error;
    return within(`the subscription to ${topicName} to end`, (resolve) => {
        client.subscribeFromEarliestEvent(
            topicName,
            (_info, type, data) => {
                if (type === 'event') events++;
                else if (type === 'error') error = data;
                // grpc-js reports the status after the error.
                else if (type === 'grpcStatus') resolve({ events, error, status: data });
            },
            3
        );
    });
}

async function expectSubscribeRejected(what, client, topicName, wantCodes, wantErrorCode) {
    try {
        const end = await subscribeUntilStatus(client, topicName);
        check(
            what,
            end.events === 0 &&
                wantCodes.includes(end.status.code) &&
                grpcCode(end.error) === end.status.code &&
                errorCodeTrailer(end.error) === wantErrorCode,
            `${end.events} events, status ${end.status.code}, ${describe(end.error)}`
        );
    } catch (err) {
        check(what, false, err.message);
    }
}

const ALREADY_ACTIVE = 'sfdc.platform.eventbus.grpc.managed.subscription.already.active';
const FAILED_PRECONDITION = 9;

// The managed subscription's stored commit, read with the eventbus CLI.
function storedCommit(name) {
    const out = execFileSync(
        process.env.EVENTBUS_BIN,
        ['managed', 'describe', name, '--json', '--server', endpoint, '--tls-ca', process.env.EVENTBUS_TLS_CA],
        { env: { ...process.env, EVENTBUS_ACCESS_TOKEN: token, EVENTBUS_TENANT_ID: tenant }, encoding: 'utf8' }
    );
    return JSON.parse(out).committed_replay_id;
}

function hexReplayId(n) {
    return BigInt(n).toString(16).padStart(16, '0');
}

// Consumes `n` events through subscribeWithManagedSubscription; `onEvent`
// sees each (the client, its subscription info, the event).
function consumeManaged(client, name, n, onEvent) {
    const events = [];
    return within(`${n} events from managed subscription ${name}`, (resolve, reject) => {
        client
            .subscribeWithManagedSubscription(
                name,
                (info, type, data) => {
                    if (type === 'event') {
                        events.push(data);
                        onEvent?.(info, data);
                    } else if (type === 'lastEvent') resolve(events);
                    else if (type === 'error') reject(new Error(`managed subscription error: ${describe(data)}`));
                },
                n
            )
            .catch(reject);
    });
}

// The first consumer runs in a process of its own (interop.js with
// EVENTBUS_MANAGED_CHILD set), because the client has no call to end a
// managed stream: close() stops new calls only, so the stream ends when the
// process does, as when a real consumer stops. It consumes 4 events from
// the default replay, commits the third, waits until the server stored the
// commit, checks that a second client is refused while it holds the
// subscription, and prints what it saw as one JSON line.
async function managedChild(instanceUrl, replayIds) {
    const name = 'Order_Processor'; // examples/topics/managed/Order_Processor.toml, EARLIEST
    const first = newClient('managed-1', token, tenant, instanceUrl);
    await first.connect();
    let subscriptionId;
    const got = await consumeManaged(first, name, 4, (info, ev) => {
        subscriptionId = info.subscriptionId;
        // Processed the third event: commit it, as a consumer would.
        if (ev.replayId === replayIds[2]) first.commitReplayId(info.subscriptionId, ev.replayId);
    });
    const want = hexReplayId(replayIds[2]);
    let stored;
    await within('the commit to be stored', (resolve) => {
        const poll = () => {
            stored = storedCommit(name);
            if (stored === want) resolve();
            else setTimeout(poll, 50); // polling the server's state, bounded by within()
        };
        poll();
    });
    const second = newClient('managed-2', token, tenant, instanceUrl);
    await second.connect();
    const refusal = await within('the second stream to be refused', (resolve) => {
        let error;
        second.subscribeWithManagedSubscription(
            name,
            (_info, type, data) => {
                if (type === 'error') error = data;
                else if (type === 'grpcStatus') resolve({ code: data.code, errorCode: errorCodeTrailer(error), detail: describe(error) });
            },
            1
        );
    });
    console.log(JSON.stringify({ got: got.map((e) => e.replayId), subscriptionId, stored, want, refusal }));
    process.exit(0);
}

async function managedPhase(instanceUrl) {
    const replayIds = published.map((p) => p.replayId);
    let child;
    try {
        const out = execFileSync(process.execPath, [process.argv[1], ...process.argv.slice(2)], {
            env: { ...process.env, EVENTBUS_MANAGED_CHILD: JSON.stringify(replayIds) },
            encoding: 'utf8',
            timeout: 2 * WAIT_MS
        });
        child = JSON.parse(out.trim().split('\n').pop());
    } catch (err) {
        check('the managed-subscription consumer process completes', false, `${err.message}\n${err.stdout ?? ''}`);
        return;
    }
    check(
        'subscribeWithManagedSubscription finds the subscription through the Tooling API query and delivers from its default replay (EARLIEST)',
        child.got.join() === replayIds.slice(0, 4).join() &&
            typeof child.subscriptionId === 'string' && child.subscriptionId.startsWith('18x') && child.subscriptionId.length === 18,
        `${child.got.join(', ')}; id ${child.subscriptionId}`
    );
    check('commitReplayId is stored on the server (managed describe)', child.stored === child.want, `${child.stored} != ${child.want}`);
    check(
        'a second concurrent stream is refused with status 9 and managed.subscription.already.active',
        child.refusal.code === FAILED_PRECONDITION && child.refusal.errorCode === ALREADY_ACTIVE,
        `status ${child.refusal.code}, ${child.refusal.detail}`
    );

    // The consumer process is gone: a new client resumes right after the
    // commit, with no gap and no re-delivery.
    const next = newClient('managed-3', token, tenant, instanceUrl);
    await next.connect();
    const rest = await consumeManaged(next, 'Order_Processor', replayIds.length - 3);
    next.close();
    check(
        `after the consumer process exits, a new client resumes right after the committed replay id (${replayIds.length - 3} events)`,
        rest.map((e) => e.replayId).join() === replayIds.slice(3).join(),
        rest.map((e) => e.replayId).join(', ')
    );
}

async function main() {
    const client = newClient('good', token, tenant);
    await client.connect();
    try {
        await publishPhase(client);
        await subscribePhase(client);
    } finally {
        client.close();
    }
    if (process.env.EVENTBUS_TOOLING_URL) await managedPhase(process.env.EVENTBUS_TOOLING_URL);

    // An unknown topic: the client's integration tests expect status 5 or 7.
    const unknown = '/event/No_Such_Event__e';
    const known = newClient('unknown-topic', token, tenant);
    await known.connect();
    try {
        await known.publish(unknown, makeEvent(0));
        check('publish to an unknown topic fails with status 5', false, 'publish succeeded');
    } catch (err) {
        check(
            'publish to an unknown topic fails with status 5 and topic.not.found',
            grpcCode(err) === NOT_FOUND && errorCodeTrailer(err) === TOPIC_NOT_FOUND,
            describe(err)
        );
    }
    await expectSubscribeRejected(
        'subscribe to an unknown topic ends with status 5 or 7, no events',
        known,
        unknown,
        [NOT_FOUND, PERMISSION_DENIED],
        TOPIC_NOT_FOUND
    );
    known.close();

    const wrong = newClient('wrong-token', `${token.slice(0, -4)}0000`, tenant);
    await wrong.connect();
    await expectPublishRejected('publish with a wrong token fails with status 16 and service.auth.error', wrong, AUTH_ERROR);
    await expectPublishBatchRejected(
        'publishBatch with a wrong token fails with status 16 and service.auth.error (GetTopic and PublishStream)',
        wrong,
        AUTH_ERROR
    );
    await expectSubscribeRejected(
        'subscribe with a wrong token ends with status 16 and service.auth.error, no events',
        wrong,
        topic,
        [UNAUTHENTICATED],
        AUTH_ERROR
    );
    wrong.close();

    // The right token, but the tenantid names another org (15-character id).
    const otherTenant = newClient('other-tenant', token, '00D000000000001');
    await otherTenant.connect();
    await expectPublishRejected(
        "publish with another org's tenantid fails with status 16 and auth.headers.invalid",
        otherTenant,
        HEADERS_INVALID
    );
    otherTenant.close();
}

if (process.env.EVENTBUS_MANAGED_CHILD) {
    await managedChild(process.env.EVENTBUS_TOOLING_URL, JSON.parse(process.env.EVENTBUS_MANAGED_CHILD));
}

let crashed;
try {
    await main();
} catch (err) {
    crashed = err;
    const causes = [];
    for (let c = err?.cause; c; c = c.cause) causes.push(`caused by: ${describe(c)}`);
    check('the run completes', false, [err?.stack ?? String(err), ...causes].join('\n    '));
}
if (failed === 0) {
    console.log(
        `node interop: salesforce-pubsub-api-client published ${published.length} events (2 unary, 2 PublishStream batches), ` +
            `received and decoded all with credit 3 then ${published.length - 3}, ` +
            (process.env.EVENTBUS_TOOLING_URL ? 'consumed, committed and resumed a managed subscription, ' : '') +
            'wrong credentials rejected with status 16'
    );
} else {
    console.log(`--- last client log lines (${crashed ? 'crashed' : 'failed'}) ---`);
    logLines.slice(-40).forEach((l) => console.log(l));
}
console.log(`${passed} passed, ${failed} failed`);
// The client leaves its cached PublishStream open, which would keep Node alive.
process.exit(failed === 0 ? 0 : 1);
