package activities

// queued returns how many items wait for key behind the send in flight.
func (g *groupCommit[T]) queued(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if q := g.queues[key]; q != nil {
		return len(q.items)
	}
	return 0
}

// idle reports whether no key has items waiting or a send in flight.
func (g *groupCommit[T]) idle() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queues) == 0
}
