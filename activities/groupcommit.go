package activities

import (
	"context"
	"sync"
)

// groupCommit sends items to destinations in batches (group commit): the first item
// for a key is sent at once, and the items that arrive while a send for that key is in
// flight are sent together in the next one. No item waits longer than one send's round
// trip, and a burst of N items costs a handful of sends. The zero value is ready.
type groupCommit[T any] struct {
	mu     sync.Mutex
	queues map[string]*commitQueue[T]
}

type commitQueue[T any] struct {
	items []T
	done  []chan error
}

// add queues item for key and returns the result of the send that carries it, or ctx's
// error if ctx ends first (the item is still sent). A call that finds key idle starts
// a goroutine that calls its send with batches of at most max items until the queue is
// empty; send bounds its own time.
func (g *groupCommit[T]) add(ctx context.Context, key string, item T, max int, send func([]T) error) error {
	done := make(chan error, 1)
	g.mu.Lock()
	if g.queues == nil {
		g.queues = map[string]*commitQueue[T]{}
	}
	q := g.queues[key]
	start := q == nil
	if start {
		q = &commitQueue[T]{}
		g.queues[key] = q
	}
	q.items = append(q.items, item)
	q.done = append(q.done, done)
	g.mu.Unlock()
	if start {
		go g.flush(key, q, max, send)
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush sends key's queued items until none are left, then forgets the key.
func (g *groupCommit[T]) flush(key string, q *commitQueue[T], max int, send func([]T) error) {
	for {
		g.mu.Lock()
		if len(q.items) == 0 {
			delete(g.queues, key)
			g.mu.Unlock()
			return
		}
		n := min(len(q.items), max)
		items, done := q.items[:n:n], q.done[:n:n]
		q.items, q.done = q.items[n:], q.done[n:]
		g.mu.Unlock()
		err := send(items)
		for _, d := range done {
			d <- err
		}
	}
}
