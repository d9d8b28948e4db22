// Real clients, unchanged but for their login URL, log in to eventbus as to a
// Salesforce org and publish and read events:
//   - jsforce logs in with SOAP `login`, publishes through the REST sObject
//     API (`sobject().create`, one record and a list, which jsforce sends to
//     composite/sobjects), and reads the org's limits;
//   - salesforce-pubsub-api-client logs in with `username-password` (jsforce's
//     SOAP login inside) and with `oauth-client-credentials` (token endpoint,
//     then userinfo), and reads the REST-published events back over gRPC.
//
// Usage: node login.js LOGIN_URL GRPC_ENDPOINT TOPIC_NAME OBJECT_NAME
// With EVENTBUS_STRICT=1 (a server with an org users file) it also checks that
// a wrong password and a wrong client secret are refused.
// Prints one line per check and `N passed, N failed`; exits 1 on a failure.
import jsforce from 'jsforce';
import PubSubApiClient from 'salesforce-pubsub-api-client';

const [loginUrl, endpoint, topic, object] = process.argv.slice(2);
const strict = process.env.EVENTBUS_STRICT === '1';
const USERNAME = 'developer@example.com';
const PASSWORD = 'any-password';
const CLIENT_ID = 'eventbus-dev-app';
const CLIENT_SECRET = 'any-secret';
const WAIT_MS = 20000;
let passed = 0;
let failed = 0;

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

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

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

// Reads `n` events from EARLIEST with a client and returns their payloads.
async function readEarliest(client, n) {
    return within(`${n} events`, (resolve, reject) => {
        const got = [];
        client.subscribeFromEarliestEvent(
            topic,
            (info, type, data) => {
                if (type === 'event') {
                    got.push(data.payload);
                    if (got.length === n) resolve(got);
                } else if (type === 'error') {
                    reject(data);
                }
            },
            n
        );
    });
}

async function jsforceSteps() {
    const conn = new jsforce.Connection({ loginUrl, version: '62.0' });
    const info = await conn.login(USERNAME, PASSWORD);
    check('jsforce: SOAP login gives a session', typeof conn.accessToken === 'string' && conn.accessToken.length > 0);
    check(
        'jsforce: the login names an org id and a user id',
        /^00D[0-9A-Za-z]{15}$/.test(info.organizationId) && /^005[0-9A-Za-z]{15}$/.test(info.id),
        JSON.stringify(info)
    );
    check('jsforce: instanceUrl is the server', conn.instanceUrl.startsWith('https://'), conn.instanceUrl);

    const one = await conn.sobject(object).create({ OrderNumber__c: 'JS-1', Amount__c: 1.5 });
    check('jsforce: sobject().create publishes one event', one.success === true && typeof one.id === 'string', JSON.stringify(one));

    const two = await conn.sobject(object).create(
        [
            { OrderNumber__c: 'JS-2', Amount__c: 2.5 },
            { OrderNumber__c: 'JS-3', Status__c: 'New' }
        ],
        { allOrNone: true }
    );
    check(
        'jsforce: a list of records publishes through composite/sobjects',
        Array.isArray(two) && two.length === 2 && two.every((r) => r.success === true),
        JSON.stringify(two)
    );

    let refused;
    try {
        await conn.sobject(object).create({ No_Such_Field__c: 'x' });
    } catch (e) {
        refused = e;
    }
    check(
        'jsforce: an unknown field is refused with INVALID_FIELD',
        refused !== undefined && String(refused.errorCode ?? refused.name).includes('INVALID_FIELD'),
        refused === undefined ? 'it was accepted' : `${refused.errorCode ?? refused.name}: ${refused.message}`
    );
    return conn;
}

async function pubsubSteps() {
    const byPassword = new PubSubApiClient(
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
    await byPassword.connect();
    check('pubsub client: username-password login connects', true);
    const payloads = await readEarliest(byPassword, 3);
    const numbers = payloads.map((p) => p.OrderNumber__c);
    check(
        'pubsub client: the REST-published events are read over gRPC, in order',
        JSON.stringify(numbers) === JSON.stringify(['JS-1', 'JS-2', 'JS-3']),
        JSON.stringify(payloads)
    );
    check(
        'pubsub client: the server filled CreatedDate and CreatedById',
        payloads.every((p) => Number(p.CreatedDate) > 0 && /^005/.test(p.CreatedById)),
        JSON.stringify(payloads[0])
    );
    byPassword.close();

    const byClient = new PubSubApiClient(
        {
            authType: 'oauth-client-credentials',
            loginUrl,
            clientId: CLIENT_ID,
            clientSecret: CLIENT_SECRET,
            pubSubEndpoint: endpoint,
            rejectUnauthorizedSsl: false
        },
        quiet
    );
    await byClient.connect();
    check('pubsub client: oauth-client-credentials login connects (token, then userinfo)', true);
    const published = await byClient.publish(topic, {
        CreatedDate: Date.now(),
        CreatedById: '005000000000001AAA',
        OrderNumber__c: { string: 'OAUTH-1' },
        Amount__c: null,
        Status__c: null
    });
    check(
        'pubsub client: publishes with the OAuth session',
        published && published.replayId !== undefined,
        JSON.stringify(published, (k, v) => (typeof v === 'bigint' ? v.toString() : v))
    );
    byClient.close();
}

// A server with an org users file refuses wrong credentials as Salesforce does.
async function refusals() {
    let soap;
    try {
        await new jsforce.Connection({ loginUrl, version: '62.0' }).login(USERNAME, 'wrong-password');
    } catch (e) {
        soap = e;
    }
    check(
        'jsforce: a wrong password is refused with INVALID_LOGIN',
        soap !== undefined && String(soap.name ?? '').concat(String(soap.message)).includes('INVALID_LOGIN'),
        soap === undefined ? 'it logged in' : `${soap.name}: ${soap.message}`
    );
    const byClient = new PubSubApiClient(
        {
            authType: 'oauth-client-credentials',
            loginUrl,
            clientId: CLIENT_ID,
            clientSecret: 'wrong-secret',
            pubSubEndpoint: endpoint,
            rejectUnauthorizedSsl: false
        },
        quiet
    );
    let oauth;
    try {
        await byClient.connect();
    } catch (e) {
        oauth = e;
    }
    check(
        'pubsub client: a wrong client secret is refused (invalid_client)',
        oauth !== undefined && `${oauth.message} ${oauth.cause?.message}`.includes('invalid_client'),
        oauth === undefined ? 'it connected' : `${oauth.message} (${oauth.cause?.message})`
    );
}

try {
    await jsforceSteps();
    await pubsubSteps();
    if (strict) await refusals();
} catch (e) {
    check('no unexpected error', false, e?.stack ?? String(e));
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
