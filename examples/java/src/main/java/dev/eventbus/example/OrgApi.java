package dev.eventbus.example;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Collectors;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import javax.xml.parsers.DocumentBuilderFactory;
import org.w3c.dom.Document;
import org.w3c.dom.NodeList;

/**
 * The org's HTTP API as a Salesforce integration uses it: SOAP {@code login} of the Partner
 * API, the OAuth token endpoint (password and client_credentials grants) and the REST sObject
 * API (create and update records, which publish change events).
 *
 * <p>Owns: the HTTP requests and reading their answers into {@link Session}s; trusting a PEM
 * CA for HTTPS. Must not: talk gRPC or decide what a check expects (Main does).
 */
final class OrgApi {
    /** What a login gives a Pub/Sub client: its three gRPC headers and who logged in. */
    record Session(String accessToken, String instanceUrl, String orgId, String userId) {}

    /** An HTTP answer: status and body. */
    record Answer(int status, String body) {}

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String API_VERSION = "62.0";

    private final String loginUrl;
    private final HttpClient http;

    /**
     * @param loginUrl the org's login URL ({@code https://login.salesforce.com}, or eventbus's
     *     HTTP listener)
     * @param caPem a PEM CA to trust besides the JDK's (null: the JDK's trust store only)
     */
    OrgApi(String loginUrl, Path caPem) throws IOException, GeneralSecurityException {
        this.loginUrl = loginUrl.replaceAll("/+$", "");
        HttpClient.Builder builder = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10));
        if (caPem != null) {
            builder.sslContext(trusting(caPem));
        }
        this.http = builder.build();
    }

    /** An SSL context that trusts the certificates of one PEM file. */
    static SSLContext trusting(Path caPem) throws IOException, GeneralSecurityException {
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        try (InputStream in = Files.newInputStream(caPem)) {
            int i = 0;
            for (Certificate cert : factory.generateCertificates(in)) {
                store.setCertificateEntry("ca-" + i++, cert);
            }
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(store);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, tmf.getTrustManagers(), null);
        return context;
    }

    private static String xmlEscape(String text) {
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }

    private Answer send(HttpRequest request) throws IOException, InterruptedException {
        HttpResponse<String> res = http.send(request, HttpResponse.BodyHandlers.ofString());
        return new Answer(res.statusCode(), res.body());
    }

    /** SOAP {@code login}: sessionId, the origin of serverUrl, organizationId and userId. */
    Session soapLogin(String username, String password) throws Exception {
        String envelope = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                + "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\""
                + " xmlns:urn=\"urn:partner.soap.sforce.com\"><soapenv:Body><urn:login>"
                + "<urn:username>" + xmlEscape(username) + "</urn:username>"
                + "<urn:password>" + xmlEscape(password) + "</urn:password>"
                + "</urn:login></soapenv:Body></soapenv:Envelope>";
        Answer answer = send(HttpRequest.newBuilder(URI.create(loginUrl + "/services/Soap/u/" + API_VERSION))
                .timeout(Duration.ofSeconds(30))
                .header("Content-Type", "text/xml; charset=UTF-8")
                .header("SOAPAction", "login")
                .POST(HttpRequest.BodyPublishers.ofString(envelope))
                .build());
        if (answer.status() != 200) {
            throw new IOException("SOAP login answered " + answer.status() + ": " + answer.body());
        }
        DocumentBuilderFactory dbf = DocumentBuilderFactory.newInstance();
        dbf.setNamespaceAware(true);
        dbf.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        Document doc = dbf.newDocumentBuilder()
                .parse(new ByteArrayInputStream(answer.body().getBytes(StandardCharsets.UTF_8)));
        String serverUrl = element(doc, "serverUrl");
        URI server = URI.create(serverUrl);
        String instance = server.getScheme() + "://" + server.getRawAuthority();
        return new Session(element(doc, "sessionId"), instance, element(doc, "organizationId"), element(doc, "userId"));
    }

    private static String element(Document doc, String name) throws IOException {
        NodeList nodes = doc.getElementsByTagNameNS("*", name);
        if (nodes.getLength() == 0) {
            throw new IOException("SOAP login result has no " + name);
        }
        return nodes.item(0).getTextContent().trim();
    }

    /** OAuth username-password flow at {@code /services/oauth2/token}. */
    Session oauthPassword(String clientId, String clientSecret, String username, String password)
            throws Exception {
        Map<String, String> form = new LinkedHashMap<>();
        form.put("grant_type", "password");
        form.put("client_id", clientId);
        form.put("client_secret", clientSecret);
        form.put("username", username);
        form.put("password", password);
        return token(form);
    }

    /** OAuth client credentials flow (the connected app runs as its user). */
    Session oauthClientCredentials(String clientId, String clientSecret) throws Exception {
        Map<String, String> form = new LinkedHashMap<>();
        form.put("grant_type", "client_credentials");
        form.put("client_id", clientId);
        form.put("client_secret", clientSecret);
        return token(form);
    }

    private Session token(Map<String, String> form) throws Exception {
        String body = form.entrySet().stream()
                .map(e -> URLEncoder.encode(e.getKey(), StandardCharsets.UTF_8) + "="
                        + URLEncoder.encode(e.getValue(), StandardCharsets.UTF_8))
                .collect(Collectors.joining("&"));
        Answer answer = send(HttpRequest.newBuilder(URI.create(loginUrl + "/services/oauth2/token"))
                .timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Accept", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build());
        if (answer.status() != 200) {
            throw new IOException("OAuth token endpoint answered " + answer.status() + ": " + answer.body());
        }
        JsonNode json = JSON.readTree(answer.body());
        // The identity URL ends in /id/{orgId}/{userId}.
        String[] id = json.path("id").asText().split("/");
        if (id.length < 2) {
            throw new IOException("OAuth answer has no identity URL: " + answer.body());
        }
        return new Session(
                json.path("access_token").asText(),
                json.path("instance_url").asText(),
                id[id.length - 2],
                id[id.length - 1]);
    }

    /**
     * A REST call under {@code /services/data/vNN.N} of the session's instance URL (the org's
     * My Domain on Salesforce; eventbus's HTTP listener here) with the session as bearer.
     */
    Answer rest(Session session, String method, String path, Object body) throws Exception {
        HttpRequest.BodyPublisher publisher = body == null
                ? HttpRequest.BodyPublishers.noBody()
                : HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body));
        String instance = session.instanceUrl().replaceAll("/+$", "");
        return send(HttpRequest.newBuilder(URI.create(instance + "/services/data/v" + API_VERSION + path))
                .timeout(Duration.ofSeconds(30))
                .header("Authorization", "Bearer " + session.accessToken())
                .header("Content-Type", "application/json")
                .method(method, publisher)
                .build());
    }

    /** Parses JSON text. */
    static JsonNode json(String text) throws IOException {
        return JSON.readTree(text);
    }
}
