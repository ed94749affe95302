// Package zuul plays Zuul's part of the Nodepool protocol through ZooKeeper, the
// way an unmodified Zuul does it: submit a node request, watch it until a launcher
// fulfils or fails it, accept the nodes (check, lock, check again, delete the
// request), set them in use, hold or return them, and wait until the launcher has
// deleted them. The admin CLI's request command, the benchmark and the end-to-end
// tests all act as Zuul through it, so they exercise the launcher with the same
// writes.
//
// The package reports progress through an Observer and returns records and
// errors; it prints nothing.
package zuul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Zuul's constants.
const (
	// DefaultLockTimeout is how long Zuul's executor waits for each node lock.
	DefaultLockTimeout = 30 * time.Second
	// PriorityHigh, PriorityNormal and PriorityLow are the request priorities of
	// pipelines of high, normal and low precedence. A job whose parent is paused
	// gets one less.
	PriorityHigh   = 100
	PriorityNormal = 200
	PriorityLow    = 300
	// MaxPriority is the largest priority: Zuul recognises Nodepool request ids by
	// the "-" after the three-digit prefix.
	MaxPriority = 999
)

// DefaultRecheck is how often a watched request or node is read again even
// without a watch event, in case an event was lost with a connection.
const DefaultRecheck = 5 * time.Second

// retryDelay is the pause before reading again after a failed read (the
// connection is down; the ZooKeeper client reconnects by itself).
const retryDelay = 500 * time.Millisecond

// cleanupTimeout bounds what must still happen after the caller's context ended:
// deleting a request, returning nodes, releasing locks.
const cleanupTimeout = 30 * time.Second

// Options configure a Client: who this Zuul is and what its requests say.
type Options struct {
	// SystemID identifies this Zuul: it is every request's requestor and the
	// zuul_system of the user_data of nodes in use (Zuul writes the system id
	// from /zuul-system). Required.
	SystemID string
	// Tenant is the requests' tenant_name (also in requestor_data); empty writes
	// null.
	Tenant string
	// Pipeline and Job are requestor_data's pipeline_name and job_name.
	Pipeline, Job string
	// Project is the project_name of the user_data of nodes in use.
	Project string
	// LockTimeout bounds the wait for each node lock when accepting
	// (DefaultLockTimeout when zero).
	LockTimeout time.Duration
	// Recheck is how often a watched znode is read again without an event
	// (DefaultRecheck when zero).
	Recheck time.Duration
	// Observer receives progress; its nil fields are skipped.
	Observer Observer
	// Now is the clock for state_time and created_time (time.Now when nil).
	Now func() time.Time
}

// Observer receives a Client's progress. Every field is optional.
type Observer struct {
	// RequestRead is called with every version of a request that Wait or
	// WaitUntil reads, the final one included.
	RequestRead func(r *zookeeper.NodeRequest)
	// Locking is called before Accept waits for the lock of a node, with the
	// label the node was requested as.
	Locking func(nodeID, label string)
	// Warning reports a problem that does not stop the exchange, as Zuul logs
	// such problems and goes on: a read retried after a connection loss (once
	// until the error changes), a request that could not be deleted.
	Warning func(err error)
}

// Client acts as one Zuul system towards the launchers sharing a ZooKeeper. It
// holds no state of its own beyond its options, and is safe for concurrent use.
type Client struct {
	zk   *zookeeper.Client
	opts Options
}

// New returns a client acting as Zuul on zk.
func New(zk *zookeeper.Client, opts Options) (*Client, error) {
	if opts.SystemID == "" {
		return nil, errors.New("zuul client: empty system id")
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Recheck <= 0 {
		opts.Recheck = DefaultRecheck
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Client{zk: zk, opts: opts}, nil
}

// requestorData is the requestor_data Zuul stores in a request.
type requestorData struct {
	BuildSetUUID string  `json:"build_set_uuid"`
	TenantName   *string `json:"tenant_name"`
	PipelineName string  `json:"pipeline_name"`
	JobUUID      string  `json:"job_uuid"`
	JobName      string  `json:"job_name"`
	SpanInfo     any     `json:"span_info"`
}

// userData is the user_data Zuul's executor puts on the nodes it uses.
type userData struct {
	ZuulSystem  string `json:"zuul_system"`
	ProjectName string `json:"project_name"`
}

// NewRequest returns the body Zuul writes for a request of labels, in the
// job's nodeset order: node_types, requestor, requestor_data (fresh build set
// and job uuids), state requested, state_time and created_time now,
// relative_priority 0, no preferred provider, a fresh event_id and the tenant.
func (c *Client) NewRequest(labels ...string) (*zookeeper.NodeRequest, error) {
	if len(labels) == 0 {
		return nil, errors.New("building request: no labels")
	}
	for _, l := range labels {
		if l == "" {
			return nil, errors.New("building request: empty label")
		}
	}
	var tenant *string
	if c.opts.Tenant != "" {
		t := c.opts.Tenant
		tenant = &t
	}
	data, err := json.Marshal(requestorData{
		BuildSetUUID: newUUID(),
		TenantName:   tenant,
		PipelineName: c.opts.Pipeline,
		JobUUID:      newUUID(),
		JobName:      c.opts.Job,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding requestor data: %w", err)
	}
	now := zookeeper.Timestamp(c.opts.Now())
	requestor, eventID := c.opts.SystemID, newUUID()
	return &zookeeper.NodeRequest{
		State:            zookeeper.StateRequested,
		StateTime:        now,
		NodeTypes:        slices.Clone(labels),
		Reuse:            true,
		Requestor:        &requestor,
		RequestorData:    data,
		RelativePriority: 0,
		EventID:          &eventID,
		CreatedTime:      &now,
		TenantName:       tenant,
	}, nil
}

// newUUID returns a uuid4 in hex without dashes, as Zuul's ids are.
func newUUID() string {
	return strings.ReplaceAll(uuid.NewString(), "-", "")
}

// PriorityPrefix returns the request name prefix of priority: three digits,
// zero-padded. It fails outside 0–999.
func PriorityPrefix(priority int) (string, error) {
	if priority < 0 || priority > MaxPriority {
		return "", fmt.Errorf("priority %d is not between 0 and %d", priority, MaxPriority)
	}
	return fmt.Sprintf("%03d", priority), nil
}

// Submit creates a request for labels as Zuul does: a persistent sequential
// znode /nodepool/requests/<priority>-<sequence> (parents created when missing)
// holding NewRequest's body. It returns the request with its ID and Version set.
func (c *Client) Submit(ctx context.Context, priority int, labels ...string) (*zookeeper.NodeRequest, error) {
	prefix, err := PriorityPrefix(priority)
	if err != nil {
		return nil, fmt.Errorf("submitting request: %w", err)
	}
	r, err := c.NewRequest(labels...)
	if err != nil {
		return nil, err
	}
	if _, err := c.zk.SubmitRequest(ctx, r, prefix, false); err != nil {
		return nil, err
	}
	return r, nil
}

// Done reports whether r is fulfilled or failed, the only states Zuul acts on.
func Done(r *zookeeper.NodeRequest) bool {
	return r.State == zookeeper.StateFulfilled || r.State == zookeeper.StateFailed
}

// Wait watches request id until it is fulfilled or failed and returns it.
func (c *Client) Wait(ctx context.Context, id string) (*zookeeper.NodeRequest, error) {
	return c.WaitUntil(ctx, id, Done)
}

// WaitUntil watches request id, reading it on every change, until cond holds
// for a version read, and returns that version. A request that is deleted (or
// never existed) yields an error wrapping zookeeper.ErrNotFound, a record that
// does not decode a *zookeeper.DecodeError; when ctx ends, its error is
// returned. Failed reads (the connection is down) are retried.
func (c *Client) WaitUntil(ctx context.Context, id string, cond func(*zookeeper.NodeRequest) bool) (*zookeeper.NodeRequest, error) {
	var lastErr string
	for {
		r, watch, err := c.zk.GetRequestW(ctx, id)
		var derr *zookeeper.DecodeError
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, zookeeper.ErrNotFound), errors.As(err, &derr):
			return nil, err
		case err != nil:
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				c.warn(fmt.Errorf("%w; retrying", err))
			}
		default:
			lastErr = ""
			if f := c.opts.Observer.RequestRead; f != nil {
				f(r)
			}
			if cond(r) {
				return r, nil
			}
		}
		wait := c.opts.Recheck
		if err != nil {
			wait = retryDelay
		}
		if err := sleepOrWatch(ctx, watch, wait); err != nil {
			return nil, err
		}
	}
}

// sleepOrWatch waits until watch fires (a nil watch never does), d passes or
// ctx ends.
func sleepOrWatch[E any](ctx context.Context, watch <-chan E, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-watch:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Cancel deletes request id, as Zuul does to cancel a request and right after
// it sees one failed. It does so even after ctx ended (within 30 s). A request
// already gone is not an error.
func (c *Client) Cancel(ctx context.Context, id string) error {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	return c.zk.DeleteRequest(cctx, id)
}

// WaitGone waits until the launcher has deleted each of the nodes ids (their
// znodes are gone), or ctx ends.
func (c *Client) WaitGone(ctx context.Context, ids ...string) error {
	for _, id := range ids {
		if err := c.zk.WaitDeleted(ctx, zookeeper.NodePath(id)); err != nil {
			return fmt.Errorf("waiting for node %s to be deleted: %w", id, err)
		}
	}
	return nil
}

// warn passes err to the observer.
func (c *Client) warn(err error) {
	if f := c.opts.Observer.Warning; f != nil {
		f(err)
	}
}

// now returns the current time as a Nodepool timestamp.
func (c *Client) now() float64 {
	return zookeeper.Timestamp(c.opts.Now())
}

// cleanupContext returns a context that outlives ctx's cancellation, bounded by
// cleanupTimeout.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}
