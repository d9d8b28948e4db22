// A real Node client, salesforce-pubsub-api-client, unchanged but for its login
// URL, reads eventbus Change Data Capture events and decodes them as it would a
// Salesforce org's:
//   - it logs in with `username-password` (SOAP login) and subscribes from
//     EARLIEST to /data/AccountChangeEvent and /data/ChangeEvents before any
//     change is made, so it sees the events live without racing the first one;
//   - the script changes records over the REST sObject API with fetch
//     (create, update of Name and two BillingAddress components, Phone set to
//     null, a compound component set to null, delete, a two-record composite
//     create, a Contact create and update);
//   - each event is checked as the client hands it over: changeType, recordIds,
//     changeOrigin, commitUser, transactionKey/sequenceNumber, body values, and
//     the field names the client decodes from the changedFields / nulledFields
//     bitmaps (`Name`, `BillingAddress.City`, `LastModifiedDate`, `Phone`...);
//   - the server runs with a first commit number above 2^53: the client must
//     hand over commitNumber exactly (its Avro long type yields a BigInt there).
// On /data/ChangeEvents, Account and Contact events carry different schema ids
// and the client decodes both.
//
// Usage: node cdc.js LOGIN_URL GRPC_ENDPOINT FIRST_COMMIT_NUMBER
// Prints one PASS or FAIL line per check and `N passed, N failed`; exits 1 on
// a failure.
import PubSubApiClient from 'salesforce-pubsub-api-client';

const [loginUrl, endpoint, firstCommitArg] = process.argv.slice(2);
const FIRST_COMMIT = BigInt(firstCommitArg);
const USERNAME = 'developer@example.com';
const PASSWORD = 'any-password';
const CALL_CLIENT = 'eventbus-cdc-example';
const REST_ORIGIN = 'com/salesforce/api/rest/62.0';
const WAIT_MS = 20000;
const api = `${loginUrl}/services/data/v62.0`;
let passed = 0;
let failed = 0;

// JSON for details: BigInt (commitNumber above 2^53) as `123n`.
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

// Checks that the decoded field names `names` hold every one of `want` and
// none of `absent`.
function names(what, got, want, absent = []) {
    const list = Array.isArray(got) ? got : [];
    const missing = want.filter((n) => !list.includes(n));
    const extra = absent.filter((n) => list.includes(n));
    return check(
        what,
        Array.isArray(got) && missing.length === 0 && extra.length === 0,
        `decoded ${show(got)}${missing.length ? `, missing ${show(missing)}` : ''}${extra.length ? `, unexpected ${show(extra)}` : ''}`
    );
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

// OAuth username-password login at the same HTTP listener: the bearer for the
// REST calls and the user id (last segment of the identity URL) that the
// change events must name as commitUser.
async function oauthLogin() {
    const res = await fetch(`${loginUrl}/services/oauth2/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
            grant_type: 'password',
            client_id: 'eventbus-cdc-example',
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
async function rest(token, method, path, body, extraHeaders = {}) {
    const res = await fetch(`${api}${path}`, {
        method,
        headers: {
            Authorization: `Bearer ${token}`,
            'Content-Type': 'application/json',
            ...extraHeaders
        },
        body: body === undefined ? undefined : JSON.stringify(body)
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

// The events a client subscription hands over, in the order of their replay
// ids (the client parses each batch in its own async handler, so a schema
// fetch can let a later batch's callback run first).
class Feed {
    constructor(client, topic, numRequested = null) {
        this.topic = topic;
        this.events = [];
        this.arrival = [];
        this.errors = [];
        this.waiters = [];
        client.subscribeFromEarliestEvent(
            topic,
            (info, type, data) => {
                if (type === 'event') {
                    this.events.push(data);
                    this.arrival.push(data.replayId);
                    this.events.sort((a, b) => a.replayId - b.replayId);
                } else if (type === 'error') {
                    this.errors.push(data);
                }
                this.waiters = this.waiters.filter((w) => !w());
            },
            numRequested
        );
    }

    // Resolves with the first `n` events once they are in, rejects after WAIT_MS.
    waitFor(n) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                reject(
                    new Error(
                        `timed out after ${WAIT_MS} ms on ${this.topic}: ${this.events.length} of ${n} events` +
                            (this.errors.length ? `, errors: ${this.errors.map((e) => e.stack ?? e.message ?? show(e)).join(' | ')}` : '')
                    )
                );
            }, WAIT_MS);
            const ready = () => {
                if (this.events.length < n) return false;
                clearTimeout(timer);
                resolve(this.events.slice(0, n));
                return true;
            };
            if (!ready()) this.waiters.push(ready);
        });
    }
}

const header = (e) => e.payload.ChangeEventHeader;

// The record changes, in order; returns the ids the REST API answered with.
async function makeChanges(token) {
    const created = await rest(
        token,
        'POST',
        '/sobjects/Account',
        { Name: 'Acme', BillingCity: 'Paris', Phone: '+33 1 23 45 67 89' },
        { 'Sforce-Call-Options': `client=${CALL_CLIENT}` }
    );
    check('REST: POST sobjects/Account answers 201 with an 001 id', created.status === 201 && /^001[0-9A-Za-z]{15}$/.test(created.body?.id), show(created));
    const acme = created.body.id;
    const updates = [
        { Name: 'Acme Corp', BillingCity: 'Lyon', BillingPostalCode: '69001' },
        { Phone: null },
        { BillingCity: null }
    ];
    for (const fields of updates) {
        const res = await rest(token, 'PATCH', `/sobjects/Account/${acme}`, fields);
        check(`REST: PATCH ${show(fields)} answers 204`, res.status === 204, show(res));
    }
    const deleted = await rest(token, 'DELETE', `/sobjects/Account/${acme}`);
    check('REST: DELETE answers 204', deleted.status === 204, show(deleted));
    const composite = await rest(token, 'POST', '/composite/sobjects', {
        allOrNone: true,
        records: [
            { attributes: { type: 'Account' }, Name: 'Alpha' },
            { attributes: { type: 'Account' }, Name: 'Beta' }
        ]
    });
    check(
        'REST: composite/sobjects creates two Accounts',
        composite.status === 200 && Array.isArray(composite.body) && composite.body.length === 2 && composite.body.every((r) => r.success === true),
        show(composite)
    );
    const contact = await rest(token, 'POST', '/sobjects/Contact', { LastName: 'Curie', FirstName: 'Marie', MailingCity: 'Paris' });
    check('REST: POST sobjects/Contact answers 201 with a 003 id', contact.status === 201 && /^003[0-9A-Za-z]{15}$/.test(contact.body?.id), show(contact));
    const renamed = await rest(token, 'PATCH', `/sobjects/Contact/${contact.body.id}`, { FirstName: 'Maria' });
    check('REST: PATCH Contact FirstName answers 204', renamed.status === 204, show(renamed));
    return { acme, alpha: composite.body[0].id, beta: composite.body[1].id, curie: contact.body.id };
}

// The Account events as the client decoded them from /data/AccountChangeEvent.
function checkAccountEvents(events, ids, userId) {
    const t = '/data/AccountChangeEvent';
    same(
        `${t}: changeType sequence`,
        events.map((e) => header(e).changeType),
        ['CREATE', 'UPDATE', 'UPDATE', 'UPDATE', 'DELETE', 'CREATE', 'CREATE']
    );
    same(
        `${t}: recordIds of each event`,
        events.map((e) => header(e).recordIds),
        [[ids.acme], [ids.acme], [ids.acme], [ids.acme], [ids.acme], [ids.alpha], [ids.beta]]
    );
    check(
        `${t}: every event is entityName Account, one schema id`,
        events.every((e) => header(e).entityName === 'Account' && e.schemaId === events[0].schemaId),
        show(events.map((e) => [header(e).entityName, e.schemaId]))
    );
    check(`${t}: commitUser is the logged-in user ${userId}`, events.every((e) => header(e).commitUser === userId), show(events.map((e) => header(e).commitUser)));
    const now = Date.now();
    check(
        `${t}: commitTimestamp is epoch ms of now (a number)`,
        events.every((e) => typeof header(e).commitTimestamp === 'number' && Math.abs(header(e).commitTimestamp - now) < 120000),
        show(events.map((e) => header(e).commitTimestamp))
    );

    const [create, update, nullPhone, nullCity, del, alpha, beta] = events;
    // CREATE: every populated field, nothing in the bitmaps.
    const c = create.payload;
    same(`${t}: CREATE changeOrigin names the Sforce-Call-Options client`, header(create).changeOrigin, `${REST_ORIGIN};client=${CALL_CLIENT}`);
    same(
        `${t}: CREATE carries Name, BillingAddress.City, Phone`,
        [c.Name, c.BillingAddress?.City, c.Phone],
        ['Acme', 'Paris', '+33 1 23 45 67 89']
    );
    check(`${t}: CREATE carries CreatedDate (epoch ms) and CreatedById`, typeof c.CreatedDate === 'number' && c.CreatedById === userId, show([c.CreatedDate, c.CreatedById]));
    same(
        `${t}: CREATE decodes empty changedFields, nulledFields, diffFields`,
        [header(create).changedFields, header(create).nulledFields, header(create).diffFields],
        [[], [], []]
    );
    same(`${t}: CREATE sequenceNumber 1`, header(create).sequenceNumber, 1);

    // UPDATE of Name, BillingCity and BillingPostalCode.
    const u = update.payload;
    same(`${t}: UPDATE without a client header has changeOrigin ${REST_ORIGIN}`, header(update).changeOrigin, REST_ORIGIN);
    names(
        `${t}: UPDATE changedFields decode to Name, BillingAddress.City, BillingAddress.PostalCode, LastModifiedDate`,
        header(update).changedFields,
        ['Name', 'BillingAddress.City', 'BillingAddress.PostalCode', 'LastModifiedDate'],
        ['Phone', 'BillingAddress', 'BillingAddress.Street', 'CreatedDate', 'OwnerId']
    );
    same(`${t}: UPDATE nulledFields decode empty`, header(update).nulledFields, []);
    same(
        `${t}: UPDATE carries the new Name, City, PostalCode and leaves the unchanged Phone and Street null`,
        [u.Name, u.BillingAddress?.City, u.BillingAddress?.PostalCode, u.Phone, u.BillingAddress?.Street ?? null],
        ['Acme Corp', 'Lyon', '69001', null, null]
    );
    check(`${t}: UPDATE carries LastModifiedDate (epoch ms)`, typeof u.LastModifiedDate === 'number', show(u.LastModifiedDate));

    // UPDATE setting Phone to null.
    same(`${t}: Phone set to null: nulledFields decode to [Phone]`, header(nullPhone).nulledFields, ['Phone']);
    names(`${t}: Phone set to null: changedFields decode to Phone, LastModifiedDate`, header(nullPhone).changedFields, ['Phone', 'LastModifiedDate'], ['Name']);
    same(`${t}: Phone set to null: Phone and the unchanged Name are null`, [nullPhone.payload.Phone, nullPhone.payload.Name], [null, null]);

    // UPDATE setting one compound component to null: only a nested bitmap
    // names it, and the client decodes nested entries only after a top-level one.
    same(`${t}: BillingCity set to null: nulledFields decode to [BillingAddress.City]`, header(nullCity).nulledFields, ['BillingAddress.City']);
    names(
        `${t}: BillingCity set to null: changedFields decode to BillingAddress.City, LastModifiedDate`,
        header(nullCity).changedFields,
        ['BillingAddress.City', 'LastModifiedDate'],
        ['BillingAddress.PostalCode', 'Phone']
    );

    // DELETE: header only.
    same(`${t}: DELETE has every body field null (Name, Phone)`, [del.payload.Name, del.payload.Phone], [null, null]);
    same(`${t}: DELETE decodes empty changedFields`, header(del).changedFields, []);

    // The composite create: one transaction, two events.
    check(
        `${t}: the composite create is one transaction (same transactionKey), sequenceNumber 1 and 2`,
        header(alpha).transactionKey === header(beta).transactionKey && header(alpha).sequenceNumber === 1 && header(beta).sequenceNumber === 2,
        show([alpha, beta].map((e) => [header(e).transactionKey, header(e).sequenceNumber]))
    );
    const keys = new Set(events.map((e) => header(e).transactionKey));
    check(`${t}: other changes are transactions of their own (6 transactionKeys for 7 events)`, keys.size === 6, show([...keys]));
    same(`${t}: the composite records carry their names`, [alpha.payload.Name, beta.payload.Name], ['Alpha', 'Beta']);

    // commitNumber above 2^53, exactly.
    const commits = events.map((e) => header(e).commitNumber);
    console.log(`info - the client yields commitNumber as ${typeof commits[0]}: ${show(commits)}`);
    check(
        `${t}: the first commitNumber is exactly ${FIRST_COMMIT} (above 2^53), as a BigInt`,
        typeof commits[0] === 'bigint' && commits[0] === FIRST_COMMIT,
        `${typeof commits[0]} ${show(commits[0])}`
    );
    check(
        `${t}: commitNumbers are exact BigInts that grow per transaction and repeat within one`,
        commits.every((n) => typeof n === 'bigint') &&
            commits.every((n, i) => i === 0 || (i === 6 ? n === commits[5] : n > commits[i - 1])),
        show(commits)
    );
}

// The mixed channel: Account and Contact events, each with its own schema.
function checkChangeEvents(events, accountEvents, ids) {
    const t = '/data/ChangeEvents';
    same(
        `${t}: the entity and changeType sequence`,
        events.map((e) => `${header(e).entityName} ${header(e).changeType}`),
        [
            'Account CREATE',
            'Account UPDATE',
            'Account UPDATE',
            'Account UPDATE',
            'Account DELETE',
            'Account CREATE',
            'Account CREATE',
            'Contact CREATE',
            'Contact UPDATE'
        ]
    );
    const accounts = events.filter((e) => header(e).entityName === 'Account');
    const contacts = events.filter((e) => header(e).entityName === 'Contact');
    check(
        `${t}: the Account events match /data/AccountChangeEvent (schema id, transactionKey, commitNumber, decoded changedFields)`,
        accounts.length === accountEvents.length &&
            accounts.every(
                (e, i) =>
                    e.schemaId === accountEvents[i].schemaId &&
                    header(e).transactionKey === header(accountEvents[i]).transactionKey &&
                    header(e).commitNumber === header(accountEvents[i]).commitNumber &&
                    show(header(e).changedFields) === show(header(accountEvents[i]).changedFields)
            ),
        show(accounts.map((e) => [e.schemaId, header(e).transactionKey, header(e).commitNumber]))
    );
    check(
        `${t}: Contact events have a schema id of their own`,
        contacts.length === 2 && contacts[0].schemaId === contacts[1].schemaId && contacts[0].schemaId !== accounts[0]?.schemaId,
        show(events.map((e) => [header(e).entityName, e.schemaId]))
    );
    if (contacts.length !== 2) return;
    const [create, update] = contacts;
    same(`${t}: Contact recordIds`, contacts.map((e) => header(e).recordIds), [[ids.curie], [ids.curie]]);
    same(
        `${t}: Contact CREATE decodes the Name and MailingAddress records`,
        [create.payload.Name?.FirstName, create.payload.Name?.LastName, create.payload.MailingAddress?.City],
        ['Marie', 'Curie', 'Paris']
    );
    names(
        `${t}: Contact UPDATE changedFields decode to Name.FirstName, LastModifiedDate`,
        header(update).changedFields,
        ['Name.FirstName', 'LastModifiedDate'],
        ['Name', 'Name.LastName', 'MailingAddress.City']
    );
    same(`${t}: Contact UPDATE carries the new FirstName only`, [update.payload.Name?.FirstName, update.payload.Name?.LastName ?? null], ['Maria', null]);
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
    // Subscribed before the first change, from EARLIEST: the events arrive
    // live, and none is missed if a change commits before the server has
    // registered the subscription.
    const accountFeed = new Feed(client, '/data/AccountChangeEvent');
    const mixedFeed = new Feed(client, '/data/ChangeEvents');

    const ids = await makeChanges(token);
    const accountEvents = await accountFeed.waitFor(7);
    check('pubsub client: /data/AccountChangeEvent delivers 7 events, none fails to parse', accountFeed.errors.length === 0, show(accountFeed.errors.map(String)));
    checkAccountEvents(accountEvents, ids, userId);
    const mixed = await mixedFeed.waitFor(9);
    check('pubsub client: /data/ChangeEvents delivers 9 events, none fails to parse', mixedFeed.errors.length === 0, show(mixedFeed.errors.map(String)));
    checkChangeEvents(mixed, accountEvents, ids);

    // A late reader: /data/ContactChangeEvent from EARLIEST, for two events.
    const contactFeed = new Feed(client, '/data/ContactChangeEvent', 2);
    const contactEvents = await contactFeed.waitFor(2);
    same(
        '/data/ContactChangeEvent: a reader from EARLIEST gets the Contact CREATE and UPDATE, same schema id as on /data/ChangeEvents',
        contactEvents.map((e) => [header(e).changeType, e.schemaId, header(e).transactionKey]),
        mixed.slice(7).map((e) => [header(e).changeType, e.schemaId, header(e).transactionKey])
    );
    if (show(accountFeed.arrival) !== show([...accountFeed.arrival].sort((a, b) => a - b))) {
        console.log(`info - the client handed /data/AccountChangeEvent over out of replay order: ${show(accountFeed.arrival)}`);
    }
} catch (e) {
    check('no unexpected error', false, e?.stack ?? String(e));
}
for (const client of clients) client.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
