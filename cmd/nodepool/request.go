package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// What the request command writes where Zuul names its pipeline, job and
// project, and how long it waits.
const (
	// defaultPriority is Zuul's priority for a pipeline of normal precedence.
	defaultPriority = zuul.PriorityNormal
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

// cmdRequest requests nodes the way Zuul does, uses them and returns them.
func cmdRequest(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	var o requestOptions
	fs.IntVar(&o.priority, "priority", defaultPriority, "request priority, 0-999 (Zuul: 100 high, 200 normal, 300 low)")
	fs.StringVar(&o.tenant, "tenant", "", "tenant name (tenant_name)")
	fs.StringVar(&o.requestor, "requestor", defaultRequestor(), "requestor name")
	fs.DurationVar(&o.timeout, "timeout", defaultRequestTimeout, "how long to wait for the request to be fulfilled (0: forever)")
	fs.BoolVar(&o.keep, "keep", false, "hold the nodes until interrupted, then return them")
	labels, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(labels) == 0:
		return usagef("missing LABEL")
	case o.priority < 0 || o.priority > zuul.MaxPriority:
		return usagef("--priority must be between 0 and %d, got %d", zuul.MaxPriority, o.priority)
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
	o.json = s.g.json
	if err := s.open(ctx); err != nil {
		return err
	}
	for _, l := range labels {
		if _, ok := s.cfg.Label(l); !ok {
			fmt.Fprintf(s.stderr, "warning: label %s is not in %s\n", l, s.g.cfgPath)
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

// errRequestTimeout is the cause of the wait's end when --timeout passes.
var errRequestTimeout = errors.New("request timed out")

// zuulClient returns a client acting as Zuul for the request command, reporting
// the request's progress on standard error.
func (s *session) zuulClient(o requestOptions) (*zuul.Client, error) {
	state := zookeeper.StateRequested
	declined := 0
	return zuul.New(s.zk, zuul.Options{
		SystemID: o.requestor,
		Tenant:   o.tenant,
		Pipeline: pipelineName,
		Job:      jobName,
		Project:  projectName,
		Observer: zuul.Observer{
			RequestRead: func(r *zookeeper.NodeRequest) {
				for _, d := range r.DeclinedBy[min(declined, len(r.DeclinedBy)):] {
					s.progress("request %s declined by %s", r.ID, d)
				}
				declined = max(declined, len(r.DeclinedBy))
				if !zuul.Done(r) && r.State != state {
					state = r.State
					s.progress("request %s is %s", r.ID, state)
				}
			},
			Locking: func(id, label string) { s.progress("locking node %s (%s)", id, label) },
			Warning: func(err error) { s.progress("warning: %v", err) },
		},
	})
}

// request runs the whole exchange: submit, wait, accept, use, return.
func (s *session) request(ctx context.Context, o requestOptions) error {
	z, err := s.zuulClient(o)
	if err != nil {
		return err
	}
	r, err := z.Submit(ctx, o.priority, o.labels...)
	if err != nil {
		if ctx.Err() != nil {
			s.progress("interrupted before the request was submitted")
			return errReported
		}
		return err
	}
	id := r.ID
	s.progress("submitted request %s for %s", id, joinIDs(o.labels))

	wctx := ctx
	if o.timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeoutCause(ctx, o.timeout, errRequestTimeout)
		defer cancel()
	}
	stopWatch := s.watchRequest(wctx, id)
	final, err := z.Wait(wctx, id)
	stopWatch()
	if err != nil {
		if errors.Is(err, zookeeper.ErrNotFound) {
			s.progress("request %s was deleted before a launcher fulfilled it", id)
			return errReported
		}
		s.cancelRequest(ctx, z, id)
		switch {
		case ctx.Err() != nil:
			s.progress("interrupted; deleted request %s", id)
		case errors.Is(context.Cause(wctx), errRequestTimeout):
			s.progress("request %s was not fulfilled within %s; deleted it", id, o.timeout)
		default:
			s.progress("%v; deleted request %s", err, id)
		}
		return errReported
	}
	if final.State == zookeeper.StateFailed {
		s.cancelRequest(ctx, z, id)
		declined := "nobody"
		if len(final.DeclinedBy) > 0 {
			declined = joinIDs(final.DeclinedBy)
		}
		s.progress("request %s failed; declined by: %s", id, declined)
		s.progress("deleted request %s", id)
		return errReported
	}

	s.progress("request %s fulfilled with nodes %s", id, joinIDs(final.Nodes))
	// Accepting deletes the request whether or not it gets the nodes: from now on
	// only the node locks protect them.
	set, err := z.Accept(ctx, final)
	if err != nil {
		if ctx.Err() != nil {
			s.progress("interrupted while accepting the nodes of request %s", id)
		} else {
			s.progress("accepting the nodes of request %s: %v", id, err)
		}
		return errReported
	}
	s.progress("deleted request %s", id)

	err = s.useNodes(ctx, o, set)
	s.returnNodes(ctx, set)
	return err
}

// watchRequest reports, until the returned function is called, what happens to
// request id between the state changes the Zuul client reports: the state of each
// node the launcher records in the request as it changes, and every progressEvery
// how long the request has waited. It returns once reporting stopped.
func (s *session) watchRequest(ctx context.Context, id string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		lastReport := start
		states := map[string]string{}
		t := time.NewTicker(progressPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			r, err := s.zk.GetRequest(ctx, id)
			if err != nil {
				continue
			}
			for i, nid := range r.Nodes {
				n, err := s.zk.GetNode(ctx, nid)
				state := "gone"
				if err == nil {
					state = string(n.State)
				} else if !errors.Is(err, zookeeper.ErrNotFound) {
					continue
				}
				if states[nid] == state || ctx.Err() != nil {
					continue
				}
				states[nid] = state
				label := ""
				if i < len(r.NodeTypes) {
					label = " (" + r.NodeTypes[i] + ")"
				}
				s.progress("node %s%s is %s", nid, label, state)
			}
			if time.Since(lastReport) >= progressEvery && ctx.Err() == nil {
				lastReport = time.Now()
				s.progress("request %s is still %s after %s; \"nodepool explain %s\" tells why",
					id, r.State, roundDuration(time.Since(start)), id)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// cancelRequest deletes request id, even after ctx ended.
func (s *session) cancelRequest(ctx context.Context, z *zuul.Client, id string) {
	if err := z.Cancel(ctx, id); err != nil {
		s.progress("warning: %v", err)
	}
}

// useNodes sets the accepted nodes in use, prints them and, with --keep, waits
// until interrupted. The caller returns the nodes afterwards.
func (s *session) useNodes(ctx context.Context, o requestOptions, set *zuul.NodeSet) error {
	if err := set.Use(ctx); err != nil {
		s.progress("%v", err)
		return errReported
	}
	s.progress("nodes %s are in use", joinIDs(set.IDs()))
	if err := s.printNodes(set.Nodes(), o.json); err != nil {
		return err
	}
	if !o.keep {
		return nil
	}
	s.progress("holding the nodes; press Ctrl-C to return them")
	return s.keepNodes(ctx, set)
}

// keepNodes waits until ctx ends, checking that the node locks are still held.
func (s *session) keepNodes(ctx context.Context, set *zuul.NodeSet) error {
	t := time.NewTicker(lockCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		lost, err := set.LockLost(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			s.logger.Debug("checking node locks", "error", err)
		case lost != "":
			s.progress("lost the lock on node %s (ZooKeeper session expired); the launcher will delete it", lost)
			return errReported
		}
	}
}

// returnNodes gives the nodes back: those still in use become "used" (the
// launcher deletes them once unlocked), then every lock is released. It works
// even after ctx ended.
func (s *session) returnNodes(ctx context.Context, set *zuul.NodeSet) {
	returned, err := set.Return(ctx)
	for _, e := range unjoin(err) {
		s.progress("warning: %v", e)
	}
	var ids []string
	for _, id := range set.IDs() {
		if _, ok := returned[id]; ok {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		s.progress("returned nodes %s (used, unlocked); the launcher will delete them", joinIDs(ids))
	}
}

// unjoin lists the errors joined in err (none for nil).
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// printNodes prints the nodes in use: a table, or their records as a JSON list.
func (s *session) printNodes(nodes []*zuul.Node, asJSON bool) error {
	if asJSON {
		records := make([]json.RawMessage, len(nodes))
		for i, n := range nodes {
			data, err := n.Record.Encode()
			if err != nil {
				return fmt.Errorf("encoding node %s: %w", n.ID, err)
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
	for _, h := range nodes {
		n := h.Record
		t.add(n.ID, listCell(n.Type), n.Provider, n.Pool, strCell(n.AZ), n.InterfaceIP,
			portCell(n.ConnectionPort), strCell(n.Username), strCell(n.ConnectionType),
			rawCell(n.ExternalID), string(n.State))
	}
	t.write(s.stdout)
	return nil
}
