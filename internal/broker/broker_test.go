package broker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSegmentBytes: a broker without a data dir keeps its segments small
// (memSegmentBytes); one with a data dir keeps kfake's default.
func TestSegmentBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  string
		mem  bool // whether log.segment.bytes is memSegmentBytes
	}{
		{"memory", "", true},
		{"data dir", t.TempDir(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Start(Config{Listen: "127.0.0.1:0", DataDir: tc.dir})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rcs, err := kadm.NewClient(cl).DescribeBrokerConfigs(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := rcs.On("0", nil)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, c := range rc.Configs {
				if c.Key == "log.segment.bytes" && c.Value != nil {
					got = *c.Value
				}
			}
			if mem := strconv.Itoa(memSegmentBytes); (got == mem) != tc.mem {
				t.Fatalf("log.segment.bytes = %q; want %s to be %v", got, mem, tc.mem)
			}
		})
	}
}
