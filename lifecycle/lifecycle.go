// Package lifecycle holds Nodepool's rules for when a node must be deleted. The poller
// uses them to decide which deletions to start, and the deletion activity re-checks them
// under the node lock, so both agree by construction.
package lifecycle

import (
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Policy is the configuration the rules need.
type Policy struct {
	// Providers are the provider names this launcher manages; nodes of other providers
	// belong to other launchers and are never deleted here.
	Providers map[string]bool
	// PoolIDs are this launcher's pool ids (the node's "launcher" field).
	PoolIDs map[string]bool
	// MaxHoldAge caps the time in "hold" (0 = unlimited).
	MaxHoldAge time.Duration
	// MaxReadyAge returns a label's max-ready-age (0 = unlimited).
	MaxReadyAge func(label string) time.Duration
	// OrphanGrace is how long a node that should be locked (building, init) must have
	// been seen unlocked before it counts as orphaned. It must exceed the ZooKeeper
	// session timeout, so a lock whose worker died can be re-asserted first.
	OrphanGrace time.Duration
}

// Observation is what the caller knows about a node besides its record.
type Observation struct {
	// Locked reports whether the node's lock has a contender.
	Locked bool
	// UnlockedFor is how long the node has been seen unlocked without interruption.
	UnlockedFor time.Duration
	// RequestExists reports whether the request named by allocated_to exists.
	RequestExists bool
}

// DeleteReason returns why the node must be deleted now, or "" if it must be kept.
// A locked node is always kept: its holder (Zuul, another launcher, a launch in
// progress) owns it.
func DeleteReason(n *zookeeper.Node, obs Observation, now time.Time, p Policy) string {
	if n == nil || !p.Providers[n.Provider] || obs.Locked {
		return ""
	}
	age := now.Sub(zookeeper.TimeOf(n.StateTime))
	switch n.State {
	case zookeeper.NodeUsed, zookeeper.NodeFailed, zookeeper.NodeDeleting,
		zookeeper.NodeDeleted, zookeeper.NodeAborted:
		return "state " + string(n.State)
	case zookeeper.NodeInUse:
		return "in-use but unlocked"
	case zookeeper.NodeBuilding:
		if obs.UnlockedFor >= p.OrphanGrace {
			return "building but unlocked"
		}
	case zookeeper.NodeInit:
		if obs.UnlockedFor >= p.OrphanGrace && !obs.RequestExists {
			return "init node of a vanished request"
		}
	case zookeeper.NodeHold:
		if exp, ok := HoldExpiry(n, p.MaxHoldAge); ok && age >= exp {
			return "hold expired"
		}
	case zookeeper.NodeReady:
		// A ready node allocated to nobody is kept for reuse (see Deallocate for one
		// whose request vanished) until its label's max-ready-age.
		if !allocated(n) && p.MaxReadyAge != nil {
			for _, l := range n.Type {
				if m := p.MaxReadyAge(l); m > 0 && age >= m {
					return "max-ready-age exceeded"
				}
			}
		}
	}
	return ""
}

// NeedsRequest reports whether DeleteReason's answer for n depends on
// Observation.RequestExists, so callers look the request up only when it matters.
func NeedsRequest(n *zookeeper.Node) bool {
	return n != nil && n.State == zookeeper.NodeInit
}

// Deallocate reports whether a ready node must be given back to its pool: it is
// allocated to a request that no longer exists (Zuul deleted it before using the
// nodes, or a min-ready request was cleaned up) and nobody holds it. As Nodepool does,
// the node is kept, ready for the next request, rather than deleted.
func Deallocate(n *zookeeper.Node, obs Observation, p Policy) bool {
	return n != nil && p.Providers[n.Provider] && !obs.Locked && n.State == zookeeper.NodeReady &&
		allocated(n) && !obs.RequestExists && obs.UnlockedFor >= p.OrphanGrace
}

func allocated(n *zookeeper.Node) bool { return n.AllocatedTo != nil && *n.AllocatedTo != "" }

// HoldExpiry returns how long a held node may stay held: the smaller of its
// hold_expiration and the max-hold-age, ignoring those that are zero. ok is false when
// neither applies.
func HoldExpiry(n *zookeeper.Node, maxHoldAge time.Duration) (time.Duration, bool) {
	var exp time.Duration
	ok := false
	if n.HoldExpiration > 0 {
		exp = time.Duration(n.HoldExpiration) * time.Second
		ok = true
	}
	if maxHoldAge > 0 && (!ok || maxHoldAge < exp) {
		exp = maxHoldAge
		ok = true
	}
	return exp, ok
}
