package codecs

import (
	"encoding/binary"
	"fmt"
	"time"
)

const routedVersion = 1

// Routed is a validated transaction on its way from the input partition it
// arrived on to its user's partition (the detector's loop topic). It carries
// where it came from, so that re-deliveries are recognised, and the exact
// original bytes, so that a late record can still be dead-lettered verbatim.
type Routed struct {
	Partition  int32 // input partition
	Offset     int64 // input offset
	RecordTime int64 // Kafka record timestamp, Unix nanoseconds (0 if unknown)
	Key        []byte
	HasKey     bool
	Txn        Txn
	Original   []byte
}

// RoutedCodec is the goka.Codec of the loop topic.
type RoutedCodec struct{}

// Encode encodes a *Routed.
func (RoutedCodec) Encode(v any) ([]byte, error) {
	r, ok := v.(*Routed)
	if !ok {
		return nil, fmt.Errorf("codecs: RoutedCodec cannot encode %T", v)
	}
	return AppendRouted(make([]byte, 0, routedSize(r)), r), nil
}

// routedSize bounds the encoded size of r, so that Encode allocates once
// (growing from nil took four allocations and copies per loop record).
func routedSize(r *Routed) int {
	t := &r.Txn
	return 1 + 3*binary.MaxVarintLen64 + 1 + 7*binary.MaxVarintLen32 + 8 + binary.MaxVarintLen64 +
		len(r.Key) + len(t.TransactionID) + len(t.UserID) + len(t.Currency) + len(t.Merchant) + len(t.Country) + len(r.Original)
}

// Decode decodes a *Routed.
func (RoutedCodec) Decode(b []byte) (any, error) {
	r := new(Routed)
	if err := DecodeRouted(b, r); err != nil {
		return nil, err
	}
	return r, nil
}

// AppendRouted appends the binary form of r to b.
func AppendRouted(b []byte, r *Routed) []byte {
	w := writer{b: b}
	w.byte(routedVersion)
	w.varint(int64(r.Partition))
	w.varint(r.Offset)
	w.varint(r.RecordTime)
	w.bool(r.HasKey)
	w.bytes(r.Key)
	w.string(r.Txn.TransactionID)
	w.string(r.Txn.UserID)
	w.float(r.Txn.Amount)
	w.string(r.Txn.Currency)
	w.string(r.Txn.Merchant)
	w.string(r.Txn.Country)
	w.varint(r.Txn.Timestamp.UnixNano())
	w.bytes(r.Original)
	return w.b
}

// DecodeRouted decodes b into r.
func DecodeRouted(b []byte, r *Routed) error {
	rd := reader{b: b}
	if v := rd.byte(); rd.err == nil && v != routedVersion {
		return fmt.Errorf("codecs: routed version %d is not supported (want %d)", v, routedVersion)
	}
	*r = Routed{Partition: int32(rd.varint()), Offset: rd.varint(), RecordTime: rd.varint(), HasKey: rd.bool()}
	r.Key = rd.bytes()
	// The transaction's strings share one copy of the bytes they lie in, not
	// of all of b: the original that follows them (most of b) is kept as it
	// is, like the key.
	from := len(b) - len(rd.b)
	id, user := rd.span(b), rd.span(b)
	amount := rd.float()
	currency, merchant, country := rd.span(b), rd.span(b), rd.span(b)
	if rd.err == nil {
		strs := string(b[from : len(b)-len(rd.b)])
		str := func(s [2]int) string { return strs[s[0]-from : s[1]-from] }
		r.Txn = Txn{TransactionID: str(id), UserID: str(user), Amount: amount, Currency: str(currency),
			Merchant: str(merchant), Country: str(country)}
	}
	r.Txn.Timestamp = time.Unix(0, rd.varint()).UTC()
	r.Original = rd.bytes()
	if err := rd.done(); err != nil {
		return fmt.Errorf("codecs: decoding routed transaction: %w", err)
	}
	return nil
}
