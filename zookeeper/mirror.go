package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// RecordSource is a copy of every record of one tree kept from watches: a Mirror, or a
// component that watches the tree for its own work (the poller). A process keeps one
// per tree, so a change is read once however many readers look at the records.
type RecordSource[T any] interface {
	// Records returns the records as last read, by id (records that could not be
	// decoded are left out; the records are shared and must not be changed); unread,
	// the ids listed whose records have not been read once yet; and listed, whether
	// the tree has been listed at all.
	Records() (recs map[string]T, unread []string, listed bool)
}

// ReadThrough returns every record of src's tree as of about now: src's records, and
// those it has listed but not read yet (a record that has just appeared) read by read,
// so that a reader neither misses a new record nor reads the whole tree because of
// one. Records that vanish or cannot be decoded are left out. It reports false, having
// read nothing, while src has not listed its tree (the caller reads ZooKeeper itself).
func ReadThrough[T any](ctx context.Context, src RecordSource[T], read func(context.Context, string) (T, error)) (map[string]T, bool, error) {
	recs, unread, listed := src.Records()
	if !listed {
		return nil, false, nil
	}
	for _, id := range unread {
		rec, err := read(ctx, id)
		var derr *DecodeError
		switch {
		case errors.Is(err, ErrNotFound) || errors.As(err, &derr):
		case err != nil:
			return nil, true, fmt.Errorf("reading record %s: %w", id, err)
		default:
			recs[id] = rec
		}
	}
	return recs, true, nil
}

// Mirror keeps the decoded records of one tree (node requests, or nodes) up to date
// from ZooKeeper watches: the tree's listing is watched, and each record has a data
// watch, so a record is read when it appears and each time it changes, and never
// otherwise. Readers that need every record every few seconds (the stats reporter)
// cost ZooKeeper as much as the records change, not as much as there are records.
//
// A record that cannot be decoded is left out until it changes into one that can; a
// record whose read fails for another reason (ZooKeeper unreachable) keeps its last
// value and is read again with a backoff. After a reconnect the listing is read again
// and every data watch fires, so nothing missed while disconnected stays stale.
type Mirror[T any] struct {
	c    *Client
	root string
	read func(ctx context.Context, id string) (T, <-chan zk.Event, error)

	mu     sync.Mutex
	recs   map[string]T
	listed bool
	unread map[string]bool // records listed but not read once yet
	reads  atomic.Int64
}

// MirrorRequests returns a mirror of the node requests, kept until ctx ends.
func (c *Client) MirrorRequests(ctx context.Context) *Mirror[*NodeRequest] {
	return startMirror(ctx, c, RequestsPath, c.GetRequestW)
}

// MirrorNodes returns a mirror of the node records, kept until ctx ends.
func (c *Client) MirrorNodes(ctx context.Context) *Mirror[*Node] {
	read := func(ctx context.Context, id string) (*Node, <-chan zk.Event, error) {
		n, _, watch, err := c.GetNodeW(ctx, id)
		return n, watch, err
	}
	return startMirror(ctx, c, NodesPath, read)
}

// startMirror returns a mirror of the tree at root, whose records read reads, kept
// until ctx ends.
func startMirror[T any](ctx context.Context, c *Client, root string, read func(context.Context, string) (T, <-chan zk.Event, error)) *Mirror[T] {
	m := &Mirror[T]{c: c, root: root, read: read, recs: map[string]T{}, unread: map[string]bool{}}
	go m.run(ctx)
	return m
}

// Records returns the records as last read, by id, the ids listed but not read yet,
// and whether the tree has been listed (see RecordSource).
func (m *Mirror[T]) Records() (map[string]T, []string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]T, len(m.recs))
	for id, r := range m.recs {
		out[id] = r
	}
	unread := make([]string, 0, len(m.unread))
	for id := range m.unread {
		unread = append(unread, id)
	}
	return out, unread, m.listed
}

// Reads returns how many record reads the mirror has made.
func (m *Mirror[T]) Reads() int64 { return m.reads.Load() }

// mirrorRetryMax bounds the backoff between reads of a record ZooKeeper did not answer.
const mirrorRetryMax = 10 * time.Second

func (m *Mirror[T]) run(ctx context.Context) {
	watches := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range watches {
			cancel()
		}
		wg.Wait()
	}()
	for ev := range m.c.WatchChildren(ctx, m.root) {
		current := make(map[string]bool, len(ev.Children))
		for _, id := range ev.Children {
			current[id] = true
		}
		m.mu.Lock()
		for id, cancel := range watches {
			if !current[id] {
				cancel()
				delete(watches, id)
				delete(m.recs, id)
				delete(m.unread, id)
			}
		}
		for _, id := range ev.Children {
			if _, ok := watches[id]; ok || (m.root == RequestsPath && !IsNodepoolRequestID(id)) {
				continue
			}
			wctx, cancel := context.WithCancel(ctx)
			watches[id] = cancel
			m.unread[id] = true
			wg.Add(1)
			go func() { defer wg.Done(); m.follow(wctx, id) }()
		}
		m.listed = true
		m.mu.Unlock()
	}
}

// follow reads record id and again each time its data watch fires, until the record
// is deleted or ctx ends (it is no longer listed).
func (m *Mirror[T]) follow(ctx context.Context, id string) {
	first := true
	done := func() {
		if first {
			first = false
			m.mu.Lock()
			delete(m.unread, id)
			m.mu.Unlock()
		}
	}
	defer done()
	retry := watchRetryMin
	for ctx.Err() == nil {
		rec, watch, err := m.read(ctx, id)
		m.reads.Add(1)
		if ctx.Err() != nil {
			return
		}
		var derr *DecodeError
		switch {
		case errors.Is(err, ErrNotFound):
			m.mu.Lock()
			delete(m.recs, id)
			m.mu.Unlock()
			return // the next listing forgets it
		case errors.As(err, &derr):
			m.mu.Lock()
			delete(m.recs, id)
			m.mu.Unlock()
		case err != nil:
			// ZooKeeper unreachable: keep the last value and try again.
			done()
			if !sleepCtx(ctx, retry) {
				return
			}
			retry = min(2*retry, mirrorRetryMax)
			continue
		default:
			m.mu.Lock()
			m.recs[id] = rec
			m.mu.Unlock()
		}
		done()
		retry = watchRetryMin
		if watch == nil {
			if !sleepCtx(ctx, mirrorRetryMax) {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-watch:
			if ev.Type == zk.EventNodeDeleted {
				m.mu.Lock()
				delete(m.recs, id)
				m.mu.Unlock()
				return
			}
		}
	}
}
