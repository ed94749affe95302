package aws

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
)

// startCreate runs the "start" step of a new create and returns the state about to
// submit.
func startCreate(t *testing.T, d *Driver, req drivers.CreateRequest) drivers.CreateState {
	t.Helper()
	st, err := d.AdvanceCreate(context.Background(), drivers.CreateState{Request: req})
	require.NoError(t, err)
	require.Equal(t, StepSubmitCreating, st.Step)
	return st
}

// requireCapacity asserts that err is a capacity error with a retry hint in (0, most].
func requireCapacity(t *testing.T, err error, most time.Duration) time.Duration {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
	after := drivers.RetryAfter(err)
	require.Positive(t, after, "a capacity error before any instance exists carries a retry hint: %v", err)
	require.LessOrEqual(t, after, most, "%v", err)
	return after
}

// TestCapacityErrorsDoNotOutliveTheWindow: two nodes of a pool hit
// InsufficientInstanceCapacity on the same offering. While the pool avoids the
// offering, other launches of the pool fail at once with a capacity error whose hint
// says when to come back, without asking EC2; once the short window is over they
// launch, and the nodes that failed launch in the same attempt.
func TestCapacityErrorsDoNotOutliveTheWindow(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	ctx := context.Background()
	e.sim.BlockOffering("m5.large", "on-demand", true)

	a := startCreate(t, d, request("0000003000", testPool, "jammy", 1))
	b := startCreate(t, d, request("0000003001", testPool, "jammy", 1))
	retryA, errA := d.AdvanceCreate(ctx, a)
	requireCapacity(t, errA, DefaultUnavailableTTL)
	require.Contains(t, errA.Error(), "InsufficientInstanceCapacity")
	e.clock.Advance(5 * time.Second)
	retryB, errB := d.AdvanceCreate(ctx, b)
	requireCapacity(t, errB, DefaultUnavailableTTL)
	require.Equal(t, int64(2), e.sim.Calls("RunInstances"))

	// The failed steps hand back a state that starts a new round at "start".
	require.Equal(t, StepStart, retryA.Step)
	require.Empty(t, retryA.ExternalID)

	// Within the window another node of the pool fails at once, told to come back when
	// the window is over.
	_, errC := d.AdvanceCreate(ctx, drivers.CreateState{Request: request("0000003002", testPool, "jammy", 1)})
	after := requireCapacity(t, errC, DefaultUnavailableTTL)
	require.Equal(t, DefaultUnavailableTTL, after, "the window runs from the second error")
	require.LessOrEqual(t, after, time.Minute, "the window is short")
	require.Equal(t, int64(2), e.sim.Calls("RunInstances"), "no call while the offering is avoided")

	// The shortage is over; after the window every launch goes ahead.
	e.sim.BlockOffering("m5.large", "on-demand", false)
	e.clock.Advance(after)
	for _, st := range []drivers.CreateState{
		{Request: request("0000003002", testPool, "jammy", 1)},
		{Request: request("0000003003", testPool, "jammy", 1)},
		retryA,
		retryB,
	} {
		done := e.create(d, st)
		require.True(t, done.Complete)
		require.Len(t, e.nodeInstances(st.Request.NodeID), 1, "node %s", st.Request.NodeID)
	}
	require.Equal(t, int64(6), e.sim.Calls("RunInstances"))

	// The new round used a new client token, so that EC2 cannot answer it with the
	// failure of the first round.
	tokens := map[string]bool{}
	for _, in := range e.sim.Instances() {
		tokens[in.ClientToken] = true
	}
	require.False(t, tokens[d.clientToken(a.Request, 0)])
	require.True(t, tokens[d.clientToken(a.Request, 1)])
}

// TestCapacityRetryOfTheFailedState: repeating the step that failed for capacity,
// with its input state, is as safe as going on from the state it returned.
func TestCapacityRetryOfTheFailedState(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	ctx := context.Background()
	st := startCreate(t, d, request("0000003050", testPool, "jammy", 1))
	e.sim.InjectError("RunInstances", "InsufficientInstanceCapacity", 1)
	_, err := d.AdvanceCreate(ctx, st)
	e.clock.Advance(requireCapacity(t, err, DefaultUnavailableTTL))
	for range 2 {
		next, err := d.AdvanceCreate(ctx, st)
		require.NoError(t, err)
		require.Equal(t, StepCreating, next.Step)
	}
	require.Len(t, e.nodeInstances("0000003050"), 1)
}

// TestCapacityIsNeverPermanent: a shortage that lasts gives capacity errors, step
// after step and round after round.
func TestCapacityIsNeverPermanent(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	ctx := context.Background()
	e.sim.BlockOffering("m5.large", "spot", true)
	e.sim.BlockOffering("c5.large", "spot", true)
	e.sim.BlockOffering("m5.large", "on-demand", true)
	e.sim.BlockOffering("c5.large", "on-demand", true)
	st := drivers.CreateState{Request: request("0000003100", testPool, "fallback", 1)}
	for round := range 5 {
		var err error
		for i := 0; i < 10; i++ {
			var next drivers.CreateState
			next, err = d.AdvanceCreate(ctx, st)
			if err != nil {
				st = next
				break
			}
			st = next
		}
		after := requireCapacity(t, err, DefaultUnavailableTTL)
		data, derr := decodeData[createData](st.Data)
		require.NoError(t, derr)
		require.Equal(t, 4*(round+1), data.Offering, "round %d tried every offering once", round)
		e.clock.Advance(after)
	}
	require.Equal(t, int64(20), e.sim.Calls("RunInstances"))
	require.Empty(t, e.nodeInstances("0000003100"))
}

// TestCapacityFallbackToAnotherType: instance-types are tried in order.
func TestCapacityFallbackToAnotherType(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	cfg := e.config()
	cfg.Pools[0].Labels[0].InstanceType = ""
	cfg.Pools[0].Labels[0].InstanceTypes = []string{"m5.large", "c5.large"}
	d := e.driverWith(cfg)
	e.sim.BlockOffering("m5.large", "on-demand", true)

	st := e.create(d, drivers.CreateState{Request: request("0000003200", testPool, "jammy", 1)})
	require.Contains(t, string(st.Instance.DriverData), `"instance_type":"c5.large"`)
	require.Equal(t, int64(2), e.sim.Calls("RunInstances"))
	st = e.create(d, drivers.CreateState{Request: request("0000003201", testPool, "jammy", 1)})
	require.Contains(t, string(st.Instance.DriverData), `"instance_type":"c5.large"`)
	require.Equal(t, int64(3), e.sim.Calls("RunInstances"), "the pool avoids m5.large for a while")
}

// TestCapacityFallbackToAnotherZone: a pool with availability-zones tries the next zone
// with the same instance type, avoids the zone for a while, and comes back to it.
func TestCapacityFallbackToAnotherZone(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	cfg := e.config()
	cfg.Pools[1].AvailabilityZone = ""
	cfg.Pools[1].AvailabilityZones = []string{"us-east-1a", "us-east-1b"}
	d := e.driverWith(cfg)
	e.blockZone("us-east-1a", true)

	st := e.create(d, drivers.CreateState{Request: request("0000003300", "private", "internal", 1)})
	require.Equal(t, "us-east-1b", st.Instance.AZ)
	require.Contains(t, string(st.Instance.DriverData), `"instance_type":"c5.large"`)
	require.Equal(t, int64(1), e.sim.Calls("RunInstances"), "the simulator saw only the call it answered")

	st = e.create(d, drivers.CreateState{Request: request("0000003301", "private", "internal", 1)})
	require.Equal(t, "us-east-1b", st.Instance.AZ)
	require.Equal(t, 1, logCount(e.logs, "offering out of capacity"), "the zone is avoided without a call")

	// A zone the core chose for the request is the only one the launch may use.
	req := request("0000003302", "private", "internal", 1)
	req.AZ = "us-east-1a"
	_, err := d.AdvanceCreate(context.Background(), drivers.CreateState{Request: req})
	requireCapacity(t, err, DefaultUnavailableTTL)

	// Once the window is over the preferred zone is used again.
	e.blockZone("us-east-1a", false)
	e.clock.Advance(DefaultUnavailableTTL)
	st = e.create(d, drivers.CreateState{Request: request("0000003303", "private", "internal", 1)})
	require.Equal(t, "us-east-1a", st.Instance.AZ)
}

// TestCapacityCacheIsPerPool: an offering out of capacity for one pool is still tried
// by the other pools of the provider.
func TestCapacityCacheIsPerPool(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	cfg := e.config()
	cfg.Pools[1].AvailabilityZone = ""
	cfg.Pools[1].Labels[0].InstanceType = "m5.large"
	d := e.driverWith(cfg)
	ctx := context.Background()

	e.sim.InjectError("RunInstances", "InsufficientInstanceCapacity", 1)
	st := startCreate(t, d, request("0000003400", testPool, "jammy", 1))
	_, err := d.AdvanceCreate(ctx, st)
	requireCapacity(t, err, DefaultUnavailableTTL)
	_, err = d.AdvanceCreate(ctx, drivers.CreateState{Request: request("0000003401", testPool, "jammy", 1)})
	requireCapacity(t, err, DefaultUnavailableTTL)

	done := e.create(d, drivers.CreateState{Request: request("0000003402", "private", "internal", 1)})
	require.Contains(t, string(done.Instance.DriverData), `"instance_type":"m5.large"`)
	require.Equal(t, int64(2), e.sim.Calls("RunInstances"))
}

// TestCapacityWindowOption: WithUnavailableTTL sets the window and the hint.
func TestCapacityWindowOption(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver(WithUnavailableTTL(10 * time.Second))
	e.sim.InjectError("RunInstances", "InsufficientInstanceCapacity", 1)
	st := startCreate(t, d, request("0000003500", testPool, "jammy", 1))
	_, err := d.AdvanceCreate(context.Background(), st)
	require.Equal(t, 10*time.Second, requireCapacity(t, err, 10*time.Second))
	e.clock.Advance(10 * time.Second)
	e.create(d, drivers.CreateState{Request: request("0000003501", testPool, "jammy", 1)})
}

// TestCapacityLossWhileLaunchingFailsTheAttempt: a spot instance reclaimed while it
// boots is a capacity error without a retry hint (the attempt failed), and the next
// attempt avoids the offering.
func TestCapacityLossWhileLaunchingFailsTheAttempt(t *testing.T) {
	e := newEnv(t, ec2sim.Options{BootTime: 10 * time.Second, TerminateTime: time.Millisecond})
	d := e.driver()
	ctx := context.Background()
	st := startCreate(t, d, request("0000003600", testPool, "fallback", 1))
	st, err := d.AdvanceCreate(ctx, st)
	require.NoError(t, err)
	require.Equal(t, StepCreating, st.Step)
	id, err := parseExternalID(st.ExternalID)
	require.NoError(t, err)
	_, err = e.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err)
	e.setRewrite(func(body string) string {
		return strings.ReplaceAll(strings.ReplaceAll(body,
			"Client.UserInitiatedShutdown: User initiated shutdown", "Server.SpotInstanceTermination: Spot instance interrupted"),
			"Client.UserInitiatedShutdown", "Server.SpotInstanceTermination")
	})
	e.clock.Advance(testPoll)
	_, err = d.AdvanceCreate(ctx, st)
	e.setRewrite(nil)
	require.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
	require.Zero(t, drivers.RetryAfter(err), "the attempt's instance is lost: no retry within the attempt")

	next := e.create(d, drivers.CreateState{Request: request("0000003600", testPool, "fallback", 2)})
	require.Contains(t, string(next.Instance.DriverData), `"instance_type":"c5.large","market":"spot"`)
}

// TestLaunchOfferings: an instance type is tried in every zone before the next type;
// the zone the core chose is the only one; with one zone the positions are the
// label's offerings, as create states recorded them before zones were added.
func TestLaunchOfferings(t *testing.T) {
	label := &Label{InstanceTypes: []string{"m5.large", "c5.large"}, UseSpot: true, OnDemandFallback: true}
	tests := []struct {
		name string
		pool Pool
		az   string
		want []string
	}{
		{"no zone", Pool{}, "", []string{"m5.large/spot", "c5.large/spot", "m5.large/on-demand", "c5.large/on-demand"}},
		{"one zone", Pool{AvailabilityZone: "us-east-1b"}, "", []string{
			"m5.large/spot/us-east-1b", "c5.large/spot/us-east-1b", "m5.large/on-demand/us-east-1b", "c5.large/on-demand/us-east-1b"}},
		{"zones", Pool{AvailabilityZones: []string{"us-east-1a", "us-east-1b"}}, "", []string{
			"m5.large/spot/us-east-1a", "m5.large/spot/us-east-1b", "c5.large/spot/us-east-1a", "c5.large/spot/us-east-1b",
			"m5.large/on-demand/us-east-1a", "m5.large/on-demand/us-east-1b", "c5.large/on-demand/us-east-1a", "c5.large/on-demand/us-east-1b"}},
		{"zone of the request", Pool{AvailabilityZones: []string{"us-east-1a", "us-east-1b"}}, "us-east-1c", []string{
			"m5.large/spot/us-east-1c", "c5.large/spot/us-east-1c", "m5.large/on-demand/us-east-1c", "c5.large/on-demand/us-east-1c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range launchOfferings(drivers.CreateRequest{AZ: tc.az}, &tc.pool, label) {
				got = append(got, o.String())
			}
			require.Equal(t, tc.want, got)
		})
	}
}
