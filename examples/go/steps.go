// The platform event steps of the example: GetTopic, GetSchema, Publish,
// PublishStream with correlation keys, Subscribe with flow control, and
// ManagedSubscribe with commits and a resume from a new process. This file
// owns those checks; it must not log in (main.go hands it a connection).

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	pb "eventbus.local/examples/go/internal/gen/pubsubpb"
)

// streamTimeout bounds each streaming step.
const streamTimeout = 60 * time.Second

// flow is one run's state: what was published, in order.
type flow struct {
	c       *checks
	o       options
	client  pb.PubSubClient
	schemas *schemas
	// tag prefixes this run's OrderNumber__c values.
	tag       string
	schemaID  string
	schema    *avro.RecordSchema
	topicName string
	userID    string
	// published holds OrderNumber__c of every event published, in order.
	published []string
	seq       int
}

// newID is a random UUID-shaped id for events and commit requests.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (f *flow) topicAndSchema(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, unaryTimeout)
	defer cancel()
	info, err := f.client.GetTopic(cctx, &pb.TopicRequest{TopicName: f.o.topic})
	if err != nil {
		f.c.fail("GetTopic "+f.o.topic, err)
		return false
	}
	f.c.check("GetTopic "+f.o.topic+": can publish and subscribe, has a schema id",
		info.GetCanPublish() && info.GetCanSubscribe() && info.GetSchemaId() != "" && info.GetRpcId() != "",
		"got %v", info)
	f.topicName = info.GetTopicName()
	if f.topicName == "" {
		f.topicName = f.o.topic
	}
	f.schemaID = info.GetSchemaId()
	sinfo, err := f.client.GetSchema(cctx, &pb.SchemaRequest{SchemaId: f.schemaID})
	if err != nil {
		f.c.fail("GetSchema", err)
		return false
	}
	rs, err := parseRecordSchema(sinfo.GetSchemaJson())
	if err != nil {
		f.c.fail("GetSchema: the schema parses as an Avro record", err)
		return false
	}
	names := []string{}
	for _, fld := range rs.Fields() {
		names = append(names, fld.Name())
	}
	f.c.check("GetSchema: Avro record "+rs.Name()+" with OrderNumber__c and the schema id asked for",
		sinfo.GetSchemaId() == f.schemaID && slices.Contains(names, "OrderNumber__c") && slices.Contains(names, "CreatedDate"),
		"schema id %q, fields %v", sinfo.GetSchemaId(), names)
	f.schema = rs
	return true
}

// event makes the next event: Avro-encoded with the topic's schema.
func (f *flow) event() (*pb.ProducerEvent, string, error) {
	f.seq++
	order := fmt.Sprintf("%s-%03d", f.tag, f.seq)
	record := map[string]any{
		"CreatedDate":    time.Now().UnixMilli(),
		"CreatedById":    "005000000000001AAA",
		"OrderNumber__c": order,
		"Amount__c":      float64(f.seq) * 12.5,
		"Status__c":      "New",
	}
	payload, err := avro.Marshal(f.schema, record)
	if err != nil {
		return nil, "", fmt.Errorf("avro encode: %w", err)
	}
	return &pb.ProducerEvent{Id: newID(), SchemaId: f.schemaID, Payload: payload}, order, nil
}

// publishUnary publishes n events with one Publish call; returns the check's
// verdict.
func (f *flow) publishUnary(ctx context.Context, what string, n int) bool {
	events := make([]*pb.ProducerEvent, 0, n)
	orders := make([]string, 0, n)
	for range n {
		ev, order, err := f.event()
		if err != nil {
			f.c.fail(what, err)
			return false
		}
		events = append(events, ev)
		orders = append(orders, order)
	}
	cctx, cancel := context.WithTimeout(ctx, unaryTimeout)
	defer cancel()
	res, err := f.client.Publish(cctx, &pb.PublishRequest{TopicName: f.topicName, Events: events})
	if err != nil {
		f.c.fail(what, err)
		return false
	}
	problems := []string{}
	if len(res.GetResults()) != n {
		problems = append(problems, fmt.Sprintf("%d results for %d events", len(res.GetResults()), n))
	}
	for i, r := range res.GetResults() {
		if r.GetError() != nil || len(r.GetReplayId()) == 0 {
			problems = append(problems, fmt.Sprintf("result %d: %v", i, r))
		} else if i < n && r.GetCorrelationKey() != "" && r.GetCorrelationKey() != events[i].GetId() {
			problems = append(problems, fmt.Sprintf("result %d correlation key %q for event id %q", i, r.GetCorrelationKey(), events[i].GetId()))
		}
	}
	ok := f.c.check(what, len(problems) == 0 && res.GetSchemaId() == f.schemaID, "%s (schema id %q)", strings.Join(problems, "; "), res.GetSchemaId())
	if ok {
		f.published = append(f.published, orders...)
	}
	return ok
}

func (f *flow) publish(ctx context.Context) {
	f.publishUnary(ctx, "Publish: 3 Avro-encoded events, each with a replay id", 3)
}

// publishStream sends 5 requests of 2 events without waiting for answers and
// matches every result to its event by correlation key (the event id).
func (f *flow) publishStream(ctx context.Context) {
	const requests, perRequest = 5, 2
	what := fmt.Sprintf("PublishStream: %d requests of %d events", requests, perRequest)
	cctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	stream, err := f.client.PublishStream(cctx)
	if err != nil {
		f.c.fail(what, err)
		return
	}
	want := map[string]string{} // event id -> OrderNumber__c
	var orders []string
	for range requests {
		req := &pb.PublishRequest{TopicName: f.topicName}
		for range perRequest {
			ev, order, err := f.event()
			if err != nil {
				f.c.fail(what, err)
				return
			}
			req.Events = append(req.Events, ev)
			want[ev.GetId()] = order
			orders = append(orders, order)
		}
		if err := stream.Send(req); err != nil {
			f.c.fail(what+": send", err)
			return
		}
	}
	got := map[string]bool{}
	var problems []string
	responses := 0
	for len(got) < len(want) {
		res, err := stream.Recv()
		if err != nil {
			problems = append(problems, fmt.Sprintf("after %d results: %v", len(got), err))
			break
		}
		if len(res.GetResults()) == 0 {
			continue // a keepalive
		}
		responses++
		for _, r := range res.GetResults() {
			key := r.GetCorrelationKey()
			switch {
			case r.GetError() != nil:
				problems = append(problems, fmt.Sprintf("%s: %v", key, r.GetError()))
			case want[key] == "":
				problems = append(problems, fmt.Sprintf("correlation key %q is none of our event ids", key))
			case got[key]:
				problems = append(problems, fmt.Sprintf("correlation key %q answered twice", key))
			case len(r.GetReplayId()) == 0:
				problems = append(problems, fmt.Sprintf("%s: no replay id", key))
			}
			got[key] = true
		}
	}
	f.c.check(what+": every correlation key is one of our event ids, each answered once with a replay id",
		len(problems) == 0 && len(got) == len(want), "%d of %d answered in %d responses; %s", len(got), len(want), responses, strings.Join(problems, "; "))
	// Half-close once everything is answered: the server ends the call with OK.
	err = closeAndDrain(stream)
	f.c.check("PublishStream: the server ends the call with OK after the client half-closes", err == nil, "%v", err)
	if len(problems) == 0 {
		f.published = append(f.published, orders...)
	}
}

// halfCloser is what closeAndDrain needs of a client stream.
type halfCloser[T any] interface {
	CloseSend() error
	Recv() (T, error)
}

// closeAndDrain half-closes and reads until the server ends the call: nil
// when it ends with OK (io.EOF).
func closeAndDrain[T any](s halfCloser[T]) error {
	_ = s.CloseSend()
	for {
		if _, err := s.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// orderOf decodes an event and returns its OrderNumber__c ("" if none).
func (f *flow) orderOf(ctx context.Context, ev *pb.ConsumerEvent) (string, error) {
	rs, err := f.schemas.get(ctx, ev.GetEvent().GetSchemaId())
	if err != nil {
		return "", err
	}
	rec, err := decode(rs, ev.GetEvent().GetPayload())
	if err != nil {
		return "", err
	}
	s, _ := rec["OrderNumber__c"].(string)
	return s, nil
}

// credit tracks Subscribe flow control: how much was requested and received.
type credit struct {
	size, requested, received, topUps int
	exceeded                          bool
	pendingOff                        string
}

// took accounts for a response's events and the server's pending count, and
// returns how many more to request (0: none yet): once half the credit is
// used, it tops the outstanding credit back up to its size.
func (cr *credit) took(events int, pending int32, wantTotal int) int {
	cr.received += events
	if cr.received > cr.requested {
		cr.exceeded = true
	}
	outstanding := cr.requested - cr.received
	// The server cannot owe more than we asked for.
	if int(pending) > outstanding && cr.pendingOff == "" {
		cr.pendingOff = fmt.Sprintf("pending_num_requested %d with %d outstanding", pending, outstanding)
	}
	if cr.received >= wantTotal || outstanding > cr.size/2 {
		return 0
	}
	more := cr.size - outstanding
	cr.requested += more
	cr.topUps++
	return more
}

// subscribe reads every published event from EARLIEST with a small credit,
// requesting more when half of it is used.
func (f *flow) subscribe(ctx context.Context) {
	want := len(f.published)
	cctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	stream, err := f.client.Subscribe(cctx)
	if err != nil {
		f.c.fail("Subscribe", err)
		return
	}
	cr := &credit{size: f.o.credit, requested: f.o.credit}
	if err := stream.Send(&pb.FetchRequest{TopicName: f.topicName, ReplayPreset: pb.ReplayPreset_EARLIEST, NumRequested: int32(f.o.credit)}); err != nil {
		f.c.fail("Subscribe: first FetchRequest", err)
		return
	}
	var got []string
	var problem error
	for cr.received < want && problem == nil {
		res, err := stream.Recv()
		if err != nil {
			problem = err
			break
		}
		for _, ev := range res.GetEvents() {
			order, err := f.orderOf(cctx, ev)
			if err != nil {
				problem = err
				break
			}
			got = append(got, order)
		}
		if more := cr.took(len(res.GetEvents()), res.GetPendingNumRequested(), want); more > 0 {
			// Later requests carry only the credit, as the official clients send them.
			if err := stream.Send(&pb.FetchRequest{NumRequested: int32(more)}); err != nil {
				problem = err
			}
		}
	}
	f.c.check(fmt.Sprintf("Subscribe from EARLIEST with credit %d: all %d published events, decoded, in order", f.o.credit, want),
		problem == nil && slices.Equal(got, f.published), "error %v; got %v, want %v", problem, got, f.published)
	f.c.check(fmt.Sprintf("Subscribe flow control: requested more %d times at half credit, the server never sent past the credit", cr.topUps),
		cr.topUps > 0 && !cr.exceeded && cr.pendingOff == "", "top-ups %d, received %d of %d requested, %s", cr.topUps, cr.received, cr.requested, cr.pendingOff)
	err = closeAndDrain(stream)
	f.c.check("Subscribe: the server ends the call with OK after the client half-closes", err == nil, "%v", err)
}

// managed reads every event through the managed subscription, committing
// halfway and at the end, then publishes later events and has a new client
// process resume: it must get only those.
func (f *flow) managed(ctx context.Context, s session) {
	want := len(f.published)
	name := "ManagedSubscribe " + f.o.managed
	cctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	stream, err := f.client.ManagedSubscribe(cctx)
	if err != nil {
		f.c.fail(name, err)
		return
	}
	if err := stream.Send(&pb.ManagedFetchRequest{DeveloperName: f.o.managed, NumRequested: int32(f.o.credit)}); err != nil {
		f.c.fail(name+": first request", err)
		return
	}
	cr := &credit{size: f.o.credit, requested: f.o.credit}
	var got []string
	commits := map[string]bool{} // commit request id -> answered without error
	var commitProblems []string
	var problem error
	committedMid := false
	for (cr.received < want || len(commits) < 2 || slices.Contains(mapValues(commits), false)) && problem == nil {
		res, err := stream.Recv()
		if err != nil {
			problem = err
			break
		}
		if ans := res.GetCommitResponse(); ans != nil {
			if _, ours := commits[ans.GetCommitRequestId()]; !ours {
				commitProblems = append(commitProblems, "answer to an unknown commit "+ans.GetCommitRequestId())
			} else if ans.GetError() != nil {
				commitProblems = append(commitProblems, fmt.Sprintf("commit %s: %v", ans.GetCommitRequestId(), ans.GetError()))
				commits[ans.GetCommitRequestId()] = true // answered, though with an error
			} else {
				commits[ans.GetCommitRequestId()] = true
			}
		}
		for _, ev := range res.GetEvents() {
			order, err := f.orderOf(cctx, ev)
			if err != nil {
				problem = err
				break
			}
			got = append(got, order)
			// Commit halfway and at the last event.
			if (len(got) == want/2 && !committedMid) || len(got) == want {
				committedMid = true
				id := newID()
				commits[id] = false
				if err := stream.Send(&pb.ManagedFetchRequest{CommitReplayIdRequest: &pb.CommitReplayRequest{CommitRequestId: id, ReplayId: ev.GetReplayId()}}); err != nil {
					problem = err
				}
			}
		}
		if more := cr.took(len(res.GetEvents()), res.GetPendingNumRequested(), want); more > 0 {
			if err := stream.Send(&pb.ManagedFetchRequest{NumRequested: int32(more)}); err != nil {
				problem = err
			}
		}
	}
	f.c.check(fmt.Sprintf("%s: all %d events from its default EARLIEST, in order, with flow control", name, want),
		problem == nil && slices.Equal(got, f.published) && !cr.exceeded && cr.topUps > 0, "error %v; got %v; top-ups %d, exceeded %v", problem, got, cr.topUps, cr.exceeded)
	f.c.check(name+": both commits (halfway, last event) answered by commit_request_id without error",
		len(commits) == 2 && !slices.Contains(mapValues(commits), false) && len(commitProblems) == 0, "%v %s", commits, strings.Join(commitProblems, "; "))
	err = closeAndDrain(stream)
	f.c.check(name+": the server ends the call with OK after the client half-closes", err == nil, "%v", err)

	before := len(f.published)
	if !f.publishUnary(ctx, "Publish: 3 later events after the commit", 3) {
		return
	}
	later := f.published[before:]
	args := []string{"-grpc", f.o.grpcAddr, "-login", f.o.login, "-token", s.Token, "-org", s.OrgID,
		"-managed", f.o.managed, "-expect", strings.Join(later, ",")}
	if f.o.ca != "" {
		args = append(args, "-ca", f.o.ca)
	}
	if f.o.tls {
		args = append(args, "-tls")
	}
	runChild(f.c, args)
}

func mapValues(m map[string]bool) []bool {
	out := make([]bool, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// runResume is the new client process: a ManagedSubscribe on a new
// connection must start after the last commit and yield exactly -expect.
func runResume(c *checks, o options) error {
	expect := strings.Split(o.expect, ",")
	if o.grpcAddr == "" || o.token == "" || o.expect == "" {
		return fmt.Errorf("resume needs -grpc, -token and -expect")
	}
	conn, err := dial(o, session{Token: o.token, InstanceURL: o.login, OrgID: o.org})
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewPubSubClient(conn)
	f := &flow{c: c, o: o, client: client, schemas: newSchemas(client)}
	name := "resume: ManagedSubscribe " + o.managed + " in a new process"
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()
	stream, err := client.ManagedSubscribe(ctx)
	if err != nil {
		c.fail(name, err)
		return nil
	}
	if err := stream.Send(&pb.ManagedFetchRequest{DeveloperName: o.managed, NumRequested: int32(len(expect) + 5)}); err != nil {
		c.fail(name, err)
		return nil
	}
	var got []string
	var last []byte
	var problem error
	for len(got) < len(expect) && problem == nil {
		res, err := stream.Recv()
		if err != nil {
			problem = err
			break
		}
		for _, ev := range res.GetEvents() {
			order, err := f.orderOf(ctx, ev)
			if err != nil {
				problem = err
				break
			}
			got = append(got, order)
			last = ev.GetReplayId()
		}
	}
	c.check(name+": starts after the committed replay id, only the later events", problem == nil && slices.Equal(got, expect),
		"error %v; got %v, want %v", problem, got, expect)
	if last != nil {
		id := newID()
		var answer *pb.CommitReplayResponse
		if err := stream.Send(&pb.ManagedFetchRequest{CommitReplayIdRequest: &pb.CommitReplayRequest{CommitRequestId: id, ReplayId: last}}); err == nil {
			for answer == nil {
				res, err := stream.Recv()
				if err != nil {
					problem = err
					break
				}
				answer = res.GetCommitResponse()
			}
		} else {
			problem = err
		}
		c.check("resume: commit of the last event answered", answer != nil && answer.GetCommitRequestId() == id && answer.GetError() == nil, "answer %v, error %v", answer, problem)
	}
	err = closeAndDrain(stream)
	c.check("resume: the server ends the call with OK after the client half-closes", err == nil, "%v", err)
	return nil
}
