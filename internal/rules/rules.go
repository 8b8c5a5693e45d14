// Package rules owns the pure fraud logic of fraudwatch: event-time windows,
// lateness, de-duplication and the velocity, amount and countries rules.
//
// It imports no goka and no Kafka. Detector.Apply takes one user's State and
// one transaction and returns what happened to it (counted, duplicate, late or
// replayed) and the alerts it raised; the caller persists the State.
//
// State shape (per user): the stream time (greatest accepted event time), the
// accepted events still inside a retained window (sorted by event time), the
// alerts already fired for retained windows, and per source partition the
// highest input offset applied, which makes re-delivered records idempotent.
package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Mode selects how windows are formed.
type Mode uint8

const (
	// Tumbling windows are [start, start+size) aligned to the Unix epoch.
	Tumbling Mode = iota
	// Sliding windows are (t-size, t] at each event time t.
	Sliding
)

func (m Mode) String() string {
	switch m {
	case Tumbling:
		return "tumbling"
	case Sliding:
		return "sliding"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses "tumbling" or "sliding".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "tumbling":
		return Tumbling, nil
	case "sliding":
		return Sliding, nil
	}
	return 0, fmt.Errorf("rules: unknown window mode %q (want tumbling or sliding)", s)
}

// Rule names a fraud rule. Its string form is what alerts carry.
type Rule uint8

const (
	// RuleVelocity fires when a window holds more than MaxTxns transactions.
	RuleVelocity Rule = iota + 1
	// RuleAmount fires when a window's sum in one currency exceeds that currency's threshold.
	RuleAmount
	// RuleCountries fires when a window holds transactions from Min or more distinct countries.
	RuleCountries
)

func (r Rule) String() string {
	switch r {
	case RuleVelocity:
		return "velocity"
	case RuleAmount:
		return "amount"
	case RuleCountries:
		return "countries"
	}
	return "rule(" + strconv.Itoa(int(r)) + ")"
}

// Velocity is the "too many transactions" rule.
type Velocity struct {
	Enabled bool
	MaxTxns int // fires when count > MaxTxns
}

// Amount is the "too much money" rule; thresholds are per currency.
type Amount struct {
	Enabled    bool
	Thresholds map[string]float64 // currency -> threshold; fires when sum > threshold
	Default    float64            // threshold for currencies not listed; 0 means none
}

// Countries is the "too many countries" rule.
type Countries struct {
	Enabled bool
	Min     int // fires when distinct countries >= Min
}

// Config is the detector's window and rule configuration.
type Config struct {
	Mode      Mode
	Size      time.Duration
	Grace     time.Duration
	Velocity  Velocity
	Amount    Amount
	Countries Countries
	// MaxAlertTxnIDs caps the transaction ids listed in one alert.
	MaxAlertTxnIDs int
}

// Default returns the configuration of the job fraudwatch replaces: 1-minute
// tumbling windows, 2 minutes of grace, velocity > 5.
func Default() Config {
	return Config{
		Mode:           Tumbling,
		Size:           time.Minute,
		Grace:          2 * time.Minute,
		Velocity:       Velocity{Enabled: true, MaxTxns: 5},
		Amount:         Amount{Enabled: false, Thresholds: map[string]float64{}},
		Countries:      Countries{Enabled: false, Min: 3},
		MaxAlertTxnIDs: 100,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Mode != Tumbling && c.Mode != Sliding {
		errs = append(errs, fmt.Errorf("rules: window mode %v is not tumbling or sliding", c.Mode))
	}
	if c.Size <= 0 {
		errs = append(errs, fmt.Errorf("rules: window size must be > 0, got %v", c.Size))
	}
	if c.Grace < 0 {
		errs = append(errs, fmt.Errorf("rules: grace must be >= 0, got %v", c.Grace))
	}
	if c.Velocity.MaxTxns < 0 {
		errs = append(errs, fmt.Errorf("rules: velocity max_txns must be >= 0, got %d", c.Velocity.MaxTxns))
	}
	for cur, v := range c.Amount.Thresholds {
		if !validCurrency(cur) {
			errs = append(errs, fmt.Errorf("rules: amount threshold currency %q is not 3 uppercase letters", cur))
		}
		if !(v > 0) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("rules: amount threshold for %s must be a finite number > 0, got %v", cur, v))
		}
	}
	if c.Amount.Default < 0 || math.IsNaN(c.Amount.Default) || math.IsInf(c.Amount.Default, 0) {
		errs = append(errs, fmt.Errorf("rules: amount default threshold must be a finite number >= 0, got %v", c.Amount.Default))
	}
	if c.Amount.Enabled && len(c.Amount.Thresholds) == 0 && c.Amount.Default == 0 {
		errs = append(errs, errors.New("rules: amount rule is enabled but has no thresholds; set rules.amount.thresholds or rules.amount.default"))
	}
	if c.Countries.Min < 1 {
		errs = append(errs, fmt.Errorf("rules: countries min must be >= 1, got %d", c.Countries.Min))
	}
	if c.MaxAlertTxnIDs < 0 {
		errs = append(errs, fmt.Errorf("rules: max alert transaction ids must be >= 0, got %d", c.MaxAlertTxnIDs))
	}
	return errors.Join(errs...)
}

func validCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// Event is one accepted transaction as the state keeps it. Time is Unix nanoseconds.
type Event struct {
	ID       string
	Time     int64
	Amount   float64
	Currency string
	Country  string
}

// Source identifies the record the detector consumed to apply a transaction:
// its partition and offset in the input topic when it was applied straight
// from the input (Direct), else in the loop topic after the re-key hop. The
// detector consumes each source partition in offset order, so a record at or
// below the highest applied offset is a re-delivery. (The input position of a
// re-keyed record would not do: when one loop write fails and a later one
// succeeds, the re-sent earlier record arrives after a higher input offset.)
type Source struct {
	Partition int32
	Direct    bool
	Offset    int64
}

// Fired records an alert already raised, so it is raised only once.
type Fired struct {
	Rule  Rule
	Start int64
	End   int64
}

// State is one user's detector state.
type State struct {
	Started    bool  // an event has been accepted; StreamTime is valid
	StreamTime int64 // greatest accepted event time, Unix nanoseconds
	Events     []Event
	Fired      []Fired
	Sources    []Source
}

// Outcome says what Apply did with a transaction.
type Outcome uint8

const (
	// Counted: the transaction was added to the user's windows.
	Counted Outcome = iota
	// Duplicate: a transaction with the same id is already counted in a retained window.
	Duplicate
	// Late: the transaction's window closed (end <= stream time - grace).
	Late
	// Replayed: this very record (same source partition and offset) was applied before.
	Replayed
)

func (o Outcome) String() string {
	switch o {
	case Counted:
		return "counted"
	case Duplicate:
		return "duplicate"
	case Late:
		return "late"
	case Replayed:
		return "replayed"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Alert is a rule firing for one user and one window. Times are Unix nanoseconds.
type Alert struct {
	ID               string
	Rule             Rule
	UserID           string
	Start, End       int64
	NumTxns          int
	Total            float64
	TotalsByCurrency map[string]float64
	Threshold        float64
	TxnIDs           []string
	FirstEventTime   int64
	LastEventTime    int64
}

// AlertID is the deterministic id of an alert: the same user, rule and window
// always give the same id, so a re-emitted alert is recognisable.
func AlertID(userID string, r Rule, start, end int64) string {
	h := sha256.New()
	h.Write([]byte(userID))
	h.Write([]byte{0})
	h.Write([]byte(r.String()))
	var b [16]byte
	putInt64(b[:8], start)
	putInt64(b[8:], end)
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func putInt64(b []byte, v int64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(uint64(v) >> (56 - 8*i))
	}
}

// Window is the aggregate of one window of a user's state.
type Window struct {
	Start, End       int64
	NumTxns          int
	Total            float64
	TotalsByCurrency Totals
	Countries        []string
}

// Total is a window's sum in one currency.
type Total struct {
	Currency string
	Amount   float64
}

// Totals are a window's sums by currency, sorted by currency. A window's
// events are in a currency or two: a slice of them is one small allocation
// where a map was two of a few hundred bytes, and the view service builds
// them for every window of every answer.
type Totals []Total

// Get returns the sum in currency (0 if there is none).
func (t Totals) Get(currency string) float64 {
	for _, x := range t {
		if x.Currency == currency {
			return x.Amount
		}
	}
	return 0
}

// add adds amount to the sum in currency, keeping t sorted.
func (t Totals) add(currency string, amount float64) Totals {
	i, found := slices.BinarySearchFunc(t, currency, func(x Total, c string) int { return strings.Compare(x.Currency, c) })
	if found {
		t[i].Amount += amount
		return t
	}
	return slices.Insert(t, i, Total{Currency: currency, Amount: amount})
}

// Map returns the sums as a map.
func (t Totals) Map() map[string]float64 {
	m := make(map[string]float64, len(t))
	for _, x := range t {
		m[x.Currency] = x.Amount
	}
	return m
}

// floorDiv rounds towards negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// TumblingStart is the start of the tumbling window holding t.
func (c *Config) TumblingStart(t int64) int64 {
	size := int64(c.Size)
	return floorDiv(t, size) * size
}

// windowEnd is the end of the window an event at t belongs to, for lateness.
func (c *Config) windowEnd(t int64) int64 {
	if c.Mode == Sliding {
		return t
	}
	return c.TumblingStart(t) + int64(c.Size)
}

// IsLate reports whether an event at t is late for a stream time st.
func (c *Config) IsLate(st State, t int64) bool {
	return st.Started && c.windowEnd(t) <= st.StreamTime-int64(c.Grace)
}

// Apply applies one transaction to a user's state. It mutates st only when the
// outcome is Counted; the caller must then persist st. Alerts are returned in a
// deterministic order.
func (c *Config) Apply(st *State, userID string, src Source, ev Event) (Outcome, []Alert) {
	si := -1
	for i, s := range st.Sources {
		if s.Partition == src.Partition && s.Direct == src.Direct {
			si = i
			if src.Offset <= s.Offset {
				return Replayed, nil
			}
			break
		}
	}
	if c.IsLate(*st, ev.Time) {
		return Late, nil
	}
	for i := range st.Events {
		if st.Events[i].ID == ev.ID {
			return Duplicate, nil
		}
	}

	if si >= 0 {
		st.Sources[si].Offset = src.Offset
	} else {
		st.Sources = append(st.Sources, src)
	}
	pos := sort.Search(len(st.Events), func(i int) bool { return st.Events[i].Time > ev.Time })
	st.Events = append(st.Events, Event{})
	copy(st.Events[pos+1:], st.Events[pos:])
	st.Events[pos] = ev
	if !st.Started || ev.Time > st.StreamTime {
		st.Started = true
		st.StreamTime = ev.Time
	}

	var alerts []Alert
	if c.Mode == Sliding {
		alerts = c.evalSliding(st, userID, ev, pos)
	} else {
		alerts = c.evalTumbling(st, userID, ev)
	}
	c.evict(st)
	return Counted, alerts
}

func (c *Config) evalTumbling(st *State, userID string, ev Event) []Alert {
	start := c.TumblingStart(ev.Time)
	end := start + int64(c.Size)
	if !c.mayAlert(st.Events, start, end, false, ev.Currency, func(r Rule) bool { return firedTumbling(st.Fired, r, start) }) {
		return nil
	}
	agg := c.aggregate(st.Events, start, end, false, c.MaxAlertTxnIDs)
	var alerts []Alert
	for _, r := range [...]Rule{RuleVelocity, RuleAmount, RuleCountries} {
		thr, hit := c.crosses(r, agg.count, agg.totals.Get(ev.Currency), len(agg.countries), ev.Currency)
		if !hit || firedTumbling(st.Fired, r, start) {
			continue
		}
		st.Fired = append(st.Fired, Fired{Rule: r, Start: start, End: end})
		alerts = append(alerts, agg.alert(userID, r, start, end, thr))
	}
	return alerts
}

func firedTumbling(fired []Fired, r Rule, start int64) bool {
	for _, f := range fired {
		if f.Rule == r && f.Start == start {
			return true
		}
	}
	return false
}

// evalSliding evaluates the windows (t-size, t] at every event time t from
// the new event's time up to one window length after it: an out-of-order
// event also raises the counts of the windows that end after it.
func (c *Config) evalSliding(st *State, userID string, ev Event, pos int) []Alert {
	size := int64(c.Size)
	var alerts []Alert
	// Events at the same time as ev that precede it share its window; start
	// from the first event at ev.Time so evaluation points are distinct times.
	for i := pos; i < len(st.Events); i++ {
		t := st.Events[i].Time
		if t >= ev.Time+size {
			break
		}
		if i > pos && t == st.Events[i-1].Time {
			continue
		}
		if !c.mayAlert(st.Events, t-size, t, true, ev.Currency, func(r Rule) bool { return firedSliding(st.Fired, r, t, size) }) {
			continue
		}
		agg := c.aggregate(st.Events, t-size, t, true, c.MaxAlertTxnIDs)
		for _, r := range [...]Rule{RuleVelocity, RuleAmount, RuleCountries} {
			thr, hit := c.crosses(r, agg.count, agg.totals.Get(ev.Currency), len(agg.countries), ev.Currency)
			if !hit || firedSliding(st.Fired, r, t, size) {
				continue
			}
			st.Fired = append(st.Fired, Fired{Rule: r, Start: t - size, End: t})
			alerts = append(alerts, agg.alert(userID, r, t-size, t, thr))
		}
	}
	return alerts
}

// firedSliding reports whether an alert of rule r fired within one window
// length of t: a user gets at most one alert per rule per window length.
func firedSliding(fired []Fired, r Rule, t, size int64) bool {
	for _, f := range fired {
		if f.Rule != r {
			continue
		}
		d := f.End - t
		if d < 0 {
			d = -d
		}
		if d < size {
			return true
		}
	}
	return false
}

// crosses reports whether rule r crosses its threshold in a window of count
// events, currencyTotal of them in currency and countries distinct
// countries, and the threshold.
func (c *Config) crosses(r Rule, count int, currencyTotal float64, countries int, currency string) (float64, bool) {
	switch r {
	case RuleVelocity:
		if c.Velocity.Enabled && count > c.Velocity.MaxTxns {
			return float64(c.Velocity.MaxTxns), true
		}
	case RuleAmount:
		if !c.Amount.Enabled {
			return 0, false
		}
		thr, ok := c.Amount.Thresholds[currency]
		if !ok {
			thr = c.Amount.Default
		}
		if thr > 0 && currencyTotal > thr {
			return thr, true
		}
	case RuleCountries:
		if c.Countries.Enabled && countries >= c.Countries.Min {
			return float64(c.Countries.Min), true
		}
	}
	return 0, false
}

// mayAlert reports whether a rule that has not fired (fired(r) is false)
// crosses its threshold in the window of events (as aggregate bounds it), as
// crosses would on the window's aggregate for currency. It allocates nothing
// for the usual window of a few countries, so the aggregate (every currency's
// total, the transaction ids) is built only for a window that raises an
// alert: most events raise none, and every later event of a burst's window
// crosses a rule that already fired.
func (c *Config) mayAlert(events []Event, start, end int64, openStart bool, currency string, fired func(Rule) bool) bool {
	var buf [8]string
	countries := buf[:0]
	count, total := 0, 0.0
	for i := c.lowerBound(events, start, openStart); i < len(events); i++ {
		e := &events[i]
		if openStart && e.Time > end || !openStart && e.Time >= end {
			break
		}
		count++
		if e.Currency == currency {
			total += e.Amount
		}
		if e.Country != "" && !contains(countries, e.Country) {
			countries = append(countries, e.Country)
		}
	}
	for _, r := range [...]Rule{RuleVelocity, RuleAmount, RuleCountries} {
		if _, hit := c.crosses(r, count, total, len(countries), currency); hit && !fired(r) {
			return true
		}
	}
	return false
}

// lowerBound is the first event in the window starting at start.
func (c *Config) lowerBound(events []Event, start int64, openStart bool) int {
	return sort.Search(len(events), func(i int) bool {
		if openStart {
			return events[i].Time > start
		}
		return events[i].Time >= start
	})
}

type aggregate struct {
	count       int
	total       float64
	totals      Totals
	countries   []string
	ids         []string
	first, last int64
}

// aggregate sums the events in [start, end), or (start, end] when openStart,
// and lists the ids of the first maxIDs.
func (c *Config) aggregate(events []Event, start, end int64, openStart bool, maxIDs int) aggregate {
	var a aggregate
	for i := c.lowerBound(events, start, openStart); i < len(events); i++ {
		e := &events[i]
		if openStart && e.Time > end || !openStart && e.Time >= end {
			break
		}
		if a.count == 0 {
			a.first = e.Time
		}
		a.last = e.Time
		a.count++
		a.total += e.Amount
		a.totals = a.totals.add(e.Currency, e.Amount)
		if e.Country != "" && !contains(a.countries, e.Country) {
			a.countries = append(a.countries, e.Country)
		}
		if len(a.ids) < maxIDs {
			a.ids = append(a.ids, e.ID)
		}
	}
	return a
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (a *aggregate) alert(userID string, r Rule, start, end int64, thr float64) Alert {
	return Alert{
		ID:               AlertID(userID, r, start, end),
		Rule:             r,
		UserID:           userID,
		Start:            start,
		End:              end,
		NumTxns:          a.count,
		Total:            a.total,
		TotalsByCurrency: a.totals.Map(),
		Threshold:        thr,
		TxnIDs:           append([]string(nil), a.ids...),
		FirstEventTime:   a.first,
		LastEventTime:    a.last,
	}
}

// evict drops events and fired records that no acceptable future event can
// reach, which keeps the state of every user bounded.
func (c *Config) evict(st *State) {
	cutoff := st.StreamTime - int64(c.Grace)
	keepEvent := func(e Event) bool { return c.windowEnd(e.Time) > cutoff }
	keepFired := func(f Fired) bool { return f.End > cutoff }
	if c.Mode == Sliding {
		size := int64(c.Size)
		keepEvent = func(e Event) bool { return e.Time > cutoff-size }
		keepFired = func(f Fired) bool { return f.End > cutoff-size }
	}
	// Events are in time order and both rules keep an event from some time
	// on, so the kept events are the last ones: only the dropped ones are
	// looked at, and the kept ones move only when some were dropped. (Every
	// event was looked at and moved for every applied event: a fifth of the
	// work for a user holding 200.)
	first := 0
	for first < len(st.Events) && !keepEvent(st.Events[first]) {
		first++
	}
	if first > 0 {
		n := copy(st.Events, st.Events[first:])
		clear(st.Events[n:])
		st.Events = st.Events[:n]
	}
	m := 0
	for _, f := range st.Fired {
		if keepFired(f) {
			st.Fired[m] = f
			m++
		}
	}
	st.Fired = st.Fired[:m]
}

// Windows returns the aggregates of the windows the state still holds, oldest
// first: tumbling windows as they are, or in sliding mode the window ending at
// the stream time.
func (c *Config) Windows(st State) []Window {
	if len(st.Events) == 0 {
		return nil
	}
	if c.Mode == Sliding {
		a := c.aggregate(st.Events, st.StreamTime-int64(c.Size), st.StreamTime, true, 0)
		return []Window{a.window(st.StreamTime-int64(c.Size), st.StreamTime)}
	}
	n, last := 0, int64(0) // the windows: events are in time order
	for i := range st.Events {
		if start := c.TumblingStart(st.Events[i].Time); i == 0 || start != last {
			n, last = n+1, start
		}
	}
	ws := make([]Window, 0, n)
	for i := 0; i < len(st.Events); {
		start := c.TumblingStart(st.Events[i].Time)
		end := start + int64(c.Size)
		a := c.aggregate(st.Events[i:], start, end, false, 0)
		ws = append(ws, a.window(start, end))
		i += a.count
	}
	return ws
}

func (a *aggregate) window(start, end int64) Window {
	return Window{Start: start, End: end, NumTxns: a.count, Total: a.total, TotalsByCurrency: a.totals, Countries: a.countries}
}
