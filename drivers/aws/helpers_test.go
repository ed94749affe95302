package aws

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
)

const (
	testProvider = "aws-test"
	testPool     = "main"
	testPoll     = time.Second
	testGrace    = 5 * time.Second
)

// manualClock is a clock shared by the cloud and the driver, moved by the test.
type manualClock = testenv.ManualClock

func newManualClock() *manualClock {
	return testenv.NewManualClock(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))
}

// baseConfig is a provider section with the labels the tests use; %s is the endpoint.
const baseConfig = `
region-name: us-east-1
endpoint: %s
cloud-images:
  - name: jammy
    image-filters:
      - name: name
        values: ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"]
      - Name: owner-id
        Values: ["099720109477"]
    username: ubuntu
    python-path: /usr/bin/python3
  - name: debian
    image-id: ami-0a1b2c3d4e5f60003
    username: admin
    shell-type: bash
    connection-port: 2222
pools:
  - subnet-id: subnet-0123456789abcdef0
    security-group-id: sg-0123456789abcdef0
    labels:
      - instance-type: m5.large
        cloud-image: jammy
        key-name: zuul
      - instance-type: t3.medium
        cloud-image: debian
        key-name: zuul
        ebs-optimized: true
        volume-type: gp3
        volume-size: 80
        iops: 4000
        throughput: 250
        userdata: "#cloud-config\n"
        iam-instance-profile:
          name: ci-node
        imdsv2: required
        tags:
          team: ci
          Name: ignored
        dynamic-tags:
          tenant: "{request.tenant_name}"
          request: "req-{request.id}"
          broken: "{request.nope}"
      - instance-types: [m5.large, c5.large]
        cloud-image: debian
        key-name: zuul
        use-spot: true
        on-demand-fallback: true
  - public-ipv4: false
    public-ipv6: true
    use-internal-ip: true
    host-key-checking: false
    availability-zone: us-east-1b
    labels:
      - instance-type: c5.large
        cloud-image: debian
        key-name: zuul
`

var testPools = []PoolSpec{
	{Name: testPool, Labels: []string{"jammy", "debian-full", "fallback"}},
	{Name: "private", Labels: []string{"internal"}},
}

// env is a simulator on a real HTTP listener and drivers talking to it through the
// real SDK.
type env struct {
	t     *testing.T
	clock *manualClock
	sim   *ec2sim.Server
	url   string
	ec2   *ec2.Client // a plain client, for arranging the cloud behind the driver's back
	logs  *syncBuffer
}

func newEnv(t *testing.T, opts ec2sim.Options) *env {
	t.Helper()
	clock := newManualClock()
	if opts.Clock == nil {
		opts.Clock = clock.Now
	}
	if opts.BootTime == 0 {
		opts.BootTime = 3 * time.Second
	}
	if opts.TerminateTime == 0 {
		opts.TerminateTime = 2 * time.Second
	}
	sim := ec2sim.New(opts)
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	cfg := awssdk.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer:     func() awssdk.Retryer { return awssdk.NopRetryer{} },
		HTTPClient:  wrapHTTPClient(nil),
	}
	return &env{
		t: t, clock: clock, sim: sim, url: hs.URL, logs: &syncBuffer{},
		ec2: ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = awssdk.String(hs.URL) }),
	}
}

// config decodes the test provider section pointed at the simulator.
func (e *env) config() Config {
	e.t.Helper()
	cfg, err := DecodeConfig([]byte(fmt.Sprintf(baseConfig, e.url)))
	require.NoError(e.t, err)
	return cfg
}

// driver returns a driver on the simulator; extra options override the test defaults.
func (e *env) driver(extra ...Option) *Driver {
	e.t.Helper()
	return e.driverWith(e.config(), extra...)
}

func (e *env) driverWith(cfg Config, extra ...Option) *Driver {
	e.t.Helper()
	opts := append([]Option{
		WithCredentials(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")),
		WithClock(e.clock.Now),
		WithPollInterval(testPoll),
		WithGracePeriod(testGrace),
		WithBatchWindow(20 * time.Millisecond),
		WithLogger(slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}, extra...)
	d, err := New(context.Background(), testProvider, cfg, testPools, opts...)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { require.NoError(e.t, d.Close()) })
	return d
}

func request(nodeID, pool, label string, attempt int) drivers.CreateRequest {
	return drivers.CreateRequest{
		NodeID: nodeID, Attempt: attempt, Hostname: "np" + nodeID, Pool: pool, Label: label,
		Metadata: map[string]string{
			drivers.MetaProviderName: testProvider,
			drivers.MetaPoolName:     pool,
			drivers.MetaNodeID:       nodeID,
		},
		Request: drivers.RequestInfo{ID: "100-0000000001", Labels: []string{label}, TenantName: "openstack"},
	}
}

// create runs a create state machine to completion, moving the clock by each Wait.
func (e *env) create(d *Driver, st drivers.CreateState) drivers.CreateState {
	e.t.Helper()
	for range 100 {
		next, err := d.AdvanceCreate(context.Background(), st)
		require.NoError(e.t, err, "step %q", st.Step)
		st = next
		if st.Complete {
			return st
		}
		e.clock.Advance(st.Wait)
	}
	require.FailNow(e.t, "create did not complete", "at step %q", st.Step)
	return st
}

// deleteAll runs a delete state machine to completion.
func (e *env) deleteAll(d *Driver, st drivers.DeleteState) drivers.DeleteState {
	e.t.Helper()
	for range 100 {
		next, err := d.AdvanceDelete(context.Background(), st)
		require.NoError(e.t, err, "step %q", st.Step)
		st = next
		if st.Complete {
			return st
		}
		e.clock.Advance(st.Wait)
	}
	require.FailNow(e.t, "delete did not complete", "at step %q", st.Step)
	return st
}

// nodeInstances returns the simulator's instances of a node that are not terminated.
func (e *env) nodeInstances(nodeID string) []ec2sim.InstanceInfo {
	var out []ec2sim.InstanceInfo
	for _, in := range e.sim.Instances() {
		if in.Tags[drivers.MetaNodeID] == nodeID && in.State != ec2sim.StateTerminated {
			out = append(out, in)
		}
	}
	return out
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer = testenv.SyncBuffer

// logCount returns how many log lines contain s.
func logCount(b *syncBuffer, s string) int {
	return strings.Count(b.String(), s)
}
