package codecs

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/fraudwatch/fraudwatch/internal/rules"
)

func stateOf(events int) *rules.State {
	c := rules.Default()
	st := new(rules.State)
	for i := range events {
		c.Apply(st, "u", rules.Source{Offset: int64(i)}, rules.Event{ID: fmt.Sprint("txn_", i), Time: 1749997800000000000 + int64(i)*1e9,
			Amount: 1, Currency: "USD", Country: "US"})
	}
	return st
}

// A large state is handed back for the slice its Encode returned, once;
// anything else is decoded from its bytes.
func TestStateCache(t *testing.T) {
	c := NewStateCache(4, 32)
	heavy := stateOf(40)
	enc, err := c.Encode(heavy)
	if err != nil {
		t.Fatal(err)
	}
	want, err := State{}.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	// A copy of the bytes is other memory: decoded.
	v, err := c.Decode(append([]byte(nil), enc...))
	if err != nil || v == any(heavy) || !reflect.DeepEqual(v, want) {
		t.Fatalf("Decode of a copy: %p (cached %p), %v; equal to the decoded bytes: %v", v, heavy, err, reflect.DeepEqual(v, want))
	}
	// The slice itself: the state that was encoded.
	if v, err := c.Decode(enc); err != nil || v != any(heavy) {
		t.Fatalf("Decode of the encoded slice = %p, %v, want the encoded state %p", v, err, heavy)
	}
	// Once: its caller may change it, so the next Decode reads the bytes.
	heavy.Events = heavy.Events[:1]
	if v, err := c.Decode(enc); err != nil || v == any(heavy) || !reflect.DeepEqual(v, want) {
		t.Fatalf("second Decode of the slice = %p, %v, want the bytes decoded anew", v, err)
	}
	// A prefix of the slice (same first byte, other length) is not the entry.
	heavy = stateOf(40)
	enc, _ = c.Encode(heavy)
	if v, err := c.Decode(enc[:len(enc)-1]); err == nil || v == any(heavy) {
		t.Fatalf("Decode of a prefix = %p, %v, want a decoding error", v, err)
	}
	// A small state is not kept.
	light := stateOf(3)
	enc, _ = c.Encode(light)
	if v, _ := c.Decode(enc); v == any(light) {
		t.Fatalf("a state of 3 events was kept")
	}
	// At most max states are kept.
	for range 10 {
		if _, err := c.Encode(stateOf(32)); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Len(); n != 4 {
		t.Fatalf("kept %d states, want at most 4 (and 4 after 10)", n)
	}
	// A value state is encoded as State does and not kept.
	enc, err = c.Encode(*stateOf(40))
	if err != nil || c.Len() != 4 {
		t.Fatalf("Encode of a rules.State: %v, %d kept", err, c.Len())
	}
	if _, err := c.Decode(enc); err != nil {
		t.Fatal(err)
	}
}
