package codecs

import (
	"encoding/json"
	"fmt"
	"time"
)

// Position is where a record was read.
type Position struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// DeadLetterRecord is the value of a "transactions_dlq" record: why a
// transaction was not counted, where it came from, and its exact bytes.
type DeadLetterRecord struct {
	Reason   Reason    `json:"reason"`
	Error    string    `json:"error"`
	Source   Position  `json:"source"`
	Key      *string   `json:"key"`      // the original key; null when the record had none
	Original []byte    `json:"original"` // the exact original value, base64
	At       time.Time `json:"at"`
}

// DeadLetter is the goka.Codec of "transactions_dlq".
type DeadLetter struct{}

// Encode encodes a DeadLetterRecord or *DeadLetterRecord as JSON.
func (DeadLetter) Encode(v any) ([]byte, error) {
	switch d := v.(type) {
	case DeadLetterRecord, *DeadLetterRecord:
		return json.Marshal(d)
	}
	return nil, fmt.Errorf("codecs: DeadLetter cannot encode %T", v)
}

// Decode decodes a *DeadLetterRecord.
func (DeadLetter) Decode(b []byte) (any, error) {
	d := new(DeadLetterRecord)
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("codecs: decoding dead letter: %w", err)
	}
	return d, nil
}
