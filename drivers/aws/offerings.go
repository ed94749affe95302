package aws

import (
	"sync"
	"time"
)

// offering is one way to launch a label: an instance type in a market.
type offering struct {
	instanceType string
	spot         bool
}

func (o offering) market() string {
	if o.spot {
		return "spot"
	}
	return "on-demand"
}

func (o offering) String() string { return o.instanceType + "/" + o.market() }

// labelOfferings lists a label's offerings in order of preference: every instance type
// in the spot market when use-spot is set, then, without use-spot or with
// on-demand-fallback, every instance type on demand.
func labelOfferings(l *Label) []offering {
	types := l.instanceTypes()
	var out []offering
	if l.UseSpot {
		for _, t := range types {
			out = append(out, offering{instanceType: t, spot: true})
		}
	}
	if !l.UseSpot || l.OnDemandFallback {
		for _, t := range types {
			out = append(out, offering{instanceType: t})
		}
	}
	return out
}

// offeringKey identifies an offering in a zone ("" when EC2 picks the zone).
type offeringKey struct {
	instanceType string
	az           string
	spot         bool
}

// offeringCache remembers offerings that recently reported insufficient capacity, so
// that launches in this process try the next offering at once instead of failing
// against the same one again.
type offeringCache struct {
	now   func() time.Time
	ttl   time.Duration
	mu    sync.Mutex
	until map[offeringKey]time.Time
}

func newOfferingCache(now func() time.Time, ttl time.Duration) *offeringCache {
	return &offeringCache{now: now, ttl: ttl, until: map[offeringKey]time.Time{}}
}

// mark records that the offering has no capacity now.
func (c *offeringCache) mark(k offeringKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.until[k] = c.now().Add(c.ttl)
}

// unavailable reports whether the offering is still to be avoided.
func (c *offeringCache) unavailable(k offeringKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.until[k]
	if !ok {
		return false
	}
	if !c.now().Before(until) {
		delete(c.until, k)
		return false
	}
	return true
}
