package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"
)

// GetNodeW reads node id like GetNode and sets a one-shot data watch on it, which fires
// on a change or deletion of the node and with zk.EventNotWatching when the session is
// lost. A missing node yields ErrNotFound and no watch; a record that does not decode
// yields a *DecodeError along with the watch and the znode's version.
func (c *Client) GetNodeW(ctx context.Context, id string) (*Node, int32, <-chan zk.Event, error) {
	type result struct {
		data  []byte
		stat  *zk.Stat
		watch <-chan zk.Event
	}
	res, err := do(c, ctx, func() (result, error) {
		data, stat, watch, err := c.conn.GetW(c.abs(NodePath(id)))
		return result{data, stat, watch}, err
	})
	if err != nil {
		return nil, 0, nil, fmt.Errorf("reading node %s: %w", id, mapErr(err))
	}
	n, err := DecodeNode(id, res.data)
	if err != nil {
		return nil, res.stat.Version, res.watch, fmt.Errorf("reading node %s: %w", id, err)
	}
	n.Version = res.stat.Version
	if len(n.Corrected) > 0 {
		c.warnCorrected(id, n)
	}
	return n, n.Version, res.watch, nil
}

// LockEvent is the state of a watched lock directory.
type LockEvent struct {
	// Locked reports whether the directory has a contender; Owner is the data of the
	// one holding the lock (the owner written by OwnedLock, kazoo's identifier).
	Locked bool
	Owner  string
	// Reads is the number of ZooKeeper reads this event took.
	Reads int
}

// WatchLock watches the lock directory lockPath (it need not exist) and sends its state
// at start and after every change of its contenders, like LockHolder. A change made
// while disconnected shows up after the reconnect. The channel closes when ctx ends or
// the client is closed.
func (c *Client) WatchLock(ctx context.Context, lockPath string) <-chan LockEvent {
	out := make(chan LockEvent)
	go func() {
		defer close(out)
		for ev := range c.WatchChildren(ctx, lockPath) {
			le, ok := c.lockState(ctx, lockPath, ev.Children)
			if !ok {
				continue // the holder left while it was read: a new list follows
			}
			select {
			case out <- le:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// lockState reads the holder of a lock directory with the given children. ok is false
// when the holder vanished before its data was read or ZooKeeper could not answer (a
// new list of children follows either way).
func (c *Client) lockState(ctx context.Context, lockPath string, children []string) (LockEvent, bool) {
	cs := sortContenders(children)
	if len(cs) == 0 {
		return LockEvent{Reads: 1}, true
	}
	reads := 1
	for attempt := 1; ; attempt++ {
		data, _, err := c.get(ctx, lockPath+"/"+cs[0].name)
		reads++
		switch {
		case err == nil:
			return LockEvent{Locked: true, Owner: string(data), Reads: reads}, true
		case errors.Is(err, zk.ErrNoNode):
			return LockEvent{}, false
		case attempt == lockReadAttempts || ctx.Err() != nil:
			// Known locked, by an unknown holder; a reconnect lists the lock again.
			c.log.Debug("reading lock holder", "path", lockPath, "error", err)
			return LockEvent{Locked: true, Reads: reads}, true
		}
		select {
		case <-ctx.Done():
		case <-time.After(watchRetryMax):
		}
	}
}

// lockReadAttempts bounds the attempts to read a lock holder's data.
const lockReadAttempts = 3
