package zuul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// ErrNotAllocated reports a node of a fulfilled request that is not allocated to
// it (Zuul's executor then fails the build with NODE_FAILURE).
var ErrNotAllocated = errors.New("node not allocated to the request")

// Node is one node of a NodeSet.
type Node struct {
	// ID is the node id.
	ID string
	// Label is the label the node was requested as (Zuul pairs nodes with the
	// request's node_types by position).
	Label string
	// Record is the node as last read or written.
	Record *zookeeper.Node

	lock *zookeeper.Lock
}

// NodeSet is the nodes of a fulfilled request, locked by this client, in the
// request's order. It is not safe for concurrent use.
type NodeSet struct {
	c       *Client
	request string
	nodes   []*Node
}

// RequestID returns the id of the request the nodes were allocated to.
func (s *NodeSet) RequestID() string { return s.request }

// Nodes returns the nodes, in the request's order.
func (s *NodeSet) Nodes() []*Node { return s.nodes }

// IDs returns the node ids, in the request's order.
func (s *NodeSet) IDs() []string {
	ids := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		ids[i] = n.ID
	}
	return ids
}

// Accept takes the nodes of fulfilled request r as Zuul's executor does. For each
// node, in the request's order, it reads the node and checks that allocated_to
// is the request, locks the node (waiting up to the lock timeout, 30 s by
// default) and checks again. Then, whether or not that worked, it deletes the
// request znode: from now on only the node locks protect the nodes. On failure
// the nodes locked so far are unlocked and the error is returned; a failure to
// delete the request is only a warning.
func (c *Client) Accept(ctx context.Context, r *zookeeper.NodeRequest) (*NodeSet, error) {
	s := &NodeSet{c: c, request: r.ID}
	err := s.lockAll(ctx, r)
	if err != nil {
		if uerr := s.Unlock(ctx); uerr != nil {
			c.warn(uerr)
		}
	}
	if derr := c.Cancel(ctx, r.ID); derr != nil {
		c.warn(derr)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// lockAll locks every node of r, checking allocated_to before and after.
func (s *NodeSet) lockAll(ctx context.Context, r *zookeeper.NodeRequest) error {
	if r.State != zookeeper.StateFulfilled {
		return fmt.Errorf("accepting request %s: it is %s, not fulfilled", r.ID, r.State)
	}
	if len(r.Nodes) != len(r.NodeTypes) {
		return fmt.Errorf("accepting request %s: %d nodes for %d labels", r.ID, len(r.Nodes), len(r.NodeTypes))
	}
	for i, id := range r.Nodes {
		if _, err := s.c.allocatedNode(ctx, id, r.ID); err != nil {
			return err
		}
		if f := s.c.opts.Observer.Locking; f != nil {
			f(id, r.NodeTypes[i])
		}
		lock := s.c.zk.NewLock(zookeeper.NodeLockPath(id), "")
		if err := lock.Acquire(ctx, s.c.opts.LockTimeout); err != nil {
			return fmt.Errorf("locking node %s: %w", id, err)
		}
		n := &Node{ID: id, Label: r.NodeTypes[i], lock: lock}
		s.nodes = append(s.nodes, n)
		rec, err := s.c.allocatedNode(ctx, id, r.ID)
		if err != nil {
			return err
		}
		n.Record = rec
	}
	return nil
}

// allocatedNode reads node id and checks that it is allocated to request.
func (c *Client) allocatedNode(ctx context.Context, id, request string) (*zookeeper.Node, error) {
	n, err := c.zk.GetNode(ctx, id)
	if err != nil {
		return nil, err
	}
	if n.AllocatedTo == nil || *n.AllocatedTo != request {
		to := "nothing"
		if n.AllocatedTo != nil {
			to = fmt.Sprintf("%q", *n.AllocatedTo)
		}
		return nil, fmt.Errorf("node %s is allocated to %s, not to request %s: %w", id, to, request, ErrNotAllocated)
	}
	return n, nil
}

// write stores a change of node n as Zuul does: the whole record, with Zuul's
// "id" key, starting from the record last seen; if someone wrote the node in
// between, the change is applied again to a fresh read. change returns false to
// leave the node as it is; n.Record is updated either way.
func (s *NodeSet) write(ctx context.Context, n *Node, fresh bool, change func(*zookeeper.Node) bool) (bool, error) {
	var cur *zookeeper.Node
	if !fresh && n.Record != nil {
		cp := *n.Record
		cp.Extra = maps.Clone(n.Record.Extra)
		cur = &cp
	}
	rec, written, err := s.c.zk.ModifyNode(ctx, n.ID, cur, func(rec *zookeeper.Node) (bool, error) {
		if !change(rec) {
			return false, nil
		}
		if rec.Extra == nil {
			rec.Extra = map[string]json.RawMessage{}
		}
		id, err := json.Marshal(n.ID)
		if err != nil {
			return false, err
		}
		rec.Extra["id"] = id
		return true, nil
	})
	if err != nil {
		return false, err
	}
	n.Record = rec
	return written, nil
}

// Use sets every node in use, as Zuul's executor does before running the job:
// state in-use, state_time now, user_data naming this Zuul system and the
// project, written with the rest of the record.
func (s *NodeSet) Use(ctx context.Context) error {
	ud, err := json.Marshal(userData{ZuulSystem: s.c.opts.SystemID, ProjectName: s.c.opts.Project})
	if err != nil {
		return fmt.Errorf("encoding user data: %w", err)
	}
	for _, n := range s.nodes {
		_, err := s.write(ctx, n, false, func(rec *zookeeper.Node) bool {
			rec.State = zookeeper.NodeInUse
			rec.StateTime = s.c.now()
			rec.UserData = ud
			return true
		})
		if err != nil {
			return fmt.Errorf("setting node %s in use: %w", n.ID, err)
		}
	}
	return nil
}

// Hold describes an autohold that matched a failed build.
type Hold struct {
	// Job is the autohold key, "tenant project job ref-filter" (hold_job).
	Job string
	// Reason is the autohold's reason (comment).
	Reason string
	// Expiration is how long the launcher keeps the nodes (hold_expiration, in
	// whole seconds); 0 leaves the launcher's max-hold-age in charge.
	Expiration time.Duration
}

// Hold sets every node to hold, as Zuul's executor does when a build that
// matched an autohold fails: state hold, hold_job, comment and, when set,
// hold_expiration. The nodes stay locked; Return then leaves them held.
func (s *NodeSet) Hold(ctx context.Context, h Hold) error {
	for _, n := range s.nodes {
		_, err := s.write(ctx, n, false, func(rec *zookeeper.Node) bool {
			rec.State = zookeeper.NodeHold
			rec.StateTime = s.c.now()
			job, reason := h.Job, h.Reason
			rec.HoldJob, rec.Comment = &job, &reason
			if h.Expiration > 0 {
				rec.HoldExpiration = int(h.Expiration / time.Second)
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("holding node %s: %w", n.ID, err)
		}
	}
	return nil
}

// LockLost returns the id of a node whose lock is no longer held (it went with
// an expired ZooKeeper session, and the launcher may delete the node), or "".
func (s *NodeSet) LockLost(ctx context.Context) (string, error) {
	for _, n := range s.nodes {
		ok, err := n.lock.Held(ctx)
		if err != nil {
			return "", err
		}
		if !ok {
			return n.ID, nil
		}
	}
	return "", nil
}

// Return gives the nodes back as Zuul's executor does after a build: each node
// still in use (read afresh) becomes used, then every lock is released; the
// launcher deletes unlocked used nodes, and keeps held ones. A node whose lock
// is no longer held is not written. Return goes on past problems with single
// nodes and reports them all; it runs even after ctx ended (within 30 s). It
// returns when each returned node was written used.
func (s *NodeSet) Return(ctx context.Context) (map[string]time.Time, error) {
	rctx, cancel := cleanupContext(ctx)
	defer cancel()
	returned := map[string]time.Time{}
	var errs []error
	for _, n := range s.nodes {
		held, err := n.lock.Held(rctx)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("returning node %s: %w", n.ID, err))
			continue
		case !held:
			errs = append(errs, fmt.Errorf("not returning node %s: its lock is no longer held", n.ID))
			continue
		}
		written, err := s.write(rctx, n, true, func(rec *zookeeper.Node) bool {
			if rec.State != zookeeper.NodeInUse {
				return false
			}
			rec.State = zookeeper.NodeUsed
			rec.StateTime = s.c.now()
			return true
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("returning node %s: %w", n.ID, err))
			continue
		}
		if written {
			returned[n.ID] = s.c.opts.Now()
		}
	}
	if err := s.Unlock(rctx); err != nil {
		errs = append(errs, err)
	}
	return returned, errors.Join(errs...)
}

// Unlock releases every node lock without changing the nodes. It runs even
// after ctx ended (within 30 s).
func (s *NodeSet) Unlock(ctx context.Context) error {
	uctx, cancel := cleanupContext(ctx)
	defer cancel()
	var errs []error
	for _, n := range s.nodes {
		if err := n.lock.Release(uctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
