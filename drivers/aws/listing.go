package aws

import (
	"context"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// listing is a snapshot of the provider's instances (those tagged with its name),
// terminated ones included, as EC2 shows them for a while after termination.
type listing struct {
	// at is when the DescribeInstances calls of the snapshot started.
	at   time.Time
	byID map[string]ec2types.Instance
}

// listCall is one fetch of the listing that concurrent callers wait for.
type listCall struct {
	done chan struct{}
	l    *listing
	err  error
}

// instanceLister answers "what state is instance X in" for every launch and delete of
// the provider from one shared DescribeInstances listing, refreshed at most once per
// poll interval and fetched by one caller at a time, so that the cost of polling does
// not grow with the number of nodes.
type instanceLister struct {
	d    *Driver
	mu   sync.Mutex
	last *listing
	call *listCall
}

func newInstanceLister(d *Driver) *instanceLister { return &instanceLister{d: d} }

// get returns a listing younger than the poll interval, starting a fetch when there is
// none and joining the fetch in flight if there is one.
func (l *instanceLister) get(ctx context.Context) (*listing, error) {
	l.mu.Lock()
	now := l.d.now()
	if l.last != nil && now.Sub(l.last.at) < l.d.opts.pollInterval {
		last := l.last
		l.mu.Unlock()
		return last, nil
	}
	c := l.call
	if c == nil {
		c = &listCall{done: make(chan struct{})}
		l.call = c
		go l.fetch(c, now)
	}
	l.mu.Unlock()
	select {
	case <-c.done:
		return c.l, c.err
	case <-ctx.Done():
		return nil, classify(opRead, "waiting for the instance listing", ctx.Err())
	}
}

// nextRefresh returns how long until the listing may be refreshed.
func (l *instanceLister) nextRefresh() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		return 0
	}
	return max(0, l.last.at.Add(l.d.opts.pollInterval).Sub(l.d.now()))
}

// fetch runs one listing on the driver's background context, so that a caller that
// gives up does not fail the others waiting for it.
func (l *instanceLister) fetch(c *listCall, started time.Time) {
	ctx, cancel := context.WithTimeout(l.d.bg, callTimeout)
	defer cancel()
	instances, err := l.d.describeInstances(ctx, []ec2types.Filter{{
		Name: awssdk.String("tag:" + drivers.MetaProviderName), Values: []string{l.d.provider},
	}})
	l.mu.Lock()
	if err != nil {
		c.err = classify(opRead, "listing instances of provider "+l.d.provider, err)
	} else {
		snap := &listing{at: started, byID: make(map[string]ec2types.Instance, len(instances))}
		for _, in := range instances {
			snap.byID[awssdk.ToString(in.InstanceId)] = in
		}
		c.l = snap
		if l.last == nil || !started.Before(l.last.at) {
			l.last = snap
		}
	}
	l.call = nil
	l.mu.Unlock()
	close(c.done)
}

// describeInstances lists every instance matching filters, following pagination.
func (d *Driver) describeInstances(ctx context.Context, filters []ec2types.Filter) ([]ec2types.Instance, error) {
	var out []ec2types.Instance
	p := ec2.NewDescribeInstancesPaginator(d.ec2, &ec2.DescribeInstancesInput{Filters: filters, MaxResults: awssdk.Int32(1000)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	return out, nil
}

// describeInstance asks for one instance by id; it returns drivers.ErrNotFound (as
// classified) when EC2 does not know it.
func (d *Driver) describeInstance(ctx context.Context, id string) (ec2types.Instance, error) {
	out, err := d.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return ec2types.Instance{}, classify(opRead, "describing instance "+id, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if awssdk.ToString(in.InstanceId) == id {
				return in, nil
			}
		}
	}
	return ec2types.Instance{}, classify(opRead, "describing instance "+id, drivers.ErrNotFound)
}
