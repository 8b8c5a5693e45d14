package views

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// encodedTable holds encoded states and decodes one per Get, as Local does.
type encodedTable struct{ states map[string][]byte }

func (e encodedTable) Get(k string) (any, error) {
	b, ok := e.states[k]
	if !ok {
		return nil, nil
	}
	return codecs.State{}.Decode(b)
}
func (encodedTable) Recovered() bool { return true }
func (encodedTable) Partition(int32) PartitionState {
	return PartitionState{Status: StatusRunning, Next: 1}
}

// discardWriter is a ResponseWriter that keeps nothing but its header map
// and status.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkUserQuery is the handler of GET /v1/users/{id} for a user of
// the bench's traffic (a transaction a minute, so three in the state), from
// the encoded state to the written answer; net/http's own reading and
// writing of the request are not in it.
func BenchmarkUserQuery(b *testing.B) {
	c := rules.Default()
	st := &rules.State{}
	base := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		c.Apply(st, "usr_0001234", rules.Source{Offset: int64(i)}, rules.Event{ID: fmt.Sprintf("txn_%012d", i),
			Time: base.Add(time.Duration(i) * time.Minute).UnixNano(), Amount: 42.5, Currency: "USD", Country: "US"})
	}
	s := New(Config{Rules: c, Partitions: 4}, Deps{Table: encodedTable{map[string][]byte{"usr_0001234": codecs.AppendState(nil, st)}}, Alerts: NewAlertLog(10, 2)})
	h := s.Handler("")
	req := httptest.NewRequest("GET", "/v1/users/usr_0001234", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}
