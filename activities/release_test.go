package activities

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// gatedSender records release signals; the first one waits until gate is closed.
type gatedSender struct {
	mu      sync.Mutex
	gate    chan struct{}
	err     error
	signals [][]string
}

func (g *gatedSender) SignalWorkflow(_ context.Context, _, _, _ string, arg any) error {
	g.mu.Lock()
	first := len(g.signals) == 0
	g.signals = append(g.signals, arg.(LedgerRelease).NodeIDs)
	g.mu.Unlock()
	if first {
		<-g.gate
	}
	return g.err
}

func TestReleaseBatcherSendsReleasesTogether(t *testing.T) {
	cases := []struct {
		name  string
		nodes int
		err   error
		// wantSignals are the sizes of the signals sent, in order.
		wantSignals []int
	}{
		{name: "one release", nodes: 1, wantSignals: []int{1}},
		{name: "releases during a signal share the next", nodes: 10, wantSignals: []int{1, 9}},
		{name: "more than a signal holds", nodes: releaseBatchMax + 3, wantSignals: []int{1, releaseBatchMax, 2}},
		{name: "a failed signal fails its releases", nodes: 3, err: errors.New("unavailable"), wantSignals: []int{1, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b releaseBatcher
			s := &gatedSender{gate: make(chan struct{}), err: tc.err}
			ctx := context.Background()
			results := make(chan error, tc.nodes)
			go func() { results <- b.release(ctx, s, "ledger", "release", "n0") }()
			require.Eventually(t, func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return len(s.signals) == 1
			}, 5*time.Second, time.Millisecond, "the first release is sent at once")
			var queued sync.WaitGroup
			for i := 1; i < tc.nodes; i++ {
				queued.Add(1)
				go func() {
					queued.Done()
					results <- b.release(ctx, s, "ledger", "release", fmt.Sprintf("n%d", i))
				}()
			}
			queued.Wait()
			require.Eventually(t, func() bool { return b.queued("ledger\x00release") == tc.nodes-1 }, 5*time.Second, time.Millisecond)
			close(s.gate)
			for range tc.nodes {
				require.Equal(t, tc.err, <-results)
			}
			var sizes []int
			var all []string
			for _, sig := range s.signals {
				sizes = append(sizes, len(sig))
				all = append(all, sig...)
			}
			require.Equal(t, tc.wantSignals, sizes)
			sort.Strings(all)
			require.Len(t, all, tc.nodes)
			for i := 1; i < len(all); i++ {
				require.NotEqual(t, all[i-1], all[i], "every node is released once")
			}
			require.Eventually(t, b.idle, 5*time.Second, time.Millisecond, "nothing is left waiting")
		})
	}
}
