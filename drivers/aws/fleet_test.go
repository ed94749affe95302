package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/driverstest"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
)

// specialConfig is a provider section with fleet and dedicated-host labels; %s is
// the endpoint.
const specialConfig = `
region-name: us-east-1
endpoint: %s
cloud-images:
  - name: debian
    image-id: ami-0a1b2c3d4e5f60003
    username: admin
pools:
  - subnet-id: subnet-0123456789abcdef0
    security-group-id: sg-0123456789abcdef0
    availability-zone: us-east-1a
    labels:
      - cloud-image: debian
        key-name: zuul
        volume-type: gp3
        volume-size: 40
        imdsv2: required
        fleet:
          instance-types: [m5.large, t3.medium, c5.large]
          allocation-strategy: prioritized
      - cloud-image: debian
        key-name: zuul
        fleet:
          instance-types: [m5.large, c5.large, t3.medium]
          allocation-strategy: lowest-price
      - cloud-image: debian
        key-name: zuul
        use-spot: true
        fleet:
          instance-types: [m5.large, c5.large]
          allocation-strategy: price-capacity-optimized
      - cloud-image: debian
        key-name: zuul
        fleet:
          instance-types: [m5.large, c5.large]
          allocation-strategy: capacity-optimized
          market-type: spot
      - cloud-image: debian
        key-name: zuul
        instance-type: m5.large
        dedicated-host: true
        tags:
          team: ci
`

const specialPool = "special"

var specialPools = []PoolSpec{
	{Name: specialPool, Labels: []string{"fleet", "fleet-cheap", "fleet-spot", "fleet-market", "host"}},
}

func (e *env) specialDriver(extra ...Option) *Driver {
	e.t.Helper()
	cfg, err := DecodeConfig([]byte(fmt.Sprintf(specialConfig, e.url)))
	require.NoError(e.t, err)
	return e.driverFor(cfg, specialPools, extra...)
}

func specialRequest(nodeID, label string) drivers.CreateRequest {
	r := request(nodeID, specialPool, label, 1)
	r.Metadata[drivers.MetaPoolName] = specialPool
	return r
}

func TestFleetLaunch(t *testing.T) {
	tests := []struct {
		name     string
		label    string
		blocked  [][2]string // instance type, market
		wantType string
		wantSpot bool
	}{
		{"prioritized takes the first type", "fleet", nil, "m5.large", false},
		{"prioritized falls through a type without capacity", "fleet", [][2]string{{"m5.large", "on-demand"}}, "t3.medium", false},
		{"prioritized falls through two", "fleet", [][2]string{{"m5.large", "on-demand"}, {"t3.medium", "on-demand"}}, "c5.large", false},
		{"lowest price takes the smallest", "fleet-cheap", nil, "c5.large", false},
		{"spot by use-spot", "fleet-spot", nil, "c5.large", true},
		{"spot by market-type", "fleet-market", [][2]string{{"m5.large", "spot"}}, "c5.large", true},
		{"on-demand blocks leave spot alone", "fleet-market", [][2]string{{"m5.large", "on-demand"}}, "m5.large", true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ec2sim.Options{})
			d := e.specialDriver()
			for _, b := range tc.blocked {
				e.sim.BlockOffering(b[0], b[1], true)
			}
			nodeID := fmt.Sprintf("00000020%02d", i)
			st := e.create(d, drivers.CreateState{Request: specialRequest(nodeID, tc.label)})
			require.NotNil(t, st.Instance)
			ins := e.nodeInstances(nodeID)
			require.Len(t, ins, 1)
			in := ins[0]
			require.Equal(t, tc.wantType, in.InstanceType)
			require.Equal(t, tc.wantSpot, in.Spot)
			require.Equal(t, formatExternalID(in.ID), st.ExternalID)
			require.Equal(t, "us-east-1a", in.AZ)
			require.Equal(t, "subnet-0123456789abcdef0", in.SubnetID)
			require.Equal(t, []string{"sg-0123456789abcdef0"}, in.SecurityGroups)
			require.Equal(t, "zuul", in.KeyName)
			require.Equal(t, nodeID, in.Tags[drivers.MetaNodeID])
			require.Equal(t, "np"+nodeID, in.Tags["Name"])
			require.Len(t, in.Volumes, 1)
			require.Equal(t, nodeID, in.Volumes[0].Tags[drivers.MetaNodeID], "volumes are tagged through the fleet")
			var dd driverData
			require.NoError(t, json.Unmarshal(st.Instance.DriverData, &dd))
			require.Equal(t, tc.wantType, dd.InstanceType)
			var data createData
			require.NoError(t, json.Unmarshal(st.Data, &data))
			require.Equal(t, tc.wantType, data.InstanceType)
			require.True(t, strings.HasPrefix(data.FleetID, "fleet-"), data.FleetID)
			// The node's quota is its actual instance type's.
			info, err := d.types.get(context.Background(), tc.wantType)
			require.NoError(t, err)
			require.Equal(t, typeQuota(info, tc.wantSpot), st.Instance.Quota)

			e.deleteAll(d, drivers.DeleteState{ExternalID: st.ExternalID, NodeID: nodeID})
			require.Empty(t, e.nodeInstances(nodeID))
		})
	}
}

func TestFleetLaunchTemplate(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.specialDriver()
	for i := range 3 {
		e.create(d, drivers.CreateState{Request: specialRequest(fmt.Sprintf("000000210%d", i), "fleet")})
	}
	require.Equal(t, int64(1), e.sim.Calls("CreateLaunchTemplate"), "the label's template is made once")
	require.Equal(t, int64(2), e.sim.Calls("DescribeLaunchTemplates"), "one sweep and one lookup")
	out, err := e.ec2.DescribeLaunchTemplates(context.Background(), &ec2.DescribeLaunchTemplatesInput{})
	require.NoError(t, err)
	require.Len(t, out.LaunchTemplates, 1)
	lt := out.LaunchTemplates[0]
	require.True(t, strings.HasPrefix(awssdk.ToString(lt.LaunchTemplateName), LaunchTemplatePrefix+"-"))
	require.Equal(t, testProvider, tagMap(lt.Tags)[drivers.MetaProviderName])
	in := e.nodeInstances("0000002100")[0]
	require.Equal(t, "required", in.HTTPTokens, "the template carries the label's settings")
	require.Equal(t, "gp3", in.Volumes[0].Type)
	require.Equal(t, 40, in.Volumes[0].Size)

	// A second driver (another launcher, or this one restarted) finds the template.
	d2 := e.specialDriver()
	e.create(d2, drivers.CreateState{Request: specialRequest("0000002110", "fleet")})
	require.Equal(t, int64(1), e.sim.Calls("CreateLaunchTemplate"))
	// A label that launches differently has a template of its own.
	e.create(d2, drivers.CreateState{Request: specialRequest("0000002111", "fleet-cheap")})
	require.Equal(t, int64(2), e.sim.Calls("CreateLaunchTemplate"))

	// A template deleted behind the driver's back is made again by the retry.
	_, err = e.ec2.DeleteLaunchTemplate(context.Background(), &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: lt.LaunchTemplateName})
	require.NoError(t, err)
	st := drivers.CreateState{Request: specialRequest("0000002112", "fleet")}
	st, err = d.AdvanceCreate(context.Background(), st)
	require.NoError(t, err)
	_, err = d.AdvanceCreate(context.Background(), st)
	require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "is gone")
	e.create(d, st)
	require.Equal(t, int64(3), e.sim.Calls("CreateLaunchTemplate"))
	require.Len(t, e.nodeInstances("0000002112"), 1)
}

// TestFleetTemplateSweep checks that the first fleet launch deletes the provider's
// launch templates no label uses any more, and only those.
func TestFleetTemplateSweep(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	ctx := context.Background()
	makeTemplate := func(name, provider string) {
		in := &ec2.CreateLaunchTemplateInput{
			LaunchTemplateName: awssdk.String(name),
			LaunchTemplateData: &ec2types.RequestLaunchTemplateData{KeyName: awssdk.String("old")},
		}
		if provider != "" {
			in.TagSpecifications = []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeLaunchTemplate, Tags: []ec2types.Tag{
				{Key: awssdk.String(drivers.MetaProviderName), Value: awssdk.String(provider)},
			}}}
		}
		_, err := e.ec2.CreateLaunchTemplate(ctx, in)
		require.NoError(t, err)
	}
	makeTemplate(LaunchTemplatePrefix+"-stale", testProvider)
	makeTemplate(LaunchTemplatePrefix+"-of-another-provider", "other")
	makeTemplate("hand-made", testProvider)
	d := e.specialDriver()
	e.create(d, drivers.CreateState{Request: specialRequest("0000002150", "fleet")})
	out, err := e.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{})
	require.NoError(t, err)
	var names []string
	for _, lt := range out.LaunchTemplates {
		names = append(names, awssdk.ToString(lt.LaunchTemplateName))
	}
	require.Len(t, names, 3, "%v", names)
	require.Contains(t, names, LaunchTemplatePrefix+"-of-another-provider")
	require.Contains(t, names, "hand-made")
	require.NotContains(t, names, LaunchTemplatePrefix+"-stale")

	// The templates of the driver's labels are kept, whether made yet or not; labels
	// whose launch settings are the same (fleet-cheap and fleet-spot differ only in
	// the market, which each fleet sets) share one.
	e.create(d, drivers.CreateState{Request: specialRequest("0000002151", "fleet-cheap")})
	d2 := e.specialDriver()
	e.create(d2, drivers.CreateState{Request: specialRequest("0000002152", "fleet-spot")})
	e.create(d2, drivers.CreateState{Request: specialRequest("0000002153", "fleet")})
	out, err = e.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{})
	require.NoError(t, err)
	require.Len(t, out.LaunchTemplates, 4)
	require.Equal(t, int64(1), e.sim.Calls("DeleteLaunchTemplate"))
	require.Equal(t, int64(3+2), e.sim.Calls("CreateLaunchTemplate"), "the test's three, and the driver's two")
}

func TestFleetOutOfCapacity(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.specialDriver(WithUnavailableTTL(10 * time.Second))
	for _, it := range []string{"m5.large", "t3.medium", "c5.large"} {
		e.sim.BlockOffering(it, "on-demand", true)
	}
	st := drivers.CreateState{Request: specialRequest("0000002200", "fleet")}
	var err error
	for range 5 {
		st, err = d.AdvanceCreate(context.Background(), st)
		if err != nil {
			break
		}
	}
	require.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
	require.Greater(t, drivers.RetryAfter(err), time.Duration(0))
	require.Contains(t, err.Error(), "InsufficientInstanceCapacity")
	require.Equal(t, StepStart, st.Step)
	require.Empty(t, e.nodeInstances("0000002200"))
	require.Equal(t, int64(1), e.sim.Calls("CreateFleet"))

	// Capacity comes back; the launch goes on with a new round and a new token.
	e.sim.BlockOffering("c5.large", "on-demand", false)
	e.clock.Advance(st.Wait)
	st = e.create(d, st)
	require.Equal(t, "c5.large", e.nodeInstances("0000002200")[0].InstanceType)
}

func TestFleetErrors(t *testing.T) {
	tests := []struct {
		name string
		code string
		want drivers.Kind
	}{
		{"quota", "VcpuLimitExceeded", drivers.KindQuota},
		{"throttled", "RequestLimitExceeded", drivers.KindTransient},
		{"bad request", "InvalidParameterValue", drivers.KindPermanent},
		{"capacity", "InsufficientInstanceCapacity", drivers.KindCapacity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ec2sim.Options{})
			d := e.specialDriver()
			e.sim.InjectError("CreateFleet", tc.code, 1)
			st := drivers.CreateState{Request: specialRequest("0000002300", "fleet-market")}
			var err error
			for range 5 {
				if st, err = d.AdvanceCreate(context.Background(), st); err != nil {
					break
				}
			}
			require.Equal(t, tc.want, drivers.KindOf(err), "%v", err)
		})
	}
	// A fleet whose every type fails for a permanent reason reports that reason.
	err := fleetError("creating fleet", []ec2types.CreateFleetError{
		{ErrorCode: awssdk.String("InsufficientInstanceCapacity"), ErrorMessage: awssdk.String("none")},
		{ErrorCode: awssdk.String("InvalidParameterValue"), ErrorMessage: awssdk.String("bad type")},
	})
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err))
	require.Equal(t, drivers.KindTransient, drivers.KindOf(fleetError("creating fleet", nil)))
}

// TestFleetRepeatedSubmit repeats the submit step, as a retried activity whose answer
// was lost does: the client token makes EC2 answer with the first fleet's instance.
func TestFleetRepeatedSubmit(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.specialDriver()
	st := drivers.CreateState{Request: specialRequest("0000002400", "fleet")}
	st, err := d.AdvanceCreate(context.Background(), st)
	require.NoError(t, err)
	require.Equal(t, StepSubmitCreating, st.Step)
	first, err := d.AdvanceCreate(context.Background(), st)
	require.NoError(t, err)
	again, err := d.AdvanceCreate(context.Background(), st)
	require.NoError(t, err)
	require.Equal(t, first.ExternalID, again.ExternalID)
	require.Len(t, e.nodeInstances("0000002400"), 1)
	require.Equal(t, int64(1), e.sim.CreationsByNode()["0000002400"])
}

func TestFleetQuota(t *testing.T) {
	e := newEnv(t, ec2sim.Options{VCPULimits: map[string]int{QuotaStandardOnDemand: 10, QuotaStandardSpot: 20, "L-8B7BF662": 3}})
	d := e.specialDriver()
	q, err := d.LabelQuota(context.Background(), specialPool, "fleet")
	require.NoError(t, err)
	// The largest of m5.large (8 GiB), t3.medium and c5.large (4 GiB each).
	require.Equal(t, drivers.Resources{drivers.ResourceInstances: 1, drivers.ResourceCores: 1, drivers.ResourceRAM: 8192, QuotaStandardOnDemand: 2}, q)
	q, err = d.LabelQuota(context.Background(), specialPool, "fleet-spot")
	require.NoError(t, err)
	require.Equal(t, int64(2), q[QuotaStandardSpot])
	require.NotContains(t, q, QuotaStandardOnDemand)
	q, err = d.LabelQuota(context.Background(), specialPool, "host")
	require.NoError(t, err)
	require.Equal(t, drivers.Resources{drivers.ResourceInstances: 1, drivers.ResourceCores: 1, drivers.ResourceRAM: 8192, "L-8B7BF662": 1}, q,
		"a node on a dedicated host counts its host, not vCPUs")
	limits, err := d.QuotaLimits(context.Background())
	require.NoError(t, err)
	require.Equal(t, drivers.Resources{QuotaStandardOnDemand: 10, QuotaStandardSpot: 20, "L-8B7BF662": 3}, limits)
}

func TestDedicatedHost(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.specialDriver()
	st := drivers.CreateState{Request: specialRequest("0000002500", "host")}
	var steps []string
	for range 50 {
		next, err := d.AdvanceCreate(context.Background(), st)
		require.NoError(t, err, "step %q", st.Step)
		steps = append(steps, st.Step)
		st = next
		if st.Complete {
			break
		}
		e.clock.Advance(st.Wait)
	}
	require.True(t, st.Complete)
	require.Equal(t, []string{"", StepSubmitAllocatingHost, StepAllocatingHost, StepSubmitCreating}, steps[:4])
	hosts := e.sim.Hosts()
	require.Len(t, hosts, 1)
	h := hosts[0]
	require.Equal(t, ec2sim.HostAvailable, h.State)
	require.Equal(t, "m5.large", h.InstanceType)
	require.Equal(t, "us-east-1a", h.AZ)
	require.Equal(t, "0000002500", h.Tags[drivers.MetaNodeID])
	require.Equal(t, testProvider, h.Tags[drivers.MetaProviderName])
	require.Equal(t, "ci", h.Tags["team"])
	in := e.nodeInstances("0000002500")
	require.Len(t, in, 1)
	require.Equal(t, h.ID, in[0].HostID)
	require.Equal(t, []string{in[0].ID}, h.Instances)
	require.Equal(t, formatExternalIDs(in[0].ID, h.ID), st.ExternalID)
	require.Equal(t, h.ID, st.Instance.HostID)
	require.Equal(t, st.ExternalID, st.Instance.ExternalID)
	require.Equal(t, int64(1), st.Instance.Quota["L-8B7BF662"])

	// The instance on the host is counted by its host in the inventory too.
	all, err := d.ListInstances(context.Background())
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, st.Instance.Quota, all[0].Quota)

	var delSteps []string
	del := drivers.DeleteState{ExternalID: st.ExternalID, NodeID: "0000002500"}
	for range 50 {
		next, err := d.AdvanceDelete(context.Background(), del)
		require.NoError(t, err, "step %q", del.Step)
		delSteps = append(delSteps, del.Step)
		del = next
		if del.Complete {
			break
		}
		e.clock.Advance(del.Wait)
	}
	require.True(t, del.Complete)
	require.Contains(t, delSteps, StepReleasingHost)
	require.Equal(t, ec2sim.HostReleased, e.sim.Hosts()[0].State)
	require.Empty(t, e.nodeInstances("0000002500"))
}

// TestDedicatedHostRepeatedSteps repeats the allocation and the launch steps, as
// retried activities whose answers were lost do: one host, one instance.
func TestDedicatedHostRepeatedSteps(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.specialDriver()
	st := drivers.CreateState{Request: specialRequest("0000002600", "host")}
	for st.Step != StepSubmitCreating {
		next, err := d.AdvanceCreate(context.Background(), st)
		require.NoError(t, err)
		if st.Step == StepSubmitAllocatingHost {
			again, err := d.AdvanceCreate(context.Background(), st)
			require.NoError(t, err)
			require.Equal(t, next.ExternalID, again.ExternalID)
		}
		st = next
	}
	first, err := d.AdvanceCreate(context.Background(), st)
	require.NoError(t, err)
	again, err := d.AdvanceCreate(context.Background(), st)
	require.NoError(t, err)
	require.Equal(t, first.ExternalID, again.ExternalID)
	require.Len(t, e.sim.Hosts(), 1)
	require.Len(t, e.nodeInstances("0000002600"), 1)
}

func TestDedicatedHostErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		want  drivers.Kind
	}{
		{"no host capacity", func(e *env) { e.sim.BlockOffering("m5.large", "host", true) }, drivers.KindCapacity},
		{"host limit", func(e *env) { e.sim.SetHostLimit("m5", 0) }, drivers.KindQuota},
		{"throttled", func(e *env) { e.sim.InjectError("AllocateHosts", "RequestLimitExceeded", 1) }, drivers.KindTransient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ec2sim.Options{})
			d := e.specialDriver()
			tc.setup(e)
			st := drivers.CreateState{Request: specialRequest("0000002700", "host")}
			var err error
			for range 5 {
				if st, err = d.AdvanceCreate(context.Background(), st); err != nil {
					break
				}
			}
			require.Equal(t, tc.want, drivers.KindOf(err), "%v", err)
			require.Empty(t, e.sim.Hosts())
		})
	}
}

// TestDedicatedHostFailedLaunch checks that the host of a launch whose instance
// failed for good is released.
func TestDedicatedHostFailedLaunch(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.specialDriver()
	st := drivers.CreateState{Request: specialRequest("0000002800", "host")}
	for st.Step != StepSubmitCreating {
		next, err := d.AdvanceCreate(context.Background(), st)
		require.NoError(t, err)
		st = next
	}
	require.Empty(t, st.ExternalID, "the external id names the instance and its host together")
	e.sim.InjectError("RunInstances", "InvalidParameterValue", 1)
	_, err := d.AdvanceCreate(context.Background(), st)
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err))
	require.Equal(t, ec2sim.HostReleased, e.sim.Hosts()[0].State)

	// A delete of an external id with only a host (as older launchers recorded it)
	// releases the host.
	st = drivers.CreateState{Request: specialRequest("0000002801", "host")}
	for st.Step != StepSubmitCreating {
		next, err := d.AdvanceCreate(context.Background(), st)
		require.NoError(t, err)
		st = next
	}
	hostID := e.sim.Hosts()[1].ID
	e.deleteAll(d, drivers.DeleteState{ExternalID: formatExternalIDs("", hostID), NodeID: "0000002801"})
	require.Equal(t, ec2sim.HostReleased, e.sim.Hosts()[1].State)
}

func TestLeakedHosts(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.specialDriver()
	ctx := context.Background()
	out, err := e.ec2.AllocateHosts(ctx, &ec2.AllocateHostsInput{
		AvailabilityZone: awssdk.String("us-east-1b"), InstanceType: awssdk.String("c5.large"), Quantity: awssdk.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeDedicatedHost, Tags: []ec2types.Tag{
			{Key: awssdk.String(drivers.MetaProviderName), Value: awssdk.String(testProvider)},
			{Key: awssdk.String(drivers.MetaNodeID), Value: awssdk.String("0000002900")},
		}}},
	})
	require.NoError(t, err)
	leaked := out.HostIds[0]
	// Someone else's host is not ours to list.
	_, err = e.ec2.AllocateHosts(ctx, &ec2.AllocateHostsInput{
		AvailabilityZone: awssdk.String("us-east-1b"), InstanceType: awssdk.String("c5.large"), Quantity: awssdk.Int32(1),
	})
	require.NoError(t, err)
	// A host with an instance on it is released once the instance is gone.
	st := e.create(d, drivers.CreateState{Request: specialRequest("0000002901", "host")})
	ext, err := parseExternalIDs(st.ExternalID)
	require.NoError(t, err)

	rs, err := d.ListResources(ctx)
	require.NoError(t, err)
	var hosts []drivers.Resource
	for _, r := range rs {
		if r.Type == ResourceHost {
			hosts = append(hosts, r)
		}
	}
	require.Len(t, hosts, 2)
	ids := []string{hosts[0].ID, hosts[1].ID}
	require.ElementsMatch(t, []string{leaked, ext.Host}, ids)
	for _, h := range hosts {
		if h.ID == leaked {
			require.Equal(t, "0000002900", h.Metadata[drivers.MetaNodeID])
		}
	}
	require.NoError(t, d.DeleteResource(ctx, drivers.Resource{Type: ResourceHost, ID: leaked}))
	require.NoError(t, d.DeleteResource(ctx, drivers.Resource{Type: ResourceHost, ID: leaked}), "a released host counts as deleted")
	// An occupied host is released once its instance is gone, by a later listing.
	require.NoError(t, d.DeleteResource(ctx, drivers.Resource{Type: ResourceHost, ID: ext.Host}))
	require.NoError(t, d.DeleteResource(ctx, drivers.Resource{Type: ResourceInstance, ID: ext.Instance}))
	rs, err = d.ListResources(ctx)
	require.NoError(t, err)
	require.Contains(t, rs, drivers.Resource{Type: ResourceHost, ID: ext.Host, Metadata: e.sim.Hosts()[2].Tags},
		"the host is listed while its instance terminates")
	e.clock.Advance(time.Minute)
	rs, err = d.ListResources(ctx)
	require.NoError(t, err)
	for _, r := range rs {
		require.NotEqual(t, ResourceHost, r.Type, "%v", r)
	}
}

// TestConformanceSpecialLabels runs the driver conformance suite with a fleet label
// and with a dedicated-host label.
func TestConformanceSpecialLabels(t *testing.T) {
	tests := []struct {
		label    string
		action   string
		quota    string
		capacity string
	}{
		{"fleet", "CreateFleet", "VcpuLimitExceeded", "InsufficientInstanceCapacity"},
		{"host", "AllocateHosts", "HostLimitExceeded", "InsufficientHostCapacity"},
	}
	for _, tc := range tests {
		t.Run(tc.label, func(t *testing.T) {
			var e *env
			inject := func(code string) func(t *testing.T) {
				return func(*testing.T) { e.sim.InjectError(tc.action, code, 1) }
			}
			driverstest.Run(t, driverstest.Harness{
				New: func(t *testing.T) drivers.Driver {
					e = newEnv(t, ec2sim.Options{})
					return e.specialDriver()
				},
				Provider:             testProvider,
				Pool:                 specialPool,
				Label:                tc.label,
				UnknownExternalID:    formatExternalIDs("i-0000000000000dead", "h-0000000000000dead"),
				InjectQuotaError:     inject(tc.quota),
				InjectCapacityError:  inject(tc.capacity),
				InjectTransientError: inject("RequestLimitExceeded"),
				InjectPermanentError: inject("InvalidParameterValue"),
				Advance:              func(d time.Duration) { e.clock.Advance(d) },
			})
		})
	}
}
