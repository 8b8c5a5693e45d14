// Package generator makes synthetic, seed-shaped transactions with fraud
// bursts, for "fraudwatch dev --demo", "fraudwatch produce" and the tests.
// It is deterministic for a seed.
package generator

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/fraudwatch/fraudwatch/codecs"
)

// Config shapes the traffic.
type Config struct {
	Users      int     // distinct normal users
	BurstUsers int     // users that sometimes burst (fraud)
	BurstSize  int     // transactions per burst (default 8)
	BurstShare float64 // probability that a draw starts a burst (default 0.01)
	Seed       uint64
}

// Generator yields transactions.
type Generator struct {
	cfg     Config
	r       *rand.Rand
	n       uint64
	pending []string // user ids of a burst in progress
}

// markets pairs a currency with its country; merchants are drawn independently.
func markets() (currencies, countries [6]string) {
	return [6]string{"ARS", "BRL", "USD", "MXN", "CLP", "EUR"}, [6]string{"AR", "BR", "US", "MX", "CL", "ES"}
}

func merchants() [7]string {
	return [7]string{"MercadoLibre", "Rappi", "Despegar", "Falabella", "Amazon", "Netflix", "Uber"}
}

// New returns a generator.
func New(cfg Config) *Generator {
	if cfg.Users < 1 {
		cfg.Users = 1
	}
	if cfg.BurstSize < 1 {
		cfg.BurstSize = 8
	}
	if cfg.BurstShare == 0 {
		cfg.BurstShare = 0.01
	}
	return &Generator{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, 0x5eed))}
}

// UserID is the id of normal user i (i >= 0): usr_ and i in at least six
// digits.
func UserID(i int) string { return padded("usr_", i, 6) }

// BurstUserID is the id of burst user i (i >= 0): usr_burst_ and i in at
// least four digits.
func BurstUserID(i int) string { return padded("usr_burst_", i, 4) }

// padded is prefix and i in at least width digits, zeros first, as
// fmt's %0*d writes a number >= 0 (without fmt's cost: the generator makes
// an id for every transaction of "fraudwatch bench" and "produce").
func padded(prefix string, i, width int) string {
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], uint64(i), 10)
	b := make([]byte, 0, len(prefix)+max(width, len(d)))
	b = append(b, prefix...)
	for range width - len(d) {
		b = append(b, '0')
	}
	return string(append(b, d...))
}

// transactionID is txn_, the seed in hex, _ and n.
func transactionID(seed, n uint64) string {
	b := make([]byte, 0, 48)
	b = append(b, "txn_"...)
	b = strconv.AppendUint(b, seed, 16)
	b = append(b, '_')
	return string(strconv.AppendUint(b, n, 10))
}

// Next returns the next transaction at event time at.
func (g *Generator) Next(at time.Time) codecs.Txn {
	var user string
	switch {
	case len(g.pending) > 0 && g.r.IntN(2) == 0:
		user, g.pending = g.pending[0], g.pending[1:]
	case g.cfg.BurstUsers > 0 && g.r.Float64() < g.cfg.BurstShare:
		u := BurstUserID(g.r.IntN(g.cfg.BurstUsers))
		for i := 0; i < g.cfg.BurstSize; i++ {
			g.pending = append(g.pending, u)
		}
		user, g.pending = g.pending[0], g.pending[1:]
	default:
		user = UserID(g.r.IntN(g.cfg.Users))
	}
	g.n++
	currencies, countries := markets()
	ms := merchants()
	i := g.r.IntN(len(currencies))
	return codecs.Txn{
		TransactionID: transactionID(g.cfg.Seed, g.n),
		UserID:        user,
		Amount:        float64(g.r.IntN(2000000)) / 100,
		Currency:      currencies[i],
		Merchant:      ms[g.r.IntN(len(ms))],
		Country:       countries[i],
		Timestamp:     at.UTC().Truncate(time.Millisecond),
	}
}
