// Avro payloads as the Pub/Sub API carries them: a plain binary datum (no
// container header, no fingerprint) written with the schema GetSchema returns
// for the event's schema id. This file owns the schema cache and the
// encode/decode helpers; it must not make gRPC calls of its own beyond
// GetSchema.

package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"

	pb "eventbus.local/examples/go/internal/gen/pubsubpb"
)

// schemas caches parsed schemas by id: a schema id never changes meaning.
type schemas struct {
	client pb.PubSubClient
	mu     sync.Mutex
	byID   map[string]*avro.RecordSchema
}

func newSchemas(client pb.PubSubClient) *schemas {
	return &schemas{client: client, byID: map[string]*avro.RecordSchema{}}
}

// get returns the record schema of an id, calling GetSchema the first time.
func (s *schemas) get(ctx context.Context, id string) (*avro.RecordSchema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs, ok := s.byID[id]; ok {
		return rs, nil
	}
	info, err := s.client.GetSchema(ctx, &pb.SchemaRequest{SchemaId: id})
	if err != nil {
		return nil, err
	}
	rs, err := parseRecordSchema(info.GetSchemaJson())
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", id, err)
	}
	s.byID[id] = rs
	return rs, nil
}

// parseRecordSchema parses schema JSON whose top level must be a record.
// Each call gets its own cache: CDC schemas of different objects reuse names
// such as com.sforce.eventbus.ChangeEventHeader.
func parseRecordSchema(text string) (*avro.RecordSchema, error) {
	sch, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, err
	}
	rs, ok := sch.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("top-level type is %s, not a record", sch.Type())
	}
	return rs, nil
}

// decode reads one datum into a generic map. Unions of a named type decode
// as {"full.Name": value}; unionValue unwraps them.
func decode(rs *avro.RecordSchema, payload []byte) (map[string]any, error) {
	var out map[string]any
	if err := avro.Unmarshal(rs, payload, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// unionValue unwraps a decoded union of a named record ({"ns.Name": {...}}).
func unionValue(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, inner := range m {
			if _, isMap := inner.(map[string]any); isMap {
				return inner
			}
		}
	}
	return v
}
