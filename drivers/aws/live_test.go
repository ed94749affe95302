package aws

import (
	"context"
	"os"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/driverstest"
)

// TestLiveAWS runs the conformance suite against real EC2. It launches and terminates
// several small instances, so it runs only when asked:
//
//	NODEPOOL_AWS_LIVE_REGION=us-east-1 NODEPOOL_AWS_LIVE_KEY_NAME=my-key \
//	  go test ./drivers/aws -run Live -v
//
// with AWS credentials from the SDK's default chain (environment, shared files or an
// instance role). Optional: NODEPOOL_AWS_LIVE_INSTANCE_TYPE (t3.micro),
// NODEPOOL_AWS_LIVE_IMAGE_ID (default: the newest Canonical Ubuntu 22.04 AMI),
// NODEPOOL_AWS_LIVE_SUBNET_ID and NODEPOOL_AWS_LIVE_SECURITY_GROUP_ID (default VPC
// otherwise), NODEPOOL_AWS_LIVE_PROFILE.
func TestLiveAWS(t *testing.T) {
	region := os.Getenv("NODEPOOL_AWS_LIVE_REGION")
	if region == "" {
		t.Skip("set NODEPOOL_AWS_LIVE_REGION (and AWS credentials) to run against real AWS")
	}
	keyName := os.Getenv("NODEPOOL_AWS_LIVE_KEY_NAME")
	if keyName == "" {
		t.Skip("set NODEPOOL_AWS_LIVE_KEY_NAME to an EC2 key pair of the region")
	}
	profile := os.Getenv("NODEPOOL_AWS_LIVE_PROFILE")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	loaders := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if profile != "" {
		loaders = append(loaders, awsconfig.WithSharedConfigProfile(profile))
	}
	sdkCfg, err := awsconfig.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		t.Skipf("no AWS configuration: %v", err)
	}
	if _, err := sdkCfg.Credentials.Retrieve(ctx); err != nil {
		t.Skipf("no AWS credentials: %v", err)
	}

	image := CloudImage{Name: "live", Username: "ubuntu", ImageID: os.Getenv("NODEPOOL_AWS_LIVE_IMAGE_ID")}
	if image.ImageID == "" {
		image.ImageFilters = []ImageFilter{
			{Name: "name", Values: []string{"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"}},
			{Name: "owner-id", Values: []string{"099720109477"}},
		}
	}
	instanceType := os.Getenv("NODEPOOL_AWS_LIVE_INSTANCE_TYPE")
	if instanceType == "" {
		instanceType = "t3.micro"
	}
	cfg := Config{
		RegionName:  region,
		ProfileName: profile,
		CloudImages: []CloudImage{image},
		Pools: []Pool{{
			SubnetID:        os.Getenv("NODEPOOL_AWS_LIVE_SUBNET_ID"),
			SecurityGroupID: os.Getenv("NODEPOOL_AWS_LIVE_SECURITY_GROUP_ID"),
			Labels:          []Label{{InstanceType: instanceType, CloudImage: "live", KeyName: keyName}},
		}},
	}
	const provider = "nodepool-temporal-live-test"
	driverstest.Run(t, driverstest.Harness{
		New: func(t *testing.T) drivers.Driver {
			d, err := New(context.Background(), provider, cfg, []PoolSpec{{Name: "main", Labels: []string{"live"}}},
				WithPollInterval(5*time.Second))
			require.NoError(t, err)
			return d
		},
		Provider:          provider,
		Pool:              "main",
		Label:             "live",
		UnknownExternalID: formatExternalID("i-0000000000000dead"),
		MaxSteps:          120,
		MaxSleep:          10 * time.Second,
		PollInterval:      5 * time.Second,
		Timeout:           15 * time.Minute,
	})
}
