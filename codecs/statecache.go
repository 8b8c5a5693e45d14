package codecs

import (
	"sync"

	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// StateCache is State with the decoded form of recently encoded large states
// kept: a Decode of the very slice an Encode returned gives back the state
// that was encoded, instead of decoding it again.
//
// A user who holds many events (a burst: about 200 in the benchmark) has his
// state decoded and encoded for every event; decoding was about 9% of the
// processor's CPU, most of it for such users. The detector's store keeps the
// slice goka's SetValue encodes, if it is 512 bytes or more, and returns that
// same slice from the next Get (internal/app.processorTable), so the next event
// of the user finds it here.
//
// The contract that makes this exact: a state given to Encode is not changed
// after it, and the encoded slice is never written to (goka's SetValue and
// the detector keep both). A hit takes the entry out, so a decoded state is
// handed out once: if its caller changes it and never encodes it (a failed
// alert), the next Decode of the old slice decodes the bytes. Entries are
// found by the slice's first byte and length; holding the slice keeps its
// memory from being reused for another.
type StateCache struct {
	max, minEvents int

	// scratch holds *[]byte buffers a large state is encoded into before it
	// is copied to a slice of its exact size, instead of sizing it with a
	// pass over its events first (stateSize was a quarter of the encode of
	// a state of 200 events).
	scratch sync.Pool

	mu sync.Mutex
	m  map[*byte]cachedState
}

type cachedState struct {
	n  int
	st *rules.State
}

// NewStateCache keeps up to max decoded states of at least minEvents events.
func NewStateCache(max, minEvents int) *StateCache {
	return &StateCache{max: max, minEvents: minEvents, m: make(map[*byte]cachedState, max)}
}

// Encode encodes a *rules.State or rules.State, as State does, and keeps a
// large *rules.State for the Decode of the returned slice.
func (c *StateCache) Encode(v any) ([]byte, error) {
	st, ok := v.(*rules.State)
	if !ok || len(st.Events) < c.minEvents || c.max <= 0 {
		return State{}.Encode(v)
	}
	b := c.encode(st)
	c.mu.Lock()
	if len(c.m) >= c.max {
		for k := range c.m { // any one: a map's iteration starts at random
			delete(c.m, k)
			break
		}
	}
	c.m[&b[0]] = cachedState{n: len(b), st: st}
	c.mu.Unlock()
	return b, nil
}

// encode encodes st through a scratch buffer into a slice of its exact size.
func (c *StateCache) encode(st *rules.State) []byte {
	buf, _ := c.scratch.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	enc := AppendState((*buf)[:0], st)
	b := make([]byte, len(enc)) // with the copy: not zeroed first
	copy(b, enc)
	*buf = enc
	c.scratch.Put(buf)
	return b
}

// Decode returns the state Encode was given for b itself, once; else it
// decodes b as State does.
func (c *StateCache) Decode(b []byte) (any, error) {
	if len(b) > 0 {
		c.mu.Lock()
		e, ok := c.m[&b[0]]
		if ok {
			delete(c.m, &b[0])
		}
		c.mu.Unlock()
		if ok && e.n == len(b) {
			return e.st, nil
		}
	}
	return State{}.Decode(b)
}

// Len is how many decoded states are kept.
func (c *StateCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
