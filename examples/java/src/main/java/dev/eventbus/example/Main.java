package dev.eventbus.example;

import com.google.protobuf.ByteString;
import com.salesforce.eventbus.protobuf.CommitReplayRequest;
import com.salesforce.eventbus.protobuf.ConsumerEvent;
import com.salesforce.eventbus.protobuf.FetchRequest;
import com.salesforce.eventbus.protobuf.FetchResponse;
import com.salesforce.eventbus.protobuf.ManagedFetchRequest;
import com.salesforce.eventbus.protobuf.ManagedFetchResponse;
import com.salesforce.eventbus.protobuf.ProducerEvent;
import com.salesforce.eventbus.protobuf.PublishRequest;
import com.salesforce.eventbus.protobuf.PublishResponse;
import com.salesforce.eventbus.protobuf.PublishResult;
import com.salesforce.eventbus.protobuf.ReplayPreset;
import com.salesforce.eventbus.protobuf.SchemaInfo;
import com.salesforce.eventbus.protobuf.SchemaRequest;
import com.salesforce.eventbus.protobuf.TopicInfo;
import com.salesforce.eventbus.protobuf.TopicRequest;
import io.grpc.ChannelCredentials;
import io.grpc.ConnectivityState;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;

/**
 * The Java example client of eventbus, written as a Salesforce Pub/Sub API integration would
 * be: it logs in through the org's HTTP API (SOAP and OAuth), then runs each RPC of
 * {@code eventbus.v1.PubSub} with grpc-java and Apache Avro and prints one PASS or FAIL line
 * per check, then {@code N passed, N failed}; it exits 1 on a failure.
 *
 * <p>Modes (first argument):
 * <ul>
 *   <li>{@code run}: SOAP and OAuth login, GetTopic, GetSchema, Publish, PublishStream with
 *       correlation keys, Subscribe with flow control, ManagedSubscribe with a commit (writes the
 *       ids a resumed client must get next to {@code --state}), change events with their
 *       bitmap fields decoded;
 *   <li>{@code resume}: a new client process logs in (OAuth client credentials), resumes the
 *       managed subscription and checks it gets exactly the events after the commit;
 *   <li>{@code idle}: holds a Subscribe stream open and silent for {@code --idle-minutes}, then
 *       checks it still delivers.
 * </ul>
 *
 * <p>Owns: the flow and the checks. Must not: build RPC descriptors (PubSubRpc), speak HTTP
 * (OrgApi) or decode bitmaps (Bitmaps).
 */
public final class Main {
    /** How long a check waits for the next response of a stream. */
    private static final long WAIT_MS = 20_000;
    /** Credit of a Subscribe or ManagedSubscribe stream; more is requested at half of it. */
    private static final int CREDIT = 4;

    private int passed;
    private int failed;
    private final Map<String, String> opts;
    private final Map<String, Schema> schemas = new HashMap<>();

    private Main(Map<String, String> opts) {
        this.opts = opts;
    }

    /** Entry point: {@code MODE --key value ...}; see the class documentation. */
    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: Main run|resume|idle --login-url URL --grpc HOST:PORT [--tls-ca PEM] ...");
            System.exit(2);
        }
        Map<String, String> opts = new HashMap<>();
        for (int i = 1; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--")) {
                System.err.println("expected --key value, got " + args[i]);
                System.exit(2);
            }
            opts.put(args[i].substring(2), args[i + 1]);
        }
        Main main = new Main(opts);
        try {
            switch (args[0]) {
                case "run" -> main.run();
                case "resume" -> main.resume();
                case "idle" -> main.idle();
                default -> {
                    System.err.println("unknown mode " + args[0]);
                    System.exit(2);
                }
            }
        } catch (Exception e) {
            main.check("no unexpected error", false, e.toString());
            e.printStackTrace(System.out);
        }
        System.out.println(main.passed + " passed, " + main.failed + " failed");
        System.out.flush();
        System.exit(main.failed == 0 ? 0 : 1);
    }

    private String opt(String key, String fallback) {
        return opts.getOrDefault(key, fallback);
    }

    private String topic() {
        return opt("topic", "/event/Order_Event__e");
    }

    private String managed() {
        return opt("managed", "Order_Processor");
    }

    private Path ca() {
        String ca = opts.get("tls-ca");
        return ca == null || ca.isEmpty() ? null : Path.of(ca);
    }

    boolean check(String what, boolean ok, String detail) {
        if (ok) {
            passed++;
            System.out.println("PASS - " + what);
        } else {
            failed++;
            System.out.println("FAIL - " + what + (detail == null ? "" : ": " + detail));
        }
        System.out.flush();
        return ok;
    }

    private static void info(String text) {
        System.out.println("info - " + text);
        System.out.flush();
    }

    /**
     * A channel as a Salesforce integration builds one: TLS or plaintext, client keepalive
     * pings every 60 s ({@code --keepalive-seconds}), and the three Pub/Sub headers on every
     * call.
     */
    private ManagedChannel channel(OrgApi.Session session) throws IOException {
        Path ca = ca();
        // --tls-ca: TLS trusting that CA; --tls true: TLS trusting the JDK's CAs (a real org);
        // neither: plaintext (a local eventbus without TLS).
        ChannelCredentials creds;
        if (ca != null) {
            creds = TlsChannelCredentials.newBuilder().trustManager(ca.toFile()).build();
        } else if (Boolean.parseBoolean(opt("tls", "false"))) {
            creds = TlsChannelCredentials.create();
        } else {
            creds = InsecureChannelCredentials.create();
        }
        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("accesstoken", Metadata.ASCII_STRING_MARSHALLER), session.accessToken());
        headers.put(Metadata.Key.of("instanceurl", Metadata.ASCII_STRING_MARSHALLER), session.instanceUrl());
        headers.put(Metadata.Key.of("tenantid", Metadata.ASCII_STRING_MARSHALLER), session.orgId());
        long keepAliveS = Long.parseLong(opt("keepalive-seconds", "60"));
        var builder = Grpc.newChannelBuilder(opt("grpc", "localhost:7011"), creds)
                .intercept(MetadataUtils.newAttachHeadersInterceptor(headers));
        if (keepAliveS > 0) {
            // 0: grpc-java's default, no keepalive pings.
            builder.keepAliveTime(keepAliveS, TimeUnit.SECONDS).keepAliveTimeout(20, TimeUnit.SECONDS);
        }
        return builder.build();
    }

    private static void close(ManagedChannel channel) throws InterruptedException {
        channel.shutdown();
        if (!channel.awaitTermination(10, TimeUnit.SECONDS)) {
            channel.shutdownNow();
        }
    }

    private OrgApi org() throws Exception {
        return new OrgApi(opt("login-url", "https://localhost:7012"), ca());
    }

    private String username() {
        return opt("username", "developer@example.com");
    }

    // --- Avro -----------------------------------------------------------------------------

    private Schema schema(PubSubRpc rpc, String schemaId) {
        return schemas.computeIfAbsent(schemaId, id -> {
            SchemaInfo info = rpc.getSchema(SchemaRequest.newBuilder().setSchemaId(id).build());
            return new Schema.Parser().parse(info.getSchemaJson());
        });
    }

    private static byte[] encode(Schema schema, GenericRecord record) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
        new GenericDatumWriter<GenericRecord>(schema).write(record, encoder);
        encoder.flush();
        return out.toByteArray();
    }

    private static GenericRecord decode(Schema schema, ByteString payload) throws IOException {
        BinaryDecoder decoder = DecoderFactory.get().binaryDecoder(payload.toByteArray(), null);
        GenericRecord record = new GenericDatumReader<GenericRecord>(schema).read(null, decoder);
        if (!decoder.isEnd()) {
            throw new IOException("payload has bytes left over after decoding with schema " + schema.getFullName());
        }
        return record;
    }

    /** Order event number {@code seq} as a publisher fills it: custom fields from seq. */
    private static GenericRecord order(Schema schema, String userId, int seq) {
        GenericData.Record record = new GenericData.Record(schema);
        for (Schema.Field field : schema.getFields()) {
            Object value = switch (field.name()) {
                case "CreatedDate" -> System.currentTimeMillis();
                case "CreatedById" -> userId;
                case "OrderNumber__c" -> "ORD-" + seq;
                case "Amount__c" -> seq * 12.5;
                case "Status__c" -> "New";
                default -> null;
            };
            record.put(field.pos(), value);
        }
        return record;
    }

    private static String str(Object avro) {
        return avro == null ? null : avro.toString();
    }

    private static String hex(ByteString bytes) {
        return HexFormat.of().formatHex(bytes.toByteArray());
    }

    private ProducerEvent orderEvent(Schema schema, String schemaId, String userId, int seq) throws IOException {
        return ProducerEvent.newBuilder()
                .setId(UUID.randomUUID().toString())
                .setSchemaId(schemaId)
                .setPayload(ByteString.copyFrom(encode(schema, order(schema, userId, seq))))
                .build();
    }

    // --- mode run -------------------------------------------------------------------------

    private void run() throws Exception {
        OrgApi org = org();
        String password = opt("password", "any-password");

        OrgApi.Session soap = org.soapLogin(username(), password);
        check("SOAP login gives a session id, an 00D org id and a 005 user id",
                !soap.accessToken().isEmpty() && soap.orgId().startsWith("00D") && soap.userId().startsWith("005"),
                soap.toString());
        OrgApi.Session oauth = org.oauthPassword(
                opt("client-id", "eventbus-dev-app"), opt("client-secret", "any-secret"), username(), password);
        check("OAuth password grant gives a bearer for the same org and user",
                !oauth.accessToken().isEmpty() && oauth.orgId().equals(soap.orgId()) && oauth.userId().equals(soap.userId()),
                oauth + " vs " + soap);
        info("instanceurl header: " + soap.instanceUrl());

        // The gRPC calls use the SOAP session (as Salesforce's Java examples do).
        ManagedChannel channel = channel(soap);
        try {
            PubSubRpc rpc = new PubSubRpc(channel);
            String topic = topic();

            TopicInfo info = rpc.getTopic(TopicRequest.newBuilder().setTopicName(topic).build());
            check("GetTopic " + topic + ": can publish and subscribe, names a schema id",
                    info.getTopicName().equals(topic) && info.getCanPublish() && info.getCanSubscribe()
                            && !info.getSchemaId().isEmpty(),
                    info.toString());

            SchemaInfo schemaInfo = rpc.getSchema(SchemaRequest.newBuilder().setSchemaId(info.getSchemaId()).build());
            Schema schema = new Schema.Parser().parse(schemaInfo.getSchemaJson());
            schemas.put(info.getSchemaId(), schema);
            check("GetSchema: the schema id answers with the Avro record Order_Event__e",
                    schemaInfo.getSchemaId().equals(info.getSchemaId()) && schema.getName().equals("Order_Event__e"),
                    schemaInfo.getSchemaId() + " " + schema.getFullName());

            errors(rpc, soap);

            List<ProducerEvent> published = new ArrayList<>();
            publishOne(rpc, topic, schema, info.getSchemaId(), soap.userId(), published);
            publishStream(rpc, topic, schema, info.getSchemaId(), soap.userId(), published);
            subscribe(rpc, topic, published);
            managedSubscribe(rpc, topic, schema, info.getSchemaId(), soap.userId(), published);
            changeEvents(org, oauth, rpc);
        } finally {
            close(channel);
        }
    }

    /**
     * Errors as grpc-java reads them: a status in a trailers-only response, with Salesforce's
     * {@code error-code} and {@code rpc-id} trailers.
     */
    private void errors(PubSubRpc rpc, OrgApi.Session session) throws Exception {
        Metadata.Key<String> errorCode = Metadata.Key.of("error-code", Metadata.ASCII_STRING_MARSHALLER);
        Metadata.Key<String> rpcId = Metadata.Key.of("rpc-id", Metadata.ASCII_STRING_MARSHALLER);
        String topic = "/event/No_Such_Event__e";
        StatusRuntimeException missing = null;
        try {
            rpc.getTopic(TopicRequest.newBuilder().setTopicName(topic).build());
        } catch (StatusRuntimeException e) {
            missing = e;
        }
        Metadata trailers = missing == null ? null : missing.getTrailers();
        check("GetTopic " + topic + ": NOT_FOUND with error-code and rpc-id trailers",
                missing != null && missing.getStatus().getCode() == Status.Code.NOT_FOUND && trailers != null
                        && trailers.get(errorCode) != null && trailers.get(rpcId) != null,
                missing == null ? "no error" : missing.getStatus() + " trailers " + trailers);

        OrgApi.Session forged = new OrgApi.Session("not-a-session", session.instanceUrl(), session.orgId(), session.userId());
        ManagedChannel bad = channel(forged);
        StatusRuntimeException refused = null;
        try {
            new PubSubRpc(bad).getTopic(TopicRequest.newBuilder().setTopicName(topic()).build());
        } catch (StatusRuntimeException e) {
            refused = e;
        } finally {
            close(bad);
        }
        check("GetTopic with an unknown access token: UNAUTHENTICATED",
                refused != null && refused.getStatus().getCode() == Status.Code.UNAUTHENTICATED,
                refused == null ? "no error" : refused.getStatus().toString());
    }

    private void publishOne(PubSubRpc rpc, String topic, Schema schema, String schemaId, String userId,
            List<ProducerEvent> published) throws IOException {
        ProducerEvent event = orderEvent(schema, schemaId, userId, published.size() + 1);
        // Every other one gzip-compressed, as a client may send it.
        boolean gzip = published.size() % 2 == 1;
        PublishRequest request = PublishRequest.newBuilder().setTopicName(topic).addEvents(event).build();
        PublishResponse res = gzip ? rpc.publishGzip(request) : rpc.publish(request);
        PublishResult result = res.getResultsCount() == 1 ? res.getResults(0) : null;
        if (check("Publish" + (gzip ? " (gzip)" : "") + ": one Avro event, its result has a replay id and the event id as correlation key",
                result != null && !result.hasError() && !result.getReplayId().isEmpty()
                        && result.getCorrelationKey().equals(event.getId()) && res.getSchemaId().equals(schemaId),
                res.toString())) {
            published.add(event);
        }
    }

    private void publishStream(PubSubRpc rpc, String topic, Schema schema, String schemaId, String userId,
            List<ProducerEvent> published) throws Exception {
        Streams.Inbox<PublishResponse> inbox = new Streams.Inbox<>();
        StreamObserver<PublishRequest> requests = rpc.publishStream(inbox);
        List<ProducerEvent> sent = new ArrayList<>();
        for (int batch = 0; batch < 3; batch++) {
            PublishRequest.Builder req = PublishRequest.newBuilder().setTopicName(topic);
            for (int i = 0; i < 2; i++) {
                ProducerEvent event = orderEvent(schema, schemaId, userId, published.size() + sent.size() + 1);
                sent.add(event);
                req.addEvents(event);
            }
            requests.onNext(req.build());
        }
        Map<String, PublishResult> byKey = new LinkedHashMap<>();
        int responses = 0;
        String problem = null;
        while (byKey.size() < sent.size()) {
            Streams.Item<PublishResponse> item = inbox.next(WAIT_MS);
            if (item.timedOut() || item.ended()) {
                problem = item.timedOut() ? "timed out" : "ended early: " + item.endText();
                break;
            }
            responses++;
            for (PublishResult r : item.response().getResultsList()) {
                byKey.put(r.getCorrelationKey(), r);
            }
        }
        requests.onCompleted();
        Streams.Item<PublishResponse> end = inbox.next(WAIT_MS);
        Set<String> sentIds = new HashSet<>();
        sent.forEach(e -> sentIds.add(e.getId()));
        boolean allOk = byKey.values().stream().allMatch(r -> !r.hasError() && !r.getReplayId().isEmpty());
        check("PublishStream: 3 requests of 2 events, every event id comes back as a correlation key with a replay id",
                problem == null && byKey.keySet().equals(sentIds) && allOk,
                (problem == null ? "" : problem + "; ") + responses + " responses, keys " + byKey.keySet() + " sent " + sentIds);
        check("PublishStream: the server ends the stream with OK after the client half-closes",
                end.ended() && end.error() == null, end.timedOut() ? "timed out" : end.endText());
        // In replay order: the order the server stored them.
        List<ProducerEvent> ordered = new ArrayList<>(sent);
        ordered.sort((a, b) -> ByteString.unsignedLexicographicalComparator()
                .compare(byKey.get(a.getId()).getReplayId(), byKey.get(b.getId()).getReplayId()));
        if (problem == null && byKey.keySet().equals(sentIds)) {
            published.addAll(ordered);
        }
    }

    /**
     * Subscribe from EARLIEST with {@link #CREDIT} and more requested whenever half of it is
     * used; checks every published event arrives, decoded, in order, and that the server never
     * holds more credit than was given.
     */
    private void subscribe(PubSubRpc rpc, String topic, List<ProducerEvent> published) throws Exception {
        Streams.Inbox<FetchResponse> inbox = new Streams.Inbox<>();
        StreamObserver<FetchRequest> requests = rpc.subscribe(inbox);
        requests.onNext(FetchRequest.newBuilder().setTopicName(topic)
                .setReplayPreset(ReplayPreset.EARLIEST).setNumRequested(CREDIT).build());
        int outstanding = CREDIT;
        int topUps = 0;
        int maxPending = 0;
        List<ConsumerEvent> got = new ArrayList<>();
        String problem = null;
        while (got.size() < published.size()) {
            Streams.Item<FetchResponse> item = inbox.next(WAIT_MS);
            if (item.timedOut() || item.ended()) {
                problem = item.timedOut() ? "timed out" : "ended early: " + item.endText();
                break;
            }
            FetchResponse res = item.response();
            maxPending = Math.max(maxPending, res.getPendingNumRequested());
            got.addAll(res.getEventsList());
            outstanding -= res.getEventsCount();
            if (outstanding < 0) {
                problem = "the server sent " + (-outstanding) + " events beyond the credit";
                break;
            }
            if (outstanding <= CREDIT / 2) {
                requests.onNext(FetchRequest.newBuilder().setTopicName(topic).setNumRequested(CREDIT - outstanding).build());
                outstanding = CREDIT;
                topUps++;
            }
        }
        check("Subscribe: credit " + CREDIT + ", more requested at half used (" + topUps
                        + " top-ups): all " + published.size() + " published events arrive, never beyond the credit",
                problem == null && got.size() == published.size() && topUps >= 2 && maxPending <= CREDIT,
                (problem == null ? "" : problem + "; ") + got.size() + " events, max pending " + maxPending);
        List<String> ids = new ArrayList<>();
        List<String> orders = new ArrayList<>();
        String decodeProblem = null;
        for (ConsumerEvent e : got) {
            ids.add(e.getEvent().getId());
            try {
                GenericRecord record = decode(schema(rpc, e.getEvent().getSchemaId()), e.getEvent().getPayload());
                orders.add(str(record.get("OrderNumber__c")));
            } catch (IOException | RuntimeException ex) {
                decodeProblem = ex.toString();
            }
        }
        List<String> want = published.stream().map(ProducerEvent::getId).toList();
        List<String> wantOrders = new ArrayList<>();
        for (int i = 1; i <= published.size(); i++) {
            wantOrders.add("ORD-" + i);
        }
        check("Subscribe: the events come in publish order with their ids, and decode with GetSchema's schema",
                ids.equals(want) && decodeProblem == null && orders.equals(wantOrders),
                "ids " + ids + " want " + want + "; orders " + orders + (decodeProblem == null ? "" : "; " + decodeProblem));
        requests.onCompleted();
        Streams.Item<FetchResponse> end = drainToEnd(inbox);
        check("Subscribe: the server ends the stream with OK after the client half-closes",
                end.ended() && end.error() == null, end.timedOut() ? "timed out" : end.endText());
    }

    /** Reads past keepalives to the end of a call (or a timeout). */
    private static <T> Streams.Item<T> drainToEnd(Streams.Inbox<T> inbox) throws InterruptedException {
        while (true) {
            Streams.Item<T> item = inbox.next(WAIT_MS);
            if (item.ended() || item.timedOut()) {
                return item;
            }
        }
    }

    /**
     * ManagedSubscribe reads every event with the same flow control, commits the replay id of
     * the fourth, then the client publishes two more and writes the ids a resumed client must
     * get to {@code --state}.
     */
    private void managedSubscribe(PubSubRpc rpc, String topic, Schema schema, String schemaId, String userId,
            List<ProducerEvent> published) throws Exception {
        String name = managed();
        int commitAt = 4;
        Streams.Inbox<ManagedFetchResponse> inbox = new Streams.Inbox<>();
        StreamObserver<ManagedFetchRequest> requests = rpc.managedSubscribe(inbox);
        requests.onNext(ManagedFetchRequest.newBuilder().setDeveloperName(name).setNumRequested(CREDIT).build());
        int outstanding = CREDIT;
        List<ConsumerEvent> got = new ArrayList<>();
        String commitId = UUID.randomUUID().toString();
        ManagedFetchResponse commitAnswer = null;
        ByteString committed = null;
        String problem = null;
        while (got.size() < published.size() || commitAnswer == null) {
            Streams.Item<ManagedFetchResponse> item = inbox.next(WAIT_MS);
            if (item.timedOut() || item.ended()) {
                problem = item.timedOut() ? "timed out" : "ended early: " + item.endText();
                break;
            }
            ManagedFetchResponse res = item.response();
            if (res.hasCommitResponse()) {
                commitAnswer = res;
            }
            got.addAll(res.getEventsList());
            outstanding -= res.getEventsCount();
            if (committed == null && got.size() >= commitAt) {
                committed = got.get(commitAt - 1).getReplayId();
                requests.onNext(ManagedFetchRequest.newBuilder()
                        .setCommitReplayIdRequest(CommitReplayRequest.newBuilder()
                                .setCommitRequestId(commitId).setReplayId(committed))
                        .build());
            }
            if (outstanding <= CREDIT / 2 && got.size() < published.size()) {
                requests.onNext(ManagedFetchRequest.newBuilder().setNumRequested(CREDIT - outstanding).build());
                outstanding = CREDIT;
            }
        }
        List<String> ids = got.stream().map(e -> e.getEvent().getId()).toList();
        List<String> want = published.stream().map(ProducerEvent::getId).toList();
        check("ManagedSubscribe " + name + ": a new subscription starts at EARLIEST and gets all "
                        + published.size() + " events with flow control",
                problem == null && ids.equals(want), (problem == null ? "" : problem + "; ") + "ids " + ids);
        var commit = commitAnswer == null ? null : commitAnswer.getCommitResponse();
        check("ManagedSubscribe: committing the 4th event's replay id answers with the same commit request id and replay id, no error",
                commit != null && commit.getCommitRequestId().equals(commitId) && !commit.hasError()
                        && commit.getReplayId().equals(committed),
                String.valueOf(commit));
        requests.onCompleted();
        Streams.Item<ManagedFetchResponse> end = drainToEnd(inbox);
        check("ManagedSubscribe: the server ends the stream with OK after the client half-closes",
                end.ended() && end.error() == null, end.timedOut() ? "timed out" : end.endText());

        // Two more after the commit: a resumed client must get events 5.. and these.
        List<String> later = new ArrayList<>(want.subList(Math.min(commitAt, want.size()), want.size()));
        for (int i = 0; i < 2; i++) {
            int before = published.size();
            publishOne(rpc, topic, schema, schemaId, userId, published);
            if (published.size() > before) {
                later.add(published.get(published.size() - 1).getId());
            }
        }
        String state = opts.get("state");
        if (state != null) {
            Files.write(Path.of(state), later);
            info("wrote the " + later.size() + " event ids a resumed " + name + " must get to " + state);
        }
    }

    /**
     * Creates and updates an Account over REST, reads /data/AccountChangeEvent from EARLIEST and
     * decodes the header's changedFields bitmap to field names with the event's schema.
     */
    private void changeEvents(OrgApi org, OrgApi.Session session, PubSubRpc rpc) throws Exception {
        OrgApi.Answer created = org.rest(session, "POST", "/sobjects/Account",
                Map.of("Name", "Acme", "Phone", "+33 1 23 45 67 89"));
        String id = created.status() == 201 ? OrgApi.json(created.body()).path("id").asText() : "";
        check("REST: POST sobjects/Account answers 201 with an 001 id", id.startsWith("001"),
                created.status() + " " + created.body());
        OrgApi.Answer updated = org.rest(session, "PATCH", "/sobjects/Account/" + id,
                Map.of("Name", "Acme Corp", "BillingCity", "Lyon"));
        check("REST: PATCH Name and BillingCity answers 204", updated.status() == 204,
                updated.status() + " " + updated.body());

        String topic = "/data/AccountChangeEvent";
        Streams.Inbox<FetchResponse> inbox = new Streams.Inbox<>();
        StreamObserver<FetchRequest> requests = rpc.subscribe(inbox);
        requests.onNext(FetchRequest.newBuilder().setTopicName(topic)
                .setReplayPreset(ReplayPreset.EARLIEST).setNumRequested(10).build());
        List<ConsumerEvent> got = new ArrayList<>();
        String problem = null;
        while (got.size() < 2) {
            Streams.Item<FetchResponse> item = inbox.next(WAIT_MS);
            if (item.timedOut() || item.ended()) {
                problem = item.timedOut() ? "timed out" : "ended early: " + item.endText();
                break;
            }
            got.addAll(item.response().getEventsList());
        }
        requests.onCompleted();
        drainToEnd(inbox);
        if (!check(topic + ": the CREATE and the UPDATE arrive", problem == null && got.size() == 2,
                (problem == null ? "" : problem + "; ") + got.size() + " events")) {
            return;
        }
        List<String> types = new ArrayList<>();
        List<List<String>> changed = new ArrayList<>();
        List<String> recordIds = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (ConsumerEvent e : got) {
            Schema schema = schema(rpc, e.getEvent().getSchemaId());
            GenericRecord record = decode(schema, e.getEvent().getPayload());
            GenericRecord header = (GenericRecord) record.get("ChangeEventHeader");
            types.add(str(header.get("changeType")));
            recordIds.add(String.valueOf(header.get("recordIds")));
            names.add(str(record.get("Name")));
            @SuppressWarnings("unchecked")
            List<CharSequence> bitmap = (List<CharSequence>) header.get("changedFields");
            changed.add(Bitmaps.fieldNames(schema, bitmap));
            info(types.get(types.size() - 1) + " changedFields " + bitmap + " -> " + changed.get(changed.size() - 1));
        }
        check(topic + ": changeType CREATE then UPDATE, recordIds name the Account",
                types.equals(List.of("CREATE", "UPDATE")) && recordIds.equals(List.of("[" + id + "]", "[" + id + "]")),
                types + " " + recordIds);
        check(topic + ": the payloads decode with GetSchema's schema (Name Acme, then Acme Corp)",
                names.equals(List.of("Acme", "Acme Corp")), names.toString());
        List<String> update = changed.get(1);
        check(topic + ": the UPDATE's changedFields bitmap decodes to Name, BillingAddress.City, LastModifiedDate and not Phone",
                update.containsAll(List.of("Name", "BillingAddress.City", "LastModifiedDate")) && !update.contains("Phone"),
                update.toString());
        check(topic + ": the CREATE's changedFields bitmap decodes to no field", changed.get(0).isEmpty(),
                changed.get(0).toString());
    }

    // --- mode resume ----------------------------------------------------------------------

    private void resume() throws Exception {
        List<String> want = Files.readAllLines(Path.of(opts.get("state")));
        OrgApi.Session session = org().oauthClientCredentials(
                opt("client-id", "eventbus-dev-app"), opt("client-secret", "any-secret"));
        check("OAuth client credentials grant gives a bearer (the connected app's run-as user)",
                !session.accessToken().isEmpty() && session.userId().startsWith("005"), session.toString());
        ManagedChannel channel = channel(session);
        try {
            PubSubRpc rpc = new PubSubRpc(channel);
            String name = managed();
            Streams.Inbox<ManagedFetchResponse> inbox = new Streams.Inbox<>();
            StreamObserver<ManagedFetchRequest> requests = rpc.managedSubscribe(inbox);
            requests.onNext(ManagedFetchRequest.newBuilder().setDeveloperName(name).setNumRequested(CREDIT).build());
            int outstanding = CREDIT;
            List<ConsumerEvent> got = new ArrayList<>();
            String problem = null;
            while (got.size() < want.size()) {
                Streams.Item<ManagedFetchResponse> item = inbox.next(WAIT_MS);
                if (item.timedOut() || item.ended()) {
                    problem = item.timedOut() ? "timed out" : "ended early: " + item.endText();
                    break;
                }
                got.addAll(item.response().getEventsList());
                outstanding -= item.response().getEventsCount();
                if (outstanding <= CREDIT / 2) {
                    requests.onNext(ManagedFetchRequest.newBuilder().setNumRequested(CREDIT - outstanding).build());
                    outstanding = CREDIT;
                }
            }
            List<String> ids = got.stream().map(e -> e.getEvent().getId()).toList();
            check("ManagedSubscribe " + name + " in a new client process resumes after the commit: exactly the "
                            + want.size() + " later events, in order",
                    problem == null && ids.equals(want),
                    (problem == null ? "" : problem + "; ") + "got " + ids + " want " + want);
            if (!got.isEmpty()) {
                String commitId = UUID.randomUUID().toString();
                ByteString last = got.get(got.size() - 1).getReplayId();
                requests.onNext(ManagedFetchRequest.newBuilder()
                        .setCommitReplayIdRequest(CommitReplayRequest.newBuilder()
                                .setCommitRequestId(commitId).setReplayId(last))
                        .build());
                ManagedFetchResponse answer = null;
                while (answer == null) {
                    Streams.Item<ManagedFetchResponse> item = inbox.next(WAIT_MS);
                    if (item.timedOut() || item.ended()) {
                        break;
                    }
                    if (item.response().hasCommitResponse()) {
                        answer = item.response();
                    }
                }
                check("ManagedSubscribe: committing the last replay id (" + hex(last) + ") succeeds",
                        answer != null && answer.getCommitResponse().getCommitRequestId().equals(commitId)
                                && !answer.getCommitResponse().hasError(),
                        String.valueOf(answer));
            }
            requests.onCompleted();
            Streams.Item<ManagedFetchResponse> end = drainToEnd(inbox);
            check("ManagedSubscribe: the server ends the resumed stream with OK after the client half-closes",
                    end.ended() && end.error() == null, end.timedOut() ? "timed out" : end.endText());
            if (!got.isEmpty()) {
                largeEvents(rpc, session, got.get(got.size() - 1).getReplayId());
            }
        } finally {
            close(channel);
        }
    }

    /**
     * Publishes four events of about 1 MB (the payload limit is 1 MiB) and reads them with
     * credit 4 from just after {@code after}: the server must cut its responses so that none
     * exceeds grpc-java's default inbound message limit (4 MiB), which this client keeps.
     */
    private void largeEvents(PubSubRpc rpc, OrgApi.Session session, ByteString after) throws Exception {
        String topic = topic();
        TopicInfo info = rpc.getTopic(TopicRequest.newBuilder().setTopicName(topic).build());
        Schema schema = schema(rpc, info.getSchemaId());
        int count = 4;
        List<String> ids = new ArrayList<>();
        String problem = null;
        for (int i = 0; i < count; i++) {
            GenericRecord record = order(schema, session.userId(), 100 + i);
            record.put("Status__c", "x".repeat(1_000_000));
            ProducerEvent event = ProducerEvent.newBuilder()
                    .setId(UUID.randomUUID().toString())
                    .setSchemaId(info.getSchemaId())
                    .setPayload(ByteString.copyFrom(encode(schema, record)))
                    .build();
            PublishResponse res = rpc.publish(PublishRequest.newBuilder().setTopicName(topic).addEvents(event).build());
            if (res.getResultsCount() != 1 || res.getResults(0).hasError()) {
                problem = res.getResultsList().toString();
                break;
            }
            ids.add(event.getId());
        }
        check("Publish: " + count + " events of about 1 MB each", problem == null && ids.size() == count,
                problem);
        Streams.Inbox<FetchResponse> inbox = new Streams.Inbox<>();
        StreamObserver<FetchRequest> requests = rpc.subscribe(inbox);
        requests.onNext(FetchRequest.newBuilder().setTopicName(topic).setReplayPreset(ReplayPreset.CUSTOM)
                .setReplayId(after).setNumRequested(count).build());
        List<String> got = new ArrayList<>();
        int responses = 0;
        int largest = 0;
        problem = null;
        while (got.size() < count) {
            Streams.Item<FetchResponse> item = inbox.next(WAIT_MS);
            if (item.timedOut() || item.ended()) {
                problem = item.timedOut() ? "timed out" : "ended: " + item.endText();
                break;
            }
            responses++;
            largest = Math.max(largest, item.response().getSerializedSize());
            item.response().getEventsList().forEach(e -> got.add(e.getEvent().getId()));
        }
        requests.onCompleted();
        drainToEnd(inbox);
        check("Subscribe: the " + count + " large events arrive with credit " + count + " in " + responses
                        + " responses, the largest " + largest + " bytes, within grpc-java's default 4 MiB limit",
                problem == null && got.equals(ids), (problem == null ? "" : problem + "; ") + "got " + got);
    }

    // --- mode idle ------------------------------------------------------------------------

    /**
     * Holds a Subscribe stream open and idle for {@code --idle-minutes} (client keepalive pings
     * every {@code --keepalive-seconds}), then checks it still delivers an event published on
     * the same channel. {@code --idle-credit 1} (the default): the stream keeps one unit of
     * credit, so the server sends a keepalive FetchResponse every minute, as Salesforce does
     * within 270 s. {@code --idle-credit 0}: the client first uses its credit up on one event,
     * so the stream is silent at the gRPC level and only HTTP/2 PINGs cross the connection;
     * afterwards it requests one more. (Salesforce closes a stream left without credit for 60
     * to 70 s; eventbus keeps it, so this variant tests the transport only.)
     */
    private void idle() throws Exception {
        double minutes = Double.parseDouble(opt("idle-minutes", "10"));
        FrameCounter frames = new FrameCounter().install();
        OrgApi org = org();
        OrgApi.Session session = org.soapLogin(username(), opt("password", "any-password"));
        ManagedChannel channel = channel(session);
        try {
            PubSubRpc rpc = new PubSubRpc(channel);
            String topic = topic();
            TopicInfo info = rpc.getTopic(TopicRequest.newBuilder().setTopicName(topic).build());
            Schema schema = schema(rpc, info.getSchemaId());
            int credit = Integer.parseInt(opt("idle-credit", "1"));
            Streams.Inbox<FetchResponse> inbox = new Streams.Inbox<>();
            StreamObserver<FetchRequest> requests = rpc.subscribe(inbox);
            requests.onNext(FetchRequest.newBuilder().setTopicName(topic)
                    .setReplayPreset(ReplayPreset.LATEST).setNumRequested(1).build());
            if (credit == 0) {
                // Use the one unit of credit up: LATEST is set once the server answers the
                // first request, so publish until an event arrives.
                boolean used = false;
                for (int i = 0; i < 5 && !used; i++) {
                    rpc.publish(PublishRequest.newBuilder().setTopicName(topic)
                            .addEvents(orderEvent(schema, info.getSchemaId(), session.userId(), 900 + i)).build());
                    Streams.Item<FetchResponse> item = inbox.next(2_000);
                    used = item.response() != null && item.response().getEventsCount() > 0;
                }
                check("idle Subscribe: the client used its credit up (no credit left: the server must stay silent)",
                        used, null);
            }
            long start = System.nanoTime();
            long idleNanos = (long) (minutes * 60e9);
            int keepalives = 0;
            String problem = null;
            info("holding an idle Subscribe on " + topic + " for " + minutes + " min with credit " + credit
                    + " (client keepAliveTime " + opt("keepalive-seconds", "60") + " s)");
            while (System.nanoTime() - start < idleNanos) {
                long left = (idleNanos - (System.nanoTime() - start)) / 1_000_000;
                Streams.Item<FetchResponse> item = inbox.next(Math.max(1, Math.min(left, 60_000)));
                if (item.ended()) {
                    problem = "the stream ended after " + (System.nanoTime() - start) / 1_000_000_000 + " s: " + item.endText();
                    break;
                }
                if (item.response() != null) {
                    if (item.response().getEventsCount() > 0) {
                        problem = "an event arrived on an idle topic";
                        break;
                    }
                    keepalives++;
                    info("keepalive FetchResponse after " + (System.nanoTime() - start) / 1_000_000_000
                            + " s (pending_num_requested " + item.response().getPendingNumRequested() + "); "
                            + frames);
                }
            }
            info("HTTP/2 frames while idle: " + frames);
            ConnectivityState state = channel.getState(false);
            check("idle Subscribe: open and silent (but for " + keepalives + " keepalive responses) for "
                    + minutes + " min without an error; channel " + state,
                    problem == null && state == ConnectivityState.READY, problem);
            check("idle Subscribe: the client's keepalive PINGs are all acknowledged and the server sends no GOAWAY",
                    frames.serverGoAways.get() == 0 && frames.clientPingAcks.get() >= frames.clientPings.get() - 1,
                    frames.toString());
            if (credit == 0) {
                requests.onNext(FetchRequest.newBuilder().setTopicName(topic).setNumRequested(1).build());
            }
            ProducerEvent event = orderEvent(schema, info.getSchemaId(), session.userId(), 1000);
            PublishResponse res = rpc.publish(PublishRequest.newBuilder().setTopicName(topic).addEvents(event).build());
            ConsumerEvent got = null;
            while (problem == null && got == null) {
                Streams.Item<FetchResponse> item = inbox.next(WAIT_MS);
                if (item.timedOut() || item.ended()) {
                    problem = item.timedOut() ? "timed out" : "ended: " + item.endText();
                    break;
                }
                if (item.response().getEventsCount() > 0) {
                    got = item.response().getEvents(0);
                }
            }
            check("idle Subscribe: after the silence, an event published on the same channel arrives on the stream",
                    got != null && got.getEvent().getId().equals(event.getId()) && !res.getResults(0).hasError(),
                    problem);
            requests.onCompleted();
            drainToEnd(inbox);
        } finally {
            close(channel);
        }
    }
}
