package generator

import (
	"fmt"
	"testing"
	"time"

	"github.com/fraudwatch/fraudwatch/codecs"
)

func TestDeterministicValidAndBursty(t *testing.T) {
	at := time.Date(2025, 6, 15, 14, 30, 0, 0, time.UTC)
	a := New(Config{Users: 100, BurstUsers: 5, BurstShare: 0.05, Seed: 7})
	b := New(Config{Users: 100, BurstUsers: 5, BurstShare: 0.05, Seed: 7})
	perUser := map[string]int{}
	ids := map[string]bool{}
	for i := 0; i < 5000; i++ {
		x, y := a.Next(at), b.Next(at)
		if x != y {
			t.Fatalf("draw %d differs for one seed: %+v vs %+v", i, x, y)
		}
		enc, _ := x.MarshalJSON()
		if _, err := codecs.ParseTxn(enc, codecs.Limits{MaxBytes: codecs.DefaultMaxBytes}); err != nil {
			t.Fatalf("generated an invalid transaction: %v", err)
		}
		if ids[x.TransactionID] {
			t.Fatalf("transaction id %s repeated", x.TransactionID)
		}
		ids[x.TransactionID] = true
		perUser[x.UserID]++
	}
	bursty := 0
	for i := 0; i < 5; i++ {
		if perUser[BurstUserID(i)] >= 8 {
			bursty++
		}
	}
	if bursty == 0 {
		t.Fatalf("no burst user got a burst: %v", perUser)
	}
}

// TestIDs: the ids are the fmt forms they always were.
func TestIDs(t *testing.T) {
	for _, i := range []int{0, 7, 42, 999_999, 1_000_000, 12_345_678} {
		if got, want := UserID(i), fmt.Sprintf("usr_%06d", i); got != want {
			t.Errorf("UserID(%d) = %q, want %q", i, got, want)
		}
		if got, want := BurstUserID(i), fmt.Sprintf("usr_burst_%04d", i); got != want {
			t.Errorf("BurstUserID(%d) = %q, want %q", i, got, want)
		}
	}
	for _, c := range []struct{ seed, n uint64 }{{0, 0}, {1, 1}, {0x5eed, 123456789}, {^uint64(0), ^uint64(0)}} {
		if got, want := transactionID(c.seed, c.n), fmt.Sprintf("txn_%x_%d", c.seed, c.n); got != want {
			t.Errorf("transactionID(%d, %d) = %q, want %q", c.seed, c.n, got, want)
		}
	}
}
