package driverstest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Harness describes the driver under test.
type Harness struct {
	// New returns a fresh driver, configured with Pool and Label, on a fresh or empty
	// cloud. Run closes it when the subtest ends.
	New func(t *testing.T) drivers.Driver
	// Provider is the provider name put into the instances' metadata; default
	// "driverstest".
	Provider string
	// Pool and Label name a pool and a label of it the driver can launch.
	Pool  string
	Label string
	// UnknownExternalID is an external id in the driver's format that the cloud does not
	// know; empty skips that case of the missing-instance subtest.
	UnknownExternalID string

	// Each Inject hook makes the next create call of the cloud behind the most recent
	// driver fail with a quota, capacity, transient (throttling) or permanent (bad
	// request) error. A nil hook skips its case. The capacity error must leave the
	// driver nothing to fall back to (a label with a single offering), so that the
	// step fails.
	InjectQuotaError     func(t *testing.T)
	InjectCapacityError  func(t *testing.T)
	InjectTransientError func(t *testing.T)
	InjectPermanentError func(t *testing.T)

	// Advance moves a fake clock forward. When nil the suite sleeps instead, at most
	// MaxSleep per wait.
	Advance func(d time.Duration)
	// MaxSteps bounds every state machine run and every polling loop; default 100.
	MaxSteps int
	// MaxSleep caps one real sleep when Advance is nil; default 2s.
	MaxSleep time.Duration
	// PollInterval is the wait between polls when the driver gives no hint; default 1s
	// with Advance and 50ms without.
	PollInterval time.Duration
	// Timeout bounds each subtest; default 2 minutes.
	Timeout time.Duration
}

// Run runs the conformance suite against the driver the harness builds.
func Run(t *testing.T, h Harness) {
	t.Helper()
	require.NotNil(t, h.New, "Harness.New is required")
	require.NotEmpty(t, h.Pool, "Harness.Pool is required")
	require.NotEmpty(t, h.Label, "Harness.Label is required")
	if h.Provider == "" {
		h.Provider = "driverstest"
	}
	if h.MaxSteps <= 0 {
		h.MaxSteps = 100
	}
	if h.MaxSleep <= 0 {
		h.MaxSleep = 2 * time.Second
	}
	if h.PollInterval <= 0 {
		h.PollInterval = 50 * time.Millisecond
		if h.Advance != nil {
			h.PollInterval = time.Second
		}
	}
	if h.Timeout <= 0 {
		h.Timeout = 2 * time.Minute
	}
	// Node ids are random so that leftovers of earlier runs on a real cloud do not
	// count as this run's instances.
	s := &suite{h: h}
	s.nextNode.Store(1_000_000_000 + rand.Int64N(8_000_000_000))

	t.Run("CreateToCompletion", s.testCreateToCompletion)
	t.Run("InstanceFields", s.testInstanceFields)
	t.Run("ExternalIDEarly", s.testExternalIDEarly)
	t.Run("DeleteToCompletion", s.testDeleteToCompletion)
	t.Run("DeleteMissing", s.testDeleteMissing)
	t.Run("DeleteTwice", s.testDeleteTwice)
	t.Run("IdempotentCreateSteps", s.testIdempotentCreateSteps)
	t.Run("IdempotentDeleteSteps", s.testIdempotentDeleteSteps)
	t.Run("LeakCleanup", s.testLeakCleanup)
	t.Run("Quota", s.testQuota)
	t.Run("ErrorKinds", s.testErrorKinds)
	t.Run("CapacityRetry", s.testCapacityRetry)
	t.Run("SecondAttempt", s.testSecondAttempt)
}

type suite struct {
	h        Harness
	nextNode atomic.Int64
}

// roundTripMeta is an extra metadata entry every create request carries.
const (
	extraMetaKey   = "driverstest_key"
	extraMetaValue = "round trip value"
)

// setup returns a fresh driver and a context bounded by the harness timeout.
func (s *suite) setup(t *testing.T) (context.Context, drivers.Driver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), s.h.Timeout)
	t.Cleanup(cancel)
	d := s.h.New(t)
	require.NotNil(t, d, "Harness.New returned no driver")
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("closing driver: %v", err)
		}
	})
	return ctx, d
}

// request returns a create request for a new node id, and arranges for the node's
// instances to be deleted when the test ends.
func (s *suite) request(t *testing.T, d drivers.Driver, attempt int) drivers.CreateRequest {
	t.Helper()
	id := fmt.Sprintf("%010d", s.nextNode.Add(1))
	req := s.requestFor(id, attempt)
	t.Cleanup(func() { s.cleanupNode(t, d, id) })
	return req
}

// requestFor returns a create request for a node id and attempt.
func (s *suite) requestFor(nodeID string, attempt int) drivers.CreateRequest {
	return drivers.CreateRequest{
		NodeID:   nodeID,
		Attempt:  attempt,
		Hostname: "np" + nodeID,
		Pool:     s.h.Pool,
		Label:    s.h.Label,
		Metadata: map[string]string{
			drivers.MetaProviderName: s.h.Provider,
			drivers.MetaPoolName:     s.h.Pool,
			drivers.MetaNodeID:       nodeID,
			extraMetaKey:             extraMetaValue,
		},
		Request: drivers.RequestInfo{ID: "100-" + nodeID, Labels: []string{s.h.Label}, Requestor: "driverstest"},
	}
}

// cleanupNode deletes whatever instances the node still has, best effort.
func (s *suite) cleanupNode(t *testing.T, d drivers.Driver, nodeID string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	insts, err := d.ListInstances(ctx)
	if err != nil {
		t.Logf("cleanup of node %s: listing instances: %v", nodeID, err)
		return
	}
	for _, inst := range insts {
		if inst.Metadata[drivers.MetaNodeID] != nodeID || inst.Deleted {
			continue
		}
		st := drivers.DeleteState{ExternalID: inst.ExternalID, NodeID: nodeID}
		for i := 0; i < s.h.MaxSteps && !st.Complete; i++ {
			next, err := d.AdvanceDelete(ctx, st)
			if err != nil {
				t.Logf("cleanup of node %s: deleting %s: %v", nodeID, inst.ExternalID, err)
				break
			}
			st = next
			if !st.Complete {
				s.wait(st.Wait)
			}
		}
	}
}

// wait lets d pass, on the fake clock or for real.
func (s *suite) wait(d time.Duration) {
	if d <= 0 {
		d = 0
	}
	if s.h.Advance != nil {
		s.h.Advance(d)
		return
	}
	if d == 0 {
		d = s.h.PollInterval
	}
	time.Sleep(min(d, s.h.MaxSleep))
}

// poll waits between polls of a condition.
func (s *suite) poll() { s.wait(s.h.PollInterval) }

// roundTrip passes v through JSON, as Temporal does with states between steps.
func roundTrip[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err, "encoding %T as JSON", v)
	var out T
	require.NoError(t, json.Unmarshal(b, &out), "decoding %T from JSON %s", v, b)
	return out
}

// stepCreate advances a create state once, from its JSON round trip.
func (s *suite) stepCreate(ctx context.Context, t *testing.T, d drivers.Driver, st drivers.CreateState) (drivers.CreateState, error) {
	t.Helper()
	next, err := d.AdvanceCreate(ctx, roundTrip(t, st))
	if err == nil {
		require.GreaterOrEqual(t, next.Wait, time.Duration(0), "negative wait after step %q", st.Step)
		if st.ExternalID != "" {
			require.Equal(t, st.ExternalID, next.ExternalID, "external id changed in step %q", st.Step)
		}
	}
	return next, err
}

// stepDelete advances a delete state once, from its JSON round trip.
func (s *suite) stepDelete(ctx context.Context, t *testing.T, d drivers.Driver, st drivers.DeleteState) (drivers.DeleteState, error) {
	t.Helper()
	next, err := d.AdvanceDelete(ctx, roundTrip(t, st))
	if err == nil {
		require.GreaterOrEqual(t, next.Wait, time.Duration(0), "negative wait after step %q", st.Step)
	}
	return next, err
}

// create runs a create state machine to completion; every is called after each step.
func (s *suite) create(ctx context.Context, t *testing.T, d drivers.Driver, st drivers.CreateState,
	every func(st drivers.CreateState)) drivers.CreateState {
	t.Helper()
	for i := 0; i < s.h.MaxSteps; i++ {
		next, err := s.stepCreate(ctx, t, d, st)
		require.NoError(t, err, "create of node %s, step %q", st.Request.NodeID, st.Step)
		st = next
		if every != nil {
			every(st)
		}
		if st.Complete {
			require.NotNil(t, st.Instance, "complete create state without instance")
			return st
		}
		s.wait(st.Wait)
	}
	require.FailNow(t, "create did not complete", "node %s still at step %q after %d steps",
		st.Request.NodeID, st.Step, s.h.MaxSteps)
	return st
}

// createNode creates an instance for a new node and returns the complete state.
func (s *suite) createNode(ctx context.Context, t *testing.T, d drivers.Driver) drivers.CreateState {
	t.Helper()
	return s.create(ctx, t, d, drivers.CreateState{Request: s.request(t, d, 1)}, nil)
}

// deleteInstance runs a delete state machine to completion.
func (s *suite) deleteInstance(ctx context.Context, t *testing.T, d drivers.Driver, st drivers.DeleteState) drivers.DeleteState {
	t.Helper()
	for i := 0; i < s.h.MaxSteps; i++ {
		next, err := s.stepDelete(ctx, t, d, st)
		require.NoError(t, err, "delete of %q, step %q", st.ExternalID, st.Step)
		st = next
		if st.Complete {
			return st
		}
		s.wait(st.Wait)
	}
	require.FailNow(t, "delete did not complete", "instance %q still at step %q after %d steps",
		st.ExternalID, st.Step, s.h.MaxSteps)
	return st
}

// nodeInstances lists the instances of a node that are not deleted.
func (s *suite) nodeInstances(ctx context.Context, t *testing.T, d drivers.Driver, nodeID string) []drivers.Instance {
	t.Helper()
	insts, err := d.ListInstances(ctx)
	require.NoError(t, err, "listing instances")
	var out []drivers.Instance
	for _, inst := range insts {
		if inst.Metadata[drivers.MetaNodeID] == nodeID && !inst.Deleted {
			out = append(out, inst)
		}
	}
	return out
}

// listed reports whether an instance with the external id is listed and not deleted.
func (s *suite) listed(ctx context.Context, t *testing.T, d drivers.Driver, externalID string) bool {
	t.Helper()
	insts, err := d.ListInstances(ctx)
	require.NoError(t, err, "listing instances")
	for _, inst := range insts {
		if inst.ExternalID == externalID && !inst.Deleted {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds, within MaxSteps polls.
func (s *suite) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < s.h.MaxSteps; i++ {
		if cond() {
			return
		}
		s.poll()
	}
	require.FailNow(t, "condition not reached", "%s, after %d polls", what, s.h.MaxSteps)
}

// checkMetadata asserts that got holds every entry of want.
func checkMetadata(t *testing.T, where string, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		assert.Equal(t, v, got[k], "metadata %q on %s", k, where)
	}
}

func (s *suite) testCreateToCompletion(t *testing.T) {
	ctx, d := s.setup(t)
	st := s.createNode(ctx, t, d)
	require.NotEmpty(t, st.ExternalID, "complete state without external id")
	require.Equal(t, st.ExternalID, st.Instance.ExternalID, "instance and state disagree on the external id")

	// Advancing a complete state again (a retried activity) changes nothing.
	again, err := s.stepCreate(ctx, t, d, st)
	require.NoError(t, err, "advancing a complete state")
	require.True(t, again.Complete, "a complete state became incomplete")
	require.Equal(t, st.ExternalID, again.ExternalID)
	require.Len(t, s.nodeInstances(ctx, t, d, st.Request.NodeID), 1, "instances of node %s", st.Request.NodeID)
}

func (s *suite) testInstanceFields(t *testing.T) {
	ctx, d := s.setup(t)
	st := s.createNode(ctx, t, d)
	req := st.Request
	inst := roundTrip(t, *st.Instance)
	listedAs := s.nodeInstances(ctx, t, d, req.NodeID)
	require.Len(t, listedAs, 1, "instances of node %s", req.NodeID)

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"external id", func(t *testing.T) {
			assert.NotEmpty(t, inst.ExternalID)
			assert.Equal(t, st.ExternalID, inst.ExternalID)
		}},
		{"ready", func(t *testing.T) {
			assert.True(t, inst.Ready, "instance not ready")
			assert.False(t, inst.Deleted, "instance deleted")
		}},
		{"interface ip", func(t *testing.T) {
			_, err := netip.ParseAddr(inst.InterfaceIP)
			assert.NoError(t, err, "interface ip %q", inst.InterfaceIP)
		}},
		{"metadata on instance", func(t *testing.T) {
			checkMetadata(t, "the created instance", req.Metadata, inst.Metadata)
		}},
		{"metadata on list", func(t *testing.T) {
			assert.Equal(t, inst.ExternalID, listedAs[0].ExternalID)
			checkMetadata(t, "the listed instance", req.Metadata, listedAs[0].Metadata)
		}},
		{"quota", func(t *testing.T) {
			assert.NotEmpty(t, inst.Quota, "instance quota")
			assert.Equal(t, int64(1), inst.Quota[drivers.ResourceInstances], "instances in quota %v", inst.Quota)
			assert.NotEmpty(t, listedAs[0].Quota, "listed instance quota")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.check)
	}
}

func (s *suite) testExternalIDEarly(t *testing.T) {
	ctx, d := s.setup(t)
	req := s.request(t, d, 1)
	seen := false
	s.create(ctx, t, d, drivers.CreateState{Request: req}, func(st drivers.CreateState) {
		insts := s.nodeInstances(ctx, t, d, req.NodeID)
		require.LessOrEqual(t, len(insts), 1, "instances of node %s at step %q", req.NodeID, st.Step)
		if len(insts) == 1 {
			seen = true
			require.Equal(t, insts[0].ExternalID, st.ExternalID,
				"the cloud lists instance %q for the node but the state at step %q has external id %q",
				insts[0].ExternalID, st.Step, st.ExternalID)
		}
	})
	if !seen {
		// A driver may list from a cache that lags; the instance must show eventually.
		s.eventually(t, "the instance of node "+req.NodeID+" is listed", func() bool {
			return len(s.nodeInstances(ctx, t, d, req.NodeID)) == 1
		})
	}
}

func (s *suite) testDeleteToCompletion(t *testing.T) {
	ctx, d := s.setup(t)
	st := s.createNode(ctx, t, d)
	ds := s.deleteInstance(ctx, t, d, drivers.DeleteState{ExternalID: st.ExternalID, NodeID: st.Request.NodeID})
	require.True(t, ds.Complete)
	require.False(t, s.listed(ctx, t, d, st.ExternalID), "instance %q listed after its deletion completed", st.ExternalID)
	require.Empty(t, s.nodeInstances(ctx, t, d, st.Request.NodeID))

	again, err := s.stepDelete(ctx, t, d, ds)
	require.NoError(t, err, "advancing a complete delete state")
	require.True(t, again.Complete, "a complete delete state became incomplete")
}

func (s *suite) testDeleteMissing(t *testing.T) {
	tests := []struct {
		name string
		// state returns the delete state to run.
		state func(ctx context.Context, t *testing.T, d drivers.Driver) drivers.DeleteState
	}{
		{"no external id", func(context.Context, *testing.T, drivers.Driver) drivers.DeleteState {
			return drivers.DeleteState{NodeID: "0000000000"}
		}},
		{"deleted instance", func(ctx context.Context, t *testing.T, d drivers.Driver) drivers.DeleteState {
			st := s.createNode(ctx, t, d)
			ds := drivers.DeleteState{ExternalID: st.ExternalID, NodeID: st.Request.NodeID}
			s.deleteInstance(ctx, t, d, ds)
			return ds
		}},
		{"unknown instance", func(_ context.Context, t *testing.T, _ drivers.Driver) drivers.DeleteState {
			if s.h.UnknownExternalID == "" {
				t.Skip("the harness gives no UnknownExternalID")
			}
			return drivers.DeleteState{ExternalID: s.h.UnknownExternalID, NodeID: "0000000000"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, d := s.setup(t)
			ds := s.deleteInstance(ctx, t, d, tc.state(ctx, t, d))
			require.True(t, ds.Complete)
		})
	}
}

func (s *suite) testDeleteTwice(t *testing.T) {
	tests := []struct {
		name string
		run  func(ctx context.Context, t *testing.T, d drivers.Driver, ds drivers.DeleteState)
	}{
		{"one after the other", func(ctx context.Context, t *testing.T, d drivers.Driver, ds drivers.DeleteState) {
			require.True(t, s.deleteInstance(ctx, t, d, ds).Complete)
			require.True(t, s.deleteInstance(ctx, t, d, ds).Complete)
		}},
		{"interleaved", func(ctx context.Context, t *testing.T, d drivers.Driver, ds drivers.DeleteState) {
			a, b := ds, ds
			for i := 0; i < s.h.MaxSteps && !(a.Complete && b.Complete); i++ {
				var err error
				a, err = s.stepDelete(ctx, t, d, a)
				require.NoError(t, err, "first delete of %q", ds.ExternalID)
				b, err = s.stepDelete(ctx, t, d, b)
				require.NoError(t, err, "second delete of %q", ds.ExternalID)
				if !(a.Complete && b.Complete) {
					s.wait(max(a.Wait, b.Wait))
				}
			}
			require.True(t, a.Complete && b.Complete, "interleaved deletes did not complete in %d steps", s.h.MaxSteps)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, d := s.setup(t)
			st := s.createNode(ctx, t, d)
			tc.run(ctx, t, d, drivers.DeleteState{ExternalID: st.ExternalID, NodeID: st.Request.NodeID})
			require.False(t, s.listed(ctx, t, d, st.ExternalID), "instance %q listed after deletion", st.ExternalID)
		})
	}
}

func (s *suite) testIdempotentCreateSteps(t *testing.T) {
	ctx, d := s.setup(t)
	req := s.request(t, d, 1)
	st := drivers.CreateState{Request: req}
	for i := 0; ; i++ {
		require.Less(t, i, s.h.MaxSteps, "create did not complete in %d steps", s.h.MaxSteps)
		first, err := s.stepCreate(ctx, t, d, st)
		require.NoError(t, err, "step %q", st.Step)
		second, err := s.stepCreate(ctx, t, d, st)
		require.NoError(t, err, "repeated step %q", st.Step)
		if first.ExternalID != "" && second.ExternalID != "" {
			require.Equal(t, first.ExternalID, second.ExternalID, "repeated step %q gave another instance", st.Step)
		}
		insts := s.nodeInstances(ctx, t, d, req.NodeID)
		require.LessOrEqual(t, len(insts), 1, "instances of node %s after repeating step %q", req.NodeID, st.Step)
		st = second
		if st.Complete {
			break
		}
		s.wait(st.Wait)
	}
	insts := s.nodeInstances(ctx, t, d, req.NodeID)
	require.Len(t, insts, 1, "instances of node %s", req.NodeID)
	require.Equal(t, st.ExternalID, insts[0].ExternalID)
}

func (s *suite) testIdempotentDeleteSteps(t *testing.T) {
	ctx, d := s.setup(t)
	created := s.createNode(ctx, t, d)
	st := drivers.DeleteState{ExternalID: created.ExternalID, NodeID: created.Request.NodeID}
	for i := 0; ; i++ {
		require.Less(t, i, s.h.MaxSteps, "delete did not complete in %d steps", s.h.MaxSteps)
		_, err := s.stepDelete(ctx, t, d, st)
		require.NoError(t, err, "step %q", st.Step)
		second, err := s.stepDelete(ctx, t, d, st)
		require.NoError(t, err, "repeated step %q", st.Step)
		st = second
		if st.Complete {
			break
		}
		s.wait(st.Wait)
	}
	require.False(t, s.listed(ctx, t, d, created.ExternalID), "instance %q listed after deletion", created.ExternalID)
}

// alphanumeric matches resource types, which become parts of metric names.
var alphanumeric = regexp.MustCompile(`^[A-Za-z0-9]+$`)

func (s *suite) testLeakCleanup(t *testing.T) {
	ctx, d := s.setup(t)
	st := s.createNode(ctx, t, d)
	nodeID := st.Request.NodeID
	find := func() []drivers.Resource {
		rs, err := d.ListResources(ctx)
		require.NoError(t, err, "listing resources")
		var out []drivers.Resource
		for _, r := range rs {
			if r.Metadata[drivers.MetaNodeID] == nodeID {
				out = append(out, r)
			}
		}
		return out
	}
	rs := find()
	require.NotEmpty(t, rs, "no resource carries the metadata of node %s", nodeID)
	for _, r := range rs {
		assert.NotEmpty(t, r.ID, "resource id")
		assert.Regexp(t, alphanumeric, r.Type, "resource type")
		checkMetadata(t, "resource "+r.ID, st.Request.Metadata, r.Metadata)
	}
	for _, r := range rs {
		require.NoError(t, d.DeleteResource(ctx, r), "deleting resource %s %s", r.Type, r.ID)
	}
	s.eventually(t, "the leaked instance disappears", func() bool {
		return len(s.nodeInstances(ctx, t, d, nodeID)) == 0 && len(find()) == 0
	})
	for _, r := range rs {
		require.NoError(t, d.DeleteResource(ctx, r), "deleting resource %s %s again", r.Type, r.ID)
	}
}

func (s *suite) testQuota(t *testing.T) {
	ctx, d := s.setup(t)
	limits, err := d.QuotaLimits(ctx)
	require.NoError(t, err, "quota limits")
	for k, v := range limits {
		assert.GreaterOrEqual(t, v, int64(0), "limit %q", k)
	}

	tests := []struct {
		name        string
		pool, label string
		wantKind    drivers.Kind
	}{
		{"configured label", s.h.Pool, s.h.Label, ""},
		{"unknown label", s.h.Pool, "driverstest-no-such-label", drivers.KindPermanent},
		{"unknown pool", "driverstest-no-such-pool", s.h.Label, drivers.KindPermanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := d.LabelQuota(ctx, tc.pool, tc.label)
			if tc.wantKind != "" {
				require.Error(t, err)
				require.Equal(t, tc.wantKind, drivers.KindOf(err), "kind of %v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, int64(1), q[drivers.ResourceInstances], "instances in label quota %v", q)
			for k, v := range q {
				assert.GreaterOrEqual(t, v, int64(0), "label quota %q", k)
			}
		})
	}
}

func (s *suite) testErrorKinds(t *testing.T) {
	tests := []struct {
		name   string
		inject func(t *testing.T)
		hook   string
		want   drivers.Kind
	}{
		{"quota", s.h.InjectQuotaError, "InjectQuotaError", drivers.KindQuota},
		{"capacity", s.h.InjectCapacityError, "InjectCapacityError", drivers.KindCapacity},
		{"transient", s.h.InjectTransientError, "InjectTransientError", drivers.KindTransient},
		{"permanent", s.h.InjectPermanentError, "InjectPermanentError", drivers.KindPermanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.inject == nil {
				t.Skipf("the harness has no %s", tc.hook)
			}
			ctx, d := s.setup(t)
			req := s.request(t, d, 1)
			tc.inject(t)
			st := drivers.CreateState{Request: req}
			var failed error
			for i := 0; i < s.h.MaxSteps && failed == nil; i++ {
				next, err := s.stepCreate(ctx, t, d, st)
				if err != nil {
					failed = err
					break
				}
				require.False(t, next.Complete, "create completed despite the injected %s error", tc.name)
				st = next
				s.wait(st.Wait)
			}
			require.Error(t, failed, "no step failed after injecting a %s error", tc.name)
			require.Equal(t, tc.want, drivers.KindOf(failed), "kind of %v", failed)

			// The error was for one call only: repeating the failed step goes on.
			s.wait(drivers.RetryAfter(failed))
			s.create(ctx, t, d, st, nil)
			require.Len(t, s.nodeInstances(ctx, t, d, req.NodeID), 1, "instances of node %s", req.NodeID)
		})
	}
}

func (s *suite) testSecondAttempt(t *testing.T) {
	tests := []struct {
		name string
		// first runs the first attempt as far as the case needs.
		first func(ctx context.Context, t *testing.T, d drivers.Driver, st drivers.CreateState) drivers.CreateState
	}{
		{"after a complete first attempt", func(ctx context.Context, t *testing.T, d drivers.Driver, st drivers.CreateState) drivers.CreateState {
			return s.create(ctx, t, d, st, nil)
		}},
		{"after a partial first attempt", func(ctx context.Context, t *testing.T, d drivers.Driver, st drivers.CreateState) drivers.CreateState {
			for i := 0; i < s.h.MaxSteps && st.ExternalID == ""; i++ {
				next, err := s.stepCreate(ctx, t, d, st)
				require.NoError(t, err, "step %q", st.Step)
				st = next
			}
			require.NotEmpty(t, st.ExternalID, "first attempt never got an external id")
			return st
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, d := s.setup(t)
			req := s.request(t, d, 1)
			first := tc.first(ctx, t, d, drivers.CreateState{Request: req})

			req2 := req
			req2.Attempt = 2
			second := s.create(ctx, t, d, drivers.CreateState{Request: req2}, nil)
			require.NotEqual(t, first.ExternalID, second.ExternalID, "the second attempt returned the first attempt's instance")
			require.Equal(t, second.ExternalID, second.Instance.ExternalID)

			var ids []string
			for _, inst := range s.nodeInstances(ctx, t, d, req.NodeID) {
				ids = append(ids, inst.ExternalID)
			}
			require.ElementsMatch(t, []string{first.ExternalID, second.ExternalID}, ids,
				"instances of node %s after two attempts", req.NodeID)
		})
	}
}

// testCapacityRetry checks the contract of a capacity error raised before the cloud
// started an instance: it carries a retry hint (drivers.CapacityError.RetryAfter), no
// instance of the node exists, and after the hint the launch goes on in the same
// attempt, from the state returned with the error or from the failed step's input
// state, every step repeated, to exactly one instance.
func (s *suite) testCapacityRetry(t *testing.T) {
	if s.h.InjectCapacityError == nil {
		t.Skip("the harness has no InjectCapacityError")
	}
	tests := []struct {
		name string
		// from picks the state to go on from.
		from func(input, returned drivers.CreateState) drivers.CreateState
	}{
		{"from the returned state", func(_, returned drivers.CreateState) drivers.CreateState { return returned }},
		{"from the input state", func(input, _ drivers.CreateState) drivers.CreateState { return input }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, d := s.setup(t)
			req := s.request(t, d, 1)
			s.h.InjectCapacityError(t)
			st := drivers.CreateState{Request: req}
			var (
				failed   error
				returned drivers.CreateState
			)
			for i := 0; i < s.h.MaxSteps; i++ {
				next, err := s.stepCreate(ctx, t, d, st)
				if err != nil {
					failed, returned = err, next
					break
				}
				require.False(t, next.Complete, "create completed despite the injected capacity error")
				st = next
				s.wait(st.Wait)
			}
			require.Error(t, failed, "no step failed after injecting a capacity error")
			require.Equal(t, drivers.KindCapacity, drivers.KindOf(failed), "kind of %v", failed)
			after := drivers.RetryAfter(failed)
			require.Positive(t, after, "a capacity error before any instance exists carries RetryAfter: %v", failed)
			require.Empty(t, s.nodeInstances(ctx, t, d, req.NodeID), "instances of node %s after a capacity error", req.NodeID)
			require.Equal(t, req, returned.Request, "the state returned with the capacity error is not the launch's")
			require.Empty(t, returned.ExternalID, "the state returned with the capacity error names an instance")
			require.False(t, returned.Complete, "the state returned with the capacity error is complete")

			s.wait(after)
			st = tc.from(st, returned)
			for i := 0; ; i++ {
				require.Less(t, i, s.h.MaxSteps, "create did not complete in %d steps after the capacity error", s.h.MaxSteps)
				_, err := s.stepCreate(ctx, t, d, st)
				require.NoError(t, err, "step %q after the capacity error", st.Step)
				next, err := s.stepCreate(ctx, t, d, st)
				require.NoError(t, err, "repeated step %q after the capacity error", st.Step)
				require.LessOrEqual(t, len(s.nodeInstances(ctx, t, d, req.NodeID)), 1,
					"instances of node %s after repeating step %q", req.NodeID, st.Step)
				st = next
				if st.Complete {
					break
				}
				s.wait(st.Wait)
			}
			insts := s.nodeInstances(ctx, t, d, req.NodeID)
			require.Len(t, insts, 1, "instances of node %s", req.NodeID)
			require.Equal(t, st.ExternalID, insts[0].ExternalID)
		})
	}
}
