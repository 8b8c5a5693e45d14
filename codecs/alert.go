package codecs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// Window is an alert's window; times are RFC 3339 UTC.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// AlertRecord is the value of a "fraud_alerts" record (key = user_id).
type AlertRecord struct {
	AlertID          string             `json:"alert_id"`
	Rule             string             `json:"rule"`
	UserID           string             `json:"user_id"`
	Window           Window             `json:"window"`
	NumTxns          int                `json:"num_txns"`
	Total            float64            `json:"total"`
	TotalsByCurrency map[string]float64 `json:"totals_by_currency"`
	Threshold        float64            `json:"threshold"`
	TransactionIDs   []string           `json:"transaction_ids"`
	FirstEventTime   time.Time          `json:"first_event_time"`
	LastEventTime    time.Time          `json:"last_event_time"`
	DetectedAt       time.Time          `json:"detected_at"`
}

// NewAlertRecord converts a rule's alert to its wire form.
func NewAlertRecord(a rules.Alert, detectedAt time.Time) AlertRecord {
	ids := a.TxnIDs
	if ids == nil {
		ids = []string{}
	}
	return AlertRecord{
		AlertID:          a.ID,
		Rule:             a.Rule.String(),
		UserID:           a.UserID,
		Window:           Window{Start: utc(a.Start), End: utc(a.End)},
		NumTxns:          a.NumTxns,
		Total:            a.Total,
		TotalsByCurrency: a.TotalsByCurrency,
		Threshold:        a.Threshold,
		TransactionIDs:   ids,
		FirstEventTime:   utc(a.FirstEventTime),
		LastEventTime:    utc(a.LastEventTime),
		DetectedAt:       detectedAt.UTC(),
	}
}

func utc(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// Alert is the goka.Codec of "fraud_alerts".
type Alert struct{}

// Encode encodes an AlertRecord or *AlertRecord as JSON.
func (Alert) Encode(v any) ([]byte, error) {
	switch a := v.(type) {
	case AlertRecord, *AlertRecord:
		return json.Marshal(a)
	}
	return nil, fmt.Errorf("codecs: Alert cannot encode %T", v)
}

// Decode decodes a *AlertRecord.
func (Alert) Decode(b []byte) (any, error) {
	a := new(AlertRecord)
	if err := json.Unmarshal(b, a); err != nil {
		return nil, fmt.Errorf("codecs: decoding alert: %w", err)
	}
	return a, nil
}
