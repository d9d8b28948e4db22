// A small client for eventbus (the Salesforce Pub/Sub API), shared by
// sales.js and fulfillment.js.
//
// It holds what every Pub/Sub API program needs and nothing about orders:
// the gRPC client and call headers, Avro encoding with the topic's schema
// (fetched once per schema id with GetSchema), unary Publish, a managed
// subscription with commits and a keepalive timeout, and readToEnd, which
// replays a topic from EARLIEST up to its newest event.
//
// The protos are this repo's own, loaded at run time by @grpc/proto-loader.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import avro from 'avsc';

const protoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../proto');
const definition = protoLoader.loadSync(
    ['eventbus/v1/pubsub_api.proto', 'eventbus/admin/v1/admin.proto'],
    // keepCase: fields keep the proto's names (replay_id, not replayId).
    { includeDirs: [protoRoot], keepCase: true, longs: String, enums: String, defaults: true }
);
const { eventbus } = grpc.loadPackageDefinition(definition);

// eventbus with `--auth none` ignores these headers; a server with
// `--auth static` or `jwt` needs a real token and the token's tenant.
const HEADERS = {
    accesstoken: '00D000000000001!order-fulfillment-example',
    instanceurl: 'https://example.my.salesforce.com',
    tenantid: '00D000000000000EAA'
};
// The user id a program writes into CreatedById (user ids start with 005).
export const USER_ID = '005000000000001AAA';
const UNARY_TIMEOUT_MS = 30000;
// Salesforce sends a keepalive on an idle subscription at least every 270 s;
// a stream silent for longer than this is presumed dead.
export const KEEPALIVE_TIMEOUT_MS = 300000;

/** A stream sent nothing, not even a keepalive, for too long. */
export class KeepaliveTimeout extends Error {}

/** Progress goes to stderr, so stdout stays machine-readable. */
export function log(program, message) {
    console.error(`${new Date().toISOString().slice(11, 19)} ${program}: ${message}`);
}

/** A failed call in one line: status and message, and Salesforce's
 * `error-code` trailer when there is one. */
export function describe(err) {
    const code = err.metadata && err.metadata.get('error-code')[0];
    return code ? `${err.message} [${code}]` : err.message;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One Avro schema, parsed once. Payloads are plain binary datums. */
export class Schema {
    constructor(id, schemaJson) {
        this.id = id;
        this.type = avro.Type.forSchema(JSON.parse(schemaJson));
    }

    encode(record) {
        return this.type.toBuffer(record);
    }

    decode(payload) {
        return this.type.fromBuffer(payload);
    }
}

export class Bus {
    constructor(server) {
        const credentials = grpc.credentials.createInsecure();
        this.client = new eventbus.v1.PubSub(server, credentials);
        this.admin = new eventbus.admin.v1.Admin(server, credentials);
        this.metadata = new grpc.Metadata();
        for (const [key, value] of Object.entries(HEADERS)) this.metadata.set(key, value);
        this.schemas = new Map(); // schema id -> Promise of a Schema
    }

    close() {
        this.client.close();
        this.admin.close();
    }

    /** A unary call as a promise. */
    unary(client, method, request) {
        const deadline = Date.now() + UNARY_TIMEOUT_MS;
        return new Promise((resolve, reject) => {
            client[method](request, this.metadata, { deadline }, (err, response) =>
                err ? reject(err) : resolve(response)
            );
        });
    }

    /** GetSchema, once per id: a schema id never changes meaning. */
    schema(schemaId) {
        if (!this.schemas.has(schemaId)) {
            const schema = this.unary(this.client, 'GetSchema', { schema_id: schemaId }).then(
                (info) => new Schema(schemaId, info.schema_json)
            );
            schema.catch(() => this.schemas.delete(schemaId)); // ask again next time
            this.schemas.set(schemaId, schema);
        }
        return this.schemas.get(schemaId);
    }

    /** The topic's current schema, to publish with (GetTopic + GetSchema). */
    async topicSchema(topic) {
        const info = await this.unary(this.client, 'GetTopic', { topic_name: topic });
        if (!info.can_publish) throw new Error(`this client may not publish to ${topic}`);
        return this.schema(info.schema_id);
    }

    /** The record of a received ProducerEvent, with the schema it names. */
    async decode(event) {
        return (await this.schema(event.schema_id)).decode(event.payload);
    }

    /**
     * Unary Publish of one event; returns its replay id. The event id is a
     * fresh UUID; the server echoes it as correlation key. Throws when the
     * event or the call failed: then nobody knows whether it was stored.
     */
    async publish(topic, schema, record) {
        const event = { id: randomUUID(), schema_id: schema.id, payload: schema.encode(record) };
        const response = await this.unary(this.client, 'Publish', { topic_name: topic, events: [event] });
        const [result] = response.results;
        if (result.error) throw new Error(`publish failed: ${result.error.msg}`);
        if (result.correlation_key !== event.id) {
            throw new Error(`result for ${result.correlation_key}, expected ${event.id}`);
        }
        return result.replay_id;
    }

    /**
     * Every retained event of `topic`, oldest first, up to the newest one.
     * The newest replay id comes from eventbus's Admin API (DescribeTopic);
     * the events come from a Subscribe from EARLIEST, which stops once the
     * event with that replay id has arrived.
     */
    async readToEnd(topic) {
        const described = await this.unary(this.admin, 'DescribeTopic', { topic_name: topic });
        const last = described.last_replay_id;
        if (described.first_replay_id.length === 0 || last.every((b) => b === 0)) return [];
        const call = this.client.Subscribe(this.metadata);
        call.on('error', () => {}); // the cancel below ends the call with CANCELLED
        call.write({ topic_name: topic, replay_preset: 'EARLIEST', num_requested: 100 });
        const records = [];
        try {
            for await (const response of call) {
                for (const consumerEvent of response.events) {
                    records.push(await this.decode(consumerEvent.event));
                    if (consumerEvent.replay_id.equals(last)) return records;
                }
                if (response.events.length > 0 && response.pending_num_requested === 0) {
                    call.write({ num_requested: 100 });
                }
            }
        } finally {
            call.cancel();
        }
        throw new Error(`${topic} ended before its newest event ${last.toString('hex')}`);
    }
}

/**
 * One ManagedSubscribe stream: events come in batches, the server keeps the
 * position, and the client commits what it has processed.
 *
 *     const sub = new ManagedSubscription(bus, 'Fulfillment', 25, 'fulfillment');
 *     for await (const response of sub.responses()) {
 *         ...process response.events...
 *         sub.commit(response.events.at(-1).replay_id);
 *     }
 *
 * A new stream for the same subscription starts right after the last commit
 * the server confirmed. Only one stream per subscription may be open at a time.
 * A stream that sends nothing for `keepaliveTimeoutMs` (the server sends
 * keepalives while there is nothing new) is cancelled and responses() throws
 * KeepaliveTimeout: reconnect as after any failure.
 */
export class ManagedSubscription {
    constructor(bus, developerName, batch, program, keepaliveTimeoutMs = KEEPALIVE_TIMEOUT_MS) {
        Object.assign(this, { bus, developerName, batch, program, keepaliveTimeoutMs, call: null });
    }

    /**
     * Yields the ManagedFetchResponses that carry events. Commit
     * acknowledgements are checked and logged here; keepalives are skipped.
     * Credit is topped up whenever the server reports none left after a
     * batch. Ends when the server ends the stream; throws when it fails, and
     * KeepaliveTimeout when it went silent.
     */
    async *responses() {
        this.call = this.bus.client.ManagedSubscribe(this.bus.metadata);
        // The first request names the subscription and asks for a batch; it
        // may not carry a commit.
        this.call.write({ developer_name: this.developerName, num_requested: this.batch });
        const messages = this.call[Symbol.asyncIterator]();
        for (;;) {
            // Only the wait for the next message counts, not the time the
            // program spends on one.
            let silent = false;
            const timer = setTimeout(() => {
                silent = true;
                this.cancel(); // the waiting next() fails with CANCELLED
            }, this.keepaliveTimeoutMs);
            let next;
            try {
                next = await messages.next();
            } catch (err) {
                if (silent) {
                    throw new KeepaliveTimeout(
                        `no message, not even a keepalive, for ${this.keepaliveTimeoutMs / 1000}s`
                    );
                }
                throw err;
            } finally {
                clearTimeout(timer);
            }
            if (next.done) return;
            const response = next.value;
            const ack = response.commit_response;
            if (ack && ack.error) log(this.program, `commit ${ack.commit_request_id} failed: ${ack.error.msg}`);
            if (response.events.length > 0) {
                yield response;
                if (response.pending_num_requested === 0 && this.call.writable) {
                    this.call.write({ num_requested: this.batch });
                }
            }
        }
    }

    /** Tells the server everything up to `replayId` is processed. */
    commit(replayId) {
        this.call.write({
            num_requested: 0,
            commit_replay_id_request: { commit_request_id: randomUUID(), replay_id: replayId }
        });
    }

    /** Half-closes: the server answers what is pending, ends the stream and
     * frees the subscription; responses() then ends. */
    close() {
        this.call.end();
    }

    /** Drops the stream at once (the server frees the subscription too). */
    cancel() {
        if (!this.call) return;
        this.call.on('error', () => {}); // ends with CANCELLED; nothing to report
        this.call.cancel();
    }
}
