package ec2sim

import (
	"context"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"
)

func createTemplate(t *testing.T, f *fixture, name string) {
	t.Helper()
	_, err := f.ec2.CreateLaunchTemplate(context.Background(), &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: awssdk.String(name),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			KeyName: awssdk.String("zuul"),
			NetworkInterfaces: []ec2types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{{
				DeviceIndex: awssdk.Int32(0), SubnetId: awssdk.String("subnet-0abc"), Groups: []string{"sg-0123"},
				AssociatePublicIpAddress: awssdk.Bool(true),
			}},
			MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: ec2types.LaunchTemplateHttpTokensStateRequired},
		},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeLaunchTemplate, Tags: []ec2types.Tag{
			{Key: awssdk.String("owner"), Value: awssdk.String("ci")},
		}}},
	})
	require.NoError(t, err)
}

func TestLaunchTemplates(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	createTemplate(t, f, "nodepool-a")
	createTemplate(t, f, "nodepool-b")
	_, err := f.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: awssdk.String("nodepool-a"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{KeyName: awssdk.String("k")},
	})
	code, status := apiCode(t, err)
	require.Equal(t, "InvalidLaunchTemplateName.AlreadyExistsException", code)
	require.Equal(t, 400, status)

	tests := []struct {
		name  string
		in    *ec2.DescribeLaunchTemplatesInput
		want  []string
		error string
	}{
		{"all", &ec2.DescribeLaunchTemplatesInput{}, []string{"nodepool-a", "nodepool-b"}, ""},
		{"by name filter", &ec2.DescribeLaunchTemplatesInput{Filters: []ec2types.Filter{
			{Name: awssdk.String("launch-template-name"), Values: []string{"nodepool-b"}}}}, []string{"nodepool-b"}, ""},
		{"by glob", &ec2.DescribeLaunchTemplatesInput{Filters: []ec2types.Filter{
			{Name: awssdk.String("launch-template-name"), Values: []string{"nodepool-*"}}}}, []string{"nodepool-a", "nodepool-b"}, ""},
		{"by tag", &ec2.DescribeLaunchTemplatesInput{Filters: []ec2types.Filter{
			{Name: awssdk.String("tag:owner"), Values: []string{"ci"}}}}, []string{"nodepool-a", "nodepool-b"}, ""},
		{"filter matching none", &ec2.DescribeLaunchTemplatesInput{Filters: []ec2types.Filter{
			{Name: awssdk.String("launch-template-name"), Values: []string{"other"}}}}, nil, ""},
		{"by names", &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"nodepool-a"}}, []string{"nodepool-a"}, ""},
		{"unknown name", &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"nope"}}, nil, "InvalidLaunchTemplateName.NotFoundException"},
		{"unknown filter", &ec2.DescribeLaunchTemplatesInput{Filters: []ec2types.Filter{
			{Name: awssdk.String("colour"), Values: []string{"x"}}}}, nil, "InvalidParameterValue"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := f.ec2.DescribeLaunchTemplates(ctx, tc.in)
			if tc.error != "" {
				code, _ := apiCode(t, err)
				require.Equal(t, tc.error, code)
				return
			}
			require.NoError(t, err)
			var names []string
			for _, lt := range out.LaunchTemplates {
				names = append(names, awssdk.ToString(lt.LaunchTemplateName))
				require.Equal(t, int64(1), awssdk.ToInt64(lt.LatestVersionNumber))
			}
			require.Equal(t, tc.want, names)
		})
	}
	_, err = f.ec2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: awssdk.String("nodepool-a")})
	require.NoError(t, err)
	_, err = f.ec2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: awssdk.String("nodepool-a")})
	code, _ = apiCode(t, err)
	require.Equal(t, "InvalidLaunchTemplateName.NotFoundException", code)
}

func fleetInput(token, template, market, strategy string, types ...string) *ec2.CreateFleetInput {
	var overrides []ec2types.FleetLaunchTemplateOverridesRequest
	for i, it := range types {
		overrides = append(overrides, ec2types.FleetLaunchTemplateOverridesRequest{
			InstanceType: ec2types.InstanceType(it), ImageId: awssdk.String(ImageUbuntuJammy), Priority: awssdk.Float64(float64(i)),
		})
	}
	in := &ec2.CreateFleetInput{
		Type:        ec2types.FleetTypeInstant,
		ClientToken: awssdk.String(token),
		LaunchTemplateConfigs: []ec2types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &ec2types.FleetLaunchTemplateSpecificationRequest{
				LaunchTemplateName: awssdk.String(template), Version: awssdk.String("$Latest"),
			},
			Overrides: overrides,
		}},
		TargetCapacitySpecification: &ec2types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity: awssdk.Int32(1), DefaultTargetCapacityType: ec2types.DefaultTargetCapacityType(market),
		},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{
			{Key: awssdk.String(DefaultNodeTag), Value: awssdk.String(token)},
		}}},
	}
	if market == "spot" {
		in.SpotOptions = &ec2types.SpotOptionsRequest{AllocationStrategy: ec2types.SpotAllocationStrategy(strategy)}
	} else {
		in.OnDemandOptions = &ec2types.OnDemandOptionsRequest{AllocationStrategy: ec2types.FleetOnDemandAllocationStrategy(strategy)}
	}
	return in
}

func TestCreateFleet(t *testing.T) {
	tests := []struct {
		name       string
		in         *ec2.CreateFleetInput
		blocked    [][2]string
		wantType   string // "" when nothing launches
		wantErrors []string
		wantCode   string // the call's error
		rates      ErrorRates
	}{
		{"prioritized", fleetInput("f1", "ci-fleet", "on-demand", "prioritized", "m5.xlarge", "m5.large"), nil, "m5.xlarge", nil, "", ErrorRates{}},
		{"lowest price", fleetInput("f2", "ci-fleet", "on-demand", "lowest-price", "m5.xlarge", "m5.large"), nil, "m5.large", nil, "", ErrorRates{}},
		{"falls through capacity errors", fleetInput("f3", "ci-fleet", "on-demand", "prioritized", "m5.xlarge", "m5.large"),
			[][2]string{{"m5.xlarge", "on-demand"}}, "m5.large", []string{"InsufficientInstanceCapacity"}, "", ErrorRates{}},
		{"spot", fleetInput("f4", "ci-fleet", "spot", "capacity-optimized", "m5.large"), nil, "m5.large", nil, "", ErrorRates{}},
		{"nothing launches", fleetInput("f5", "ci-fleet", "spot", "diversified", "m5.xlarge", "m5.large"),
			[][2]string{{"m5.xlarge", "spot"}, {"m5.large", "spot"}}, "", []string{"InsufficientInstanceCapacity", "InsufficientInstanceCapacity"}, "", ErrorRates{}},
		{"bad type is a fleet error", fleetInput("f6", "ci-fleet", "on-demand", "prioritized", "x9.huge", "m5.large"), nil, "m5.large", []string{"InvalidParameterValue"}, "", ErrorRates{}},
		{name: "capacity faults hit every type", in: fleetInput("f10", "ci-fleet", "on-demand", "prioritized", "m5.xlarge", "m5.large"),
			wantErrors: []string{"InsufficientInstanceCapacity", "InsufficientInstanceCapacity"}, rates: ErrorRates{Capacity: 1}},
		{"unknown template", fleetInput("f7", "nope", "on-demand", "prioritized", "m5.large"), nil, "", nil, "InvalidLaunchTemplateName.NotFoundException", ErrorRates{}},
		{"spot strategy on demand", fleetInput("f8", "ci-fleet", "on-demand", "diversified", "m5.large"), nil, "", nil, "InvalidParameterValue", ErrorRates{}},
		{"maintain fleets", func() *ec2.CreateFleetInput {
			in := fleetInput("f9", "ci-fleet", "on-demand", "prioritized", "m5.large")
			in.Type = ec2types.FleetTypeMaintain
			return in
		}(), nil, "", nil, "InvalidParameterValue", ErrorRates{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			createTemplate(t, f, "ci-fleet")
			for _, b := range tc.blocked {
				f.srv.BlockOffering(b[0], b[1], true)
			}
			require.NoError(t, f.srv.SetFaults(Faults{Errors: tc.rates}))
			out, err := f.ec2.CreateFleet(context.Background(), tc.in)
			if tc.wantCode != "" {
				code, _ := apiCode(t, err)
				require.Equal(t, tc.wantCode, code)
				return
			}
			require.NoError(t, err)
			var codes []string
			for _, e := range out.Errors {
				codes = append(codes, awssdk.ToString(e.ErrorCode))
				require.NotEmpty(t, e.LaunchTemplateAndOverrides.Overrides.InstanceType)
			}
			require.Equal(t, tc.wantErrors, codes)
			if tc.wantType == "" {
				require.Empty(t, out.Instances)
				require.Empty(t, f.srv.Instances())
				return
			}
			require.Len(t, out.Instances, 1)
			fi := out.Instances[0]
			require.Equal(t, tc.wantType, string(fi.InstanceType))
			require.Len(t, fi.InstanceIds, 1)
			in, ok := f.srv.Instance(fi.InstanceIds[0])
			require.True(t, ok)
			require.Equal(t, tc.wantType, in.InstanceType)
			require.Equal(t, tc.in.TargetCapacitySpecification.DefaultTargetCapacityType == "spot", in.Spot)
			require.Equal(t, "required", in.HTTPTokens, "the template's settings apply")
			require.Equal(t, "subnet-0abc", in.SubnetID)
			require.Equal(t, awssdk.ToString(tc.in.ClientToken), in.Tags[DefaultNodeTag])

			// The same token answers with the first fleet and launches nothing more.
			again, err := f.ec2.CreateFleet(context.Background(), tc.in)
			require.NoError(t, err)
			require.Equal(t, out.FleetId, again.FleetId)
			require.Equal(t, fi.InstanceIds, again.Instances[0].InstanceIds)
			require.Len(t, f.srv.Instances(), 1)
		})
	}
}

func TestDedicatedHosts(t *testing.T) {
	f := newFixture(t, Options{BootTime: 0, TerminateTime: 0})
	ctx := context.Background()
	alloc := func(token, itype string) (*ec2.AllocateHostsOutput, error) {
		return f.ec2.AllocateHosts(ctx, &ec2.AllocateHostsInput{
			AvailabilityZone: awssdk.String("us-east-1a"), InstanceType: awssdk.String(itype), Quantity: awssdk.Int32(1),
			ClientToken: awssdk.String(token),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeDedicatedHost, Tags: []ec2types.Tag{
				{Key: awssdk.String("team"), Value: awssdk.String("ci")},
			}}},
		})
	}
	out, err := alloc("h1", "m5.large")
	require.NoError(t, err)
	again, err := alloc("h1", "m5.large")
	require.NoError(t, err)
	require.Equal(t, out.HostIds, again.HostIds, "a repeated token answers with the same host")
	_, err = alloc("h1", "c5.large")
	code, _ := apiCode(t, err)
	require.Equal(t, "IdempotentParameterMismatch", code)
	hostID := out.HostIds[0]

	run := func(itype, host string) (*ec2.RunInstancesOutput, error) {
		in := runInput("")
		in.ClientToken = nil
		in.InstanceType = ec2types.InstanceType(itype)
		in.Placement = &ec2types.Placement{Tenancy: ec2types.TenancyHost, HostId: awssdk.String(host)}
		return f.ec2.RunInstances(ctx, in)
	}
	tests := []struct {
		name, itype, host, code string
	}{
		{"other type", "c5.large", hostID, "InvalidParameterValue"},
		{"unknown host", "m5.large", "h-0000000000000dead", "InvalidHostID.NotFound"},
		{"on the host", "m5.large", hostID, ""},
	}
	var instanceID string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := run(tc.itype, tc.host)
			if tc.code != "" {
				code, _ := apiCode(t, err)
				require.Equal(t, tc.code, code)
				return
			}
			require.NoError(t, err)
			instanceID = awssdk.ToString(r.Instances[0].InstanceId)
			require.Equal(t, hostID, awssdk.ToString(r.Instances[0].Placement.HostId))
			require.Equal(t, ec2types.TenancyHost, r.Instances[0].Placement.Tenancy)
			require.Equal(t, "us-east-1a", awssdk.ToString(r.Instances[0].Placement.AvailabilityZone))
		})
	}
	hosts, err := f.ec2.DescribeHosts(ctx, &ec2.DescribeHostsInput{Filter: []ec2types.Filter{{Name: awssdk.String("tag:team"), Values: []string{"ci"}}}})
	require.NoError(t, err)
	require.Len(t, hosts.Hosts, 1)
	h := hosts.Hosts[0]
	require.Equal(t, ec2types.AllocationStateAvailable, h.State)
	require.Equal(t, "m5.large", awssdk.ToString(h.HostProperties.InstanceType))
	require.Len(t, h.Instances, 1)
	require.Equal(t, instanceID, awssdk.ToString(h.Instances[0].InstanceId))

	rel, err := f.ec2.ReleaseHosts(ctx, &ec2.ReleaseHostsInput{HostIds: []string{hostID, "h-0000000000000dead"}})
	require.NoError(t, err)
	require.Empty(t, rel.Successful)
	require.Len(t, rel.Unsuccessful, 2)
	require.Equal(t, "Client.HostHasInstances", awssdk.ToString(rel.Unsuccessful[0].Error.Code))
	require.Equal(t, "Client.InvalidHostID.NotFound", awssdk.ToString(rel.Unsuccessful[1].Error.Code))

	_, err = f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{instanceID}})
	require.NoError(t, err)
	rel, err = f.ec2.ReleaseHosts(ctx, &ec2.ReleaseHostsInput{HostIds: []string{hostID}})
	require.NoError(t, err)
	require.Equal(t, []string{hostID}, rel.Successful)
	require.Equal(t, HostReleased, f.srv.Hosts()[0].State)
	_, err = run("m5.large", hostID)
	code, _ = apiCode(t, err)
	require.Equal(t, "IncorrectHostState", code)

	require.Equal(t, map[string]int{HostReleased: 1}, f.srv.Stats().Hosts)
	_, err = alloc("h1", "m5.large")
	require.NoError(t, err, "a repeated token is spared capacity faults")
	require.NoError(t, f.srv.SetFaults(Faults{Errors: ErrorRates{Capacity: 1}}))
	_, err = alloc("h4", "m5.large")
	code, _ = apiCode(t, err)
	require.Equal(t, "InsufficientHostCapacity", code)
	require.NoError(t, f.srv.SetFaults(Faults{}))
	f.srv.BlockOffering("m5.large", "host", true)
	_, err = alloc("h2", "m5.large")
	code, status := apiCode(t, err)
	require.Equal(t, "InsufficientHostCapacity", code)
	require.Equal(t, 500, status)
	f.srv.BlockOffering("m5.large", "host", false)
	f.srv.SetHostLimit("m5", 0)
	_, err = alloc("h3", "m5.large")
	code, _ = apiCode(t, err)
	require.Equal(t, "HostLimitExceeded", code)
}
