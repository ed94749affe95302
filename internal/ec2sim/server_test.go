package ec2sim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

// manualClock is a clock shared by the cloud and the driver, moved by the test.
type manualClock = testenv.ManualClock

func newManualClock() *manualClock {
	return testenv.NewManualClock(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))
}

type fixture struct {
	srv    *Server
	url    string
	ec2    *ec2.Client
	quotas *servicequotas.Client
	clock  *manualClock
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	clock := newManualClock()
	if opts.Clock == nil {
		opts.Clock = clock.Now
	}
	srv := New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	cfg := awssdk.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		Retryer:     func() awssdk.Retryer { return awssdk.NopRetryer{} },
		HTTPClient:  sdkHTTPClient{},
	}
	return &fixture{
		srv: srv, url: hs.URL, clock: clock,
		ec2:    ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = awssdk.String(hs.URL) }),
		quotas: servicequotas.NewFromConfig(cfg, func(o *servicequotas.Options) { o.BaseEndpoint = awssdk.String(hs.URL) }),
	}
}

func apiCode(t *testing.T, err error) (string, int) {
	t.Helper()
	require.Error(t, err)
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "not an API error: %v", err)
	var re *awshttp.ResponseError
	require.True(t, errors.As(err, &re), "no HTTP response: %v", err)
	return ae.ErrorCode(), re.HTTPStatusCode()
}

func runInput(token string) *ec2.RunInstancesInput {
	return &ec2.RunInstancesInput{
		ImageId:      awssdk.String(ImageUbuntuJammy),
		InstanceType: ec2types.InstanceTypeM5Large,
		MinCount:     awssdk.Int32(1),
		MaxCount:     awssdk.Int32(1),
		KeyName:      awssdk.String("zuul"),
		ClientToken:  awssdk.String(token),
		NetworkInterfaces: []ec2types.InstanceNetworkInterfaceSpecification{{
			DeviceIndex:              awssdk.Int32(0),
			AssociatePublicIpAddress: awssdk.Bool(true),
			SubnetId:                 awssdk.String("subnet-0abc"),
			Groups:                   []string{"sg-0123", "sg-0456"},
			Ipv6AddressCount:         awssdk.Int32(1),
		}},
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{
				{Key: awssdk.String("Name"), Value: awssdk.String("np0000000001")},
				{Key: awssdk.String("nodepool_provider_name"), Value: awssdk.String("aws")},
			}},
			{ResourceType: ec2types.ResourceTypeVolume, Tags: []ec2types.Tag{
				{Key: awssdk.String("nodepool_provider_name"), Value: awssdk.String("aws")},
			}},
		},
	}
}

func TestRunInstancesParameters(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	in := runInput("tok-1")
	in.UserData = awssdk.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hi\n")))
	in.IamInstanceProfile = &ec2types.IamInstanceProfileSpecification{Name: awssdk.String("ci-role")}
	in.EbsOptimized = awssdk.Bool(true)
	in.MetadataOptions = &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired, HttpEndpoint: ec2types.InstanceMetadataEndpointStateEnabled}
	in.InstanceMarketOptions = &ec2types.InstanceMarketOptionsRequest{MarketType: ec2types.MarketTypeSpot,
		SpotOptions: &ec2types.SpotMarketOptions{SpotInstanceType: ec2types.SpotInstanceTypeOneTime}}
	in.BlockDeviceMappings = []ec2types.BlockDeviceMapping{{DeviceName: awssdk.String("/dev/sda1"), Ebs: &ec2types.EbsBlockDevice{
		VolumeSize: awssdk.Int32(80), VolumeType: ec2types.VolumeTypeGp3, Iops: awssdk.Int32(4000), Throughput: awssdk.Int32(250),
		DeleteOnTermination: awssdk.Bool(true),
	}}}
	out, err := f.ec2.RunInstances(ctx, in)
	require.NoError(t, err)
	require.Len(t, out.Instances, 1)
	got := out.Instances[0]
	require.Equal(t, ec2types.InstanceStateNamePending, got.State.Name)
	require.Equal(t, ec2types.InstanceLifecycleTypeSpot, got.InstanceLifecycle)

	info, ok := f.srv.Instance(*got.InstanceId)
	require.True(t, ok)
	require.Equal(t, "#!/bin/sh\necho hi\n", info.UserData)
	require.Equal(t, "arn:aws:iam::123456789012:instance-profile/ci-role", info.IAMInstanceProfile)
	require.Equal(t, "required", info.HTTPTokens)
	require.True(t, info.EBSOptimized)
	require.True(t, info.Spot)
	require.Equal(t, []string{"sg-0123", "sg-0456"}, info.SecurityGroups)
	require.Equal(t, "subnet-0abc", info.SubnetID)
	require.Equal(t, map[string]string{"Name": "np0000000001", "nodepool_provider_name": "aws"}, info.Tags)
	require.Len(t, info.Volumes, 1)
	require.Equal(t, VolumeInfo{ID: info.Volumes[0].ID, Status: "in-use", Size: 80, Type: "gp3", IOPS: 4000, Throughput: 250,
		Device: "/dev/sda1", InstanceID: info.ID, DeleteOnTermination: true, Tags: map[string]string{"nodepool_provider_name": "aws"}}, info.Volumes[0])
	require.NotEmpty(t, info.IPv6)
	require.True(t, strings.HasPrefix(info.PrivateIP, "198.18."))
}

func TestRunInstancesValidation(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		name   string
		mutate func(in *ec2.RunInstancesInput)
		code   string
	}{
		{"unknown image", func(in *ec2.RunInstancesInput) { in.ImageId = awssdk.String("ami-0000000000000dead") }, "InvalidAMIID.NotFound"},
		{"malformed image", func(in *ec2.RunInstancesInput) { in.ImageId = awssdk.String("img-1") }, "InvalidAMIID.Malformed"},
		{"unknown type", func(in *ec2.RunInstancesInput) { in.InstanceType = "m99.huge" }, "InvalidParameterValue"},
		{"bad user data", func(in *ec2.RunInstancesInput) { in.UserData = awssdk.String("not base64!") }, "InvalidParameterValue"},
		{"root too small", func(in *ec2.RunInstancesInput) {
			in.BlockDeviceMappings = []ec2types.BlockDeviceMapping{{DeviceName: awssdk.String("/dev/sda1"), Ebs: &ec2types.EbsBlockDevice{VolumeSize: awssdk.Int32(4)}}}
		}, "InvalidBlockDeviceMapping"},
		{"iops on gp2", func(in *ec2.RunInstancesInput) {
			in.BlockDeviceMappings = []ec2types.BlockDeviceMapping{{DeviceName: awssdk.String("/dev/sda1"), Ebs: &ec2types.EbsBlockDevice{Iops: awssdk.Int32(100)}}}
		}, "InvalidParameterCombination"},
		{"bad tag resource", func(in *ec2.RunInstancesInput) {
			in.TagSpecifications = []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVpc, Tags: []ec2types.Tag{{Key: awssdk.String("a"), Value: awssdk.String("b")}}}}
		}, "InvalidParameterValue"},
		{"unknown zone", func(in *ec2.RunInstancesInput) {
			in.Placement = &ec2types.Placement{AvailabilityZone: awssdk.String("mars-1a")}
		}, "InvalidParameterValue"},
		{"arch mismatch", func(in *ec2.RunInstancesInput) { in.InstanceType = ec2types.InstanceTypeM6gLarge }, "InvalidParameterValue"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := runInput("")
			in.ClientToken = nil
			tc.mutate(in)
			_, err := f.ec2.RunInstances(context.Background(), in)
			code, status := apiCode(t, err)
			require.Equal(t, tc.code, code)
			require.Equal(t, http.StatusBadRequest, status)
		})
	}
	require.Empty(t, f.srv.Instances())
}

func TestClientTokenIdempotency(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	a, err := f.ec2.RunInstances(ctx, runInput("np-0000000001-1"))
	require.NoError(t, err)
	b, err := f.ec2.RunInstances(ctx, runInput("np-0000000001-1"))
	require.NoError(t, err)
	require.Equal(t, *a.Instances[0].InstanceId, *b.Instances[0].InstanceId)
	require.Equal(t, *a.ReservationId, *b.ReservationId)
	require.Len(t, f.srv.Instances(), 1)

	changed := runInput("np-0000000001-1")
	changed.InstanceType = ec2types.InstanceTypeC5Large
	_, err = f.ec2.RunInstances(ctx, changed)
	code, _ := apiCode(t, err)
	require.Equal(t, "IdempotentParameterMismatch", code)

	c, err := f.ec2.RunInstances(ctx, runInput("np-0000000001-2"))
	require.NoError(t, err)
	require.NotEqual(t, *a.Instances[0].InstanceId, *c.Instances[0].InstanceId)
	require.Len(t, f.srv.Instances(), 2)
}

func TestLifecycleAndVolumes(t *testing.T) {
	f := newFixture(t, Options{BootTime: 10 * time.Second, TerminateTime: 5 * time.Second, TerminatedRetention: time.Minute})
	ctx := context.Background()
	in := runInput("life")
	in.BlockDeviceMappings = []ec2types.BlockDeviceMapping{{DeviceName: awssdk.String("/dev/sdb"), Ebs: &ec2types.EbsBlockDevice{
		VolumeSize: awssdk.Int32(10), DeleteOnTermination: awssdk.Bool(false),
	}}}
	out, err := f.ec2.RunInstances(ctx, in)
	require.NoError(t, err)
	id := *out.Instances[0].InstanceId
	describe := func() ec2types.Instance {
		d, err := f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		require.NoError(t, err)
		require.Len(t, d.Reservations, 1)
		require.Len(t, d.Reservations[0].Instances, 1)
		return d.Reservations[0].Instances[0]
	}
	got := describe()
	require.Equal(t, ec2types.InstanceStateNamePending, got.State.Name)
	require.Nil(t, got.PublicIpAddress)
	require.NotNil(t, got.PrivateIpAddress)
	require.Len(t, got.BlockDeviceMappings, 2)

	f.clock.Advance(10 * time.Second)
	got = describe()
	require.Equal(t, ec2types.InstanceStateNameRunning, got.State.Name)
	require.NotNil(t, got.PublicIpAddress)
	require.True(t, strings.HasPrefix(*got.PublicIpAddress, "203.0.113."))
	require.Equal(t, *got.PublicIpAddress, *got.NetworkInterfaces[0].Association.PublicIp)
	require.NotEmpty(t, *got.Placement.AvailabilityZone)
	require.Len(t, got.NetworkInterfaces[0].Ipv6Addresses, 1)
	require.Equal(t, "zuul", *got.KeyName)

	term, err := f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err)
	require.Equal(t, ec2types.InstanceStateNameShuttingDown, term.TerminatingInstances[0].CurrentState.Name)
	require.Equal(t, ec2types.InstanceStateNameRunning, term.TerminatingInstances[0].PreviousState.Name)

	f.clock.Advance(5 * time.Second)
	got = describe()
	require.Equal(t, ec2types.InstanceStateNameTerminated, got.State.Name)
	require.Equal(t, "Client.UserInitiatedShutdown", *got.StateReason.Code)

	vols, err := f.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: awssdk.String("tag:nodepool_provider_name"), Values: []string{"aws"}},
	}})
	require.NoError(t, err)
	require.Len(t, vols.Volumes, 1, "the root volume is deleted on termination, the data volume stays")
	require.Equal(t, ec2types.VolumeStateAvailable, vols.Volumes[0].State)
	require.Equal(t, int32(10), *vols.Volumes[0].Size)
	_, err = f.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: vols.Volumes[0].VolumeId})
	require.NoError(t, err)
	_, err = f.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: vols.Volumes[0].VolumeId})
	code, status := apiCode(t, err)
	require.Equal(t, "InvalidVolume.NotFound", code)
	require.Equal(t, http.StatusBadRequest, status)

	f.clock.Advance(time.Minute)
	_, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	code, _ = apiCode(t, err)
	require.Equal(t, "InvalidInstanceID.NotFound", code)
}

func TestDeleteVolumeInUse(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	out, err := f.ec2.RunInstances(ctx, runInput("vol-in-use"))
	require.NoError(t, err)
	vol := *out.Instances[0].BlockDeviceMappings[0].Ebs.VolumeId
	_, err = f.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: &vol})
	code, _ := apiCode(t, err)
	require.Equal(t, "VolumeInUse", code)
}

func TestDescribeInstancesFiltersAndPages(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	var ids []string
	for i := range 12 {
		in := runInput("")
		in.ClientToken = nil
		in.TagSpecifications[0].Tags[1].Value = awssdk.String([]string{"aws", "other"}[i%2])
		out, err := f.ec2.RunInstances(ctx, in)
		require.NoError(t, err)
		ids = append(ids, *out.Instances[0].InstanceId)
	}
	_, err := f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids[:2]})
	require.NoError(t, err)

	count := func(filters ...ec2types.Filter) int {
		n, pages := 0, 0
		p := ec2.NewDescribeInstancesPaginator(f.ec2, &ec2.DescribeInstancesInput{Filters: filters, MaxResults: awssdk.Int32(5)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			require.NoError(t, err)
			pages++
			for _, r := range out.Reservations {
				n += len(r.Instances)
			}
		}
		require.LessOrEqual(t, pages, 3)
		return n
	}
	tests := []struct {
		name    string
		filters []ec2types.Filter
		want    int
	}{
		{"all", nil, 12},
		{"tag", []ec2types.Filter{{Name: awssdk.String("tag:nodepool_provider_name"), Values: []string{"aws"}}}, 6},
		{"tag wildcard", []ec2types.Filter{{Name: awssdk.String("tag:nodepool_provider_name"), Values: []string{"ot*"}}}, 6},
		{"tag-key", []ec2types.Filter{{Name: awssdk.String("tag-key"), Values: []string{"Name"}}}, 12},
		{"state", []ec2types.Filter{{Name: awssdk.String("instance-state-name"), Values: []string{"pending", "running"}}}, 10},
		{"id", []ec2types.Filter{{Name: awssdk.String("instance-id"), Values: []string{ids[3], ids[4]}}}, 2},
		{"and", []ec2types.Filter{
			{Name: awssdk.String("tag:nodepool_provider_name"), Values: []string{"aws"}},
			{Name: awssdk.String("instance-state-name"), Values: []string{"terminated"}},
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, count(tc.filters...)) })
	}

	_, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: awssdk.String("bogus"), Values: []string{"x"}}}})
	code, _ := apiCode(t, err)
	require.Equal(t, "InvalidParameterValue", code)
	_, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{ids[0], "i-00000000000000bad"}})
	code, _ = apiCode(t, err)
	require.Equal(t, "InvalidInstanceID.NotFound", code)
	_, err = f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-00000000000000bad"}})
	code, _ = apiCode(t, err)
	require.Equal(t, "InvalidInstanceID.NotFound", code)
}

func TestListingLag(t *testing.T) {
	f := newFixture(t, Options{ListingLag: 3 * time.Second})
	ctx := context.Background()
	out, err := f.ec2.RunInstances(ctx, runInput("lag"))
	require.NoError(t, err)
	id := *out.Instances[0].InstanceId
	all, err := f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	require.NoError(t, err)
	require.Empty(t, all.Reservations, "a new instance is not listed yet")
	byID, err := f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err)
	require.Len(t, byID.Reservations, 1, "asking by id always finds it")
	f.clock.Advance(3 * time.Second)
	all, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	require.NoError(t, err)
	require.Len(t, all.Reservations, 1)
}

func TestInjectedErrors(t *testing.T) {
	f := newFixture(t, Options{VCPULimits: map[string]int{QuotaStandardOnDemand: 4}})
	ctx := context.Background()
	tests := []struct {
		code   string
		status int
	}{
		{"RequestLimitExceeded", http.StatusServiceUnavailable},
		{"InsufficientInstanceCapacity", http.StatusInternalServerError},
		{"InternalError", http.StatusInternalServerError},
		{"VcpuLimitExceeded", http.StatusBadRequest},
		{"UnauthorizedOperation", http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			f.srv.InjectError("RunInstances", tc.code, 1)
			_, err := f.ec2.RunInstances(ctx, runInput("inj"))
			code, status := apiCode(t, err)
			require.Equal(t, tc.code, code)
			require.Equal(t, tc.status, status)
		})
	}
	require.Empty(t, f.srv.Instances(), "failed calls create nothing")

	// The vCPU quota: m5.large has 2 vCPUs, the limit is 4.
	for i := range 2 {
		_, err := f.ec2.RunInstances(ctx, runInput("q"+string(rune('a'+i))))
		require.NoError(t, err)
	}
	_, err := f.ec2.RunInstances(ctx, runInput("qc"))
	code, _ := apiCode(t, err)
	require.Equal(t, "VcpuLimitExceeded", code)

	// A blocked offering reports insufficient capacity for that market only.
	f.srv.SetVCPULimit(QuotaStandardOnDemand, -1)
	f.srv.BlockOffering("c5.large", "spot", true)
	spot := runInput("spot")
	spot.InstanceType = ec2types.InstanceTypeC5Large
	spot.InstanceMarketOptions = &ec2types.InstanceMarketOptionsRequest{MarketType: ec2types.MarketTypeSpot}
	_, err = f.ec2.RunInstances(ctx, spot)
	code, _ = apiCode(t, err)
	require.Equal(t, "InsufficientInstanceCapacity", code)
	onDemand := runInput("on-demand")
	onDemand.InstanceType = ec2types.InstanceTypeC5Large
	_, err = f.ec2.RunInstances(ctx, onDemand)
	require.NoError(t, err)

	st := f.srv.Stats()
	require.Equal(t, int64(len(tests)+5), st.Calls["RunInstances"])
	require.Equal(t, int64(1), st.Errors["RequestLimitExceeded"])
	require.Equal(t, 3, st.Instances["pending"]+st.Instances["running"])
}

func TestSeededErrorRatesAreDeterministic(t *testing.T) {
	sequence := func(seed uint64) []string {
		f := newFixture(t, Options{Seed: seed, Errors: ErrorRates{Throttle: 0.3, Capacity: 0.2}})
		var out []string
		for range 30 {
			in := runInput("")
			in.ClientToken = nil
			_, err := f.ec2.RunInstances(context.Background(), in)
			if err == nil {
				out = append(out, "ok")
				continue
			}
			code, _ := apiCode(t, err)
			out = append(out, code)
		}
		return out
	}
	a, b, c := sequence(7), sequence(7), sequence(8)
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)
	require.Contains(t, a, "RequestLimitExceeded")
	require.Contains(t, a, "InsufficientInstanceCapacity")
	require.Contains(t, a, "ok")
}

func TestDescribeImagesAndTypes(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	imgs, err := f.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"099720109477"},
		Filters: []ec2types.Filter{{Name: awssdk.String("name"), Values: []string{"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"}}},
	})
	require.NoError(t, err)
	require.Len(t, imgs.Images, 2)
	require.Equal(t, "2024-06-01T12:00:00.000Z", *imgs.Images[1].CreationDate)
	require.Equal(t, "/dev/sda1", *imgs.Images[0].BlockDeviceMappings[0].DeviceName)
	require.Equal(t, int32(8), *imgs.Images[0].BlockDeviceMappings[0].Ebs.VolumeSize)

	_, err = f.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-0000000000000dead"}})
	code, _ := apiCode(t, err)
	require.Equal(t, "InvalidAMIID.NotFound", code)

	types, err := f.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"m5.xlarge"}})
	require.NoError(t, err)
	require.Len(t, types.InstanceTypes, 1)
	require.Equal(t, int32(4), *types.InstanceTypes[0].VCpuInfo.DefaultVCpus)
	require.Equal(t, int32(2), *types.InstanceTypes[0].VCpuInfo.DefaultCores)
	require.Equal(t, int64(16384), *types.InstanceTypes[0].MemoryInfo.SizeInMiB)
	_, err = f.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"m99.huge"}})
	code, _ = apiCode(t, err)
	require.Equal(t, "InvalidInstanceType", code)

	azs, err := f.ec2.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	require.NoError(t, err)
	require.Len(t, azs.AvailabilityZones, 3)
	require.Equal(t, "us-east-1b", *azs.AvailabilityZones[1].ZoneName)
}

func TestCreateTagsAndVolumes(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	vol, err := f.ec2.CreateVolume(ctx, &ec2.CreateVolumeInput{
		AvailabilityZone: awssdk.String("us-east-1a"), Size: awssdk.Int32(5),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: []ec2types.Tag{{Key: awssdk.String("a"), Value: awssdk.String("1")}}}},
	})
	require.NoError(t, err)
	_, err = f.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{*vol.VolumeId}, Tags: []ec2types.Tag{{Key: awssdk.String("b"), Value: awssdk.String("2")}}})
	require.NoError(t, err)
	got := f.srv.Volumes()
	require.Len(t, got, 1)
	require.Equal(t, map[string]string{"a": "1", "b": "2"}, got[0].Tags)
	_, err = f.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"i-00000000000000bad"}, Tags: []ec2types.Tag{{Key: awssdk.String("b"), Value: awssdk.String("2")}}})
	code, _ := apiCode(t, err)
	require.Equal(t, "InvalidInstanceID.NotFound", code)
}

func TestServiceQuotas(t *testing.T) {
	f := newFixture(t, Options{VCPULimits: map[string]int{QuotaStandardOnDemand: 64, QuotaStandardSpot: 32}})
	ctx := context.Background()
	out, err := f.quotas.ListServiceQuotas(ctx, &servicequotas.ListServiceQuotasInput{ServiceCode: awssdk.String("ec2")})
	require.NoError(t, err)
	got := map[string]float64{}
	for _, q := range out.Quotas {
		got[*q.QuotaCode] = *q.Value
	}
	require.Equal(t, map[string]float64{QuotaStandardOnDemand: 64, QuotaStandardSpot: 32}, got)

	f.srv.InjectError("ListServiceQuotas", "AccessDeniedException", 1)
	_, err = f.quotas.ListServiceQuotas(ctx, &servicequotas.ListServiceQuotasInput{ServiceCode: awssdk.String("ec2")})
	code, status := apiCode(t, err)
	require.Equal(t, "AccessDeniedException", code)
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, int64(2), f.srv.Calls("ListServiceQuotas"))
}

func TestAdminEndpoints(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	_, err := f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	require.NoError(t, err)

	resp, err := http.PostForm(f.url+"/_inject", url.Values{"action": {"DescribeInstances"}, "code": {"RequestLimitExceeded"}, "count": {"2"}})
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	for range 2 {
		_, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		code, _ := apiCode(t, err)
		require.Equal(t, "RequestLimitExceeded", code)
	}
	_, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	require.NoError(t, err)

	readStats := func() Stats {
		resp, err := http.Get(f.url + "/_stats")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var st Stats
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
		return st
	}
	st := readStats()
	require.Equal(t, int64(4), st.Calls["DescribeInstances"])
	require.Equal(t, int64(2), st.Errors["RequestLimitExceeded"])

	resp, err = http.Post(f.url+"/_stats/reset", "", nil)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Empty(t, readStats().Calls)

	resp, err = http.PostForm(f.url+"/_inject", url.Values{"action": {"RunInstances"}})
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestQueryProtocolErrors(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		name string
		form url.Values
		code string
	}{
		{"no action", url.Values{"Version": {"2016-11-15"}}, "MissingParameter"},
		{"unknown action", url.Values{"Action": {"LaunchRockets"}}, "InvalidAction"},
		{"bad list index", url.Values{"Action": {"DescribeInstances"}, "InstanceId.x": {"i-1"}}, "InvalidParameterValue"},
		{"bad max results", url.Values{"Action": {"DescribeInstances"}, "MaxResults": {"2"}}, "InvalidParameterValue"},
		{"bad token", url.Values{"Action": {"DescribeInstances"}, "NextToken": {"zzz"}}, "InvalidParameterValue"},
		{"missing counts", url.Values{"Action": {"RunInstances"}, "ImageId": {ImageDebian12}, "InstanceType": {"t3.micro"}}, "MissingParameter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.PostForm(f.url+"/", tc.form)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			var doc xmlErrorResponse
			require.NoError(t, decodeXML(resp, &doc))
			require.Len(t, doc.Errors, 1)
			require.Equal(t, tc.code, doc.Errors[0].Code)
			require.NotEmpty(t, doc.RequestID)
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"a*", "abc", true},
		{"*c", "abc", true},
		{"a?c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"*", "", true},
		{"", "x", false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, globMatch(tc.pattern, tc.s), "%q ~ %q", tc.pattern, tc.s)
	}
}

func decodeXML(resp *http.Response, v any) error {
	return xml.NewDecoder(resp.Body).Decode(v)
}

// sdkHTTPClient hides the WriteTo method of request bodies from net/http: the SDK's
// body answers io.EOF from WriteTo once the SDK closed it on receiving the response,
// and net/http then closes the connection while the response is still being read
// (aws-sdk-go-v2 issue 2737). drivers/aws carries the same repair.
type sdkHTTPClient struct{}

type readOnlyBody struct{ io.ReadCloser }

func (sdkHTTPClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = readOnlyBody{req.Body}
	}
	return http.DefaultClient.Do(req)
}

// Instances are counted per node tag over the server's life; idempotent repeats are
// not new instances.
func TestCreationsByNode(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	tagged := func(token, node string) *ec2.RunInstancesInput {
		in := runInput(token)
		in.TagSpecifications[0].Tags = append(in.TagSpecifications[0].Tags,
			ec2types.Tag{Key: awssdk.String(DefaultNodeTag), Value: awssdk.String(node)})
		return in
	}
	for _, run := range []struct{ token, node string }{
		{"np-1-1", "0000000001"}, {"np-1-1", "0000000001"}, {"np-2-1", "0000000002"}, {"np-1-2", "0000000001"},
	} {
		_, err := f.ec2.RunInstances(ctx, tagged(run.token, run.node))
		require.NoError(t, err)
	}
	_, err := f.ec2.RunInstances(ctx, runInput("untagged"))
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"0000000001": 2, "0000000002": 1}, f.srv.CreationsByNode())
	st := f.srv.Stats()
	assert.EqualValues(t, 4, st.Created)
	assert.Equal(t, 2, st.NodesCreated)
	assert.Equal(t, 1, st.NodesCreatedTwice)
	assert.EqualValues(t, 2, st.MaxCreatedPerNode)

	resp, err := http.Get(f.url + "/_creations")
	require.NoError(t, err)
	defer resp.Body.Close()
	var got map[string]int64
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, f.srv.CreationsByNode(), got)
}

// Error rates and delays change while the server runs.
func TestSetFaults(t *testing.T) {
	f := newFixture(t, Options{Seed: 5})
	ctx := context.Background()
	put := func(body string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, f.url+"/_faults", strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusBadRequest, put(`{"errors": {"throttle": 2}}`))
	require.Equal(t, http.StatusBadRequest, put(`{"delays": {"RunInstances": -1}}`))
	require.Equal(t, http.StatusOK, put(`{"errors": {"capacity": 1}}`))
	_, err := f.ec2.RunInstances(ctx, runInput("cap"))
	code, _ := apiCode(t, err)
	assert.Equal(t, "InsufficientInstanceCapacity", code)

	require.Equal(t, http.StatusOK, put(`{"delays": {"DescribeInstances": 0.1}}`))
	assert.Equal(t, Faults{Delays: map[string]float64{"DescribeInstances": 0.1}}, f.srv.Faults())
	_, err = f.ec2.RunInstances(ctx, runInput("cap"))
	require.NoError(t, err, "rates were replaced")
	start := time.Now()
	_, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

	require.NoError(t, f.srv.SetFaults(Faults{}))
	assert.Equal(t, Faults{}, f.srv.Faults())
}

// A RunInstances that repeats a client token gets the first call's instance, never a
// random capacity error; throttling still applies.
func TestCapacityFaultsSpareIdempotentRepeats(t *testing.T) {
	f := newFixture(t, Options{Seed: 9})
	ctx := context.Background()
	first, err := f.ec2.RunInstances(ctx, runInput("np-0000000007-1"))
	require.NoError(t, err)
	require.NoError(t, f.srv.SetFaults(Faults{Errors: ErrorRates{Capacity: 1, Quota: 1}}))
	for range 5 {
		again, err := f.ec2.RunInstances(ctx, runInput("np-0000000007-1"))
		require.NoError(t, err)
		assert.Equal(t, *first.Instances[0].InstanceId, *again.Instances[0].InstanceId)
	}
	_, err = f.ec2.RunInstances(ctx, runInput("np-0000000008-1"))
	code, _ := apiCode(t, err)
	assert.Equal(t, "InsufficientInstanceCapacity", code, "a new launch meets the capacity fault")
	require.NoError(t, f.srv.SetFaults(Faults{Errors: ErrorRates{Throttle: 1}}))
	_, err = f.ec2.RunInstances(ctx, runInput("np-0000000007-1"))
	code, _ = apiCode(t, err)
	assert.Equal(t, "RequestLimitExceeded", code)
}
