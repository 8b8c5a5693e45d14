package views

import (
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// MaxUserIDBytes is the longest user id a query accepts.
const MaxUserIDBytes = 256

// WindowJSON is one window of a user's state.
type WindowJSON struct {
	Start            time.Time      `json:"start"`
	End              time.Time      `json:"end"`
	NumTxns          int            `json:"num_txns"`
	Total            float64        `json:"total"`
	TotalsByCurrency CurrencyTotals `json:"totals_by_currency"`
	Countries        []string       `json:"countries"`
}

// CurrencyTotals are a window's sums by currency, sorted by currency; in
// JSON an object of currency to sum, as a map would be.
type CurrencyTotals rules.Totals

// MarshalJSON encodes t as an object in currency order, as encoding/json
// encodes a map; no totals are an empty object.
func (t CurrencyTotals) MarshalJSON() ([]byte, error) {
	b, ok := t.appendJSON(nil)
	if !ok {
		return nil, fmt.Errorf("views: a total of %v is not a JSON number", t)
	}
	return b, nil
}

// UnmarshalJSON decodes an object of currency to sum.
func (t *CurrencyTotals) UnmarshalJSON(b []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*t = nil
	for _, cur := range slices.Sorted(maps.Keys(m)) {
		*t = append(*t, rules.Total{Currency: cur, Amount: m[cur]})
	}
	return nil
}

// Freshness says where the answer comes from: the table partition of the
// user, and the next offset of it the view reads; the state answered
// includes every table record before Offset.
type Freshness struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	Recovered bool  `json:"recovered"`
}

// UserJSON is the answer of GET /v1/users/{user_id}.
type UserJSON struct {
	UserID     string                `json:"user_id"`
	Risk       Risk                  `json:"risk"`
	Windows    []WindowJSON          `json:"windows"`
	StreamTime *time.Time            `json:"stream_time"`
	Alerts     []*codecs.AlertRecord `json:"alerts"`
	Freshness  Freshness             `json:"freshness"`
}

type errorJSON struct {
	Error string `json:"error"`
}

// OpenAPI is the API's OpenAPI 3 document, served at /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

type route struct {
	method, pattern string
	h               http.HandlerFunc
}

// routes lists the API; a test keeps openapi.json in step with it.
func (s *Service) routes() []route {
	return []route{
		{"GET", "/v1/users/{user_id}", s.getUser},
		{"GET", "/v1/alerts", s.getAlerts},
		{"GET", "/v1/alerts/stream", s.streamAlerts},
		{"GET", "/v1/partitions", s.getPartitions},
		{"GET", "/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(OpenAPI)
		}},
	}
}

// Handler serves the /v1 API (health, readiness and metrics are added by the
// caller). With a non-empty token every request needs "Authorization: Bearer token".
func (s *Service) Handler(token string) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.method+" "+rt.pattern, rt.h)
	}
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorJSON{"no such endpoint: " + r.Method + " " + r.URL.Path + " (see /v1/openapi.json)"})
	})
	if token == "" {
		return mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fraudwatch"`)
			writeJSON(w, http.StatusUnauthorized, errorJSON{"missing or wrong bearer token: send Authorization: Bearer <token>"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Service) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user_id")
	switch {
	case id == "":
		writeJSON(w, http.StatusBadRequest, errorJSON{"user_id is empty"})
		return
	case len(id) > MaxUserIDBytes:
		writeJSON(w, http.StatusBadRequest, errorJSON{fmt.Sprintf("user_id is longer than %d bytes", MaxUserIDBytes)})
		return
	case !utf8.ValidString(id):
		writeJSON(w, http.StatusBadRequest, errorJSON{"user_id is not valid UTF-8"})
		return
	}
	// The offset is read before the state, so the state holds at least
	// every record before it.
	part := kafka.Murmur2Partition([]byte(id), max(s.cfg.Partitions, 1))
	offset := s.table.Partition(part).Next
	st, err := s.User(id)
	switch {
	case err == ErrNotRecovered:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error(), "progress": s.Progress()})
		return
	case err == ErrUnknownUser:
		writeJSON(w, http.StatusNotFound, errorJSON{fmt.Sprintf("user %q has no state (no counted transactions, or none recently)", id)})
		return
	case err != nil:
		s.log.Error("user query", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorJSON{"internal error"})
		return
	}
	ws := s.cfg.Rules.Windows(*st)
	recent := s.alerts.Recent(id, 20)
	out := UserJSON{UserID: id, Windows: make([]WindowJSON, 0, len(ws)), Alerts: recent,
		Risk: Score(s.cfg.Rules, ws, recent)}
	for _, w := range ws {
		c := w.Countries
		if c == nil {
			c = []string{}
		}
		out.Windows = append(out.Windows, WindowJSON{Start: time.Unix(0, w.Start).UTC(), End: time.Unix(0, w.End).UTC(),
			NumTxns: w.NumTxns, Total: w.Total, TotalsByCurrency: CurrencyTotals(w.TotalsByCurrency), Countries: c})
	}
	if st.Started {
		t := time.Unix(0, st.StreamTime).UTC()
		out.StreamTime = &t
	}
	out.Freshness = Freshness{Partition: part, Offset: offset, Recovered: true}
	bp := userBufs.Get().(*[]byte)
	defer userBufs.Put(bp)
	b, enc := out.AppendJSON((*bp)[:0])
	if !enc {
		writeJSON(w, http.StatusOK, out)
		return
	}
	*bp = b
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// userBufs are the encoding buffers of user answers.
var userBufs = sync.Pool{New: func() any { return new([]byte) }}

var jsonContentType = []string{"application/json"}

func (s *Service) getAlerts(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeJSON(w, http.StatusBadRequest, errorJSON{"limit must be a whole number from 1 to 1000"})
			return
		}
		limit = n
	}
	user := r.URL.Query().Get("user_id")
	if len(user) > MaxUserIDBytes || !utf8.ValidString(user) {
		writeJSON(w, http.StatusBadRequest, errorJSON{"user_id is too long or not valid UTF-8"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": s.alerts.Recent(user, limit)})
}

func (s *Service) streamAlerts(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, errorJSON{"streaming unsupported"})
		return
	}
	ch, cancel := s.alerts.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": connected\n\n")
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case a := <-ch:
			b, _ := json.Marshal(a)
			fmt.Fprintf(w, "id: %s\nevent: alert\ndata: %s\n\n", a.AlertID, b)
		}
		fl.Flush()
	}
}

func (s *Service) getPartitions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Progress())
}
