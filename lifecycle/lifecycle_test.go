package lifecycle

import (
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestDeleteReason(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ago := func(d time.Duration) float64 { return float64(now.Add(-d).Unix()) }
	policy := Policy{
		Providers:   map[string]bool{"sim": true},
		PoolIDs:     map[string]bool{"np-PoolWorker.sim-main": true},
		MaxHoldAge:  time.Hour,
		OrphanGrace: 30 * time.Second,
		MaxReadyAge: func(label string) time.Duration {
			if label == "short" {
				return time.Minute
			}
			return 0
		},
	}
	req := "100-0000000001"
	tests := []struct {
		name string
		node zookeeper.Node
		obs  Observation
		want bool
	}{
		{"used", zookeeper.Node{State: zookeeper.NodeUsed}, Observation{}, true},
		{"used but locked", zookeeper.Node{State: zookeeper.NodeUsed}, Observation{Locked: true}, false},
		{"failed", zookeeper.Node{State: zookeeper.NodeFailed}, Observation{}, true},
		{"deleting", zookeeper.Node{State: zookeeper.NodeDeleting}, Observation{}, true},
		{"in-use unlocked", zookeeper.Node{State: zookeeper.NodeInUse}, Observation{}, true},
		{"in-use locked", zookeeper.Node{State: zookeeper.NodeInUse}, Observation{Locked: true}, false},
		{"other provider", zookeeper.Node{State: zookeeper.NodeUsed, Provider: "other"}, Observation{}, false},
		{"building briefly unlocked", zookeeper.Node{State: zookeeper.NodeBuilding}, Observation{UnlockedFor: time.Second}, false},
		{"building orphaned", zookeeper.Node{State: zookeeper.NodeBuilding}, Observation{UnlockedFor: time.Minute}, true},
		{"init with request", zookeeper.Node{State: zookeeper.NodeInit}, Observation{UnlockedFor: time.Minute, RequestExists: true}, false},
		{"init orphaned", zookeeper.Node{State: zookeeper.NodeInit}, Observation{UnlockedFor: time.Minute}, true},
		{"hold fresh", zookeeper.Node{State: zookeeper.NodeHold, StateTime: ago(time.Minute)}, Observation{}, false},
		{"hold past max-hold-age", zookeeper.Node{State: zookeeper.NodeHold, StateTime: ago(2 * time.Hour)}, Observation{}, true},
		{"hold_expiration shorter", zookeeper.Node{State: zookeeper.NodeHold, StateTime: ago(2 * time.Minute), HoldExpiration: 60}, Observation{}, true},
		{"hold_expiration longer is capped", zookeeper.Node{State: zookeeper.NodeHold, StateTime: ago(2 * time.Hour), HoldExpiration: 86400}, Observation{}, true},
		{"ready allocated", zookeeper.Node{State: zookeeper.NodeReady, AllocatedTo: &req, Launcher: "np-PoolWorker.sim-main"}, Observation{UnlockedFor: time.Hour, RequestExists: true}, false},
		{"ready allocated to vanished request is kept (deallocated)", zookeeper.Node{State: zookeeper.NodeReady, AllocatedTo: &req, Launcher: "np-PoolWorker.sim-main"}, Observation{UnlockedFor: time.Hour}, false},
		{"ready unallocated is kept for reuse", zookeeper.Node{State: zookeeper.NodeReady, Launcher: "np-PoolWorker.sim-main", StateTime: ago(48 * time.Hour)}, Observation{UnlockedFor: time.Hour}, false},
		{"ready of another launcher", zookeeper.Node{State: zookeeper.NodeReady, AllocatedTo: &req, Launcher: "upstream"}, Observation{UnlockedFor: time.Hour}, false},
		{"ready past max-ready-age", zookeeper.Node{State: zookeeper.NodeReady, Type: zookeeper.Labels{"short"}, Launcher: "upstream", StateTime: ago(2 * time.Minute)}, Observation{}, true},
		{"ready within max-ready-age", zookeeper.Node{State: zookeeper.NodeReady, Type: zookeeper.Labels{"short"}, Launcher: "upstream", StateTime: ago(30 * time.Second)}, Observation{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node
			if n.Provider == "" {
				n.Provider = "sim"
			}
			got := DeleteReason(&n, tc.obs, now, policy)
			if (got != "") != tc.want {
				t.Fatalf("DeleteReason = %q, want deletion %v", got, tc.want)
			}
			// Callers look the request up only when NeedsRequest says it matters.
			flipped := tc.obs
			flipped.RequestExists = !flipped.RequestExists
			if other := DeleteReason(&n, flipped, now, policy); other != got && !NeedsRequest(&n) {
				t.Fatalf("DeleteReason depends on RequestExists (%q, %q) but NeedsRequest is false", got, other)
			}
		})
	}
}

func TestDeallocate(t *testing.T) {
	req := "100-0000000001"
	policy := Policy{Providers: map[string]bool{"sim": true}, OrphanGrace: 30 * time.Second}
	tests := []struct {
		name string
		node zookeeper.Node
		obs  Observation
		want bool
	}{
		{"request vanished", zookeeper.Node{State: zookeeper.NodeReady, AllocatedTo: &req}, Observation{UnlockedFor: time.Minute}, true},
		{"request exists", zookeeper.Node{State: zookeeper.NodeReady, AllocatedTo: &req}, Observation{UnlockedFor: time.Minute, RequestExists: true}, false},
		{"locked (Zuul uses it)", zookeeper.Node{State: zookeeper.NodeReady, AllocatedTo: &req}, Observation{Locked: true}, false},
		{"briefly unlocked", zookeeper.Node{State: zookeeper.NodeReady, AllocatedTo: &req}, Observation{UnlockedFor: time.Second}, false},
		{"unallocated", zookeeper.Node{State: zookeeper.NodeReady}, Observation{UnlockedFor: time.Minute}, false},
		{"in use", zookeeper.Node{State: zookeeper.NodeInUse, AllocatedTo: &req}, Observation{UnlockedFor: time.Minute}, false},
		{"another provider", zookeeper.Node{State: zookeeper.NodeReady, AllocatedTo: &req, Provider: "other"}, Observation{UnlockedFor: time.Minute}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node
			if n.Provider == "" {
				n.Provider = "sim"
			}
			if got := Deallocate(&n, tc.obs, policy); got != tc.want {
				t.Fatalf("Deallocate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHoldExpiry(t *testing.T) {
	tests := []struct {
		name   string
		holdEx int
		max    time.Duration
		want   time.Duration
		wantOK bool
	}{
		{"neither", 0, 0, 0, false},
		{"node only", 60, 0, time.Minute, true},
		{"max only", 0, time.Hour, time.Hour, true},
		{"smaller wins", 60, time.Hour, time.Minute, true},
		{"max caps", 7200, time.Hour, time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := HoldExpiry(&zookeeper.Node{HoldExpiration: tc.holdEx}, tc.max)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("HoldExpiry = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
