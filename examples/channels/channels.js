// A real Node client, salesforce-pubsub-api-client, unchanged but for its login
// URL, reads eventbus custom channels as it would a Salesforce org's:
//   - the script defines channels over the Tooling REST API with fetch, as an
//     admin tool does: PlatformEventChannel (the channel) and
//     PlatformEventChannelMember (its source entity, filter expression and
//     enriched fields);
//   - the client subscribes to each channel from EARLIEST before anything is
//     published, so it sees the events live without racing the first one;
//   - events go to the source /event/Order_Event__e with the client's gRPC
//     publish and over the REST sObject API; each channel must hand over
//     exactly the events that pass its filter, in order, with the source
//     event's payload and schema id, and nothing else: after the last expected
//     event the script waits for a keepalive (the server runs with
//     `--keepalive 1s`) and checks that its latest replay id is the last
//     event's, i.e. the subscription has caught up with the channel and the
//     channel holds nothing more;
//   - a filter that does not parse is refused with its position, and a filter
//     changed with PATCH applies to the events published after the change;
//   - a data channel over AccountChangeEvent with a changeType filter and an
//     enriched field: an Account create is not delivered, its update is, with
//     the enriched Industry although it did not change (and the changedFields
//     the client decodes do not name it).
//
// Usage: node channels.js LOGIN_URL GRPC_ENDPOINT
// Prints one PASS or FAIL line per check and `N passed, N failed`; exits 1 on
// a failure.
import PubSubApiClient from 'salesforce-pubsub-api-client';

const [loginUrl, endpoint] = process.argv.slice(2);
const USERNAME = 'developer@example.com';
const PASSWORD = 'any-password';
const WAIT_MS = 20000;
// A keepalive is due every second (run.sh); several missed ones are a failure.
const KEEPALIVE_WAIT_MS = 10000;
const api = `${loginUrl}/services/data/v62.0`;
const tooling = `/tooling/sobjects`;
const SOURCE = '/event/Order_Event__e';
let passed = 0;
let failed = 0;

const show = (v) => JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? `${x}n` : x));

function check(what, ok, detail) {
    if (ok) {
        passed++;
        console.log(`PASS - ${what}`);
    } else {
        failed++;
        console.log(`FAIL - ${what}${detail === undefined ? '' : `: ${detail}`}`);
    }
    return ok;
}

// Checks that `got` equals `want` (compared as JSON), showing both on a failure.
function same(what, got, want) {
    return check(what, show(got) === show(want), `got ${show(got)}, want ${show(want)}`);
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

// OAuth username-password login at the HTTP listener: the bearer for the REST
// and Tooling calls, and the user id for the events' CreatedById.
async function oauthLogin() {
    const res = await fetch(`${loginUrl}/services/oauth2/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
            grant_type: 'password',
            client_id: 'eventbus-channels-example',
            client_secret: 'any-secret',
            username: USERNAME,
            password: PASSWORD
        })
    });
    const body = await res.json();
    if (res.status !== 200 || typeof body.access_token !== 'string') {
        throw new Error(`OAuth login answered ${res.status}: ${show(body)}`);
    }
    return { token: body.access_token, userId: String(body.id).split('/').pop() };
}

// A REST call; returns the status and the parsed body (undefined when empty).
async function rest(token, method, path, body) {
    const res = await fetch(`${api}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body)
    });
    const text = await res.text();
    let parsed;
    try {
        parsed = text ? JSON.parse(text) : undefined;
    } catch {
        parsed = text;
    }
    return { status: res.status, body: parsed };
}

// The events a client subscription hands over, in the order of their replay
// ids (the client parses each batch in its own async handler), and the
// latest replay ids its keepalives carry.
class Feed {
    constructor(client, topic) {
        this.topic = topic;
        this.events = [];
        this.errors = [];
        this.keepalives = [];
        this.waiters = [];
        client.subscribeFromEarliestEvent(topic, (info, type, data) => {
            if (type === 'event') {
                this.events.push(data);
                this.events.sort((a, b) => a.replayId - b.replayId);
            } else if (type === 'grpcKeepAlive') {
                this.keepalives.push(info.lastReplayId);
            } else if (type === 'error') {
                this.errors.push(data);
            }
            this.waiters = this.waiters.filter((w) => !w());
        });
    }

    // Resolves once `ready()` holds, rejects after `ms` with `what`.
    until(ready, ms, what) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                reject(
                    new Error(
                        `timed out after ${ms} ms on ${this.topic} waiting for ${what}: ${this.events.length} events, ${this.keepalives.length} keepalives` +
                            (this.errors.length ? `, errors: ${this.errors.map((e) => e.stack ?? e.message ?? show(e)).join(' | ')}` : '')
                    )
                );
            }, ms);
            const done = () => {
                if (!ready()) return false;
                clearTimeout(timer);
                resolve();
                return true;
            };
            if (!done()) this.waiters.push(done);
        });
    }

    // Waits for `n` events in all, then for the next keepalive: resolves with
    // every event handed over by then and that keepalive's latest replay id.
    async caughtUp(n) {
        await this.until(() => this.events.length >= n, WAIT_MS, `${n} events`);
        const seen = this.keepalives.length;
        await this.until(() => this.keepalives.length > seen, KEEPALIVE_WAIT_MS, 'a keepalive');
        return { events: [...this.events], latest: this.keepalives[this.keepalives.length - 1] };
    }
}

const orderNumbers = (events) => events.map((e) => e.payload.OrderNumber__c);

// Checks that a channel feed holds exactly the orders `want` (by
// OrderNumber__c, in order) once caught up, each with its source event's
// payload and schema id, and that a keepalive names the last one's replay id.
async function exactly(feed, want, source, label) {
    const t = feed.topic;
    const { events, latest } = await feed.caughtUp(want.length);
    same(`${t}: ${label}: exactly ${want.length} events, ${want.join(', ')}, in order`, orderNumbers(events), want);
    check(`${t}: ${label}: no event fails to parse`, feed.errors.length === 0, show(feed.errors.map(String)));
    const last = events[events.length - 1]?.replayId;
    check(
        `${t}: ${label}: a keepalive after the last event carries its replay id ${last} (nothing more on the channel)`,
        latest === last && events.length === want.length,
        `keepalive latest replay id ${latest}, events ${show(events.map((e) => [e.replayId, e.payload.OrderNumber__c]))}`
    );
    if (source) {
        const bySource = new Map(source.events.map((e) => [e.payload.OrderNumber__c, e]));
        const differ = events.filter((e) => {
            const s = bySource.get(e.payload.OrderNumber__c);
            return !s || s.schemaId !== e.schemaId || show(s.payload) !== show(e.payload);
        });
        check(
            `${t}: ${label}: each event has its ${SOURCE} event's payload and schema id`,
            differ.length === 0,
            show(differ.map((e) => [e.schemaId, e.payload, bySource.get(e.payload.OrderNumber__c)]))
        );
    }
    return events;
}

// An Order_Event__e payload for the client's publish (Avro unions wrapped).
function order(userId, number, amount, status) {
    return {
        CreatedDate: Date.now(),
        CreatedById: userId,
        OrderNumber__c: { string: number },
        Amount__c: amount === null ? null : { double: amount },
        Status__c: status === null ? null : { string: status }
    };
}

async function createChannel(token, name, channelType, label) {
    const res = await rest(token, 'POST', `${tooling}/PlatformEventChannel`, {
        FullName: name,
        Metadata: { channelType, label }
    });
    check(
        `Tooling: POST PlatformEventChannel ${name} (${channelType}) answers 201 with a 0YL id`,
        res.status === 201 && res.body?.success === true && /^0YL[0-9A-Za-z]{15}$/.test(res.body?.id ?? ''),
        show(res)
    );
    return res.body?.id;
}

async function createMember(token, fullName, metadata) {
    const res = await rest(token, 'POST', `${tooling}/PlatformEventChannelMember`, { FullName: fullName, Metadata: metadata });
    check(
        `Tooling: POST PlatformEventChannelMember ${fullName} (${show(metadata.filterExpression)}) answers 201`,
        res.status === 201 && res.body?.success === true && typeof res.body?.id === 'string',
        show(res)
    );
    return res.body?.id;
}

async function members(token) {
    const q = encodeURIComponent('SELECT Id, DeveloperName, FilterExpression FROM PlatformEventChannelMember');
    const res = await rest(token, 'GET', `/tooling/query?q=${q}`);
    return res;
}

const BIG = 'Big_Orders__chn';
const BIG_FILTER = "Amount__c > 1000 AND Status__c = 'NEW'";
const BIG_PATCHED = "Status__c = 'SHIPPED' AND Amount__c > 100";
const SMALL = 'Small_Or_Cancelled__chn';
const SMALL_FILTER = "Amount__c <= 1000 OR Status__c IN ('CANCELLED')";

// The first batch, published with the client: [number, amount, status].
// Big_Orders__chn takes O-01, O-04, O-07, O-09; Small_Or_Cancelled__chn takes
// O-02, O-05, O-10 (a null Amount__c passes no ordering comparison).
const BATCH1 = [
    ['O-01', 2500, 'NEW'],
    ['O-02', 500, 'NEW'],
    ['O-03', 1500, 'SHIPPED'],
    ['O-04', 1200, 'NEW'],
    ['O-05', 1000, 'NEW'],
    ['O-06', null, 'NEW'],
    ['O-07', 99999, 'NEW'],
    ['O-08', 3000, null],
    ['O-09', 1000.5, 'NEW'],
    ['O-10', 20, 'CANCELLED']
];
// The second batch, over REST after Big_Orders__chn's filter becomes
// BIG_PATCHED: Big takes P-02 and P-04 (not P-01, which the old filter took);
// Small takes P-02 and P-03.
const BATCH2 = [
    ['P-01', 2000, 'NEW'],
    ['P-02', 500, 'SHIPPED'],
    ['P-03', 50, 'SHIPPED'],
    ['P-04', 1500, 'SHIPPED']
];

async function eventChannels(client, token, userId) {
    await createChannel(token, BIG, 'event', 'Big orders');
    const bigMember = await createMember(token, 'Big_Orders_chn_Order_Event_e', {
        eventChannel: BIG,
        selectedEntity: 'Order_Event__e',
        filterExpression: BIG_FILTER
    });
    await createChannel(token, SMALL, 'event', 'Small or cancelled orders');
    await createMember(token, 'Small_Or_Cancelled_chn_Order_Event_e', {
        eventChannel: SMALL,
        selectedEntity: 'Order_Event__e',
        filterExpression: SMALL_FILTER
    });

    // Filters that do not parse or do not fit the entity are refused, with
    // the position of what is wrong.
    for (const [filter, position] of [
        ['Amount__c >> 1000', 12],
        ["Status__c = 'NEW' AND Nope__c = 1", 23]
    ]) {
        const res = await rest(token, 'POST', `${tooling}/PlatformEventChannelMember`, {
            FullName: 'Big_Orders_chn_Bad',
            Metadata: { eventChannel: BIG, selectedEntity: 'Order_Event__e', filterExpression: filter }
        });
        const err = Array.isArray(res.body) ? res.body[0] : undefined;
        check(
            `Tooling: filter ${show(filter)} is refused: 400 FIELD_INTEGRITY_EXCEPTION naming filterExpression at character ${position}`,
            res.status === 400 &&
                err?.errorCode === 'FIELD_INTEGRITY_EXCEPTION' &&
                typeof err?.message === 'string' &&
                err.message.startsWith('filterExpression') &&
                err.message.endsWith(`(at character ${position})`),
            show(res)
        );
    }
    const listed = await members(token);
    same(
        'Tooling query: the two members with their filters, no refused one',
        listed.status === 200 ? (listed.body?.records ?? []).map((r) => [r.DeveloperName, r.FilterExpression]).sort() : listed,
        [
            ['Big_Orders_chn_Order_Event_e', BIG_FILTER],
            ['Small_Or_Cancelled_chn_Order_Event_e', SMALL_FILTER]
        ]
    );

    const source = new Feed(client, SOURCE);
    const big = new Feed(client, `/event/${BIG}`);
    const small = new Feed(client, `/event/${SMALL}`);

    const published = [];
    for (const [number, amount, status] of BATCH1) {
        try {
            const r = await client.publish(SOURCE, order(userId, number, amount, status));
            published.push(r.replayId);
        } catch (e) {
            check(`pubsub client: publish ${number} to ${SOURCE}`, false, e?.cause?.message ?? e?.message ?? String(e));
        }
    }
    check(`pubsub client: ${BATCH1.length} events published to ${SOURCE}`, published.length === BATCH1.length, show(published));

    await exactly(source, BATCH1.map((o) => o[0]), null, 'the source');
    await exactly(big, ['O-01', 'O-04', 'O-07', 'O-09'], source, BIG_FILTER);
    await exactly(small, ['O-02', 'O-05', 'O-10'], source, SMALL_FILTER);

    // The filter changes: events published after the change follow the new one.
    const patched = await rest(token, 'PATCH', `${tooling}/PlatformEventChannelMember/${bigMember}`, {
        Metadata: { filterExpression: BIG_PATCHED }
    });
    same(`Tooling: PATCH the ${BIG} member's filterExpression answers 204`, patched.status, 204);
    const after = await members(token);
    same(
        `Tooling query: the ${BIG} member now has the new filter`,
        (after.body?.records ?? []).filter((r) => r.Id === bigMember).map((r) => r.FilterExpression),
        [BIG_PATCHED]
    );
    for (const [number, amount, status] of BATCH2) {
        const res = await rest(token, 'POST', '/sobjects/Order_Event__e', {
            OrderNumber__c: number,
            Amount__c: amount,
            Status__c: status
        });
        check(`REST: POST sobjects/Order_Event__e ${number} answers 201`, res.status === 201 && res.body?.success === true, show(res));
    }
    const all = [...BATCH1, ...BATCH2].map((o) => o[0]);
    await exactly(source, all, null, 'the source, after the REST publishes');
    await exactly(big, ['O-01', 'O-04', 'O-07', 'O-09', 'P-02', 'P-04'], source, `after PATCH to ${BIG_PATCHED}`);
    await exactly(small, ['O-02', 'O-05', 'O-10', 'P-02', 'P-03'], source, `${SMALL_FILTER}, REST publishes`);
}

const header = (e) => e.payload.ChangeEventHeader;

async function dataChannel(client, token) {
    const name = 'Account_Updates__chn';
    await createChannel(token, name, 'data', 'Account updates');
    await createMember(token, 'Account_Updates_chn_AccountChangeEvent', {
        eventChannel: name,
        selectedEntity: 'AccountChangeEvent',
        filterExpression: "ChangeEventHeader.changeType = 'UPDATE'",
        enrichedFields: [{ name: 'Industry' }]
    });
    const feed = new Feed(client, `/data/${name}`);

    const created = await rest(token, 'POST', '/sobjects/Account', { Name: 'Globex', Industry: 'Energy', Phone: '555-0100' });
    check('REST: POST sobjects/Account answers 201 with an 001 id', created.status === 201 && /^001[0-9A-Za-z]{15}$/.test(created.body?.id ?? ''), show(created));
    const id = created.body?.id;
    const updated = await rest(token, 'PATCH', `/sobjects/Account/${id}`, { Name: 'Globex Corp' });
    same('REST: PATCH Account Name answers 204', updated.status, 204);
    const deleted = await rest(token, 'DELETE', `/sobjects/Account/${id}`);
    same('REST: DELETE Account answers 204', deleted.status, 204);

    const t = feed.topic;
    const { events, latest } = await feed.caughtUp(1);
    same(`${t}: only the UPDATE is delivered (not the CREATE or DELETE)`, events.map((e) => header(e)?.changeType), ['UPDATE']);
    check(`${t}: no event fails to parse`, feed.errors.length === 0, show(feed.errors.map(String)));
    check(
        `${t}: a keepalive after the UPDATE carries its replay id (nothing more on the channel)`,
        events.length === 1 && latest === events[0].replayId,
        `keepalive latest replay id ${latest}, replay ids ${show(events.map((e) => e.replayId))}`
    );
    if (events.length === 0) return;
    const u = events[0];
    same(`${t}: the UPDATE names the Account and entity`, [header(u).entityName, header(u).recordIds], ['Account', [id]]);
    same(`${t}: the UPDATE carries the new Name`, u.payload.Name, 'Globex Corp');
    same(`${t}: the UPDATE carries the enriched Industry although it did not change`, u.payload.Industry, 'Energy');
    same(`${t}: the unchanged, not enriched Phone is null`, u.payload.Phone ?? null, null);
    const changed = header(u).changedFields;
    check(
        `${t}: changedFields decode to Name and LastModifiedDate, not Industry`,
        Array.isArray(changed) && changed.includes('Name') && changed.includes('LastModifiedDate') && !changed.includes('Industry'),
        `decoded ${show(changed)}`
    );
}

const clients = [];
try {
    const { token, userId } = await oauthLogin();
    check('OAuth username-password login at the HTTP listener gives a bearer and a 005 user id', /^005[0-9A-Za-z]{15}$/.test(userId), userId);

    const client = new PubSubApiClient(
        {
            authType: 'username-password',
            loginUrl,
            username: USERNAME,
            password: PASSWORD,
            userToken: '',
            pubSubEndpoint: endpoint,
            rejectUnauthorizedSsl: false
        },
        quiet
    );
    clients.push(client);
    await client.connect();
    check('pubsub client: username-password login connects', true);

    await eventChannels(client, token, userId);
    await dataChannel(client, token);
} catch (e) {
    check('no unexpected error', false, e?.stack ?? String(e));
}
for (const client of clients) client.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
