// Message sizes against grpc-go's defaults: a client receives at most 4 MiB
// per message unless it raises MaxCallRecvMsgSize, and Salesforce events are
// up to 1 MiB. This file owns one check: events of about 900 KB, more than
// 4 MiB together, reach a Subscribe with a large credit in responses that
// each stay under the client's limit. It must not log in.

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	pb "eventbus.local/examples/go/internal/gen/pubsubpb"
)

// grpcGoMaxRecv is grpc-go's default receive limit per message.
const grpcGoMaxRecv = 4 * 1024 * 1024

func (f *flow) largeEvents(ctx context.Context) {
	const perCall, calls, size = 3, 2, 900_000
	what := fmt.Sprintf("sizes: %d events of %d KB published in %d Publish calls", perCall*calls, size/1000, calls)
	filler := strings.Repeat("x", size)
	var big []string
	for range calls {
		req := &pb.PublishRequest{TopicName: f.topicName}
		var orders []string
		for range perCall {
			f.seq++
			order := fmt.Sprintf("%s-%03d-large", f.tag, f.seq)
			payload, err := avro.Marshal(f.schema, map[string]any{
				"CreatedDate": time.Now().UnixMilli(), "CreatedById": "005000000000001AAA",
				"OrderNumber__c": order, "Amount__c": nil, "Status__c": filler,
			})
			if err != nil {
				f.c.fail(what, err)
				return
			}
			req.Events = append(req.Events, &pb.ProducerEvent{Id: newID(), SchemaId: f.schemaID, Payload: payload})
			orders = append(orders, order)
		}
		cctx, cancel := context.WithTimeout(ctx, unaryTimeout)
		res, err := f.client.Publish(cctx, req)
		cancel()
		if err != nil {
			f.c.fail(what, err)
			return
		}
		for _, r := range res.GetResults() {
			if r.GetError() != nil {
				f.c.fail(what, fmt.Errorf("%v", r.GetError()))
				return
			}
		}
		f.published = append(f.published, orders...)
		big = append(big, orders...)
	}
	f.c.check(what, len(big) == perCall*calls, "published %d", len(big))

	// From EARLIEST with a credit covering everything: the server decides
	// how to split it into responses.
	want := len(f.published)
	cctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	stream, err := f.client.Subscribe(cctx)
	if err == nil {
		err = stream.Send(&pb.FetchRequest{TopicName: f.topicName, ReplayPreset: pb.ReplayPreset_EARLIEST, NumRequested: int32(want)})
	}
	if err != nil {
		f.c.fail("sizes: Subscribe", err)
		return
	}
	var got []string
	largest, responses := 0, 0
	for len(got) < want {
		res, err := stream.Recv()
		if err != nil {
			f.c.fail(fmt.Sprintf("sizes: Subscribe with credit %d receives every event (grpc-go's default 4 MiB receive limit)", want), fmt.Errorf("after %d events: %w", len(got), err))
			return
		}
		responses++
		bytes := 0
		for _, ev := range res.GetEvents() {
			bytes += len(ev.GetEvent().GetPayload())
			order, err := f.orderOf(cctx, ev)
			if err != nil {
				f.c.fail("sizes: decode", err)
				return
			}
			got = append(got, order)
		}
		largest = max(largest, bytes)
	}
	tail := got[len(got)-len(big):]
	f.c.check(fmt.Sprintf("sizes: Subscribe with credit %d receives every event in %d responses under grpc-go's default 4 MiB limit (largest %d KB of payloads)", want, responses, largest/1000),
		strings.Join(tail, ",") == strings.Join(big, ",") && largest < grpcGoMaxRecv, "got %d events", len(got))
	err = closeAndDrain(stream)
	f.c.check("sizes: the server ends the call with OK after the client half-closes", err == nil, "%v", err)
}
