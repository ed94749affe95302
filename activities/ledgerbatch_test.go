package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// gatedStarter records ledger signals-with-start; the first waits until gate is closed.
type gatedStarter struct {
	runningChains
	mu   sync.Mutex
	gate chan struct{}
	err  error
	// sent are the signals: their names and, for batches, the requests they carry.
	sent []sentLedgerSignal
}

type sentLedgerSignal struct {
	name, taskQueue string
	requests        []string
}

func (g *gatedStarter) SignalWithStartWorkflow(_ context.Context, _, signal string, arg any, opts client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	s := sentLedgerSignal{name: signal, taskQueue: opts.TaskQueue}
	switch p := arg.(type) {
	case LedgerAcquire:
		s.requests = []string{p.RequestID}
	case LedgerBatch:
		for _, sig := range p.Signals {
			s.requests = append(s.requests, sig.Acquire.RequestID)
		}
	}
	g.mu.Lock()
	first := len(g.sent) == 0
	g.sent = append(g.sent, s)
	g.mu.Unlock()
	if first {
		<-g.gate
	}
	return nil, g.err
}

func TestLedgerSignalsSentWhileOneIsInFlightGoTogether(t *testing.T) {
	cases := []struct {
		name     string
		requests int
		err      error
		// want are the signals sent, in order: a name and how many requests each carries.
		want []sentLedgerSignal
	}{
		{name: "one acquire is sent as it is", requests: 1,
			want: []sentLedgerSignal{{name: "acquire", requests: make([]string, 1)}}},
		{name: "acquires during a signal share the next", requests: 10,
			want: []sentLedgerSignal{{name: "acquire", requests: make([]string, 1)}, {name: LedgerBatchSignal, requests: make([]string, 9)}}},
		{name: "more than a batch holds", requests: ledgerBatchMax + 3, want: []sentLedgerSignal{
			{name: "acquire", requests: make([]string, 1)}, {name: LedgerBatchSignal, requests: make([]string, ledgerBatchMax)},
			{name: LedgerBatchSignal, requests: make([]string, 2)}}},
		{name: "a failed signal fails every acquire it carries", requests: 3, err: errors.New("unavailable"),
			want: []sentLedgerSignal{{name: "acquire", requests: make([]string, 1)}, {name: LedgerBatchSignal, requests: make([]string, 2)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b ledgerBatcher
			s := &gatedStarter{gate: make(chan struct{}), err: tc.err}
			ctx := context.Background()
			in := func(i int) SignalLedgerInput {
				return SignalLedgerInput{WorkflowID: "tq/ledger/sim/main", WorkflowType: "PoolLedger", Signal: "acquire",
					StartInput: LedgerStart{Provider: "sim", Pool: "main", TaskQueue: "tq"},
					Payload:    LedgerSignal{Acquire: &LedgerAcquire{RequestID: fmt.Sprintf("100-%010d", i)}}}
			}
			results := make(chan error, tc.requests)
			go func() { results <- b.signal(ctx, s, "tq-ledger", in(0)) }()
			require.Eventually(t, func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return len(s.sent) == 1
			}, 5*time.Second, time.Millisecond, "the first signal is sent at once")
			for i := 1; i < tc.requests; i++ {
				go func() { results <- b.signal(ctx, s, "tq-ledger", in(i)) }()
			}
			require.Eventually(t, func() bool { return b.queued("tq/ledger/sim/main") == tc.requests-1 }, 5*time.Second, time.Millisecond)
			close(s.gate)
			for range tc.requests {
				err := <-results
				if tc.err == nil {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, tc.err)
				}
			}
			require.Len(t, s.sent, len(tc.want))
			seen := map[string]bool{}
			for i, got := range s.sent {
				require.Equal(t, tc.want[i].name, got.name)
				require.Len(t, got.requests, len(tc.want[i].requests))
				require.Equal(t, "tq-ledger", got.taskQueue, "the ledger starts on its own task queue")
				for _, r := range got.requests {
					require.False(t, seen[r], "request %s sent twice", r)
					seen[r] = true
				}
			}
			require.Len(t, seen, tc.requests, "every acquire is sent once")
			require.Eventually(t, b.idle, 5*time.Second, time.Millisecond, "nothing is left queued")
		})
	}
}
