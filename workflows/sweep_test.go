package workflows

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
)

// sweepPass is what the sweep harness's SweepLeaks saw and answered in one pass.
type sweepPass struct {
	at       time.Time
	suspects []string
	deleted  []string
}

// sweepHarness runs LeakSweep against a scripted SweepLeaks: pass i finds the keys of
// leaked[i] leaked (and fails when fail[i] is set) and, like the real activity,
// deletes those of them that the previous pass handed over as suspects.
type sweepHarness struct {
	env    *testsuite.TestWorkflowEnvironment
	leaked [][]string
	fail   map[int]error

	mu     sync.Mutex
	passes []sweepPass
}

var sweepT0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func newSweepHarness(start time.Time, leaked ...[]string) *sweepHarness {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	env.RegisterWorkflowWithOptions(LeakSweep, workflow.RegisterOptions{Name: SweepWorkflowType})
	env.RegisterActivity(&activities.Activities{})
	h := &sweepHarness{env: env, leaked: leaked, fail: map[int]error{}}
	env.OnActivity(a.SweepLeaks, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SweepLeaksInput) (activities.SweepLeaksResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			i := len(h.passes)
			pass := sweepPass{at: env.Now(), suspects: slices.Clone(in.Suspects)}
			if err := h.fail[i]; err != nil {
				h.passes = append(h.passes, pass)
				return activities.SweepLeaksResult{}, err
			}
			var leakedNow []string
			if i < len(h.leaked) {
				leakedNow = h.leaked[i]
			}
			res := activities.SweepLeaksResult{Resources: len(leakedNow) + 3, Leaked: len(leakedNow)}
			for _, k := range leakedNow {
				if slices.Contains(in.Suspects, k) {
					res.Deleted = append(res.Deleted, k)
				} else {
					res.Suspects = append(res.Suspects, k)
				}
			}
			pass.deleted = res.Deleted
			h.passes = append(h.passes, pass)
			return res, nil
		})
	return h
}

func (h *sweepHarness) query(t *testing.T) SweepStatus {
	t.Helper()
	v, err := h.env.QueryWorkflow(QueryStatus)
	require.NoError(t, err)
	var st SweepStatus
	require.NoError(t, v.Get(&st))
	return st
}

// run runs the sweep to its continue-as-new and returns the next run's input.
func (h *sweepHarness) run(t *testing.T, in SweepInput) SweepInput {
	t.Helper()
	h.env.ExecuteWorkflow(LeakSweep, in)
	require.True(t, h.env.IsWorkflowCompleted())
	var cont *workflow.ContinueAsNewError
	require.True(t, errors.As(h.env.GetWorkflowError(), &cont), "a sweep ends only by continuing as new: %v", h.env.GetWorkflowError())
	require.Equal(t, SweepWorkflowType, cont.WorkflowType.Name)
	var next SweepInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(cont.Input, &next))
	require.NotNil(t, next.State)
	return next
}

func TestSweepDeletesWhatTwoConsecutivePassesFindLeaked(t *testing.T) {
	h := newSweepHarness(sweepT0,
		[]string{"instance/a", "instance/c"}, // both suspected
		[]string{"instance/a", "instance/b"}, // a deleted; c has a record now; b suspected
		[]string{"instance/b"},               // b deleted
		[]string{"instance/d"},               // d suspected, carried to the next run
	)
	var mid SweepStatus
	h.env.RegisterDelayedCallback(func() { mid = h.query(t) }, 90*time.Second)
	next := h.run(t, SweepInput{Provider: "sim", TaskQueue: "tq", IntervalSec: 60, PassesPerRun: 4})

	require.Len(t, h.passes, 4)
	want := []struct {
		suspects, deleted []string
	}{
		{nil, nil},
		{[]string{"instance/a", "instance/c"}, []string{"instance/a"}},
		{[]string{"instance/b"}, []string{"instance/b"}},
		{nil, nil},
	}
	for i, p := range h.passes {
		require.Equal(t, sweepT0.Add(time.Duration(i)*time.Minute), p.at.UTC(), "pass %d runs an interval after the previous one", i)
		require.Equal(t, want[i].suspects, p.suspects, "suspects handed to pass %d", i)
		require.Equal(t, want[i].deleted, p.deleted, "deleted by pass %d", i)
	}

	require.Equal(t, 2, mid.Passes)
	require.Equal(t, 1, mid.Suspects, "b is suspected after two passes")
	require.Equal(t, 1, mid.Deleted)
	require.Equal(t, 2, mid.LastLeaked)
	require.Equal(t, 5, mid.LastResources)
	require.Equal(t, "sim", mid.Provider)
	require.InDelta(t, 60, mid.IntervalSec, 1e-9)
	require.Equal(t, sweepT0.Add(time.Minute), mid.LastPass.UTC())
	require.Empty(t, mid.LastError)

	st := next.State
	require.Equal(t, "sim", next.Provider)
	require.InDelta(t, 60, next.IntervalSec, 1e-9)
	require.Equal(t, 4, st.Passes)
	require.Equal(t, 2, st.Deleted)
	require.Equal(t, []string{"instance/d"}, st.Suspects, "continue-as-new carries the suspects")
	require.Equal(t, sweepT0.Add(3*time.Minute), st.LastPass.UTC())
}

func TestSweepContinuedRunKeepsTheIntervalAndTheSuspects(t *testing.T) {
	first := newSweepHarness(sweepT0, []string{"instance/d"})
	next := first.run(t, SweepInput{Provider: "sim", TaskQueue: "tq", IntervalSec: 60, PassesPerRun: 1})
	require.Equal(t, []string{"instance/d"}, next.State.Suspects)

	// The next run starts at once, a few seconds after the last pass.
	h := newSweepHarness(sweepT0.Add(5*time.Second), []string{"instance/d"}, nil)
	var st SweepStatus
	h.env.RegisterDelayedCallback(func() { st = h.query(t) }, time.Second)
	next = h.run(t, next)
	require.Equal(t, 1, st.Passes, "a continued run reports the whole sweep's passes")
	require.Equal(t, 1, st.Suspects)

	require.Len(t, h.passes, 1)
	require.Equal(t, sweepT0.Add(time.Minute), h.passes[0].at.UTC(), "no pass before an interval has passed")
	require.Equal(t, []string{"instance/d"}, h.passes[0].suspects)
	require.Equal(t, []string{"instance/d"}, h.passes[0].deleted)
	require.Equal(t, 2, next.State.Passes)
	require.Equal(t, 1, next.State.Deleted)
	require.Empty(t, next.State.Suspects)
}

func TestSweepFailedPassKeepsSuspectsAndNewIntervalAppliesAtOnce(t *testing.T) {
	h := newSweepHarness(sweepT0, []string{"instance/a"}, nil, []string{"instance/a"})
	h.fail[1] = temporal.NewNonRetryableApplicationError("cloud listing refused", activities.ErrTypePermanent, nil)
	// The configured interval shrinks from an hour to a minute ten minutes in.
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalSweepConfig, SweepConfig{IntervalSec: 60})
	}, 10*time.Minute)
	var afterFailure SweepStatus
	h.env.RegisterDelayedCallback(func() { afterFailure = h.query(t) }, 10*time.Minute+30*time.Second)
	next := h.run(t, SweepInput{Provider: "sim", TaskQueue: "tq", IntervalSec: 3600, PassesPerRun: 3})

	require.Len(t, h.passes, 3)
	require.Equal(t, sweepT0, h.passes[0].at.UTC())
	require.Equal(t, sweepT0.Add(10*time.Minute), h.passes[1].at.UTC(), "the new interval has already passed")
	require.Equal(t, sweepT0.Add(11*time.Minute), h.passes[2].at.UTC())
	require.Equal(t, []string{"instance/a"}, h.passes[1].suspects)
	require.Equal(t, []string{"instance/a"}, h.passes[2].suspects, "a failed pass keeps the suspects")
	require.Equal(t, []string{"instance/a"}, h.passes[2].deleted)

	require.Equal(t, 2, afterFailure.Passes)
	require.Equal(t, 1, afterFailure.Failures)
	require.Equal(t, 1, afterFailure.Suspects)
	require.Contains(t, afterFailure.LastError, "cloud listing refused")
	require.Equal(t, sweepT0.Add(10*time.Minute), afterFailure.LastErrorTime.UTC())
	require.InDelta(t, 60, afterFailure.IntervalSec, 1e-9)

	require.InDelta(t, 60, next.IntervalSec, 1e-9, "the new interval is carried to the next run")
	require.Equal(t, 1, next.State.Deleted)
	require.Equal(t, 1, next.State.Failures)
}
