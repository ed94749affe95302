package poller

import (
	"testing"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestAllDeclinedIgnoresIdlePools(t *testing.T) {
	pools := []Pool{{ID: "a"}, {ID: "b"}, {ID: "idle", Idle: true}}
	tests := []struct {
		declined []string
		want     bool
	}{
		{nil, false},
		{[]string{"a"}, false},
		{[]string{"a", "b"}, true},
		{[]string{"a", "b", "idle"}, true},
		{[]string{"idle"}, false},
	}
	p := New(Options{Pools: pools})
	for _, tc := range tests {
		if got := p.allDeclined(&zookeeper.NodeRequest{DeclinedBy: tc.declined}); got != tc.want {
			t.Errorf("declined by %v: allDeclined = %v, want %v", tc.declined, got, tc.want)
		}
	}
}

func TestAllDeclinedFollowsTheRegisteredIDs(t *testing.T) {
	const (
		old = "0123456789abcdef0123456789abcdef"
		cur = "fedcba9876543210fedcba9876543210"
	)
	p := New(Options{Pools: []Pool{{ID: "l-PoolWorker.sim-main"}}, Instance: cur})
	live := []string{p.registrationID(p.opts.Pools[0])}
	p.live.Store(&live)
	tests := []struct {
		declined []string
		want     bool
	}{
		{[]string{"l-PoolWorker.sim-main-" + cur}, true},
		// Declined by the process before a restart: looked at again.
		{[]string{"l-PoolWorker.sim-main-" + old}, false},
		{[]string{"l-PoolWorker.sim-main"}, false},
		{[]string{"l-PoolWorker.sim-main-2-" + cur}, false},
	}
	for _, tc := range tests {
		if got := p.allDeclined(&zookeeper.NodeRequest{DeclinedBy: tc.declined}); got != tc.want {
			t.Errorf("declined by %v: allDeclined = %v, want %v", tc.declined, got, tc.want)
		}
	}
}
