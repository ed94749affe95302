package aws

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
)

func TestCreateAndDelete(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	req := request("0000000042", testPool, "debian-full", 1)
	req.Request.CreatedTime = 1700000000
	st := e.create(d, drivers.CreateState{Request: req})

	require.Equal(t, StepComplete, st.Step)
	inst := st.Instance
	require.NotNil(t, inst)
	var ext map[string]string
	require.NoError(t, json.Unmarshal([]byte(st.ExternalID), &ext), "external id %q is a JSON object", st.ExternalID)
	id := ext["instance"]
	require.True(t, strings.HasPrefix(id, "i-"))
	require.Equal(t, st.ExternalID, inst.ExternalID)
	require.True(t, inst.Ready)
	require.Equal(t, "AWS", inst.Cloud)
	require.Equal(t, "us-east-1", inst.Region)
	require.NotEmpty(t, inst.AZ)
	require.NotEmpty(t, inst.PublicIPv4)
	require.NotEmpty(t, inst.PrivateIPv4)
	require.Empty(t, inst.PublicIPv6)
	require.Equal(t, inst.PublicIPv4, inst.InterfaceIP, "interface ip prefers the public address")
	require.Equal(t, "debian", inst.ImageName)
	require.Equal(t, "admin", inst.Username)
	require.Equal(t, "bash", inst.ShellType)
	require.Equal(t, 2222, inst.ConnectionPort)
	require.Equal(t, drivers.Resources{"instances": 1, "cores": 1, "ram": 4096, QuotaStandardOnDemand: 2}, inst.Quota)
	require.Equal(t, "0000000042", inst.Metadata[drivers.MetaNodeID])
	require.JSONEq(t, `{"instance_type":"t3.medium","market":"on-demand","image_id":"ami-0a1b2c3d4e5f60003"}`, string(inst.DriverData))

	// What the cloud was asked for.
	got, ok := e.sim.Instance(id)
	require.True(t, ok)
	require.Equal(t, map[string]string{
		"Name":                   "np0000000042",
		"team":                   "ci",
		"tenant":                 "openstack",
		"request":                "req-100-0000000001",
		drivers.MetaNodeID:       "0000000042",
		drivers.MetaPoolName:     testPool,
		drivers.MetaProviderName: testProvider,
	}, got.Tags, "label tags, dynamic tags (the broken one skipped), metadata and Name")
	require.Equal(t, "#cloud-config\n", got.UserData)
	require.Equal(t, "arn:aws:iam::123456789012:instance-profile/ci-node", got.IAMInstanceProfile)
	require.Equal(t, "required", got.HTTPTokens)
	require.True(t, got.EBSOptimized)
	require.False(t, got.Spot)
	require.Equal(t, "zuul", got.KeyName)
	require.Equal(t, "subnet-0123456789abcdef0", got.SubnetID)
	require.Equal(t, []string{"sg-0123456789abcdef0"}, got.SecurityGroups)
	require.Equal(t, "np-0000000042-1-0-"+d.tokenSuffix, got.ClientToken)
	require.Len(t, got.Volumes, 1)
	vol := got.Volumes[0]
	require.Equal(t, "/dev/xvda", vol.Device)
	require.Equal(t, 80, vol.Size)
	require.Equal(t, "gp3", vol.Type)
	require.Equal(t, 4000, vol.IOPS)
	require.Equal(t, 250, vol.Throughput)
	require.True(t, vol.DeleteOnTermination)
	require.Equal(t, got.Tags, vol.Tags, "volumes carry the instance's tags")
	require.Contains(t, e.logs.String(), "skipping tag")

	ds := e.deleteAll(d, drivers.DeleteState{ExternalID: st.ExternalID, NodeID: req.NodeID})
	require.Equal(t, StepComplete, ds.Step)
	got, ok = e.sim.Instance(id)
	require.True(t, ok)
	require.Equal(t, ec2sim.StateTerminated, got.State)
	require.Empty(t, e.sim.Volumes(), "the root volume went with the instance")
}

func TestImageFiltersPickNewestAndAreCached(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	for i := range 3 {
		st := e.create(d, drivers.CreateState{Request: request(fmt.Sprintf("%010d", i+1), testPool, "jammy", 1)})
		var ext externalID
		require.NoError(t, json.Unmarshal([]byte(st.ExternalID), &ext))
		got, _ := e.sim.Instance(ext.Instance)
		require.Equal(t, ec2sim.ImageUbuntuJammy, got.ImageID, "the newest matching image")
		require.Equal(t, "/dev/sda1", got.Volumes[0].Device)
		require.Equal(t, 8, got.Volumes[0].Size)
	}
	// One filtered lookup and one lookup of the image's block devices (the filtered
	// answer already holds them, so none).
	require.Equal(t, int64(1), e.sim.Calls("DescribeImages"))
}

func TestPrivatePoolUsesInternalAddress(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	st := e.create(d, drivers.CreateState{Request: request("0000000007", "private", "internal", 1)})
	inst := st.Instance
	require.Empty(t, inst.PublicIPv4)
	require.NotEmpty(t, inst.PublicIPv6)
	require.Equal(t, inst.PrivateIPv4, inst.InterfaceIP)
	require.Equal(t, "us-east-1b", inst.AZ)
	require.False(t, d.HostKeyChecking("private"))
	require.True(t, d.HostKeyChecking(testPool))
}

// TestClientTokenIdempotency repeats the submit step after the first call timed out at
// the client although EC2 had started the instance: the repeat must find that
// instance, not start a second one.
func TestClientTokenIdempotency(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	st := drivers.CreateState{Request: request("0000000100", testPool, "jammy", 1)}
	st, err := d.AdvanceCreate(context.Background(), st)
	require.NoError(t, err)
	require.Equal(t, StepSubmitCreating, st.Step)

	// The simulator starts the instance and then holds the answer; the client gives
	// up once the instance exists, as an activity timing out would.
	e.sim.SetDelay("RunInstances", time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		for len(e.nodeInstances("0000000100")) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err = d.AdvanceCreate(ctx, st)
	cancel()
	require.Error(t, err)
	require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "a cancelled call is transient: %v", err)
	require.Len(t, e.nodeInstances("0000000100"), 1, "the unanswered call started the instance")
	first := e.nodeInstances("0000000100")[0].ID

	e.sim.SetDelay("RunInstances", 0)
	for range 2 {
		next, err := d.AdvanceCreate(context.Background(), st)
		require.NoError(t, err)
		require.Equal(t, formatExternalID(first), next.ExternalID)
		require.Equal(t, StepCreating, next.Step)
	}
	require.Len(t, e.nodeInstances("0000000100"), 1)
	require.Equal(t, int64(3), e.sim.Calls("RunInstances"))

	// A new attempt of the same node is a new instance.
	second := e.create(d, drivers.CreateState{Request: request("0000000100", testPool, "jammy", 2)})
	require.NotEqual(t, formatExternalID(first), second.ExternalID)
	require.Len(t, e.nodeInstances("0000000100"), 2)
}

func TestSpotFallback(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	e.sim.BlockOffering("m5.large", "spot", true)
	e.sim.BlockOffering("c5.large", "spot", true)

	st := drivers.CreateState{Request: request("0000000200", testPool, "fallback", 1)}
	var steps []string
	for !st.Complete {
		next, err := d.AdvanceCreate(context.Background(), st)
		require.NoError(t, err, "step %q", st.Step)
		steps = append(steps, fmt.Sprintf("%s/%s", st.Step, offeringOf(t, next)))
		st = next
		e.clock.Advance(st.Wait)
	}
	require.Equal(t, []string{
		"/m5.large/spot",                              // start picks the first offering
		"submit creating instance/c5.large/spot",      // no spot m5.large: next offering
		"submit creating instance/m5.large/on-demand", // no spot c5.large: on demand
	}, steps[:3])
	require.JSONEq(t, `{"instance_type":"m5.large","market":"on-demand","image_id":"ami-0a1b2c3d4e5f60003"}`, string(st.Instance.DriverData))
	require.Equal(t, int64(3), e.sim.Calls("RunInstances"))

	// The next launch in this process skips the offerings known to be out of capacity.
	st2 := e.create(d, drivers.CreateState{Request: request("0000000201", testPool, "fallback", 1)})
	require.Equal(t, int64(4), e.sim.Calls("RunInstances"), "no call for the unavailable spot offerings")
	require.Contains(t, string(st2.Instance.DriverData), `"on-demand"`)

	// After the unavailability expires, spot is tried again.
	e.sim.BlockOffering("m5.large", "spot", false)
	e.clock.Advance(DefaultUnavailableTTL)
	st3 := e.create(d, drivers.CreateState{Request: request("0000000202", testPool, "fallback", 1)})
	require.Contains(t, string(st3.Instance.DriverData), `"spot"`)
	require.Equal(t, int64(5), e.sim.Calls("RunInstances"))
}

func offeringOf(t *testing.T, st drivers.CreateState) string {
	t.Helper()
	data, err := decodeData[createData](st.Data)
	require.NoError(t, err)
	offs := labelOfferings(mustLabel(t, st))
	return offs[data.Offering].instanceType + "/" + offs[data.Offering].market()
}

func mustLabel(t *testing.T, st drivers.CreateState) *Label {
	t.Helper()
	cfg, err := DecodeConfig([]byte(fmt.Sprintf(baseConfig, "http://127.0.0.1:1")))
	require.NoError(t, err)
	for i, ps := range testPools {
		if ps.Name != st.Request.Pool {
			continue
		}
		for j, name := range ps.Labels {
			if name == st.Request.Label {
				return &cfg.Pools[i].Labels[j]
			}
		}
	}
	require.FailNow(t, "no label", st.Request.Label)
	return nil
}

func TestCapacityExhausted(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	e.sim.BlockOffering("m5.large", "on-demand", true)
	st := drivers.CreateState{Request: request("0000000300", testPool, "jammy", 1)}
	st, err := d.AdvanceCreate(context.Background(), st)
	require.NoError(t, err)
	_, err = d.AdvanceCreate(context.Background(), st)
	require.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "InsufficientInstanceCapacity")

	// While the only offering is known to be out of capacity, launches fail at once.
	_, err = d.AdvanceCreate(context.Background(), drivers.CreateState{Request: request("0000000301", testPool, "jammy", 1)})
	require.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
	require.Equal(t, int64(1), e.sim.Calls("RunInstances"))
}

func TestQuota(t *testing.T) {
	e := newEnv(t, ec2sim.Options{VCPULimits: map[string]int{QuotaStandardOnDemand: 4, QuotaStandardSpot: 16, "L-DB2E81BA": 8}})
	d := e.driver()
	ctx := context.Background()

	tests := []struct {
		pool, label string
		want        drivers.Resources
	}{
		{testPool, "jammy", drivers.Resources{"instances": 1, "cores": 1, "ram": 8192, QuotaStandardOnDemand: 2}},
		{testPool, "debian-full", drivers.Resources{"instances": 1, "cores": 1, "ram": 4096, QuotaStandardOnDemand: 2}},
		{testPool, "fallback", drivers.Resources{"instances": 1, "cores": 1, "ram": 8192, QuotaStandardSpot: 2}},
		{"private", "internal", drivers.Resources{"instances": 1, "cores": 1, "ram": 4096, QuotaStandardOnDemand: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.label, func(t *testing.T) {
			q, err := d.LabelQuota(ctx, tc.pool, tc.label)
			require.NoError(t, err)
			require.Equal(t, tc.want, q)
		})
	}
	calls := e.sim.Calls("DescribeInstanceTypes")
	_, err := d.LabelQuota(ctx, testPool, "jammy")
	require.NoError(t, err)
	require.Equal(t, calls, e.sim.Calls("DescribeInstanceTypes"), "instance types are cached")

	limits, err := d.QuotaLimits(ctx)
	require.NoError(t, err)
	require.Equal(t, drivers.Resources{QuotaStandardOnDemand: 4, QuotaStandardSpot: 16}, limits,
		"only the codes of configured offerings")
	_, err = d.QuotaLimits(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), e.sim.Calls("ListServiceQuotas"), "service quotas are cached")

	// The cloud enforces the vCPU limit: a third m5.large (2 vCPUs) exceeds 4.
	e.create(d, drivers.CreateState{Request: request("0000000400", testPool, "jammy", 1)})
	e.create(d, drivers.CreateState{Request: request("0000000401", testPool, "jammy", 1)})
	st, err := d.AdvanceCreate(ctx, drivers.CreateState{Request: request("0000000402", testPool, "jammy", 1)})
	require.NoError(t, err)
	_, err = d.AdvanceCreate(ctx, st)
	require.Equal(t, drivers.KindQuota, drivers.KindOf(err), "%v", err)

	// ListInstances reports what every instance uses.
	insts, err := d.ListInstances(ctx)
	require.NoError(t, err)
	require.Len(t, insts, 2)
	for _, in := range insts {
		require.Equal(t, int64(2), in.Quota[QuotaStandardOnDemand])
	}
}

func TestQuotaLimitsWithoutServiceQuotas(t *testing.T) {
	e := newEnv(t, ec2sim.Options{VCPULimits: map[string]int{QuotaStandardOnDemand: 4}})
	d := e.driver()
	ctx := context.Background()
	e.sim.InjectError("ListServiceQuotas", "AccessDeniedException", 5)
	for range 3 {
		limits, err := d.QuotaLimits(ctx)
		require.NoError(t, err)
		require.Empty(t, limits)
	}
	require.Equal(t, int64(1), e.sim.Calls("ListServiceQuotas"), "the failure is cached too")
	require.Equal(t, 1, logCount(e.logs, "service quotas unavailable"), "logged once")

	// The failure is remembered for the cache TTL; later failures are not logged again,
	// and once the API answers the limits come back.
	for range 4 {
		e.clock.Advance(DefaultCacheTTL)
		limits, err := d.QuotaLimits(ctx)
		require.NoError(t, err)
		require.Empty(t, limits)
	}
	require.Equal(t, int64(5), e.sim.Calls("ListServiceQuotas"))
	require.Equal(t, 1, logCount(e.logs, "service quotas unavailable"))
	e.clock.Advance(DefaultCacheTTL)
	limits, err := d.QuotaLimits(ctx)
	require.NoError(t, err)
	require.Equal(t, drivers.Resources{QuotaStandardOnDemand: 4}, limits)
	require.Equal(t, 1, logCount(e.logs, "service quotas available again"))
}

func TestLabelQuotaErrors(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	cfg := e.config()
	cfg.Pools[0].Labels[0].InstanceType = "m99.huge"
	d := e.driverWith(cfg)
	tests := []struct {
		name, pool, label string
	}{
		{"unknown instance type", testPool, "jammy"},
		{"unknown label", testPool, "nope"},
		{"unknown pool", "nope", "jammy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.LabelQuota(context.Background(), tc.pool, tc.label)
			require.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "%v", err)
		})
	}
}

// TestSharedListing checks that N concurrent launches waiting for their instances
// cost one DescribeInstances per poll interval, not N.
func TestSharedListing(t *testing.T) {
	const n = 20
	e := newEnv(t, ec2sim.Options{BootTime: 4 * time.Second})
	d := e.driver()
	ctx := context.Background()
	states := make([]drivers.CreateState, n)
	for i := range states {
		st := drivers.CreateState{Request: request(fmt.Sprintf("%010d", 500+i), testPool, "jammy", 1)}
		for st.Step != StepCreating {
			var err error
			st, err = d.AdvanceCreate(ctx, st)
			require.NoError(t, err)
		}
		states[i] = st
	}
	e.sim.ResetStats()

	rounds := 0
	for done := 0; done < n; {
		require.Less(t, rounds, 10, "launches did not complete")
		e.clock.Advance(testPoll)
		rounds++
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range states {
			if states[i].Complete {
				continue
			}
			wg.Go(func() {
				for range 3 { // a few polls within one interval cost nothing more
					states[i], errs[i] = d.AdvanceCreate(ctx, states[i])
					if errs[i] != nil || states[i].Complete {
						return
					}
				}
			})
		}
		wg.Wait()
		done = 0
		for i := range states {
			require.NoError(t, errs[i])
			if states[i].Complete {
				done++
			}
		}
		require.Equal(t, int64(rounds), e.sim.Calls("DescribeInstances"), "round %d", rounds)
	}
	require.Equal(t, 4, rounds, "the instances boot in four poll intervals")
}

func TestMissingFromListingGracePeriod(t *testing.T) {
	e := newEnv(t, ec2sim.Options{ListingLag: 3 * time.Second, BootTime: time.Second})
	d := e.driver()
	st := e.create(d, drivers.CreateState{Request: request("0000000600", testPool, "jammy", 1)})
	require.True(t, st.Complete, "the launch waited for the lagging listing instead of failing")

	// An instance that stays unknown after the grace period fails the launch.
	bad := drivers.CreateState{
		Request:    request("0000000601", testPool, "jammy", 1),
		Step:       StepCreating,
		ExternalID: formatExternalID("i-00000000000000bad"),
		Data:       encodeData(createData{InstanceID: "i-00000000000000bad", SubmittedAt: e.clock.Now()}),
	}
	next, err := d.AdvanceCreate(context.Background(), bad)
	require.NoError(t, err, "within the grace period")
	require.False(t, next.Complete)
	e.clock.Advance(testGrace)
	_, err = d.AdvanceCreate(context.Background(), bad)
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "disappeared")
}

func TestTerminatedWhileLaunching(t *testing.T) {
	e := newEnv(t, ec2sim.Options{BootTime: 10 * time.Second, TerminateTime: time.Millisecond})
	d := e.driver()
	st := drivers.CreateState{Request: request("0000000700", testPool, "jammy", 1)}
	for st.Step != StepCreating {
		var err error
		st, err = d.AdvanceCreate(context.Background(), st)
		require.NoError(t, err)
	}
	data, err := decodeData[createData](st.Data)
	require.NoError(t, err)
	_, err = e.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{data.InstanceID}})
	require.NoError(t, err)
	e.clock.Advance(testPoll)
	_, err = d.AdvanceCreate(context.Background(), st)
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "terminated while launching")
}

func TestDeleteMissingInstance(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	tests := []struct {
		name       string
		externalID string
	}{
		{"empty", ""},
		{"unknown object", `{"instance":"i-0000000000000dead"}`},
		{"unknown plain", "i-0000000000000dead"},
		{"unknown quoted", `"i-0000000000000dead"`},
		{"malformed id", "not-an-instance"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := e.deleteAll(d, drivers.DeleteState{ExternalID: tc.externalID, NodeID: "0000000800"})
			require.True(t, st.Complete)
		})
	}
	// A host that EC2 does not know counts as released.
	st := e.deleteAll(d, drivers.DeleteState{ExternalID: `{"host":"h-0000000000000dead"}`, NodeID: "0000000801"})
	require.True(t, st.Complete)
	_, err := d.AdvanceDelete(context.Background(), drivers.DeleteState{ExternalID: `{}`})
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "%v", err)
}

func TestDeleteAcceptsPlainInstanceID(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	st := e.create(d, drivers.CreateState{Request: request("0000000900", testPool, "jammy", 1)})
	var ext externalID
	require.NoError(t, json.Unmarshal([]byte(st.ExternalID), &ext))
	e.deleteAll(d, drivers.DeleteState{ExternalID: ext.Instance})
	got, _ := e.sim.Instance(ext.Instance)
	require.Equal(t, ec2sim.StateTerminated, got.State)
}

func TestDeleteCleansUpVolumesLeftBehind(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	ctx := context.Background()
	// An instance with a data volume that outlives it, as older launchers or AMIs with
	// extra mappings leave; and a volume of another node that must stay.
	tags := []ec2types.Tag{
		{Key: awssdk.String(drivers.MetaProviderName), Value: awssdk.String(testProvider)},
		{Key: awssdk.String(drivers.MetaNodeID), Value: awssdk.String("0000001000")},
	}
	out, err := e.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: awssdk.String(ec2sim.ImageDebian12), InstanceType: ec2types.InstanceTypeT3Micro,
		MinCount: awssdk.Int32(1), MaxCount: awssdk.Int32(1),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: awssdk.String("/dev/sdb"), Ebs: &ec2types.EbsBlockDevice{
			VolumeSize: awssdk.Int32(10), DeleteOnTermination: awssdk.Bool(false)}}},
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeInstance, Tags: tags},
			{ResourceType: ec2types.ResourceTypeVolume, Tags: tags},
		},
	})
	require.NoError(t, err)
	_, err = e.ec2.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: awssdk.String("us-east-1a"), Size: awssdk.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: []ec2types.Tag{
			{Key: awssdk.String(drivers.MetaProviderName), Value: awssdk.String(testProvider)},
			{Key: awssdk.String(drivers.MetaNodeID), Value: awssdk.String("0000009999")},
		}}}})
	require.NoError(t, err)
	e.clock.Advance(5 * time.Second)

	e.deleteAll(d, drivers.DeleteState{ExternalID: formatExternalID(*out.Instances[0].InstanceId), NodeID: "0000001000"})
	vols := e.sim.Volumes()
	require.Len(t, vols, 1)
	require.Equal(t, "0000009999", vols[0].Tags[drivers.MetaNodeID])
	require.Equal(t, int64(1), e.sim.Calls("DeleteVolume"))
}

func TestLeakListingAndCleanup(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	ctx := context.Background()
	ours := e.create(d, drivers.CreateState{Request: request("0000001100", testPool, "jammy", 1)})
	var ext externalID
	require.NoError(t, json.Unmarshal([]byte(ours.ExternalID), &ext))

	// Another system's instance, and a volume of ours nothing holds.
	_, err := e.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: awssdk.String(ec2sim.ImageDebian12), InstanceType: ec2types.InstanceTypeM5Xlarge,
		MinCount: awssdk.Int32(1), MaxCount: awssdk.Int32(1),
		InstanceMarketOptions: &ec2types.InstanceMarketOptionsRequest{MarketType: ec2types.MarketTypeSpot},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{
			{Key: awssdk.String("owner"), Value: awssdk.String("someone else")}}}},
	})
	require.NoError(t, err)
	vol, err := e.ec2.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: awssdk.String("us-east-1a"), Size: awssdk.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: []ec2types.Tag{
			{Key: awssdk.String(drivers.MetaProviderName), Value: awssdk.String(testProvider)},
			{Key: awssdk.String(drivers.MetaNodeID), Value: awssdk.String("0000001199")},
		}}}})
	require.NoError(t, err)
	e.clock.Advance(testPoll)

	insts, err := d.ListInstances(ctx)
	require.NoError(t, err)
	require.Len(t, insts, 2, "ListInstances shows every instance of the account")
	var foreign drivers.Instance
	for _, in := range insts {
		if in.ExternalID != ours.ExternalID {
			foreign = in
		}
	}
	require.Equal(t, "someone else", foreign.Metadata["owner"])
	require.Equal(t, drivers.Resources{"instances": 1, "cores": 2, "ram": 16384, QuotaStandardSpot: 4}, foreign.Quota)

	rs, err := d.ListResources(ctx)
	require.NoError(t, err)
	require.Equal(t, []drivers.Resource{
		{Type: ResourceInstance, ID: ext.Instance, Metadata: ours.Instance.Metadata},
		{Type: ResourceVolume, ID: *vol.VolumeId, Metadata: map[string]string{
			drivers.MetaProviderName: testProvider, drivers.MetaNodeID: "0000001199"}},
	}, rs, "our instance and our unattached volume; not the foreign instance nor our attached root volume")

	for _, r := range rs {
		require.NoError(t, d.DeleteResource(ctx, r))
	}
	for _, r := range rs {
		require.NoError(t, d.DeleteResource(ctx, r), "deleting again is fine")
	}
	e.clock.Advance(5 * time.Second)
	rs, err = d.ListResources(ctx)
	require.NoError(t, err)
	require.Empty(t, rs)
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(d.DeleteResource(ctx, drivers.Resource{Type: "bucket", ID: "x"})))
}

// TestBatchedTerminations deletes many nodes at once: their terminations share
// TerminateInstances calls of up to 50 ids.
func TestBatchedTerminations(t *testing.T) {
	e := newEnv(t, ec2sim.Options{BootTime: time.Millisecond})
	// The window only bounds the wait for a batch to fill; a full batch goes at once.
	d := e.driver(WithBatchWindow(time.Minute))
	ctx := context.Background()
	out, err := e.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: awssdk.String(ec2sim.ImageDebian12), InstanceType: ec2types.InstanceTypeT3Micro,
		MinCount: awssdk.Int32(1), MaxCount: awssdk.Int32(MaxTerminateBatch),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{
			{Key: awssdk.String(drivers.MetaProviderName), Value: awssdk.String(testProvider)}}}},
	})
	require.NoError(t, err)
	require.Len(t, out.Instances, MaxTerminateBatch)

	var wg sync.WaitGroup
	results := make([]drivers.DeleteState, len(out.Instances))
	errs := make([]error, len(out.Instances))
	for i, in := range out.Instances {
		wg.Go(func() {
			results[i], errs[i] = d.AdvanceDelete(ctx, drivers.DeleteState{ExternalID: formatExternalID(*in.InstanceId)})
		})
	}
	wg.Wait()
	for i := range results {
		require.NoError(t, errs[i])
		require.Equal(t, StepDeletingInstance, results[i].Step)
	}
	require.Equal(t, int64(1), e.sim.Calls("TerminateInstances"), "fifty terminations, one call")
	for _, in := range e.sim.Instances() {
		require.NotEqual(t, ec2sim.StateRunning, in.State)
	}
}

// TestBatchWithUnknownInstance: EC2 rejects a whole batch for one unknown id; every
// request still gets its own answer.
func TestBatchWithUnknownInstance(t *testing.T) {
	e := newEnv(t, ec2sim.Options{BootTime: time.Millisecond})
	d := e.driver(WithBatchWindow(300 * time.Millisecond))
	ctx := context.Background()
	out, err := e.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: awssdk.String(ec2sim.ImageDebian12), InstanceType: ec2types.InstanceTypeT3Micro,
		MinCount: awssdk.Int32(1), MaxCount: awssdk.Int32(2),
	})
	require.NoError(t, err)
	ids := []string{*out.Instances[0].InstanceId, "i-0000000000000dead", *out.Instances[1].InstanceId}
	var wg sync.WaitGroup
	results := make([]drivers.DeleteState, len(ids))
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Go(func() { results[i], errs[i] = d.AdvanceDelete(ctx, drivers.DeleteState{ExternalID: id}) })
	}
	wg.Wait()
	require.NoError(t, firstError(errs))
	require.Equal(t, StepDeletingInstance, results[0].Step)
	require.Equal(t, StepDeletingVolumes, results[1].Step, "the unknown instance counts as deleted")
	require.Equal(t, StepDeletingInstance, results[2].Step)
	for _, id := range []string{ids[0], ids[2]} {
		got, _ := e.sim.Instance(id)
		require.NotEqual(t, ec2sim.StateRunning, got.State)
	}
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func TestCloseFailsPendingWork(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	require.NoError(t, d.Close())
	require.NoError(t, d.Close(), "closing twice is fine")
	_, err := d.AdvanceDelete(context.Background(), drivers.DeleteState{ExternalID: "i-0000000000000001"})
	require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "%v", err)
}

func TestUnreachableEndpointIsTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	e := newEnv(t, ec2sim.Options{})
	cfg := e.config()
	cfg.Endpoint = "http://" + addr
	d := e.driverWith(cfg)
	_, err = d.AdvanceCreate(context.Background(), drivers.CreateState{Request: request("0000001200", testPool, "jammy", 1)})
	require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "%v", err)
	_, err = d.ListInstances(context.Background())
	require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "%v", err)
}

func TestUserDataIsBase64OnTheWire(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	in, err := d.runInput(context.Background(), d.log, request("0000001300", testPool, "debian-full", 1),
		d.pools[testPool].cfg, d.pools[testPool].labels["debian-full"], createData{ImageID: ec2sim.ImageDebian12}, offering{instanceType: "t3.medium"})
	require.NoError(t, err)
	raw, err := base64.StdEncoding.DecodeString(*in.UserData)
	require.NoError(t, err)
	require.Equal(t, "#cloud-config\n", string(raw))
}

// TestLargeResponses reads large listings many times through the driver's own SDK
// client, which must not lose responses to net/http closing the connection under them
// (see sdkHTTPClient).
func TestLargeResponses(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	ctx := context.Background()
	_, err := e.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: awssdk.String(ec2sim.ImageDebian12), InstanceType: ec2types.InstanceTypeT3Micro,
		MinCount: awssdk.Int32(1), MaxCount: awssdk.Int32(100),
	})
	require.NoError(t, err)
	for i := range 20 {
		insts, err := d.ListInstances(ctx)
		require.NoError(t, err, "listing %d", i)
		require.Len(t, insts, 100)
	}
}

// TestInjectedClients checks that WithEC2API and WithQuotasAPI replace the clients the
// driver would build: the configured endpoint is never used.
func TestInjectedClients(t *testing.T) {
	e := newEnv(t, ec2sim.Options{VCPULimits: map[string]int{QuotaStandardOnDemand: 8}})
	cfg := e.config()
	cfg.Endpoint = "http://127.0.0.1:1"
	quotas := servicequotas.NewFromConfig(awssdk.Config{
		Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		HTTPClient: wrapHTTPClient(nil), Retryer: func() awssdk.Retryer { return awssdk.NopRetryer{} },
	}, func(o *servicequotas.Options) { o.BaseEndpoint = awssdk.String(e.url) })
	d := e.driverWith(cfg, WithEC2API(e.ec2), WithQuotasAPI(quotas))
	st := e.create(d, drivers.CreateState{Request: request("0000001400", testPool, "jammy", 1)})
	require.True(t, st.Complete)
	limits, err := d.QuotaLimits(context.Background())
	require.NoError(t, err)
	require.Equal(t, drivers.Resources{QuotaStandardOnDemand: 8}, limits)
}

// TestConcurrentLookupsShareCalls starts many launches at once: they share one image
// lookup and one instance type lookup.
func TestConcurrentLookupsShareCalls(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	e.sim.SetDelay("DescribeImages", 50*time.Millisecond)
	e.sim.SetDelay("DescribeInstanceTypes", 50*time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = d.AdvanceCreate(context.Background(), drivers.CreateState{Request: request(fmt.Sprintf("%010d", 1500+i), testPool, "jammy", 1)})
			if errs[i] == nil {
				_, errs[i] = d.LabelQuota(context.Background(), testPool, "jammy")
			}
		})
	}
	wg.Wait()
	require.NoError(t, firstError(errs))
	require.Equal(t, int64(1), e.sim.Calls("DescribeImages"))
	require.Equal(t, int64(1), e.sim.Calls("DescribeInstanceTypes"))
}
