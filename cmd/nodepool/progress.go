package main

import (
	"fmt"
	"time"
)

// How often long operations report: progressPoll is how often they look,
// progressEvery how often they say so when nothing changed.
var (
	progressPoll  = time.Second
	progressEvery = 30 * time.Second
)

// progress prints a progress line on standard error.
func (s *session) progress(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.stderr, format+"\n", args...)
}

// roundDuration rounds d for progress lines: whole seconds, tenths below ten.
func roundDuration(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// counter reports the progress of work on a known number of items, at most once
// per progressPoll, and once at the end.
type counter struct {
	s          *session
	verb, what string
	total, n   int
	start      time.Time
	last       time.Time
}

// newCounter returns a counter of total items; lines read "<verb> n/total <what>".
func (s *session) newCounter(verb, what string, total int) *counter {
	now := time.Now()
	return &counter{s: s, verb: verb, what: what, total: total, start: now, last: now}
}

// add counts n more items done.
func (c *counter) add(n int) {
	c.n += n
	if c.n < c.total && time.Since(c.last) >= progressPoll {
		c.last = time.Now()
		c.s.progress("%s %d/%d %s", c.verb, c.n, c.total, c.what)
	}
}

// done reports the end.
func (c *counter) done() {
	c.s.progress("%s %d/%d %s in %s", c.verb, c.n, c.total, c.what, roundDuration(time.Since(c.start)))
}
