// The opt-in idle check (`IDLE_MINUTES=10 run.sh`): one Subscribe held open
// with no events for a long time, as a real subscriber waits, with grpc-go's
// client keepalive on. It must survive the silence and then deliver an event
// published at its end. This file owns that check; it must not log in.

package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"

	pb "eventbus.local/examples/go/internal/gen/pubsubpb"
)

func (f *flow) idleSubscribe(ctx context.Context, conn *grpc.ClientConn) {
	name := fmt.Sprintf("idle: Subscribe open %s without events (client keepalive %s)", f.o.idle, clientKeepalive.Time)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Every connectivity change while the stream waits: a GOAWAY (for
	// example too_many_pings) or a dropped connection shows up here.
	var mu sync.Mutex
	var states []string
	go func() {
		s := conn.GetState()
		for conn.WaitForStateChange(ctx, s) {
			s = conn.GetState()
			mu.Lock()
			states = append(states, fmt.Sprintf("%s at %s", s, time.Now().UTC().Format(time.TimeOnly)))
			mu.Unlock()
		}
	}()

	stream, err := f.client.Subscribe(ctx)
	if err == nil {
		err = stream.Send(&pb.FetchRequest{TopicName: f.topicName, ReplayPreset: pb.ReplayPreset_LATEST, NumRequested: 5})
	}
	if err != nil {
		f.c.fail(name, err)
		return
	}
	type recv struct {
		res *pb.FetchResponse
		err error
		at  time.Time
	}
	ch := make(chan recv, 16)
	go func() {
		for {
			res, err := stream.Recv()
			ch <- recv{res, err, time.Now()}
			if err != nil {
				return
			}
		}
	}()

	start := time.Now()
	deadline := time.After(f.o.idle)
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	keepalives := 0
	var streamErr error
	var early []string
wait:
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				streamErr = fmt.Errorf("after %s: %w", r.at.Sub(start).Round(time.Second), r.err)
				break wait
			}
			if len(r.res.GetEvents()) == 0 {
				keepalives++
			} else {
				early = append(early, fmt.Sprintf("%d events at %s", len(r.res.GetEvents()), r.at.Sub(start).Round(time.Second)))
			}
		case <-tick.C:
			fmt.Fprintf(os.Stderr, "idle: %s of %s, %d keepalive responses, connection %s\n",
				time.Since(start).Round(time.Second), f.o.idle, keepalives, conn.GetState())
		case <-deadline:
			break wait
		}
	}
	mu.Lock()
	changes := append([]string(nil), states...)
	mu.Unlock()
	if !f.c.check(name+": no error, connection stayed READY", streamErr == nil && len(changes) == 0 && len(early) == 0,
		"stream error %v; connectivity changes %v; unexpected events %v", streamErr, changes, early) {
		return
	}
	// The server answers a subscription with credit and nothing new with a
	// keepalive response (latest_replay_id, no events) every --keepalive,
	// which is at most 270 s (Salesforce clients expect one by then).
	minKeepalives := int(f.o.idle / (270 * time.Second))
	f.c.check(fmt.Sprintf("idle: %d keepalive responses (no events) during the silence", keepalives), keepalives >= minKeepalives,
		"want at least %d (one per 270 s at most)", minKeepalives)

	before := len(f.published)
	if !f.publishUnary(ctx, "idle: Publish one event after the silence", 1) {
		return
	}
	want := f.published[before]
	timeout := time.After(30 * time.Second)
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				f.c.fail("idle: the idle stream delivers the event published after the silence", r.err)
				return
			}
			for _, ev := range r.res.GetEvents() {
				order, err := f.orderOf(ctx, ev)
				if err == nil && order == want {
					f.c.check("idle: the idle stream delivers the event published after the silence", true, "")
					return
				}
			}
		case <-timeout:
			f.c.check("idle: the idle stream delivers the event published after the silence", false, "not within 30 s")
			return
		}
	}
}
