package app

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestCacheAgreesWithMap runs random adds, sets, keeps, removes and loans against a
// map, with all hash bits and with two (every key collides with a quarter of
// the others, so lookups walk chains and removals unlink from their middle).
// After every step the cache reads as the map does, every value it lent is
// unchanged, and its byte counts add up.
func TestCacheAgreesWithMap(t *testing.T) {
	for _, mask := range []uint64{^uint64(0), 3} {
		t.Run(fmt.Sprintf("mask=%#x", mask), func(t *testing.T) {
			c := newCache()
			c.mask = mask
			rng := rand.New(rand.NewPCG(1, mask))
			model := map[string][]byte{}
			type loan struct{ got, want []byte }
			var loans []loan
			compactions := 0
			for step := range 200_000 {
				key := fmt.Sprintf("k%d", rng.IntN(2000))
				i := c.find(key)
				want, ok := model[key]
				if (i >= 0) != ok {
					t.Fatalf("step %d: find(%s) = %d, model has it: %v", step, key, i, ok)
				}
				var val []byte
				if n := rng.IntN(300); n > 0 { // 0: a nil value
					val = bytes.Repeat([]byte{byte(step)}, n)
				}
				arena := c.arena
				switch op := rng.IntN(10); {
				case i < 0:
					c.add(key, val)
					model[key] = val
				case op < 4:
					c.set(i, val)
					model[key] = val
				case op < 5 && val != nil:
					c.keep(i, val)
					model[key] = val
				case op < 7:
					c.remove(i)
					delete(model, key)
				default:
					if got := c.value(i); !bytes.Equal(got, want) || (got == nil) != (want == nil) {
						t.Fatalf("step %d: %s = %.20q, want %.20q", step, key, got, want)
					}
					if got := c.lend(i); got != nil {
						loans = append(loans, loan{got, bytes.Clone(got)})
					}
				}
				if c.arena < arena {
					compactions++
				}
				if step%1000 == 0 {
					checkCache(t, &c, model)
					for _, l := range loans {
						if !bytes.Equal(l.got, l.want) {
							t.Fatalf("step %d: a lent value changed from %.20q to %.20q", step, l.want, l.got)
						}
					}
				}
			}
			checkCache(t, &c, model)
			if compactions == 0 {
				t.Error("the cache never compacted")
			}
		})
	}
}

// checkCache checks that c holds model and that its byte counts add up.
func checkCache(t *testing.T, c *cache, model map[string][]byte) {
	t.Helper()
	if c.used != len(model) {
		t.Fatalf("cache holds %d entries, model %d", c.used, len(model))
	}
	for k, want := range model {
		i := c.find(k)
		if i < 0 {
			t.Fatalf("%s is not found", k)
		}
		if got := c.value(i); !bytes.Equal(got, want) || (got == nil) != (want == nil) {
			t.Fatalf("%s = %.20q, want %.20q", k, got, want)
		}
	}
	live := make([]int, len(c.chunks))
	for i := range c.slots {
		if e := c.ent(i); e.flags&entUsed != 0 {
			live[e.chunk] += int(e.room)
		}
	}
	total, unused := 0, 0
	for ch, b := range c.chunks {
		if live[ch] != c.live[ch] {
			t.Fatalf("chunk %d: %d bytes in use, counted %d", ch, live[ch], c.live[ch])
		}
		total += len(b)
		if int32(ch) == c.cur {
			unused = len(b) - c.fill
		}
	}
	sum := 0
	for _, n := range live {
		sum += n
	}
	kept := 0
	for i := range c.slots {
		if e := c.ent(i); e.flags&entKept != 0 {
			kept++
		}
	}
	if kept != len(c.kept) {
		t.Fatalf("%d entries are kept, %d values held", kept, len(c.kept))
	}
	if total != c.arena || sum+c.garbage+unused != c.arena {
		t.Fatalf("chunks of %d bytes (counted %d): %d in use, %d garbage, %d not taken", total, c.arena, sum, c.garbage, unused)
	}
}
