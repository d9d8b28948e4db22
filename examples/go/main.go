// Command goclient is eventbus's Go example: a grpc-go client of the
// Salesforce Pub/Sub API (eventbus.v1.PubSub, stubs generated from this
// repo's proto at build time) that logs in through the org API and checks
// every call a Go integration makes, printing one PASS or FAIL line per
// check and `N passed, N failed` at the end. This file owns the command
// line, the connection (TLS, keepalive, call headers) and the check counter;
// the steps live in steps.go, cdc.go and idle.go.
//
//	goclient run    -login URL -grpc HOST:PORT [-ca ca.pem] ...   all steps
//	goclient resume -grpc HOST:PORT -token T -org ORG -expect A,B  (a new process: managed resume)
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	pb "eventbus.local/examples/go/internal/gen/pubsubpb"
)

// Client keepalive as a long-lived Salesforce subscriber sets it: a ping
// after 60 s without reads, the connection given up 20 s after an
// unanswered ping; no pings while no call is open.
var clientKeepalive = keepalive.ClientParameters{
	Time:                60 * time.Second,
	Timeout:             20 * time.Second,
	PermitWithoutStream: false,
}

// unaryTimeout is the deadline of each unary call (grpc-go sends it as
// grpc-timeout).
const unaryTimeout = 30 * time.Second

// checks counts PASS and FAIL lines.
type checks struct {
	mu             sync.Mutex
	passed, failed int
}

// check prints `PASS - what` or `FAIL - what: detail` and returns ok.
func (c *checks) check(what string, ok bool, detail string, args ...any) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		c.passed++
		fmt.Printf("PASS - %s\n", what)
	} else {
		c.failed++
		fmt.Printf("FAIL - %s: %s\n", what, fmt.Sprintf(detail, args...))
	}
	return ok
}

// fail records a failed check from an error.
func (c *checks) fail(what string, err error) {
	c.check(what, false, "%v", err)
}

// options are the command-line settings of both modes.
type options struct {
	login, grpcAddr, ca    string
	username, password     string
	clientID, clientSecret string
	adminToken             string
	topic, managed         string
	token, org, expect     string
	label                  string
	tls                    bool
	credit                 int
	idle                   time.Duration
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "run" && os.Args[1] != "resume") {
		fmt.Fprintln(os.Stderr, "usage: goclient run|resume [flags] (see -h)")
		os.Exit(2)
	}
	mode := os.Args[1]
	var o options
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	fs.StringVar(&o.label, "label", "goclient", "name of this run in the summary line")
	fs.StringVar(&o.login, "login", "", "login URL (SOAP and OAuth; REST too): https://localhost:PORT")
	fs.StringVar(&o.grpcAddr, "grpc", "", "gRPC endpoint HOST:PORT (by name with TLS: the certificate's)")
	fs.StringVar(&o.ca, "ca", "", "PEM CA to trust; implies -tls")
	fs.BoolVar(&o.tls, "tls", false, "TLS with the system's trusted CAs (a real org: api.pubsub.salesforce.com:7443); plaintext without it or -ca")
	fs.StringVar(&o.username, "username", "developer@example.com", "org user")
	fs.StringVar(&o.password, "password", os.Getenv("EVENTBUS_EXAMPLE_PASSWORD"), "password (default $EVENTBUS_EXAMPLE_PASSWORD)")
	fs.StringVar(&o.clientID, "client-id", "eventbus-go-example", "connected app for the OAuth login")
	fs.StringVar(&o.clientSecret, "client-secret", os.Getenv("EVENTBUS_EXAMPLE_CLIENT_SECRET"), "its secret (default $EVENTBUS_EXAMPLE_CLIENT_SECRET)")
	fs.StringVar(&o.adminToken, "admin-token", os.Getenv("EVENTBUS_ADMIN_TOKEN"), "admin token of the org, to enable CDC on Account (default $EVENTBUS_ADMIN_TOKEN)")
	fs.StringVar(&o.topic, "topic", "/event/Order_Event__e", "platform event topic")
	fs.StringVar(&o.managed, "managed", "Order_Processor", "developer name of a managed subscription on -topic")
	fs.IntVar(&o.credit, "credit", 4, "Subscribe credit (num_requested); more is requested when half is used")
	fs.DurationVar(&clientKeepalive.Time, "keepalive-time", clientKeepalive.Time, "grpc-go client keepalive: ping after this long without reads (grpc-go's floor is 10s)")
	fs.DurationVar(&o.idle, "idle", 0, "hold an idle Subscribe this long at the end (0: skip)")
	fs.StringVar(&o.token, "token", "", "resume: session token")
	fs.StringVar(&o.org, "org", "", "resume: org id")
	fs.StringVar(&o.expect, "expect", "", "resume: OrderNumber__c values the resumed stream must yield, comma-separated")
	_ = fs.Parse(os.Args[2:])

	c := &checks{}
	var err error
	if mode == "run" {
		err = runAll(c, o)
	} else {
		err = runResume(c, o)
	}
	if err != nil {
		c.fail("setup", err)
	}
	if mode == "run" {
		fmt.Printf("== %s: %d passed, %d failed\n", o.label, c.passed, c.failed)
	}
	if c.failed > 0 {
		os.Exit(1)
	}
}

// dial opens a client connection with the keepalive above, TLS trusting the
// CA in o.ca (or plaintext), and a per-call header interceptor that adds the
// three headers Salesforce clients send.
func dial(o options, s session) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if o.ca != "" || o.tls {
		// nil RootCAs: the system's trusted CAs.
		var pool *x509.CertPool
		if o.ca != "" {
			var err error
			if pool, err = caPool(o.ca); err != nil {
				return nil, err
			}
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	md := metadata.Pairs("accesstoken", s.Token, "instanceurl", s.InstanceURL, "tenantid", s.OrgID)
	return grpc.NewClient(o.grpcAddr,
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(clientKeepalive),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.NewOutgoingContext(ctx, md), method, req, reply, cc, opts...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(metadata.NewOutgoingContext(ctx, md), desc, cc, method, opts...)
		}),
	)
}

func caPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", path)
	}
	return pool, nil
}

// httpClient trusts the same CA as the gRPC connection.
func httpClient(o options) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.ca != "" {
		pool, err := caPool(o.ca)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// runAll runs every step against one server.
func runAll(c *checks, o options) error {
	if o.login == "" || o.grpcAddr == "" {
		return fmt.Errorf("-login and -grpc are required")
	}
	hc, err := httpClient(o)
	if err != nil {
		return err
	}
	ctx := context.Background()

	soap, err := soapLogin(ctx, hc, o.login, o.username, o.password)
	if err != nil {
		c.fail("SOAP login", err)
		return nil
	}
	c.check("SOAP login: session, org id and user id", soap.Token != "" && len(soap.OrgID) >= 15 && strings.HasPrefix(soap.UserID, "005"),
		"got org %q user %q", soap.OrgID, soap.UserID)
	oauth, err := oauthLogin(ctx, hc, o.login, o.clientID, o.clientSecret, o.username, o.password)
	if err != nil {
		c.fail("OAuth login", err)
		return nil
	}
	c.check("OAuth login (password grant): token for the same org and user", oauth.Token != "" && oauth.OrgID == soap.OrgID && oauth.UserID == soap.UserID,
		"got org %q user %q, SOAP said %q %q", oauth.OrgID, oauth.UserID, soap.OrgID, soap.UserID)
	// REST calls go to the instance URL the OAuth answer names.
	rest := oauth
	if rest.InstanceURL == "" {
		rest.InstanceURL = o.login
	}

	// gRPC with the SOAP session, as the official examples do.
	conn, err := dial(o, soap)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewPubSubClient(conn)
	sc := newSchemas(client)

	run := &flow{c: c, o: o, client: client, schemas: sc, tag: fmt.Sprintf("GO-%d", time.Now().UnixNano()%1_000_000_000)}
	if !run.topicAndSchema(ctx) {
		return nil
	}
	run.errorAnswers(ctx, soap)
	run.publish(ctx)
	run.publishStream(ctx)
	run.subscribe(ctx)
	run.managed(ctx, soap)
	runCDC(ctx, c, o, client, sc, hc, rest, soap)
	run.largeEvents(ctx)
	if o.idle > 0 {
		run.idleSubscribe(ctx, conn)
	}
	return nil
}

// runChild runs `goclient resume ...` as a new process and counts its
// PASS/FAIL lines as ours.
func runChild(c *checks, args []string) {
	self, err := os.Executable()
	if err != nil {
		c.fail("resume: start a new client process", err)
		return
	}
	cmd := exec.Command(self, append([]string{"resume"}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.fail("resume: start a new client process", err)
		return
	}
	if err := cmd.Start(); err != nil {
		c.fail("resume: start a new client process", err)
		return
	}
	sc := bufio.NewScanner(out)
	seen := 0
	for sc.Scan() {
		line := sc.Text()
		fmt.Println(line)
		c.mu.Lock()
		switch {
		case strings.HasPrefix(line, "PASS"):
			c.passed++
			seen++
		case strings.HasPrefix(line, "FAIL"):
			c.failed++
			seen++
		}
		c.mu.Unlock()
	}
	err = cmd.Wait()
	c.check("resume: the new client process ran its checks and exited 0", err == nil && seen > 0, "exit %v after %d checks", err, seen)
}
