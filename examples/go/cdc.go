// The Change Data Capture step: enable CDC on Account through the admin API,
// change an Account over REST, read /data/AccountChangeEvent and decode the
// changedFields bitmap to field names with the event's own schema. This file
// owns those checks; it must not log in (main.go hands it the sessions).

package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	cdcpb "eventbus.local/examples/go/internal/gen/cdcpb"
	pb "eventbus.local/examples/go/internal/gen/pubsubpb"
)

const cdcTopic = "/data/AccountChangeEvent"

// cdcEvent is one decoded change event.
type cdcEvent struct {
	changeType string
	recordIDs  []string
	changed    []string
	payload    map[string]any
}

func runCDC(ctx context.Context, c *checks, o options, client pb.PubSubClient, sc *schemas, hc *http.Client, rest, s session) {
	if o.adminToken == "" {
		// A real org selects objects in Setup (Change Data Capture); the
		// admin API is eventbus's own.
		fmt.Println("SKIP - CDC: enable Account through eventbus's admin API (no -admin-token: Account must already be selected for Change Data Capture)")
	} else if !enableAccountCDC(ctx, c, o, s) {
		return
	}

	sctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	stream, err := client.Subscribe(sctx)
	if err == nil {
		// From EARLIEST, so the changes made next are read whatever the timing.
		err = stream.Send(&pb.FetchRequest{TopicName: cdcTopic, ReplayPreset: pb.ReplayPreset_EARLIEST, NumRequested: 10})
	}
	if err != nil {
		c.fail("CDC: Subscribe "+cdcTopic, err)
		return
	}

	status, body, err := restCall(ctx, hc, rest, http.MethodPost, "/services/data/v62.0/sobjects/Account",
		map[string]any{"Name": "Go Acme", "BillingCity": "Paris", "Phone": "+33 1 23 45 67 89"})
	id, _ := body["id"].(string)
	if !c.check("CDC: REST create Account answers 201 with an 001 id", err == nil && status == http.StatusCreated && strings.HasPrefix(id, "001"),
		"status %d, body %v, error %v", status, body, err) {
		return
	}
	status, body, err = restCall(ctx, hc, rest, http.MethodPatch, "/services/data/v62.0/sobjects/Account/"+id,
		map[string]any{"Name": "Go Acme Corp", "BillingCity": "Lyon"})
	if !c.check("CDC: REST update of Name and BillingCity answers 204", err == nil && status == http.StatusNoContent,
		"status %d, body %v, error %v", status, body, err) {
		return
	}

	// Only this record's events count (a real org has others), with the
	// credit topped up at half as in the Subscribe step.
	var events []cdcEvent
	cr := &credit{size: 10, requested: 10}
	for len(events) < 2 {
		res, err := stream.Recv()
		if err != nil {
			c.fail(fmt.Sprintf("CDC: Subscribe %s: 2 events", cdcTopic), fmt.Errorf("after %d: %w", len(events), err))
			return
		}
		for _, ev := range res.GetEvents() {
			e, err := decodeChange(sctx, sc, ev)
			if err != nil {
				c.fail("CDC: decode a change event", err)
				return
			}
			if slices.Contains(e.recordIDs, id) {
				events = append(events, e)
			}
		}
		if more := cr.took(len(res.GetEvents()), res.GetPendingNumRequested(), cr.received+cr.size); more > 0 {
			if err := stream.Send(&pb.FetchRequest{NumRequested: int32(more)}); err != nil {
				c.fail("CDC: request more events", err)
				return
			}
		}
	}
	create, update := events[0], events[1]
	c.check("CDC: "+cdcTopic+" yields CREATE then UPDATE of the record", create.changeType == "CREATE" && update.changeType == "UPDATE" &&
		slices.Equal(create.recordIDs, []string{id}) && slices.Equal(update.recordIDs, []string{id}),
		"got %s %v, %s %v", create.changeType, create.recordIDs, update.changeType, update.recordIDs)
	c.check("CDC: CREATE changedFields decode to no field", len(create.changed) == 0, "decoded %v", create.changed)
	missing := []string{}
	for _, n := range []string{"Name", "BillingAddress.City", "LastModifiedDate"} {
		if !slices.Contains(update.changed, n) {
			missing = append(missing, n)
		}
	}
	c.check("CDC: UPDATE changedFields bitmap decodes to Name, BillingAddress.City, LastModifiedDate (not Phone)",
		len(missing) == 0 && !slices.Contains(update.changed, "Phone"), "decoded %v, missing %v", update.changed, missing)
	city := ""
	if addr, ok := unionValue(update.payload["BillingAddress"]).(map[string]any); ok {
		city, _ = addr["City"].(string)
	}
	c.check("CDC: UPDATE carries the new Name and BillingAddress.City", update.payload["Name"] == "Go Acme Corp" && city == "Lyon",
		"Name %v, City %q", update.payload["Name"], city)
	err = closeAndDrain(stream)
	c.check("CDC: the server ends the Subscribe with OK after the client half-closes", err == nil, "%v", err)
}

// enableAccountCDC selects Account for Change Data Capture through
// eventbus's admin API, with an admin token of the same org.
func enableAccountCDC(ctx context.Context, c *checks, o options, s session) bool {
	adminConn, err := dial(o, session{Token: o.adminToken, InstanceURL: s.InstanceURL, OrgID: s.OrgID})
	if err != nil {
		c.fail("CDC: admin connection", err)
		return false
	}
	defer adminConn.Close()
	actx, cancel := context.WithTimeout(ctx, unaryTimeout)
	defer cancel()
	member, err := cdcpb.NewChangeDataCaptureClient(adminConn).EnableChangeEvents(actx, &cdcpb.ChangeEventsRequest{Name: "Account"})
	if err != nil {
		c.fail("CDC: enable Account (admin EnableChangeEvents)", err)
		return false
	}
	return c.check("CDC: enable Account (admin EnableChangeEvents) selects "+cdcTopic, member.GetTopicName() == cdcTopic, "got %v", member)
}

// decodeChange decodes a change event with its schema and reads its header.
func decodeChange(ctx context.Context, sc *schemas, ev *pb.ConsumerEvent) (cdcEvent, error) {
	rs, err := sc.get(ctx, ev.GetEvent().GetSchemaId())
	if err != nil {
		return cdcEvent{}, err
	}
	rec, err := decode(rs, ev.GetEvent().GetPayload())
	if err != nil {
		return cdcEvent{}, err
	}
	h, ok := unionValue(rec["ChangeEventHeader"]).(map[string]any)
	if !ok {
		return cdcEvent{}, fmt.Errorf("no ChangeEventHeader in %v", rec)
	}
	out := cdcEvent{payload: rec}
	out.changeType, _ = h["changeType"].(string)
	out.recordIDs = strings_(h["recordIds"])
	out.changed, err = bitmapNames(rs, strings_(h["changedFields"]))
	return out, err
}

// strings_ reads a decoded Avro array of strings.
func strings_(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
