package kafka

import (
	"sync"
	"testing"

	"github.com/IBM/sarama"
)

// BenchmarkEmit produces keyed 200-byte records through the goka producer to
// an in-process broker and waits for every promise: the per-record cost of
// the detector's loop and changelog writes on the client side.
func BenchmarkEmit(b *testing.B) {
	c := testCluster(b, 4, "out")
	p, err := Options{Brokers: c.ListenAddrs(), ClientID: "bench"}.StreamProducerBuilder(DefaultProduceLinger)(c.ListenAddrs(), "bench", Hasher())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	value := make([]byte, 200)
	keys := []string{"usr_0001", "usr_0002", "usr_0003", "usr_0004", "usr_0005", "usr_0006", "usr_0007"}
	var wg sync.WaitGroup
	var failed sync.Once
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		wg.Add(1)
		p.Emit("out", keys[i%len(keys)], value).ThenWithMessage(func(_ *sarama.ProducerMessage, err error) {
			if err != nil {
				failed.Do(func() { b.Error(err) })
			}
			wg.Done()
		})
	}
	wg.Wait()
}
