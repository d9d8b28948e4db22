// Field bitmaps of change event headers (changedFields, nulledFields,
// diffFields) decoded to field names, as Salesforce documents them: element
// "0x<hex>" is one unsigned integer whose bit i (least significant = 0) is the
// schema's top-level field at position i; "<pos>-0x<hex>" is, for the
// compound field at top-level position pos, a bitmap of the fields of its
// nested record. This file owns that decoding; it must not know gRPC or
// which object an event is for (the schema says everything).

package main

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// bitmapNames returns the field names a bitmap list names, in element order
// and, inside one element, in bit order: "Name", "BillingAddress.City".
func bitmapNames(rs *avro.RecordSchema, elements []string) ([]string, error) {
	fields := rs.Fields()
	var names []string
	for _, el := range elements {
		prefix, hexPart, nested := strings.Cut(el, "-")
		if !nested {
			hexPart, prefix = prefix, ""
		}
		bits, err := hexBits(hexPart)
		if err != nil {
			return nil, fmt.Errorf("bitmap element %q: %w", el, err)
		}
		if !nested {
			for _, i := range bits {
				if i >= len(fields) {
					return nil, fmt.Errorf("bitmap element %q: bit %d, but the schema has %d fields", el, i, len(fields))
				}
				names = append(names, fields[i].Name())
			}
			continue
		}
		pos, err := strconv.Atoi(prefix)
		if err != nil || pos < 0 || pos >= len(fields) {
			return nil, fmt.Errorf("bitmap element %q: no top-level field at position %q", el, prefix)
		}
		parent := fields[pos]
		inner := nestedRecord(parent.Type())
		if inner == nil {
			return nil, fmt.Errorf("bitmap element %q: field %s is not a compound record", el, parent.Name())
		}
		for _, j := range bits {
			if j >= len(inner.Fields()) {
				return nil, fmt.Errorf("bitmap element %q: bit %d, but %s has %d fields", el, j, parent.Name(), len(inner.Fields()))
			}
			names = append(names, parent.Name()+"."+inner.Fields()[j].Name())
		}
	}
	return names, nil
}

// hexBits returns the set bits of "0x<hex>" (either case), lowest first.
func hexBits(s string) ([]int, error) {
	digits, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok || digits == "" {
		return nil, fmt.Errorf("not 0x<hex>")
	}
	n, ok := new(big.Int).SetString(digits, 16)
	if !ok {
		return nil, fmt.Errorf("not hexadecimal")
	}
	var bits []int
	for i := 0; i < n.BitLen(); i++ {
		if n.Bit(i) == 1 {
			bits = append(bits, i)
		}
	}
	return bits, nil
}

// nestedRecord is the record of a compound field's type (a record, or a
// union of null and a record), or nil.
func nestedRecord(s avro.Schema) *avro.RecordSchema {
	switch t := s.(type) {
	case *avro.RecordSchema:
		return t
	case *avro.RefSchema:
		return nestedRecord(t.Schema())
	case *avro.UnionSchema:
		for _, branch := range t.Types() {
			if r := nestedRecord(branch); r != nil {
				return r
			}
		}
	}
	return nil
}
