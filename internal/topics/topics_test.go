package topics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func led(topic string, leaders ...int32) kadm.TopicDetail {
	d := kadm.TopicDetail{Topic: topic, Partitions: kadm.PartitionDetails{}}
	for i, l := range leaders {
		d.Partitions[int32(i)] = kadm.PartitionDetail{Topic: topic, Partition: int32(i), Leader: l}
	}
	return d
}

// TestAwaitVisible: Create returns only once every topic is in the
// metadata with every partition led, through listing errors, missing
// topics and leaderless partitions; a topic that never shows is an error
// that names it.
func TestAwaitVisible(t *testing.T) {
	names := []string{"topic-a", "topic-b"}
	answers := []func() (kadm.TopicDetails, error){
		func() (kadm.TopicDetails, error) { return nil, errors.New("connection refused") },
		func() (kadm.TopicDetails, error) {
			return kadm.TopicDetails{"topic-a": led("topic-a", 0, 0), "topic-b": {Topic: "topic-b", Err: kerr.UnknownTopicOrPartition}}, nil
		},
		func() (kadm.TopicDetails, error) {
			return kadm.TopicDetails{"topic-a": led("topic-a", 0, 0), "topic-b": led("topic-b", 0, -1)}, nil
		},
		func() (kadm.TopicDetails, error) {
			return kadm.TopicDetails{"topic-a": led("topic-a", 0, 0), "topic-b": led("topic-b", 0, 0)}, nil
		},
	}
	calls := 0
	err := awaitVisible(context.Background(), func(context.Context) (kadm.TopicDetails, error) {
		calls++
		return answers[min(calls, len(answers))-1]()
	}, names)
	if err != nil || calls != len(answers) {
		t.Fatalf("returned %v after %d listings; want nil after %d", err, calls, len(answers))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*visiblePoll)
	defer cancel()
	start := time.Now()
	err = awaitVisible(ctx, func(context.Context) (kadm.TopicDetails, error) {
		return kadm.TopicDetails{"topic-a": led("topic-a", 0), "topic-b": led("topic-b")}, nil
	}, names)
	if err == nil || !strings.Contains(err.Error(), "partition: topic-b (") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a topic without partitions: %v; want an error naming topic-b alone, at the deadline", err)
	}
	if waited := time.Since(start); waited < 3*visiblePoll {
		t.Fatalf("gave up after %v, before the deadline", waited)
	}
}
