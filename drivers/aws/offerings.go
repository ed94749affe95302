package aws

import (
	"strings"
	"sync"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// offering is one way to launch a label: an instance type in a market, in a zone.
type offering struct {
	// instanceType is the instance type, or for a fleet its instance types joined
	// by commas.
	instanceType string
	spot         bool
	// fleet launches through CreateFleet over the label's fleet instance types.
	fleet bool
	// az is the availability zone asked for; "" leaves the choice to EC2 (or to the
	// pool's subnet).
	az string
}

func (o offering) market() string {
	if o.spot {
		return "spot"
	}
	return "on-demand"
}

func (o offering) String() string {
	s := o.instanceType + "/" + o.market()
	if o.fleet {
		s = "fleet(" + o.instanceType + ")/" + o.market()
	}
	if o.az != "" {
		s += "/" + o.az
	}
	return s
}

// labelOfferings lists a label's offerings in order of preference, without zones:
// every instance type in the spot market when use-spot is set, then, without use-spot
// or with on-demand-fallback, every instance type on demand. A fleet label has one
// offering, its fleet in its market.
func labelOfferings(l *Label) []offering {
	if f := l.Fleet; f != nil {
		return []offering{{instanceType: strings.Join(f.InstanceTypes, ","), spot: f.spot(l.UseSpot), fleet: true}}
	}
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

// launchOfferings lists the offerings one launch may use, in order of preference: each
// of the label's offerings in every zone the launch may use (the request's zone when
// the core chose one, else the pool's zones in order), so that an instance type is
// tried in every zone before the next type. With one zone the list is
// labelOfferings, so the positions recorded in create states keep their meaning.
func launchOfferings(req drivers.CreateRequest, pool *Pool, l *Label) []offering {
	zones := pool.zones()
	if req.AZ != "" {
		zones = []string{req.AZ}
	}
	var out []offering
	for _, o := range labelOfferings(l) {
		for _, z := range zones {
			o.az = z
			out = append(out, o)
		}
	}
	return out
}

// offeringKey identifies an offering of a pool. Pools are kept apart because their
// subnets may lie in different zones, so an offering without an explicit zone can be
// out of capacity for one pool and not for another.
type offeringKey struct {
	pool         string
	instanceType string
	az           string
	spot         bool
}

func keyOf(pool string, o offering) offeringKey {
	return offeringKey{pool: pool, instanceType: o.instanceType, az: o.az, spot: o.spot}
}

// offeringCache remembers, for a short while, the offerings of each pool that reported
// insufficient capacity, so that launches of the pool in this process try another
// offering at once instead of failing against the same one again. The entries are
// short-lived on purpose: a shortage is often over within a minute, and a long entry
// would make every launch of the pool fail without asking the cloud.
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
	now := c.now()
	for key, until := range c.until {
		if !now.Before(until) {
			delete(c.until, key)
		}
	}
	c.until[k] = now.Add(c.ttl)
}

// remaining returns how long the offering is still to be avoided; zero when it may be
// used.
func (c *offeringCache) remaining(k offeringKey) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.until[k]
	if !ok {
		return 0
	}
	left := until.Sub(c.now())
	if left <= 0 {
		delete(c.until, k)
		return 0
	}
	return left
}
