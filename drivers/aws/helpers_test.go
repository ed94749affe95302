package aws

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
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

	mu     sync.Mutex
	down   bool            // every connection is dropped, as by an endpoint that went away
	zoneIC map[string]bool // RunInstances in these zones answers InsufficientInstanceCapacity
	// rewrite, when set, edits the text of every answer of the simulator.
	rewrite func(string) string
}

// serveHTTP is the listener's handler: the faults the simulator has no knob for, then
// the simulator.
func (e *env) serveHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	down, zones, rewrite := e.down, len(e.zoneIC) > 0, e.rewrite
	e.mu.Unlock()
	if down {
		dropConnection(w)
		return
	}
	if zones && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		e.mu.Lock()
		blocked := form.Get("Action") == "RunInstances" && e.zoneIC[form.Get("Placement.AvailabilityZone")]
		e.mu.Unlock()
		if blocked {
			writeEC2Error(w, "InsufficientInstanceCapacity",
				"We currently do not have sufficient capacity in the Availability Zone you requested ("+form.Get("Placement.AvailabilityZone")+").")
			return
		}
	}
	if rewrite == nil {
		e.sim.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	e.sim.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(rec.Code)
	_, _ = io.WriteString(w, rewrite(rec.Body.String()))
}

// setRewrite makes every answer of the simulator pass through f (nil stops it).
func (e *env) setRewrite(f func(string) string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rewrite = f
}

// setDown drops (or stops dropping) every connection to the endpoint.
func (e *env) setDown(down bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.down = down
}

// blockZone makes RunInstances in the zone answer InsufficientInstanceCapacity (or
// stops it).
func (e *env) blockZone(zone string, blocked bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.zoneIC == nil {
		e.zoneIC = map[string]bool{}
	}
	e.zoneIC[zone] = blocked
	if !blocked {
		delete(e.zoneIC, zone)
	}
}

// dropConnection closes the client's connection without an answer.
func dropConnection(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_ = c.Close()
}

// writeEC2Error answers with EC2's error document.
func writeEC2Error(w http.ResponseWriter, code, message string) {
	type xmlError struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	body, err := xml.Marshal(struct {
		XMLName   xml.Name   `xml:"Response"`
		Errors    []xmlError `xml:"Errors>Error"`
		RequestID string     `xml:"RequestID"`
	}{Errors: []xmlError{{Code: code, Message: message}}, RequestID: "test-request"})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(ec2sim.StatusFor(code))
	_, _ = w.Write(append([]byte(xml.Header), body...))
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
	e := &env{t: t, clock: clock, sim: ec2sim.New(opts), logs: &syncBuffer{}}
	hs := httptest.NewServer(http.HandlerFunc(e.serveHTTP))
	t.Cleanup(hs.Close)
	cfg := awssdk.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer:     func() awssdk.Retryer { return awssdk.NopRetryer{} },
		HTTPClient:  wrapHTTPClient(nil),
	}
	e.url = hs.URL
	e.ec2 = ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = awssdk.String(hs.URL) })
	return e
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
	return e.driverFor(cfg, testPools, extra...)
}

// driverFor returns a driver of cfg, whose pools and labels pools names.
func (e *env) driverFor(cfg Config, pools []PoolSpec, extra ...Option) *Driver {
	e.t.Helper()
	opts := append([]Option{
		WithCredentials(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")),
		WithClock(e.clock.Now),
		WithPollInterval(testPoll),
		WithGracePeriod(testGrace),
		WithBatchWindow(20 * time.Millisecond),
		WithLogger(slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}, extra...)
	d, err := New(context.Background(), testProvider, cfg, pools, opts...)
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
