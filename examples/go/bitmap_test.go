// Unit tests of the bitmap decoder against a small change event schema.

package main

import (
	"reflect"
	"testing"
)

const testChangeSchema = `{"type":"record","name":"AccountChangeEvent","namespace":"com.sforce.eventbus","fields":[
 {"name":"ChangeEventHeader","type":{"type":"record","name":"ChangeEventHeader","fields":[{"name":"entityName","type":"string"}]}},
 {"name":"Name","type":["null","string"],"default":null},
 {"name":"BillingAddress","type":["null",{"type":"record","name":"Address","fields":[
   {"name":"Street","type":["null","string"],"default":null},
   {"name":"City","type":["null","string"],"default":null},
   {"name":"PostalCode","type":["null","string"],"default":null}]}],"default":null},
 {"name":"Phone","type":["null","string"],"default":null},
 {"name":"F4","type":["null","string"],"default":null},
 {"name":"F5","type":["null","string"],"default":null},
 {"name":"F6","type":["null","string"],"default":null},
 {"name":"F7","type":["null","string"],"default":null},
 {"name":"LastModifiedDate","type":["null","long"],"default":null}]}`

func TestBitmapNames(t *testing.T) {
	rs, err := parseRecordSchema(testChangeSchema)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in   []string
		want []string
	}{
		{nil, nil},
		{[]string{"0x00"}, nil},
		{[]string{"0x02"}, []string{"Name"}},
		// Bits 1 and 8 (two bytes), upper and lower case hex.
		{[]string{"0x0102"}, []string{"Name", "LastModifiedDate"}},
		{[]string{"0x010A"}, []string{"Name", "Phone", "LastModifiedDate"}},
		{[]string{"0x010a"}, []string{"Name", "Phone", "LastModifiedDate"}},
		// Nested: components 1 and 2 of BillingAddress (position 2).
		{[]string{"0x0100", "2-0x06"}, []string{"LastModifiedDate", "BillingAddress.City", "BillingAddress.PostalCode"}},
	}
	for _, c := range cases {
		got, err := bitmapNames(rs, c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBitmapNamesRefusesBadElements(t *testing.T) {
	rs, err := parseRecordSchema(testChangeSchema)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{
		{"02"},     // no 0x
		{"0x"},     // no digits
		{"0xZZ"},   // not hex
		{"0x0200"}, // bit 9: past the 9 fields
		{"1-0x01"}, // Name is not compound
		{"x-0x01"}, // position not a number
		{"9-0x01"}, // no field 9
		{"2-0x08"}, // Address has 3 fields
	} {
		if got, err := bitmapNames(rs, bad); err == nil {
			t.Errorf("%q: decoded to %q, want an error", bad, got)
		}
	}
}

func TestHexBitsLowestFirst(t *testing.T) {
	got, err := hexBits("0x8001")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 15}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
