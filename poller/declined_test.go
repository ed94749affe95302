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
