package codecs

import (
	"fmt"
	"math"
	"slices"

	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// stateVersion 2: a re-keyed record's source is its loop topic position.
// Version 1 recorded its input position there; those sources are dropped when
// a version 1 state is read (the transaction ids still catch re-deliveries).
const stateVersion = 2

// State is the goka.Codec of the detector's group table: one user's
// rules.State in compact binary. Event times are delta-encoded against the
// stream time.
type State struct{}

// Encode encodes a *rules.State or rules.State.
func (State) Encode(v any) ([]byte, error) {
	switch s := v.(type) {
	case *rules.State:
		return AppendState(make([]byte, 0, stateSize(s)), s), nil
	case rules.State:
		return AppendState(make([]byte, 0, stateSize(&s)), &s), nil
	}
	return nil, fmt.Errorf("codecs: State cannot encode %T", v)
}

// Decode decodes a *rules.State. The state and its first sources and events
// are one allocation (see decodedState).
func (State) Decode(b []byte) (any, error) {
	d := new(decodedState)
	if err := decodeState(b, &d.st, d.sources[:0], d.events[:0]); err != nil {
		return nil, err
	}
	return &d.st, nil
}

// decodedState holds a decoded state with room for its sources and events in
// the usual numbers: one source per partition the user's records came from
// (an unkeyed user's records all come through one loop partition) and the
// few events of a user who pays about once a minute (the windows and grace
// of the default rules hold three or four), plus one for the event the
// detector adds. The detector decodes a state for every event, and the
// state, its sources and its events were three allocations. A state with
// more sources or events takes slices of its own as before; the room is kept
// small, since it is wasted then.
type decodedState struct {
	st      rules.State
	sources [2]rules.Source
	events  [5]rules.Event
}

// stateSize is the encoded size of s, so that Encode allocates what it
// writes: a bound of the widest varints was twice the size of a state of
// many events, and a heavy user's state is encoded for every event.
func stateSize(s *rules.State) int {
	n := 1 + 1 + varintLen(s.StreamTime) + uvarintLen(uint64(len(s.Sources)))
	for _, src := range s.Sources {
		n += varintLen(int64(src.Partition)) + 1 + varintLen(src.Offset)
	}
	n += uvarintLen(uint64(len(s.Events)))
	for _, e := range s.Events {
		n += stringLen(e.ID) + varintLen(s.StreamTime-e.Time) + 8 + stringLen(e.Currency) + stringLen(e.Country)
	}
	n += uvarintLen(uint64(len(s.Fired)))
	for _, f := range s.Fired {
		n += 1 + varintLen(s.StreamTime-f.Start) + varintLen(f.End-f.Start)
	}
	return n
}

// AppendState appends the binary form of s to b.
func AppendState(b []byte, s *rules.State) []byte {
	w := writer{b: b}
	w.byte(stateVersion)
	w.bool(s.Started)
	w.varint(s.StreamTime)
	w.uvarint(uint64(len(s.Sources)))
	for _, src := range s.Sources {
		w.varint(int64(src.Partition))
		w.bool(src.Direct)
		w.varint(src.Offset)
	}
	w.uvarint(uint64(len(s.Events)))
	for _, e := range s.Events {
		w.string(e.ID)
		w.varint(s.StreamTime - e.Time)
		w.float(e.Amount)
		w.string(e.Currency)
		w.string(e.Country)
	}
	w.uvarint(uint64(len(s.Fired)))
	for _, f := range s.Fired {
		w.byte(byte(f.Rule))
		w.varint(s.StreamTime - f.Start)
		w.varint(f.End - f.Start)
	}
	return w.b
}

// DecodeState decodes b into s, replacing its contents.
func DecodeState(b []byte, s *rules.State) error { return decodeState(b, s, nil, nil) }

// decodeState is DecodeState, with the sources and events in the room of
// sources and events (length 0) when they fit, and in new slices else.
func decodeState(b []byte, s *rules.State, sources []rules.Source, events []rules.Event) error {
	r := newStringReader(b)
	v := r.byte()
	if r.err == nil && v != stateVersion && v != 1 {
		return fmt.Errorf("codecs: state version %d is not supported (want 1 or %d)", v, stateVersion)
	}
	*s = rules.State{Started: r.bool(), StreamTime: r.varint()}
	if n := r.count(3); n > 0 {
		if n <= cap(sources) {
			s.Sources = sources[:n]
		} else {
			s.Sources = make([]rules.Source, n)
		}
		for i := range s.Sources {
			s.Sources[i] = rules.Source{Partition: int32(r.varint()), Direct: r.bool(), Offset: r.varint()}
		}
		if v == 1 {
			s.Sources = slices.DeleteFunc(s.Sources, func(src rules.Source) bool { return !src.Direct })
			if len(s.Sources) == 0 {
				s.Sources = nil
			}
		}
	}
	if n := r.count(12); n > 0 {
		// Room for one more: the detector decodes a state to add an event.
		if n < cap(events) {
			s.Events = events[:n]
		} else {
			s.Events = make([]rules.Event, n, n+1)
		}
		for i := range s.Events {
			s.Events[i] = rules.Event{ID: r.string(), Time: s.StreamTime - r.varint(), Amount: r.float(),
				Currency: r.string(), Country: r.string()}
		}
	}
	if n := r.count(3); n > 0 {
		s.Fired = make([]rules.Fired, n)
		for i := range s.Fired {
			f := rules.Fired{Rule: rules.Rule(r.byte()), Start: s.StreamTime - r.varint()}
			f.End = f.Start + r.varint()
			s.Fired[i] = f
		}
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("codecs: decoding state: %w", err)
	}
	for _, e := range s.Events {
		if !(e.Amount >= 0) || math.IsInf(e.Amount, 0) {
			return fmt.Errorf("codecs: decoding state: event %q has amount %v: %w", e.ID, e.Amount, errShort)
		}
	}
	for _, f := range s.Fired {
		if f.Rule < rules.RuleVelocity || f.Rule > rules.RuleCountries {
			return fmt.Errorf("codecs: decoding state: unknown rule %d: %w", f.Rule, errShort)
		}
	}
	return nil
}
