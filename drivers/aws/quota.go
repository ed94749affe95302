package aws

import (
	"context"
	"regexp"
	"slices"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"golang.org/x/sync/singleflight"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Service Quotas codes of the standard instance families' vCPUs.
const (
	QuotaStandardOnDemand = "L-1216C47A"
	QuotaStandardSpot     = "L-34B43A08"
)

// instanceQuotaCodes maps an instance family (the letters before the first digit of the
// type name) to the Service Quotas codes of its vCPUs, on-demand and spot. AWS
// publishes no mapping; this table is the one upstream Nodepool maintains from the
// quota names ("Running On-Demand P instances" → p). An empty code means the market
// has no quota of its own.
var instanceQuotaCodes = map[string][2]string{
	"a": {QuotaStandardOnDemand, QuotaStandardSpot}, "c": {QuotaStandardOnDemand, QuotaStandardSpot},
	"d": {QuotaStandardOnDemand, QuotaStandardSpot}, "h": {QuotaStandardOnDemand, QuotaStandardSpot},
	"i": {QuotaStandardOnDemand, QuotaStandardSpot}, "m": {QuotaStandardOnDemand, QuotaStandardSpot},
	"r": {QuotaStandardOnDemand, QuotaStandardSpot}, "t": {QuotaStandardOnDemand, QuotaStandardSpot},
	"z":   {QuotaStandardOnDemand, QuotaStandardSpot},
	"dl":  {"L-6E869C2A", "L-85EED4F7"},
	"f":   {"L-74FC7D96", "L-88CF9481"},
	"g":   {"L-DB2E81BA", "L-3819A6DF"},
	"vt":  {"L-DB2E81BA", "L-3819A6DF"},
	"u-":  {"L-43DA4232", ""}, // high memory
	"inf": {"L-1945791B", "L-B5D1601B"},
	"p":   {"L-417A185B", "L-7212CCBC"},
	"x":   {"L-7295265B", "L-E3A00192"},
	"trn": {"L-2C3B7624", "L-6B0D517C"},
	"hpc": {"L-F7808C92", ""},
}

var instanceFamilyRE = regexp.MustCompile(`^([a-z\-]+)\d`)

// QuotaCode returns the Service Quotas code that counts the vCPUs of instanceType in
// the spot or on-demand market, or "" when the family has none.
func QuotaCode(instanceType string, spot bool) string {
	m := instanceFamilyRE.FindStringSubmatch(instanceType)
	if m == nil {
		return ""
	}
	codes, ok := instanceQuotaCodes[m[1]]
	if !ok {
		return ""
	}
	if spot {
		return codes[1]
	}
	return codes[0]
}

// typeCache holds DescribeInstanceTypes answers for the driver's life.
type typeCache struct {
	d *Driver
	// flight makes concurrent first lookups of one type share a call.
	flight singleflight.Group
	mu     sync.Mutex
	m      map[string]ec2types.InstanceTypeInfo
}

func newTypeCache(d *Driver) *typeCache {
	return &typeCache{d: d, m: map[string]ec2types.InstanceTypeInfo{}}
}

// get describes one instance type. An unknown type is a *drivers.PermanentError.
func (c *typeCache) get(ctx context.Context, name string) (ec2types.InstanceTypeInfo, error) {
	c.mu.Lock()
	info, ok := c.m[name]
	c.mu.Unlock()
	if ok {
		return info, nil
	}
	if _, err, _ := c.flight.Do(name, func() (any, error) { return nil, c.fetch(ctx, []string{name}) }); err != nil {
		return ec2types.InstanceTypeInfo{}, err
	}
	c.mu.Lock()
	info, ok = c.m[name]
	c.mu.Unlock()
	if !ok {
		return ec2types.InstanceTypeInfo{}, drivers.Permanent("describing instance type %s: unknown instance type", name)
	}
	return info, nil
}

// getAll describes several instance types, skipping (and logging) unknown ones.
func (c *typeCache) getAll(ctx context.Context, names []string) (map[string]ec2types.InstanceTypeInfo, error) {
	var missing []string
	c.mu.Lock()
	for _, n := range names {
		if _, ok := c.m[n]; !ok && !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	c.mu.Unlock()
	for len(missing) > 0 {
		batch := missing[:min(100, len(missing))]
		missing = missing[len(batch):]
		err := c.fetch(ctx, batch)
		if err != nil && drivers.KindOf(err) == drivers.KindPermanent && len(batch) > 1 {
			// One unknown type fails the whole call: ask one at a time.
			for _, n := range batch {
				if err := c.fetch(ctx, []string{n}); err != nil {
					if drivers.KindOf(err) != drivers.KindPermanent {
						return nil, err
					}
					c.d.log.Warn("unknown instance type", "instance_type", n, "error", err)
				}
			}
			continue
		}
		if err != nil {
			if drivers.KindOf(err) != drivers.KindPermanent {
				return nil, err
			}
			c.d.log.Warn("unknown instance type", "instance_type", batch[0], "error", err)
		}
	}
	out := make(map[string]ec2types.InstanceTypeInfo, len(names))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		if info, ok := c.m[n]; ok {
			out[n] = info
		}
	}
	return out, nil
}

func (c *typeCache) fetch(ctx context.Context, names []string) error {
	types := make([]ec2types.InstanceType, 0, len(names))
	for _, n := range names {
		types = append(types, ec2types.InstanceType(n))
	}
	out, err := c.d.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: types})
	if err != nil {
		return classify(opRead, "describing instance types", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, info := range out.InstanceTypes {
		c.m[string(info.InstanceType)] = info
	}
	return nil
}

// typeQuota returns what one instance of a type consumes: cores, ram (MiB), one
// instance, and its vCPUs under its quota code.
func typeQuota(info ec2types.InstanceTypeInfo, spot bool) drivers.Resources {
	r := drivers.Resources{drivers.ResourceInstances: 1}
	var vcpus int64
	if v := info.VCpuInfo; v != nil {
		vcpus = int64(awssdk.ToInt32(v.DefaultVCpus))
		cores := int64(awssdk.ToInt32(v.DefaultCores))
		if cores == 0 {
			cores = vcpus
		}
		r[drivers.ResourceCores] = cores
	}
	if m := info.MemoryInfo; m != nil {
		r[drivers.ResourceRAM] = awssdk.ToInt64(m.SizeInMiB)
	}
	if code := QuotaCode(string(info.InstanceType), spot); code != "" && vcpus > 0 {
		r[code] = vcpus
	}
	return r
}

// LabelQuota returns what one node of the label consumes, for the label's preferred
// offering (its first instance type, in the spot market when use-spot is set). An
// unknown pool, label or instance type is a *drivers.PermanentError; a failure to ask
// EC2 (an unreachable endpoint, missing credentials, throttling) is a
// *drivers.TransientError and is not remembered: the next call asks again.
func (d *Driver) LabelQuota(ctx context.Context, pool, label string) (drivers.Resources, error) {
	_, l, err := d.label(pool, label)
	if err != nil {
		return nil, err
	}
	off := labelOfferings(l)[0]
	info, err := d.types.get(ctx, off.instanceType)
	if err != nil {
		return nil, err
	}
	return typeQuota(info, off.spot), nil
}

// QuotaLimits returns the account's vCPU limits (from Service Quotas) for the quota
// codes of the configured labels' instance types and markets. When the account cannot
// use Service Quotas (a permanent error, such as a policy without the permission), it
// returns no limits, so that only the pools' limits apply. When Service Quotas fails
// for a passing reason, the limits last read stay in use; before any were read, the
// failure is returned as a *drivers.TransientError.
func (d *Driver) QuotaLimits(ctx context.Context) (drivers.Resources, error) {
	values, err := d.serviceQ.get(ctx)
	if err != nil {
		return nil, err
	}
	out := drivers.Resources{}
	for _, p := range d.pools {
		for _, l := range p.labels {
			for _, off := range labelOfferings(l) {
				code := QuotaCode(off.instanceType, off.spot)
				if code == "" {
					continue
				}
				if v, ok := values[code]; ok {
					out[code] = int64(v)
				}
			}
		}
	}
	return out, nil
}

// quotaCache holds the ec2 quotas from Service Quotas for the cache TTL. A permanent
// failure is remembered as long, so that an account without access is not asked on
// every call; a transient one is not remembered.
type quotaCache struct {
	d       *Driver
	mu      sync.Mutex
	at      time.Time
	values  map[string]float64
	read    bool // values were read once
	failing bool
}

func newQuotaCache(d *Driver) *quotaCache { return &quotaCache{d: d} }

// get returns quota values by code: nil when Service Quotas cannot be used, the last
// values read when it fails for a passing reason, or a transient error when it does
// before any were read.
func (c *quotaCache) get(ctx context.Context) (map[string]float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.d.now()
	if !c.at.IsZero() && now.Sub(c.at) < c.d.opts.cacheTTL {
		return c.values, nil
	}
	values, err := c.fetch(ctx)
	switch {
	case err == nil:
		if c.failing {
			c.d.log.Info("service quotas available again")
		}
		c.at, c.values, c.read, c.failing = now, values, true, false
		return values, nil
	case drivers.KindOf(err) == drivers.KindPermanent, drivers.KindOf(err) == drivers.KindNotFound:
		if !c.failing {
			c.d.log.Warn("service quotas unavailable, using pool limits only", "error", err)
		}
		c.at, c.values, c.read, c.failing = now, nil, true, true
		return nil, nil
	case c.read:
		c.d.log.Warn("service quotas failing, keeping the limits last read", "error", err)
		return c.values, nil
	}
	if drivers.KindOf(err) != drivers.KindTransient {
		err = &drivers.TransientError{Err: err}
	}
	return nil, err
}

func (c *quotaCache) fetch(ctx context.Context) (map[string]float64, error) {
	values := map[string]float64{}
	p := servicequotas.NewListServiceQuotasPaginator(c.d.quotas, &servicequotas.ListServiceQuotasInput{
		ServiceCode: awssdk.String("ec2"), MaxResults: awssdk.Int32(100),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify(opRead, "listing ec2 service quotas", err)
		}
		for _, q := range page.Quotas {
			if q.QuotaCode != nil && q.Value != nil {
				values[*q.QuotaCode] = *q.Value
			}
		}
	}
	return values, nil
}
