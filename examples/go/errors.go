// Error answers as grpc-go reads them: a refused call ends with a status and
// Salesforce's `error-code` trailer, which the server sends as a
// trailers-only response (HEADERS with END_STREAM). This file owns those
// checks: an unknown topic on a unary and on a streaming call, and a wrong
// access token; it must not log in.

package main

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "eventbus.local/examples/go/internal/gen/pubsubpb"
)

const topicNotFound = "sfdc.platform.eventbus.grpc.topic.not.found"

func (f *flow) errorAnswers(ctx context.Context, s session) {
	cctx, cancel := context.WithTimeout(ctx, unaryTimeout)
	defer cancel()
	var trailer metadata.MD
	_, err := f.client.GetTopic(cctx, &pb.TopicRequest{TopicName: "/event/No_Such_Event__e"}, grpc.Trailer(&trailer))
	f.c.check("errors: GetTopic of an unknown topic is NOT_FOUND with the error-code trailer "+topicNotFound,
		status.Code(err) == codes.NotFound && first(trailer, "error-code") == topicNotFound && first(trailer, "rpc-id") != "",
		"got %v, trailers %v", err, trailer)

	stream, err := f.client.Subscribe(cctx)
	if err == nil {
		err = stream.Send(&pb.FetchRequest{TopicName: "/event/No_Such_Event__e", ReplayPreset: pb.ReplayPreset_LATEST, NumRequested: 1})
	}
	if err == nil {
		_, err = stream.Recv()
	}
	var st metadata.MD
	if stream != nil {
		st = stream.Trailer()
	}
	f.c.check("errors: Subscribe to an unknown topic ends NOT_FOUND with the error-code trailer",
		status.Code(err) == codes.NotFound && first(st, "error-code") == topicNotFound, "got %v, trailers %v", err, st)

	bad := s
	bad.Token = "not-a-session"
	conn, err := dial(f.o, bad)
	if err != nil {
		f.c.fail("errors: connection with a wrong token", err)
		return
	}
	defer conn.Close()
	_, err = pb.NewPubSubClient(conn).GetTopic(cctx, &pb.TopicRequest{TopicName: f.o.topic})
	f.c.check("errors: a wrong access token is UNAUTHENTICATED", status.Code(err) == codes.Unauthenticated, "got %v", err)
}

// first is the first value of a metadata key, or "".
func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
