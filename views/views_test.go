package views

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka/storage"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/telemetry"
)

type fakeTable struct {
	recovered bool
	states    map[string]*rules.State
	parts     map[int32]PartitionState
}

func (f *fakeTable) Get(k string) (any, error) {
	if s, ok := f.states[k]; ok {
		return s, nil
	}
	return nil, nil
}
func (f *fakeTable) Recovered() bool { return f.recovered }
func (f *fakeTable) Partition(p int32) PartitionState {
	if ps, ok := f.parts[p]; ok {
		return ps
	}
	return PartitionState{Status: StatusInitializing}
}

var t0 = time.Date(2025, 6, 15, 14, 30, 0, 0, time.UTC)

func newService(recovered bool) (*Service, *fakeTable, *AlertLog) {
	c := rules.Default()
	st := &rules.State{}
	for i := 0; i < 4; i++ {
		c.Apply(st, "usr_456", rules.Source{Offset: int64(i)}, rules.Event{ID: string(rune('a' + i)),
			Time: t0.Add(time.Duration(i) * time.Second).UnixNano(), Amount: 10, Currency: "ARS", Country: "AR"})
	}
	tb := &fakeTable{recovered: recovered, states: map[string]*rules.State{"usr_456": st}}
	log := NewAlertLog(10, 2)
	return New(Config{Rules: c, Partitions: 12}, Deps{Table: tb, Alerts: log}), tb, log
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

func TestUserQuery(t *testing.T) {
	s, _, _ := newService(true)
	rec := get(t, s.Handler(""), "/v1/users/usr_456")
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var u UserJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &u); err != nil {
		t.Fatal(err)
	}
	if u.UserID != "usr_456" || len(u.Windows) != 1 || u.Windows[0].NumTxns != 4 || u.Windows[0].Total != 40 ||
		u.Risk.Score != 67 || u.Risk.Level != "elevated" || len(u.Risk.Reasons) != 1 || !u.Freshness.Recovered ||
		u.StreamTime == nil || !u.StreamTime.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("answer %s", rec.Body)
	}
}

func TestUserQueryErrors(t *testing.T) {
	s, _, _ := newService(true)
	for path, want := range map[string]int{
		"/v1/users/nobody":                        404,
		"/v1/users/" + strings.Repeat("x", 257):   400,
		"/v1/users/" + url.PathEscape("\xff\xfe"): 400,
		"/v1/users/":                         404, // no such route
		"/v1/alerts?limit=0":                 400,
		"/v1/alerts?limit=abc":               400,
		"/v1/alerts?limit=5&user_id=usr_456": 200,
	} {
		if rec := get(t, s.Handler(""), path); rec.Code != want {
			t.Errorf("%s: status %d, want %d (%s)", path, rec.Code, want, rec.Body)
		}
	}
}

func TestQueriesWaitForRecovery(t *testing.T) {
	s, tb, _ := newService(false)
	rec := get(t, s.Handler(""), "/v1/users/usr_456")
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || strings.Contains(rec.Body.String(), "windows") {
		t.Fatalf("during recovery: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	tb.recovered = true
	if rec := get(t, s.Handler(""), "/v1/users/usr_456"); rec.Code != 200 {
		t.Fatalf("after recovery: %d", rec.Code)
	}
}

func alert(id, user string) *codecs.AlertRecord {
	return &codecs.AlertRecord{AlertID: id, UserID: user, Rule: "velocity", Window: codecs.Window{Start: t0, End: t0.Add(time.Minute)}}
}

func TestAlertLog(t *testing.T) {
	l := NewAlertLog(3, 2)
	ch, cancel := l.Subscribe()
	defer cancel()
	for _, a := range []*codecs.AlertRecord{alert("1", "u"), alert("2", "u"), alert("2", "u"), alert("3", "u"), alert("4", "v")} {
		l.Add(a)
	}
	if got := l.Recent("", 10); len(got) != 3 || got[0].AlertID != "4" || got[2].AlertID != "2" {
		t.Fatalf("recent: %v", ids(got))
	}
	if got := l.Recent("u", 10); len(got) != 2 || got[0].AlertID != "3" {
		t.Fatalf("recent u: %v", ids(got))
	}
	n := len(ch)
	if n != 4 { // the re-emitted "2" is not sent twice
		t.Fatalf("subscriber got %d", n)
	}
}

func ids(as []*codecs.AlertRecord) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.AlertID)
	}
	return out
}

func TestRecentAlertMakesRiskHigh(t *testing.T) {
	s, _, l := newService(true)
	l.Add(alert("x", "usr_456"))
	var u UserJSON
	_ = json.Unmarshal(get(t, s.Handler(""), "/v1/users/usr_456").Body.Bytes(), &u)
	if u.Risk.Level != "high" || u.Risk.Score != 100 || len(u.Alerts) != 1 {
		t.Fatalf("risk %+v alerts %d", u.Risk, len(u.Alerts))
	}
}

func FuzzUserQuery(f *testing.F) {
	s, _, _ := newService(true)
	h := s.Handler("")
	f.Add("usr_456", "5")
	f.Add("%ff", "-1")
	f.Fuzz(func(t *testing.T, id, limit string) {
		for _, p := range []string{"/v1/users/" + url.PathEscape(id), "/v1/alerts?limit=" + url.QueryEscape(limit) + "&user_id=" + url.QueryEscape(id)} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
			switch rec.Code {
			case 200, 400, 404:
			case 301, 307, 308: // the mux canonicalises paths like /v1/users/..
				continue
			default:
				t.Fatalf("%s: status %d", p, rec.Code)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s: body not JSON: %q", p, rec.Body)
			}
		}
	})
}

// TestOpenAPIMatchesRoutes keeps openapi.json in step with the handlers.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	s, _, _ := newService(true)
	served := map[string]bool{}
	for _, r := range s.routes() {
		served[r.method+" "+r.pattern] = true
		if !documented[r.method+" "+r.pattern] {
			t.Errorf("%s %s is served but not in openapi.json", r.method, r.pattern)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("%s is in openapi.json but not served", k)
		}
	}
	var users struct {
		Paths map[string]map[string]struct {
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	_ = json.Unmarshal(OpenAPI, &users)
	for _, code := range []string{"200", "400", "401", "404", "503"} {
		if _, ok := users.Paths["/v1/users/{user_id}"]["get"].Responses[code]; !ok {
			t.Errorf("GET /v1/users/{user_id} does not document %s", code)
		}
	}
	rec := get(t, s.Handler(""), "/v1/openapi.json")
	if rec.Code != 200 || !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("serving openapi.json: %d", rec.Code)
	}
}

func TestBearerToken(t *testing.T) {
	s, _, _ := newService(true)
	h := s.Handler("s3cret")
	for name, tc := range map[string]struct {
		header string
		want   int
	}{
		"none":   {"", 401},
		"wrong":  {"Bearer nope", 401},
		"scheme": {"s3cret", 401},
		"right":  {"Bearer s3cret", 200},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/v1/users/usr_456", nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want || (tc.want == 401 && rec.Header().Get("WWW-Authenticate") == "") {
			t.Errorf("%s: status %d, want %d", name, rec.Code, tc.want)
		}
	}
}

// TestFreshnessAndPartitions: freshness.offset is the next offset of the
// user's partition the view applies (the offset goka stores with the
// partition's state); /v1/partitions reports lag against the live end
// offsets and staleness since the last catch-up.
func TestFreshnessAndPartitions(t *testing.T) {
	c := rules.Default()
	st := &rules.State{}
	c.Apply(st, "usr_456", rules.Source{}, rules.Event{ID: "a", Time: t0.UnixNano(), Amount: 10, Currency: "ARS", Country: "AR"})
	val, err := codecs.State{}.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	local := NewLocal(2, codecs.State{})
	build := local.Builder(storage.MemoryBuilder())
	userPart := kafka.Murmur2Partition([]byte("usr_456"), 2)
	parts := map[int32]storage.Storage{}
	for p := int32(0); p < 2; p++ {
		if parts[p], err = build("fraudwatch-detector-table", p); err != nil {
			t.Fatal(err)
		}
		if err := parts[p].MarkRecovered(); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(parts[userPart].Set("usr_456", val), parts[userPart].SetOffset(6)); err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{userPart: 9, 1 - userPart: 0}
	now := t0
	s := New(Config{Rules: c, Partitions: 2}, Deps{Table: local, Alerts: NewAlertLog(10, 2),
		Ends: func(context.Context) (map[int32]int64, error) { return ends, nil }, Now: func() time.Time { return now }})
	s.refresh(context.Background())

	var u UserJSON
	if err := json.Unmarshal(get(t, s.Handler(""), "/v1/users/usr_456").Body.Bytes(), &u); err != nil {
		t.Fatal(err)
	}
	if u.Freshness.Partition != userPart || u.Freshness.Offset != 7 || len(u.Windows) != 1 {
		t.Fatalf("answer %+v, want partition %d offset 7 and one window", u, userPart)
	}

	now = t0.Add(3 * time.Second)
	s.refresh(context.Background())
	var p Progress
	if err := json.Unmarshal(get(t, s.Handler(""), "/v1/partitions").Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	lagging, quiet := p.Partitions[userPart], p.Partitions[1-userPart]
	if lagging.Offset != 7 || lagging.Hwm != 9 || lagging.Lag != 2 || lagging.StalenessSeconds != 3 || lagging.Status != "running" {
		t.Errorf("lagging partition %+v", lagging)
	}
	if quiet.Lag != 0 || quiet.StalenessSeconds != 0 {
		t.Errorf("caught-up partition %+v", quiet)
	}
	if p.StalenessSeconds != 3 || p.RemainingRecords != 0 || p.ETASeconds != 0 || !p.Recovered {
		t.Errorf("progress %+v", p)
	}

	// Catching up resets the partition's staleness.
	if err := parts[userPart].SetOffset(8); err != nil {
		t.Fatal(err)
	}
	s.refresh(context.Background())
	if p := s.Progress(); p.StalenessSeconds != 0 || p.Partitions[userPart].Lag != 0 {
		t.Errorf("after catching up: %+v", p)
	}

	// Once the view closes a partition, its queries are not answered, and
	// the service is no longer ready.
	if err := parts[userPart].Close(); err != nil {
		t.Fatal(err)
	}
	if rec := get(t, s.Handler(""), "/v1/users/usr_456"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("query of a closed partition: %d %s", rec.Code, rec.Body)
	}
	s.refresh(context.Background())
	if pp := s.Progress().Partitions[userPart]; pp.Status != "stopped" || pp.Offset != 9 {
		t.Errorf("closed partition %+v, want stopped at 9", pp)
	}
}

// TestRecoveringPartition: a partition goka is still recovering shows what
// it has left to read against the live end offset, and keeps the service
// unready; the end offsets last read stand in while they cannot be read.
func TestRecoveringPartition(t *testing.T) {
	tb := &fakeTable{parts: map[int32]PartitionState{0: {Status: StatusRecovering, Next: 40}, 1: {Status: StatusRunning, Next: 5}}}
	ends := map[int32]int64{0: 100, 1: 5}
	var endsErr error
	s := New(Config{Rules: rules.Default(), Partitions: 2}, Deps{Table: tb, Alerts: NewAlertLog(10, 2),
		Ends: func(context.Context) (map[int32]int64, error) { return ends, endsErr }})
	s.refresh(context.Background())
	p := s.Progress()
	if pp := p.Partitions[0]; pp.Status != "recovering" || pp.Offset != 40 || pp.Hwm != 100 || pp.Remaining != 60 {
		t.Errorf("recovering partition %+v, want 60 of 100 remaining", pp)
	}
	if p.RemainingRecords != 60 || p.Recovered || p.Partitions[1].Remaining != 0 {
		t.Errorf("progress %+v", p)
	}
	ends, endsErr = nil, errors.New("no broker")
	tb.parts[0] = PartitionState{Status: StatusRecovering, Next: 70}
	s.refresh(context.Background())
	if pp := s.Progress().Partitions[0]; pp.Remaining != 30 || pp.Hwm != 100 {
		t.Errorf("without live end offsets %+v, want 30 of the last read 100 remaining", pp)
	}
}

// TestReplayProgress: while a partition's changelog is read ahead of goka's
// recovery (its storage is not built yet, so the table says "initializing"),
// /v1/partitions shows it recovering, with the replay's position and what it
// still has to read; once the replay is done the table's figures take over.
func TestReplayProgress(t *testing.T) {
	tb := &fakeTable{parts: map[int32]PartitionState{1: {Status: StatusRunning, Next: 5}}}
	replays := new(telemetry.Replays)
	replays.Start(0, 100, 1100)
	replays.Advance(0, 400)
	s := New(Config{Rules: rules.Default(), Partitions: 2}, Deps{Table: tb, Alerts: NewAlertLog(10, 2), Replays: replays})
	s.refresh(context.Background())
	p := s.Progress()
	if pp := p.Partitions[0]; pp.Status != "recovering" || pp.Offset != 400 || pp.Remaining != 700 {
		t.Errorf("replaying partition %+v, want recovering at 400 with 700 remaining", pp)
	}
	if p.RemainingRecords != 700 || p.Recovered {
		t.Errorf("progress %+v, want 700 remaining, not recovered", p)
	}
	replays.Done(0)
	s.refresh(context.Background())
	if pp := s.Progress().Partitions[0]; pp.Status != "initializing" || pp.Remaining != 0 {
		t.Errorf("after the replay %+v, want initializing (goka has not got the storage yet)", pp)
	}
}

// TestScoreFormatsOnlyReasons: every rule is rated on every window, but a
// reason is written only for a ratio of 0.6 or more; a quiet user's score
// formats nothing (it allocated for each window and currency before).
func TestScoreFormatsOnlyReasons(t *testing.T) {
	c := rules.Default()
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	quiet := []rules.Window{{Start: start, End: start + int64(time.Minute), NumTxns: 1, Total: 10,
		TotalsByCurrency: rules.Totals{{Currency: "USD", Amount: 10}}, Countries: []string{"US"}}}
	if allocs := testing.AllocsPerRun(100, func() { Score(c, quiet, nil) }); allocs != 0 {
		t.Errorf("a quiet user's score allocated %v times, want 0", allocs)
	}
	if r := Score(c, quiet, nil); r.Level != "normal" || len(r.Reasons) != 0 || r.Score != 17 {
		t.Errorf("quiet: %+v, want normal, score 17 (1 of 6 transactions), no reasons", r)
	}
	busy := quiet[0]
	busy.NumTxns = 4 // 4 of the 6 that alert: 67%
	if r := Score(c, []rules.Window{busy}, nil); r.Level != "elevated" || r.Score != 67 || len(r.Reasons) != 1 ||
		!strings.HasPrefix(r.Reasons[0], "4 transactions in window 12:00:00–12:01:00") {
		t.Errorf("busy: %+v", r)
	}
}

// A window's reasons come in currency order, the same every time.
func TestScoreReasonsInCurrencyOrder(t *testing.T) {
	c := rules.Default()
	c.Amount = rules.Amount{Enabled: true, Default: 100}
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	ws := []rules.Window{{Start: start, End: start + int64(time.Minute), NumTxns: 3, Total: 360,
		TotalsByCurrency: rules.Totals{{Currency: "ARS", Amount: 90}, {Currency: "BRL", Amount: 80}, {Currency: "USD", Amount: 190}}}}
	for range 20 {
		r := Score(c, ws, nil)
		if len(r.Reasons) != 3 || !strings.HasPrefix(r.Reasons[0], "90.00 ARS") || !strings.HasPrefix(r.Reasons[1], "80.00 BRL") ||
			!strings.HasPrefix(r.Reasons[2], "190.00 USD") {
			t.Fatalf("reasons %q, want ARS, BRL, USD in that order", r.Reasons)
		}
	}
}
