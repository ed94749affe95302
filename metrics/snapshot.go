package metrics

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// NodeStates are the node states upstream initialises its gauges with, so that a
// state without nodes reports 0 rather than nothing.
var NodeStates = []zookeeper.NodeState{
	zookeeper.NodeAborted, zookeeper.NodeBuilding, zookeeper.NodeDeleted, zookeeper.NodeDeleting,
	zookeeper.NodeFailed, zookeeper.NodeHold, zookeeper.NodeInUse, zookeeper.NodeInit,
	zookeeper.NodeReady, zookeeper.NodeTesting, zookeeper.NodeUsed,
}

// RequestStates are the node request states.
var RequestStates = []zookeeper.RequestState{
	zookeeper.StateFailed, zookeeper.StateFulfilled, zookeeper.StatePending, zookeeper.StateRequested,
}

// readParallelism bounds the ZooKeeper reads in flight while taking a snapshot.
const readParallelism = 8

// PoolKey names a provider pool.
type PoolKey struct{ Provider, Pool string }

// NodeKey is a (state, provider, label) combination of the node gauges.
type NodeKey struct{ State, Provider, Label string }

// Snapshot is what ZooKeeper says about the deployment at one moment: node counts as
// upstream's stats worker computes them, and requests per state and per pool that
// could serve them.
type Snapshot struct {
	Time time.Time
	// Providers and Labels are those of the registered pools, sorted.
	Providers []string
	Labels    []string
	// ByState counts every node once per state (nodepool.nodes.<state>).
	ByState map[string]int
	// ByProvider counts nodes per provider and state
	// (nodepool.provider.<provider>.nodes.<state>).
	ByProvider map[[2]string]int
	// ByLabel counts nodes per label and state; a node counts for each of its labels
	// (nodepool.label.<label>.nodes.<state>).
	ByLabel map[[2]string]int
	// Nodes counts nodes per state, provider and label, a node once per label (once
	// with label "" when it has none).
	Nodes map[NodeKey]int
	// Requests counts requests per state.
	Requests map[string]int
	// Addressable counts, per registered pool, the requests whose every label the pool
	// supports (nodepool.provider.<provider>.pool.<pool>.addressable_requests).
	Addressable map[PoolKey]int
}

// TakeSnapshot reads the pool registrations, every node and every request. Records
// that vanish while being read are left out; records that do not decode are skipped.
func TakeSnapshot(ctx context.Context, zk *zookeeper.Client, now time.Time) (*Snapshot, error) {
	pools, err := zk.ListPools(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := readNodes(ctx, zk)
	if err != nil {
		return nil, err
	}
	reqs, err := readRequests(ctx, zk)
	if err != nil {
		return nil, err
	}
	return Compute(now, pools, nodes, reqs), nil
}

// Compute builds a snapshot from records already read.
func Compute(now time.Time, pools []zookeeper.PoolComponent, nodes []*zookeeper.Node, reqs []*zookeeper.NodeRequest) *Snapshot {
	s := &Snapshot{
		Time:        now,
		ByState:     map[string]int{},
		ByProvider:  map[[2]string]int{},
		ByLabel:     map[[2]string]int{},
		Nodes:       map[NodeKey]int{},
		Requests:    map[string]int{},
		Addressable: map[PoolKey]int{},
	}
	providers, labels := map[string]bool{}, map[string]bool{}
	for _, p := range pools {
		providers[p.ProviderName] = true
		for _, l := range p.SupportedLabels {
			labels[l] = true
		}
	}
	s.Providers = slices.Sorted(maps.Keys(providers))
	s.Labels = slices.Sorted(maps.Keys(labels))

	for _, st := range NodeStates {
		state := string(st)
		s.ByState[state] = 0
		for _, p := range s.Providers {
			s.ByProvider[[2]string{p, state}] = 0
		}
		for _, l := range s.Labels {
			s.ByLabel[[2]string{l, state}] = 0
		}
		for _, p := range pools {
			for _, l := range p.SupportedLabels {
				s.Nodes[NodeKey{state, p.ProviderName, l}] = 0
			}
		}
	}
	for _, n := range nodes {
		state := string(n.State)
		if state == "" {
			continue
		}
		s.ByState[state]++
		s.ByProvider[[2]string{n.Provider, state}]++
		for _, l := range n.Type {
			s.ByLabel[[2]string{l, state}]++
			s.Nodes[NodeKey{state, n.Provider, l}]++
		}
		if len(n.Type) == 0 {
			s.Nodes[NodeKey{state, n.Provider, ""}]++
		}
	}

	for _, st := range RequestStates {
		s.Requests[string(st)] = 0
	}
	for _, p := range pools {
		if p.Name != "" {
			s.Addressable[PoolKey{p.ProviderName, p.Name}] = 0
		}
	}
	for _, r := range reqs {
		if r.State != "" {
			s.Requests[string(r.State)]++
		}
		for _, p := range pools {
			if p.Name == "" {
				continue // registrations of old launchers have no pool name
			}
			if supportsAll(p.SupportedLabels, r.NodeTypes) {
				s.Addressable[PoolKey{p.ProviderName, p.Name}]++
			}
		}
	}
	return s
}

func supportsAll(supported, wanted []string) bool {
	for _, l := range wanted {
		if !slices.Contains(supported, l) {
			return false
		}
	}
	return true
}

// readNodes reads every node record, a few at a time.
func readNodes(ctx context.Context, zk *zookeeper.Client) ([]*zookeeper.Node, error) {
	ids, err := zk.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*zookeeper.Node, len(ids))
	err = readEach(ctx, ids, func(ctx context.Context, i int, id string) error {
		n, err := zk.GetNode(ctx, id)
		if skippable(err) {
			return nil
		}
		out[i] = n
		return err
	})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(n *zookeeper.Node) bool { return n == nil }), nil
}

// readRequests reads every node request, a few at a time.
func readRequests(ctx context.Context, zk *zookeeper.Client) ([]*zookeeper.NodeRequest, error) {
	ids, err := zk.ListRequests(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*zookeeper.NodeRequest, len(ids))
	err = readEach(ctx, ids, func(ctx context.Context, i int, id string) error {
		r, err := zk.GetRequest(ctx, id)
		if skippable(err) {
			return nil
		}
		out[i] = r
		return err
	})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(r *zookeeper.NodeRequest) bool { return r == nil }), nil
}

// skippable reports a record that is gone or cannot be decoded.
func skippable(err error) bool {
	var derr *zookeeper.DecodeError
	return errors.Is(err, zookeeper.ErrNotFound) || errors.As(err, &derr)
}

// readEach calls read for every id with at most readParallelism calls in flight.
func readEach(ctx context.Context, ids []string, read func(ctx context.Context, i int, id string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readParallelism)
	for i, id := range ids {
		g.Go(func() error { return read(gctx, i, id) })
	}
	return g.Wait()
}
