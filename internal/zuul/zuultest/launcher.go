// Package zuultest provides a fake Nodepool launcher that answers node requests
// through ZooKeeper, so that code acting as Zuul can be tested against a real
// ZooKeeper without Temporal or a cloud.
package zuultest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Mode is how a Launcher answers requests.
type Mode int

const (
	// Fulfil creates one ready node per label, allocated to the request, and
	// fulfils it with the node ids in label order.
	Fulfil Mode = iota
	// Decline has the pools in DecliningPools decline the request, one write
	// each; the last one fails it.
	Decline
	// Misallocate fulfils the request with nodes allocated to another request.
	Misallocate
	// Vanish sets the request pending, then deletes it.
	Vanish
)

// DecliningPools are the pool ids that decline requests in Decline mode.
var DecliningPools = []string{"host-PoolWorker.sim-one-main-a", "host-PoolWorker.sim-two-main-b"}

// OtherRequest is the request Misallocate allocates nodes to.
const OtherRequest = "100-0000099999"

// Seen is a request as the launcher found it, and what it did with it.
type Seen struct {
	// ID is the request id.
	ID string
	// Body is the request's JSON as the requestor stored it.
	Body []byte
	// Ephemeral reports an ephemeral request znode.
	Ephemeral bool
	// Nodes are the ids of the nodes created for it.
	Nodes []string
}

// Launcher serves node requests as a Nodepool launcher does: lock the request,
// re-read it, set it pending, create ready nodes allocated to it, set it
// fulfilled with the node ids in label order, unlock it.
type Launcher struct {
	t    testing.TB
	zk   *zookeeper.Client
	mode Mode
	node func(label string) *zookeeper.Node

	mu   sync.Mutex
	seen []Seen
}

// Start runs a launcher on zk until the test ends. node returns the record of a
// ready node for a label (ReadyNode when nil); the launcher sets allocated_to,
// tenant_name and requestor.
func Start(t testing.TB, zk *zookeeper.Client, mode Mode, node func(label string) *zookeeper.Node) *Launcher {
	if node == nil {
		node = ReadyNode
	}
	l := &Launcher{t: t, zk: zk, mode: mode, node: node}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		handled := map[string]bool{}
		for ev := range zk.WatchChildren(ctx, zookeeper.RequestsPath) {
			for _, id := range ev.Children {
				if handled[id] {
					continue
				}
				handled[id] = true
				if err := l.handle(ctx, id); err != nil && ctx.Err() == nil {
					t.Errorf("fake launcher handling request %s: %v", id, err)
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l
}

// Requests returns the requests the launcher has seen, in the order it saw them.
func (l *Launcher) Requests() []Seen {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.seen)
	for i := range out {
		out[i].Nodes = slices.Clone(out[i].Nodes)
	}
	return out
}

// Only returns the one request the launcher has seen; it fails the test if it
// saw another number.
func (l *Launcher) Only() Seen {
	l.t.Helper()
	seen := l.Requests()
	if len(seen) != 1 {
		l.t.Fatalf("fake launcher saw %d requests, want 1", len(seen))
	}
	return seen[0]
}

func (l *Launcher) handle(ctx context.Context, id string) error {
	data, stat, err := l.zk.Get(ctx, zookeeper.RequestPath(id))
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.seen = append(l.seen, Seen{ID: id, Body: data, Ephemeral: stat.EphemeralOwner != 0})
	idx := len(l.seen) - 1
	l.mu.Unlock()

	lock := l.zk.NewLock(zookeeper.RequestLockPath(id), "")
	if err := lock.Acquire(ctx, 10*time.Second); err != nil {
		return fmt.Errorf("locking request: %w", err)
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	r, err := l.zk.GetRequest(ctx, id)
	if err != nil {
		return err
	}
	if r.State != zookeeper.StateRequested {
		return fmt.Errorf("request in state %s", r.State)
	}
	now := func() float64 { return zookeeper.Timestamp(time.Now()) }

	switch l.mode {
	case Decline:
		for i, pool := range DecliningPools {
			r.DeclinedBy = append(r.DeclinedBy, pool)
			if i == len(DecliningPools)-1 {
				r.State = zookeeper.StateFailed
				r.StateTime = now()
			}
			if err := l.zk.UpdateRequest(ctx, r); err != nil {
				return err
			}
		}
		return nil
	case Vanish:
		r.State = zookeeper.StatePending
		if err := l.zk.UpdateRequest(ctx, r); err != nil {
			return err
		}
		return l.zk.DeleteRequest(ctx, id)
	}

	r.State = zookeeper.StatePending
	r.StateTime = now()
	if err := l.zk.UpdateRequest(ctx, r); err != nil {
		return err
	}
	var ids []string
	for _, label := range r.NodeTypes {
		n := l.node(label)
		alloc := id
		if l.mode == Misallocate {
			alloc = OtherRequest
		}
		n.AllocatedTo = &alloc
		n.TenantName = r.TenantName
		n.Requestor = r.Requestor
		nid, err := l.zk.CreateNode(ctx, n)
		if err != nil {
			return err
		}
		ids = append(ids, nid)
	}
	l.mu.Lock()
	l.seen[idx].Nodes = ids
	l.mu.Unlock()
	r.Nodes = ids
	r.State = zookeeper.StateFulfilled
	r.StateTime = now()
	return l.zk.UpdateRequest(ctx, r)
}

// ReadyNode returns a ready node record of a sim provider for label.
func ReadyNode(label string) *zookeeper.Node {
	ip, az, user := "192.0.2.10", "sim-a", "zuul"
	n := &zookeeper.Node{
		State:       zookeeper.NodeReady,
		Type:        zookeeper.Labels{label},
		Provider:    "sim-one",
		Pool:        "main",
		Launcher:    "test-PoolWorker.sim-one-main-0",
		InterfaceIP: ip,
		PublicIPv4:  &ip,
		AZ:          &az,
		Username:    &user,
		HostKeys:    []string{},
	}
	n.SetPort(22)
	n.SetExternalID("sim-" + label)
	return n
}
