package zookeeper

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"
)

// Backoff between failed attempts to (re)arm a watch while the connection is
// down.
const (
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 2 * time.Second
)

// ChildrenEvent is the full, sorted child list of a watched path.
type ChildrenEvent struct {
	// Path is the watched path, relative to the chroot.
	Path string
	// Children are the child names, sorted; empty when the path does not
	// exist.
	Children []string
	// Exists reports whether the watched path exists.
	Exists bool
}

// WatchChildren watches the children of p. The channel receives the full
// child list at start, after every change, and after every reconnect or new
// session, so a change made while disconnected shows up once the client is
// back. Lists are
// coalesced: a slow reader gets the latest list, not every intermediate one.
// A missing p is reported as an empty list and watched for creation. The
// channel closes when ctx ends or the client is closed.
//
// Each event re-arms an ordinary one-shot watch; go-zookeeper has no
// persistent watches.
func (c *Client) WatchChildren(ctx context.Context, p string) <-chan ChildrenEvent {
	out := make(chan ChildrenEvent)
	go c.watchChildren(ctx, p, out)
	return out
}

func (c *Client) watchChildren(ctx context.Context, p string, out chan<- ChildrenEvent) {
	defer close(out)
	var pending *ChildrenEvent
	retry := watchRetryMin
	for {
		reconnected := c.reconnectedChan()
		ev, watch, err := c.childrenWatch(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Debug("arming children watch", "path", p, "error", err)
			// Wait for a reconnect or a backoff, whichever comes first, still
			// delivering a pending list.
			timer := time.NewTimer(retry)
			retry = min(retry*2, watchRetryMax)
			if !c.waitDelivering(ctx, out, &pending, reconnected, nil, timer.C) {
				timer.Stop()
				return
			}
			timer.Stop()
			continue
		}
		retry = watchRetryMin
		pending = &ev
		if !c.waitDelivering(ctx, out, &pending, reconnected, watch, nil) {
			return
		}
	}
}

// waitDelivering blocks until reconnected, watch or timer fires (nil
// channels never do), sending *pending to out whenever the reader is ready.
// It returns false when the watch must stop (ctx ended or client closed).
func (c *Client) waitDelivering(ctx context.Context, out chan<- ChildrenEvent, pending **ChildrenEvent,
	reconnected <-chan struct{}, watch <-chan zk.Event, timer <-chan time.Time) bool {
	for {
		var send chan<- ChildrenEvent
		var ev ChildrenEvent
		if *pending != nil {
			send = out
			ev = **pending
		}
		select {
		case send <- ev:
			*pending = nil
		case <-reconnected:
			return true
		case <-watch:
			return true
		case <-timer:
			return true
		case <-ctx.Done():
			return false
		case <-c.closed:
			return false
		}
	}
}

// childrenWatch lists p's children with a child watch, or, when p is
// missing, sets an existence watch and reports an empty list.
func (c *Client) childrenWatch(ctx context.Context, p string) (ChildrenEvent, <-chan zk.Event, error) {
	type result struct {
		children []string
		exists   bool
		watch    <-chan zk.Event
	}
	abs := c.abs(p)
	r, err := do(c, ctx, func() (result, error) {
		for {
			children, _, watch, err := c.conn.ChildrenW(abs)
			if err == nil {
				return result{children, true, watch}, nil
			}
			if !errors.Is(err, zk.ErrNoNode) {
				return result{}, err
			}
			exists, _, watch, err := c.conn.ExistsW(abs)
			if err != nil {
				return result{}, err
			}
			if !exists {
				return result{nil, false, watch}, nil
			}
			// Created in between: list it.
		}
	})
	if err != nil {
		return ChildrenEvent{}, nil, err
	}
	children := slices.Clone(r.children)
	if children == nil {
		children = []string{}
	}
	slices.Sort(children)
	return ChildrenEvent{Path: p, Children: children, Exists: r.exists}, r.watch, nil
}

// WaitDeleted waits until p (relative to the chroot) does not exist, or ctx ends.
// It sets an existence watch and checks again when the watch fires or the client
// reconnects; while the connection is down it retries with backoff.
func (c *Client) WaitDeleted(ctx context.Context, p string) error {
	retry := watchRetryMin
	for {
		reconnected := c.reconnectedChan()
		exists, watch, err := c.ExistsW(ctx, p)
		var timer *time.Timer
		switch {
		case err == nil && !exists:
			return nil
		case err == nil:
			retry = watchRetryMin
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			c.log.Debug("watching for deletion", "path", p, "error", err)
			timer = time.NewTimer(retry)
			retry = min(retry*2, watchRetryMax)
		}
		var fired <-chan time.Time
		if timer != nil {
			fired = timer.C
		}
		select {
		case <-watch:
		case <-reconnected:
		case <-fired:
		case <-ctx.Done():
		case <-c.closed:
			return errors.New("waiting for deletion: client closed")
		}
		if timer != nil {
			timer.Stop()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
