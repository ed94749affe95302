package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Zuul's behaviour the request command reproduces.
const (
	// nodeLockTimeout is how long Zuul's executor waits for a node lock.
	nodeLockTimeout = 30 * time.Second
	// defaultPriority is Zuul's priority for a pipeline of normal precedence.
	defaultPriority = 200
	// defaultRequestTimeout bounds the wait for a launcher to answer.
	defaultRequestTimeout = 10 * time.Minute
	// pipelineName and jobName fill requestor_data, where Zuul names the
	// pipeline and the job the nodes are for.
	pipelineName = "manual"
	jobName      = "nodepool-request"
	// projectName fills the nodes' user_data while in use, where Zuul names the
	// project whose job runs.
	projectName = "manual"
	// lockCheckInterval is how often --keep checks that the node locks are still
	// held (they vanish with an expired ZooKeeper session).
	lockCheckInterval = 5 * time.Second
)

// requestorData is the requestor_data Zuul stores in a request.
type requestorData struct {
	BuildSetUUID string  `json:"build_set_uuid"`
	TenantName   *string `json:"tenant_name"`
	PipelineName string  `json:"pipeline_name"`
	JobUUID      string  `json:"job_uuid"`
	JobName      string  `json:"job_name"`
	SpanInfo     any     `json:"span_info"`
}

// userData is the user_data Zuul's executor puts on nodes it uses.
type userData struct {
	ZuulSystem  string `json:"zuul_system"`
	ProjectName string `json:"project_name"`
}

// requestOptions are the request command's settings.
type requestOptions struct {
	labels    []string
	priority  int
	tenant    string
	requestor string
	timeout   time.Duration
	keep      bool
	json      bool
}

// heldNode is a node of a fulfilled request that this process has locked.
type heldNode struct {
	id   string
	lock *zookeeper.Lock
	node *zookeeper.Node
}

// cmdRequest requests nodes the way Zuul does, uses them and returns them.
func cmdRequest(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	var o requestOptions
	fs.IntVar(&o.priority, "priority", defaultPriority, "request priority, 0-999 (Zuul: 100 high, 200 normal, 300 low)")
	fs.StringVar(&o.tenant, "tenant", "", "tenant name (tenant_name)")
	fs.StringVar(&o.requestor, "requestor", defaultRequestor(), "requestor name")
	fs.DurationVar(&o.timeout, "timeout", defaultRequestTimeout, "how long to wait for the request to be fulfilled (0: forever)")
	fs.BoolVar(&o.keep, "keep", false, "hold the nodes until interrupted, then return them")
	fs.BoolVar(&o.json, "json", false, "print the node records as JSON")
	labels, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(labels) == 0:
		return usagef("missing LABEL")
	case o.priority < 0 || o.priority > 999:
		return usagef("--priority must be between 0 and 999, got %d", o.priority)
	case o.requestor == "":
		return usagef("--requestor must not be empty")
	case o.timeout < 0:
		return usagef("--timeout must not be negative")
	}
	for _, l := range labels {
		if l == "" {
			return usagef("empty LABEL")
		}
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	for _, l := range labels {
		if _, ok := s.cfg.Label(l); !ok {
			fmt.Fprintf(s.stderr, "warning: label %s is not in %s\n", l, s.cfgPath)
		}
	}
	o.labels = labels
	return s.request(ctx, o)
}

// defaultRequestor names this tool and host, so that requests made by hand are
// told apart from Zuul's (whose requestor is its system id).
func defaultRequestor() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "nodepool-cli"
	}
	return "nodepool-cli@" + host
}

// progress prints a progress line on standard error.
func (s *session) progress(format string, args ...any) {
	fmt.Fprintf(s.stderr, format+"\n", args...)
}

// request runs the whole exchange: submit, wait, accept, use, return.
func (s *session) request(ctx context.Context, o requestOptions) error {
	r, err := newZuulRequest(o)
	if err != nil {
		return err
	}
	id, err := s.zk.SubmitRequest(ctx, r, fmt.Sprintf("%03d", o.priority), false)
	if err != nil {
		if ctx.Err() != nil {
			s.progress("interrupted before the request was submitted")
			return errReported
		}
		return err
	}
	s.progress("submitted request %s for %s", id, joinIDs(o.labels))

	final, err := s.awaitRequest(ctx, id, o.timeout)
	if err != nil {
		if errors.Is(err, errRequestGone) {
			s.progress("request %s was deleted before a launcher fulfilled it", id)
			return errReported
		}
		s.deleteRequest(ctx, id)
		switch {
		case errors.Is(err, errRequestTimeout):
			s.progress("request %s was not fulfilled within %s; deleted it", id, o.timeout)
		case ctx.Err() != nil:
			s.progress("interrupted; deleted request %s", id)
		default:
			s.progress("%v; deleted request %s", err, id)
		}
		return errReported
	}
	if final.State == zookeeper.StateFailed {
		s.deleteRequest(ctx, id)
		declined := "nobody"
		if len(final.DeclinedBy) > 0 {
			declined = joinIDs(final.DeclinedBy)
		}
		s.progress("request %s failed; declined by: %s", id, declined)
		s.progress("deleted request %s", id)
		return errReported
	}

	s.progress("request %s fulfilled with nodes %s", id, joinIDs(final.Nodes))
	held, err := s.acceptNodes(ctx, final)
	// Zuul's executor deletes the request whether or not it got the nodes: from
	// now on only the node locks protect them.
	s.deleteRequest(ctx, id)
	if err != nil {
		s.releaseNodes(ctx, held, false)
		if ctx.Err() != nil {
			s.progress("interrupted while accepting the nodes of request %s", id)
		} else {
			s.progress("accepting the nodes of request %s: %v", id, err)
		}
		return errReported
	}
	s.progress("deleted request %s", id)

	err = s.useNodes(ctx, o, held)
	s.releaseNodes(ctx, held, true)
	return err
}

// newZuulRequest builds a request with the fields Zuul writes.
func newZuulRequest(o requestOptions) (*zookeeper.NodeRequest, error) {
	var tenant *string
	if o.tenant != "" {
		tenant = &o.tenant
	}
	data, err := json.Marshal(requestorData{
		BuildSetUUID: newUUID(),
		TenantName:   tenant,
		PipelineName: pipelineName,
		JobUUID:      newUUID(),
		JobName:      jobName,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding requestor data: %w", err)
	}
	now := unixNow()
	eventID := newUUID()
	requestor := o.requestor
	return &zookeeper.NodeRequest{
		State:            zookeeper.StateRequested,
		StateTime:        now,
		NodeTypes:        slices.Clone(o.labels),
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

var (
	// errRequestGone reports a request deleted by someone else while waiting.
	errRequestGone = errors.New("request disappeared")
	// errRequestTimeout reports a request not answered in time.
	errRequestTimeout = errors.New("request timed out")
)

// awaitRequest watches request id until it is fulfilled or failed, printing its
// state changes and new declines. It gives up after timeout (0: never).
func (s *session) awaitRequest(ctx context.Context, id string, timeout time.Duration) (*zookeeper.NodeRequest, error) {
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	state := zookeeper.StateRequested
	declined := 0
	lastErr := ""
	for {
		data, watch, err := s.getW(ctx, zookeeper.RequestPath(id))
		switch {
		case errors.Is(err, zookeeper.ErrNotFound):
			return nil, errRequestGone
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			// The connection is down; the client reconnects on its own.
			if msg := err.Error(); msg != lastErr {
				s.progress("warning: reading request %s: %v; retrying", id, err)
				lastErr = msg
			}
		default:
			lastErr = ""
			r, err := zookeeper.DecodeRequest(id, data)
			if err != nil {
				return nil, fmt.Errorf("reading request %s: %w", id, err)
			}
			for _, d := range r.DeclinedBy[min(declined, len(r.DeclinedBy)):] {
				s.progress("request %s declined by %s", id, d)
			}
			declined = max(declined, len(r.DeclinedBy))
			if r.State == zookeeper.StateFulfilled || r.State == zookeeper.StateFailed {
				return r, nil
			}
			if r.State != state {
				state = r.State
				s.progress("request %s is %s", id, state)
			}
		}
		t := time.NewTimer(znodePollInterval)
		select {
		case <-watch:
		case <-t.C:
		case <-deadline:
			t.Stop()
			return nil, errRequestTimeout
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// deleteRequest deletes request id, even after ctx ended.
func (s *session) deleteRequest(ctx context.Context, id string) {
	dctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := s.zk.DeleteRequest(dctx, id); err != nil {
		s.progress("warning: %v", err)
	}
}

// acceptNodes takes the nodes of a fulfilled request as Zuul's executor does: for
// each node, in the order of the request's nodes, it checks that the node is
// allocated to the request, locks it (waiting up to 30 s) and checks again. On
// failure it returns the nodes locked so far along with the error.
func (s *session) acceptNodes(ctx context.Context, r *zookeeper.NodeRequest) ([]*heldNode, error) {
	if len(r.Nodes) != len(r.NodeTypes) {
		return nil, fmt.Errorf("request has %d nodes for %d labels", len(r.Nodes), len(r.NodeTypes))
	}
	var held []*heldNode
	for i, id := range r.Nodes {
		if _, err := s.allocatedNode(ctx, id, r.ID); err != nil {
			return held, err
		}
		s.progress("locking node %s (%s)", id, r.NodeTypes[i])
		lock := s.zk.NewLock(zookeeper.NodeLockPath(id), "")
		if err := lock.Acquire(ctx, nodeLockTimeout); err != nil {
			return held, fmt.Errorf("locking node %s: %w", id, err)
		}
		h := &heldNode{id: id, lock: lock}
		held = append(held, h)
		n, err := s.allocatedNode(ctx, id, r.ID)
		if err != nil {
			return held, err
		}
		h.node = n
	}
	return held, nil
}

// allocatedNode reads node id and checks that it is allocated to request.
func (s *session) allocatedNode(ctx context.Context, id, request string) (*zookeeper.Node, error) {
	n, err := s.zk.GetNode(ctx, id)
	if err != nil {
		return nil, err
	}
	if n.AllocatedTo == nil || *n.AllocatedTo != request {
		return nil, fmt.Errorf("node %s is allocated to %q, not to request %s", id, strCell(n.AllocatedTo), request)
	}
	return n, nil
}

// useNodes sets the held nodes in use, prints them and, with --keep, waits until
// interrupted. The caller returns the nodes afterwards.
func (s *session) useNodes(ctx context.Context, o requestOptions, held []*heldNode) error {
	ud, err := json.Marshal(userData{ZuulSystem: o.requestor, ProjectName: projectName})
	if err != nil {
		return fmt.Errorf("encoding user data: %w", err)
	}
	for _, h := range held {
		err := s.writeHeldNode(ctx, h, func(n *zookeeper.Node) {
			n.State = zookeeper.NodeInUse
			n.StateTime = unixNow()
			n.UserData = ud
		})
		if err != nil {
			s.progress("setting node %s in use: %v", h.id, err)
			return errReported
		}
	}
	ids := make([]string, len(held))
	for i, h := range held {
		ids[i] = h.id
	}
	s.progress("nodes %s are in use", joinIDs(ids))
	if err := s.printHeldNodes(held, o.json); err != nil {
		return err
	}
	if !o.keep {
		return nil
	}
	s.progress("holding the nodes; press Ctrl-C to return them")
	return s.keepNodes(ctx, held)
}

// keepNodes waits until ctx ends, checking that the node locks are still held.
func (s *session) keepNodes(ctx context.Context, held []*heldNode) error {
	t := time.NewTicker(lockCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, h := range held {
			ok, err := h.lock.Held(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.logger.Debug("checking node lock", "node_id", h.id, "error", err)
				continue
			}
			if !ok {
				s.progress("lost the lock on node %s (ZooKeeper session expired); the launcher will delete it", h.id)
				return errReported
			}
		}
	}
}

// writeHeldNode applies change to a locked node and stores it. Zuul overwrites the
// node without a version check; this re-reads and retries instead if someone
// wrote the node in between.
func (s *session) writeHeldNode(ctx context.Context, h *heldNode, change func(*zookeeper.Node)) error {
	const attempts = 3
	var err error
	for range attempts {
		if h.node == nil {
			if h.node, err = s.zk.GetNode(ctx, h.id); err != nil {
				return err
			}
		}
		n := *h.node
		n.Extra = cloneExtra(h.node.Extra)
		change(&n)
		// Zuul writes the node id into every node it stores.
		n.Extra["id"] = mustJSON(h.id)
		if err = s.zk.UpdateNode(ctx, &n); err == nil {
			h.node = &n
			return nil
		}
		if !errors.Is(err, zookeeper.ErrBadVersion) {
			return err
		}
		h.node = nil
	}
	return err
}

// releaseNodes returns held nodes: with markUsed those still in use become "used"
// (the launcher deletes them once unlocked); then every lock is released. It
// works even after ctx ended.
func (s *session) releaseNodes(ctx context.Context, held []*heldNode, markUsed bool) {
	if len(held) == 0 {
		return
	}
	rctx, cancel := cleanupContext(ctx)
	defer cancel()
	var returned []string
	for _, h := range held {
		if !markUsed {
			continue
		}
		// Re-read: only nodes still in use are returned as used.
		n, err := s.zk.GetNode(rctx, h.id)
		if err != nil {
			s.progress("warning: returning node %s: %v", h.id, err)
			continue
		}
		h.node = n
		if n.State != zookeeper.NodeInUse {
			continue
		}
		// Never write a node whose lock went with an expired session: the
		// launcher may be deleting it already.
		if ok, err := h.lock.Held(rctx); err != nil || !ok {
			s.progress("warning: not returning node %s: its lock is no longer held", h.id)
			continue
		}
		err = s.writeHeldNode(rctx, h, func(n *zookeeper.Node) {
			n.State = zookeeper.NodeUsed
			n.StateTime = unixNow()
		})
		if err != nil {
			s.progress("warning: returning node %s: %v", h.id, err)
			continue
		}
		returned = append(returned, h.id)
	}
	for _, h := range held {
		if err := h.lock.Release(rctx); err != nil {
			s.progress("warning: %v", err)
		}
	}
	if len(returned) > 0 {
		s.progress("returned nodes %s (used, unlocked); the launcher will delete them", joinIDs(returned))
	}
}

// printHeldNodes prints the nodes in use: a table, or their records as a JSON
// list.
func (s *session) printHeldNodes(held []*heldNode, asJSON bool) error {
	if asJSON {
		records := make([]json.RawMessage, len(held))
		for i, h := range held {
			data, err := h.node.Encode()
			if err != nil {
				return fmt.Errorf("encoding node %s: %w", h.id, err)
			}
			records[i] = data
		}
		out, err := json.Marshal(records)
		if err != nil {
			return fmt.Errorf("encoding nodes: %w", err)
		}
		var b bytes.Buffer
		if err := json.Indent(&b, out, "", "  "); err != nil {
			return fmt.Errorf("encoding nodes: %w", err)
		}
		b.WriteString("\n")
		_, err = s.stdout.Write(b.Bytes())
		return err
	}
	t := newTable("ID", "Label", "Provider", "Pool", "AZ", "Interface IP", "Port", "Username",
		"Connection", "Server ID", "State")
	for _, h := range held {
		n := h.node
		t.add(n.ID, listCell(n.Type), n.Provider, n.Pool, strCell(n.AZ), n.InterfaceIP,
			portCell(n.ConnectionPort), strCell(n.Username), strCell(n.ConnectionType),
			rawCell(n.ExternalID), string(n.State))
	}
	t.write(s.stdout)
	return nil
}

// cloneExtra copies a node's unmodelled keys; the result is never nil.
func cloneExtra(m map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// mustJSON encodes a string as JSON.
func mustJSON(s string) json.RawMessage {
	data, _ := json.Marshal(s)
	return data
}
