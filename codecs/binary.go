package codecs

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
)

// errShort is returned by the binary decoders for truncated or corrupt input.
var errShort = errors.New("codecs: truncated or corrupt binary value")

type writer struct{ b []byte }

// uvarintLen, varintLen and stringLen are the sizes writer.uvarint,
// writer.varint and writer.string write.
func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
func varintLen(v int64) int   { return uvarintLen(uint64(v)<<1 ^ uint64(v>>63)) }
func stringLen(s string) int  { return uvarintLen(uint64(len(s))) + len(s) }

func (w *writer) byte(v byte)      { w.b = append(w.b, v) }
func (w *writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) float(v float64)  { w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v)) }
func (w *writer) bytes(v []byte)   { w.uvarint(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) string(v string)  { w.uvarint(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) bool(v bool)      { w.byte(b2u(v)) }
func b2u(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// reader decodes what writer wrote; the first error sticks and later reads
// return zero values, so decoders check r.err once at the end.
type reader struct {
	b   []byte
	err error
	// str, when set, is the whole input as one string: strings are read as
	// substrings of it, one allocation per decode instead of one per string.
	str string
}

// newStringReader reads b, with its strings sharing one copy of b.
func newStringReader(b []byte) reader { return reader{b: b, str: string(b)} }

func (r *reader) fail() { r.err = errShort; r.b = nil }

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) float() float64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// count reads a length and checks that at least min bytes per element remain,
// so corrupt input cannot make a decoder allocate without bound.
func (r *reader) count(min int) int {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)/min) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) bytes() []byte {
	n := r.count(1)
	if r.err != nil {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.count(1)
	if r.err != nil {
		return ""
	}
	var v string
	if r.str != "" {
		off := len(r.str) - len(r.b)
		v = r.str[off : off+n]
	} else {
		v = string(r.b[:n])
	}
	r.b = r.b[n:]
	return v
}

// span skips a string and returns where it lies in in, the input r reads
// (of which r.b is the rest).
func (r *reader) span(in []byte) [2]int {
	n := r.count(1)
	if r.err != nil {
		return [2]int{}
	}
	start := len(in) - len(r.b)
	r.b = r.b[n:]
	return [2]int{start, start + n}
}

func (r *reader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail()
	return false
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	return r.err
}
