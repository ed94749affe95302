package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Zuul's identity in the requests and nodes the benchmark writes.
const (
	zuulRequestor = "npbench-zuul"
	zuulTenant    = "bench"
	zuulPriority  = zuul.PriorityHigh
)

// zuulClient acts as Zuul's scheduler and executor through ZooKeeper, returning the
// times the benchmark measures.
type zuulClient struct {
	c  *zuul.Client
	zk *zookeeper.Client
}

// newZuulClient returns the benchmark's Zuul on zk.
func newZuulClient(zk *zookeeper.Client) (*zuulClient, error) {
	c, err := zuul.New(zk, zuul.Options{
		SystemID: zuulRequestor,
		Tenant:   zuulTenant,
		Pipeline: "check",
		Job:      "npbench",
		Project:  "npbench",
	})
	if err != nil {
		return nil, err
	}
	return &zuulClient{c: c, zk: zk}, nil
}

// submit creates a node request for labels as Zuul does and returns its id and the
// time just before the znode was created (its created_time).
func (z *zuulClient) submit(ctx context.Context, labels []string) (string, time.Time, error) {
	r, err := z.c.Submit(ctx, zuulPriority, labels...)
	if err != nil {
		return "", time.Now(), err
	}
	return r.ID, zookeeper.TimeOf(*r.CreatedTime), nil
}

// submitWith creates a single-node request at priority with a relative priority, as
// Zuul does for a change deeper in a busy project's queue.
func (z *zuulClient) submitWith(ctx context.Context, priority, relative int) (*zookeeper.NodeRequest, error) {
	prefix, err := zuul.PriorityPrefix(priority)
	if err != nil {
		return nil, err
	}
	r, err := z.c.NewRequest(benchLabel)
	if err != nil {
		return nil, err
	}
	r.RelativePriority = relative
	if _, err := z.zk.SubmitRequest(ctx, r, prefix, false); err != nil {
		return nil, err
	}
	return r, nil
}

// waitDone waits until request id is fulfilled or failed and returns it with the time
// the change was seen.
func (z *zuulClient) waitDone(ctx context.Context, id string) (*zookeeper.NodeRequest, time.Time, error) {
	r, err := z.c.Wait(ctx, id)
	seen := time.Now()
	if err != nil {
		return nil, seen, fmt.Errorf("waiting for request %s: %w", id, err)
	}
	return r, seen, nil
}

// useAndReturn does with a fulfilled request's nodes what Zuul's executor does with a
// build's nodes: accept them (lock, 30 s, and delete the request), set them in-use,
// then used, and unlock. It returns, per node, the time "used" was written.
func (z *zuulClient) useAndReturn(ctx context.Context, req *zookeeper.NodeRequest) (map[string]time.Time, error) {
	set, err := z.c.Accept(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := set.Use(ctx); err != nil {
		_, rerr := set.Return(ctx)
		return nil, errors.Join(err, rerr)
	}
	used, err := set.Return(ctx)
	if err == nil && len(used) != len(req.Nodes) {
		err = fmt.Errorf("returned %d of the %d nodes of request %s", len(used), len(req.Nodes), req.ID)
	}
	return used, err
}

// dropFailed deletes a request that ended failed, as Zuul does, and returns an error
// describing it.
func (z *zuulClient) dropFailed(ctx context.Context, req *zookeeper.NodeRequest) error {
	failed := fmt.Errorf("request %s ended %s (declined by %v)", req.ID, req.State, req.DeclinedBy)
	if err := z.c.Cancel(ctx, req.ID); err != nil {
		return errors.Join(failed, err)
	}
	return failed
}

// waitGone waits until node id's znode is deleted and returns the time it was seen
// gone.
func (z *zuulClient) waitGone(ctx context.Context, id string) (time.Time, error) {
	err := z.c.WaitGone(ctx, id)
	return time.Now(), err
}
