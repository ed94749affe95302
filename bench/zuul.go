package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Zuul's identity in the requests and nodes the benchmark writes.
const (
	zuulRequestor = "npbench-zuul"
	zuulTenant    = "bench"
	zuulPriority  = "100"
	// zuulLockTimeout is how long Zuul's executor waits for a node lock.
	zuulLockTimeout = 30 * time.Second
)

// zuul acts as Zuul's scheduler and executor through ZooKeeper.
type zuul struct {
	zk *zookeeper.Client
}

// submit creates a node request for labels as Zuul does and returns its id and the
// time just before the znode was created.
func (z *zuul) submit(ctx context.Context, labels []string) (string, time.Time, error) {
	now := time.Now()
	created := unixSeconds(now)
	requestor := zuulRequestor
	tenant := zuulTenant
	req := &zookeeper.NodeRequest{
		State:         zookeeper.StateRequested,
		StateTime:     created,
		NodeTypes:     labels,
		Reuse:         true,
		Requestor:     &requestor,
		RequestorData: json.RawMessage(`{"tenant_name":"bench","pipeline_name":"check","job_name":"npbench"}`),
		CreatedTime:   &created,
		TenantName:    &tenant,
	}
	id, err := z.zk.SubmitRequest(ctx, req, zuulPriority, false)
	if err != nil {
		return "", now, fmt.Errorf("submitting request: %w", err)
	}
	return id, now, nil
}

// waitDone waits until request id is fulfilled or failed and returns it with the time
// the change was seen. A data watch reports the change; the request is re-read after
// every event.
func (z *zuul) waitDone(ctx context.Context, id string) (*zookeeper.NodeRequest, time.Time, error) {
	conn := z.zk.Conn()
	path := z.zk.Chroot() + zookeeper.RequestPath(id)
	for {
		data, stat, ch, err := conn.GetW(path)
		if errors.Is(err, zk.ErrNoNode) {
			return nil, time.Now(), fmt.Errorf("waiting for request %s: %w", id, zookeeper.ErrNotFound)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, time.Now(), fmt.Errorf("waiting for request %s: %w", id, ctx.Err())
			}
			select {
			case <-ctx.Done():
				return nil, time.Now(), fmt.Errorf("waiting for request %s: %w", id, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		seen := time.Now()
		req, err := zookeeper.DecodeRequest(id, data)
		if err != nil {
			return nil, seen, fmt.Errorf("reading request %s: %w", id, err)
		}
		req.Version = stat.Version
		if req.State == zookeeper.StateFulfilled || req.State == zookeeper.StateFailed {
			return req, seen, nil
		}
		select {
		case <-ctx.Done():
			return nil, time.Now(), fmt.Errorf("waiting for request %s (state %s): %w", id, req.State, ctx.Err())
		case <-ch:
		}
	}
}

// useAndReturn does with a fulfilled request's nodes what Zuul's executor does with a
// build's nodes: lock them (blocking, 30 s), delete the request, set them in-use, then
// used, and unlock. It returns, per node, the time "used" was written.
func (z *zuul) useAndReturn(ctx context.Context, req *zookeeper.NodeRequest) (map[string]time.Time, error) {
	locks := make([]*zookeeper.Lock, 0, len(req.Nodes))
	defer func() {
		for _, l := range locks {
			_ = l.Release(context.WithoutCancel(ctx))
		}
	}()
	for _, id := range req.Nodes {
		l := z.zk.NewLock(zookeeper.NodeLockPath(id), "")
		if err := l.Acquire(ctx, zuulLockTimeout); err != nil {
			return nil, fmt.Errorf("locking node %s: %w", id, err)
		}
		locks = append(locks, l)
	}
	if err := z.zk.DeleteRequest(ctx, req.ID); err != nil {
		return nil, err
	}
	userData := json.RawMessage(`{"zuul_system":"` + zuulRequestor + `","project_name":"npbench"}`)
	used := make(map[string]time.Time, len(req.Nodes))
	for _, id := range req.Nodes {
		if err := z.setState(ctx, id, zookeeper.NodeInUse, userData); err != nil {
			return nil, err
		}
	}
	for _, id := range req.Nodes {
		if err := z.setState(ctx, id, zookeeper.NodeUsed, nil); err != nil {
			return nil, err
		}
		used[id] = time.Now()
	}
	for _, l := range locks {
		if err := l.Release(ctx); err != nil {
			return used, fmt.Errorf("unlocking node: %w", err)
		}
	}
	locks = nil
	return used, nil
}

// dropFailed deletes a request that ended failed, as Zuul does, and returns an error
// describing it.
func (z *zuul) dropFailed(ctx context.Context, req *zookeeper.NodeRequest) error {
	failed := fmt.Errorf("request %s ended %s (declined by %v)", req.ID, req.State, req.DeclinedBy)
	if err := z.zk.DeleteRequest(ctx, req.ID); err != nil {
		return errors.Join(failed, err)
	}
	return failed
}

// setState writes a node's state (and user data, when given) as Zuul does: a
// read-modify-write of the whole record.
func (z *zuul) setState(ctx context.Context, id string, state zookeeper.NodeState, userData json.RawMessage) error {
	n, err := z.zk.GetNode(ctx, id)
	if err != nil {
		return err
	}
	n.State = state
	n.StateTime = unixSeconds(time.Now())
	if userData != nil {
		n.UserData = userData
	}
	if err := z.zk.UpdateNode(ctx, n); err != nil {
		return fmt.Errorf("setting node %s %s: %w", id, state, err)
	}
	return nil
}

// waitGone waits until node id's znode is deleted and returns the time it was seen
// gone.
func (z *zuul) waitGone(ctx context.Context, id string) (time.Time, error) {
	conn := z.zk.Conn()
	path := z.zk.Chroot() + zookeeper.NodePath(id)
	for {
		exists, _, ch, err := conn.ExistsW(path)
		if err != nil {
			select {
			case <-ctx.Done():
				return time.Now(), fmt.Errorf("waiting for node %s to go: %w", id, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if !exists {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Now(), fmt.Errorf("waiting for node %s to go: %w", id, ctx.Err())
		case ev := <-ch:
			if ev.Type == zk.EventNodeDeleted {
				return time.Now(), nil
			}
		}
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }
