package aws

import (
	"context"
	"regexp"
	"slices"
	"strings"
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

// hostQuotaCodes maps an instance family ("m5") to the Service Quotas code that
// counts its dedicated hosts, as upstream Nodepool maintains it.
var hostQuotaCodes = map[string]string{
	"a1": "L-949445B0", "c3": "L-8D142A2E", "c4": "L-E4BF28E0", "c5": "L-81657574", "c5a": "L-03F01FD8", "c5d": "L-C93F66A2", "c5n": "L-20F13EBD", "c6a": "L-D75D2E84", "c6g": "L-A749B537", "c6gd": "L-545AED39", "c6gn": "L-5E3A299D", "c6i": "L-5FA3355A", "c6id": "L-1BBC5241", "c6in": "L-6C2C40CC", "c7a": "L-698B67E5", "c7g": "L-13B8FCE8", "c7gd": "L-EF58B059", "c7gn": "L-97677CE3", "c7i": "L-587AA6E3", "d2": "L-8B27377A", "dl1": "L-AD667A3D", "f1": "L-5C4CD236", "g3": "L-DE82EABA", "g3s": "L-9675FDCD", "g4ad": "L-FD8E9B9A", "g4dn": "L-CAE24619", "g5": "L-A6E7FE5E", "g5g": "L-4714FFEA", "g6": "L-B88B9D6B", "gr6": "L-E68C3AFF", "h1": "L-84391ECC", "i2": "L-6222C1B6", "i3": "L-8E60B0B1", "i3en": "L-77EE2B11", "i4g": "L-F62CBADB", "i4i": "L-0300530D", "im4gn": "L-93155D6F", "inf": "L-5480EFD2", "inf2": "L-E5BCF7B5", "is4gen": "L-CB4F5825", "m3": "L-3C82F907", "m4": "L-EF30B25E", "m5": "L-8B7BF662", "m5a": "L-B10F70D6", "m5ad": "L-74F41837", "m5d": "L-8CCBD91B", "m5dn": "L-DA07429F", "m5n": "L-24D7D4AD", "m5zn": "L-BD9BD803", "m6a": "L-80F2B67F", "m6g": "L-D50A37FA", "m6gd": "L-84FB37AA", "m6i": "L-D269BEFD", "m6id": "L-FDB0A352", "m6idn": "L-9721EDD9", "m6in": "L-D037CF10", "m7a": "L-4740F819", "m7g": "L-9126620E", "m7gd": "L-F8516154", "m7i": "L-30E31217", "mac1": "L-A8448DC5", "mac2": "L-5D8DADF5", "mac2-m2": "L-B90B5B66", "mac2-m2pro": "L-14F120D1", "p2": "L-2753CF59",
	"p3": "L-A0A19F79", "p3dn": "L-B601B3B6", "p4d": "L-86A789C3", "p5": "L-5136197D", "r3": "L-B7208018", "r4": "L-313524BA", "r5": "L-EA4FD6CF", "r5a": "L-8FE30D52", "r5ad": "L-EC7178B6", "r5b": "L-A2D59C67", "r5d": "L-8814B54F", "r5dn": "L-4AB14223", "r5n": "L-52EF324A", "r6a": "L-BC1589C5", "r6g": "L-B6D6065D", "r6gd": "L-EF284EFB", "r6i": "L-F13A970A", "r6id": "L-B89271A9", "r6idn": "L-C4EABC2C", "r6in": "L-EA99608B", "r7a": "L-4D15192B", "r7g": "L-67B8B4C7", "r7gd": "L-01137DCE", "r7i": "L-55E05032", "r7iz": "L-BC9FCC71", "t3": "L-1586174D", "trn1": "L-5E4FB836", "trn1n": "L-39926A58", "u-12tb1": "L-D6994875", "u-18tb1": "L-5F7FD336",
	"u-24tb1": "L-FACBE655", "u-3tb1": "L-7F5506AB", "u-6tb1": "L-89870E8E", "u-9tb1": "L-98E1FFAC", "u7in-16tb": "L-75B9BECB", "u7in-24tb": "L-CA51381E", "u7in-32tb": "L-9D28191F", "vt1": "L-A68CFBF7", "x1": "L-DE3D9563",
	"x1e": "L-DEF8E115", "x2gd": "L-5CC9EA82", "x2idn": "L-A84ABF80", "x2iedn": "L-D0AA08B1", "x2iezn": "L-888B4496", "z1d": "L-F035E935",
}

// HostQuotaCode returns the Service Quotas code that counts dedicated hosts of
// instanceType's family, or "" when the family has none.
func HostQuotaCode(instanceType string) string {
	family, _, ok := strings.Cut(instanceType, ".")
	if !ok {
		return ""
	}
	return hostQuotaCodes[family]
}

// hostQuota returns what a node on a dedicated host of its own consumes: one
// instance, its cores and memory, and one host under the family's dedicated-host
// quota code. Instances on a dedicated host do not count against the vCPU quotas.
func hostQuota(info ec2types.InstanceTypeInfo) drivers.Resources {
	r := typeQuota(info, false)
	if code := QuotaCode(string(info.InstanceType), false); code != "" {
		delete(r, code)
	}
	if code := HostQuotaCode(string(info.InstanceType)); code != "" {
		r[code] = 1
	}
	return r
}

// instanceQuota returns what a running instance consumes.
func instanceQuota(info ec2types.InstanceTypeInfo, in ec2types.Instance) drivers.Resources {
	if hostOf(in) != "" {
		return hostQuota(info)
	}
	return typeQuota(info, in.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot)
}

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
// offering (its first instance type, in the spot market when use-spot is set). A
// fleet label counts the largest of its instance types (per resource), since EC2
// picks the type; a dedicated-host label counts its host (see hostQuota). An unknown
// pool, label or instance type is a *drivers.PermanentError; a failure to ask EC2 (an
// unreachable endpoint, missing credentials, throttling) is a
// *drivers.TransientError and is not remembered: the next call asks again.
func (d *Driver) LabelQuota(ctx context.Context, pool, label string) (drivers.Resources, error) {
	_, l, err := d.label(pool, label)
	if err != nil {
		return nil, err
	}
	off := labelOfferings(l)[0]
	switch {
	case l.DedicatedHost:
		info, err := d.types.get(ctx, l.InstanceType)
		if err != nil {
			return nil, err
		}
		return hostQuota(info), nil
	case off.fleet:
		out := drivers.Resources{}
		for _, t := range l.Fleet.InstanceTypes {
			info, err := d.types.get(ctx, t)
			if err != nil {
				return nil, err
			}
			for k, v := range typeQuota(info, off.spot) {
				out[k] = max(out[k], v)
			}
		}
		return out, nil
	}
	info, err := d.types.get(ctx, off.instanceType)
	if err != nil {
		return nil, err
	}
	return typeQuota(info, off.spot), nil
}

// QuotaLimits returns the account's limits (from Service Quotas) for the quota codes
// of the configured labels: the vCPU codes of their instance types and markets, and
// the dedicated-host codes of dedicated-host labels. When the account cannot use
// Service Quotas (a permanent error, such as a policy without the permission), it
// returns no limits, so that only the pools' limits apply. When Service Quotas fails
// for a passing reason, the limits last read stay in use; before any were read, the
// failure is returned as a *drivers.TransientError.
func (d *Driver) QuotaLimits(ctx context.Context) (drivers.Resources, error) {
	values, err := d.serviceQ.get(ctx)
	if err != nil {
		return nil, err
	}
	out := drivers.Resources{}
	use := func(code string) {
		if code == "" {
			return
		}
		if v, ok := values[code]; ok {
			out[code] = int64(v)
		}
	}
	for _, p := range d.pools {
		for _, l := range p.labels {
			if l.DedicatedHost {
				use(HostQuotaCode(l.InstanceType))
				continue
			}
			for _, off := range labelOfferings(l) {
				for _, t := range l.instanceTypes() {
					use(QuotaCode(t, off.spot))
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
