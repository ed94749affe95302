package driverstest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// flaw names a contract violation memDriver can be built with.
type flaw string

const (
	flawNone             flaw = ""
	flawNoIdempotency    flaw = "no-idempotency"
	flawLateExternalID   flaw = "late-external-id"
	flawDeleteMissingErr flaw = "delete-missing-error"
	flawDropMetadata     flaw = "drop-metadata"
	flawIgnoreAttempt    flaw = "ignore-attempt"
	flawUnclassified     flaw = "unclassified-errors"
	flawKeepOnDelete     flaw = "keep-on-delete"
	flawNoRetryHint      flaw = "capacity-without-retry-after"
	flawCapacityLeak     flaw = "capacity-after-create"
)

// memDriver is a minimal in-memory driver: create starts an instance that is ready on
// the next step, delete removes it at once. Its flaw breaks one rule of the contract.
type memDriver struct {
	flaw flaw

	mu        sync.Mutex
	seq       int
	instances map[string]drivers.Instance
	tokens    map[string]string
	failNext  error
}

var _ drivers.Driver = (*memDriver)(nil)

func newMemDriver(f flaw) *memDriver {
	return &memDriver{flaw: f, instances: make(map[string]drivers.Instance), tokens: make(map[string]string)}
}

func (m *memDriver) AdvanceCreate(_ context.Context, st drivers.CreateState) (drivers.CreateState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch st.Step {
	case "":
		if err := m.failNext; err != nil {
			m.failNext = nil
			var ce *drivers.CapacityError
			switch {
			case m.flaw == flawUnclassified:
				return st, errors.New(err.Error())
			case m.flaw == flawNoRetryHint && errors.As(err, &ce):
				return st, &drivers.CapacityError{Err: ce.Err}
			case m.flaw == flawCapacityLeak && errors.As(err, &ce):
				// The instance is started under a token the retry does not use.
				m.seq++
				id := fmt.Sprintf("mem-%d", m.seq)
				m.instances[id] = drivers.Instance{ExternalID: id, Ready: true, Metadata: maps.Clone(st.Request.Metadata)}
			}
			return st, err
		}
		token := st.Request.NodeID + "/" + strconv.Itoa(st.Request.Attempt)
		if m.flaw == flawIgnoreAttempt {
			token = st.Request.NodeID
		}
		id, ok := m.tokens[token]
		if !ok || m.flaw == flawNoIdempotency {
			m.seq++
			id = fmt.Sprintf("mem-%d", m.seq)
			md := maps.Clone(st.Request.Metadata)
			if m.flaw == flawDropMetadata {
				delete(md, drivers.MetaNodeID)
			}
			m.instances[id] = drivers.Instance{
				ExternalID: id, Ready: true, InterfaceIP: "192.0.2.1", Metadata: md,
				Quota: drivers.Resources{drivers.ResourceInstances: 1},
			}
			m.tokens[token] = id
		}
		if m.flaw == flawLateExternalID {
			st.Data = []byte(strconv.Quote(id))
		} else {
			st.ExternalID = id
		}
		st.Step = "creating"
	case "creating":
		id := st.ExternalID
		if m.flaw == flawLateExternalID {
			s, err := strconv.Unquote(string(st.Data))
			if err != nil {
				return st, drivers.Permanent("decoding state data: %w", err)
			}
			id = s
		}
		inst, ok := m.instances[id]
		if !ok {
			return st, fmt.Errorf("instance %s: %w", id, drivers.ErrNotFound)
		}
		st.ExternalID = id
		st.Step = "complete"
		st.Complete = true
		st.Instance = &inst
	case "complete":
	default:
		return st, drivers.Permanent("unknown step %q", st.Step)
	}
	return st, nil
}

func (m *memDriver) AdvanceDelete(_ context.Context, st drivers.DeleteState) (drivers.DeleteState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st.ExternalID != "" {
		if _, ok := m.instances[st.ExternalID]; !ok && m.flaw == flawDeleteMissingErr {
			return st, fmt.Errorf("instance %s: %w", st.ExternalID, drivers.ErrNotFound)
		}
		if m.flaw != flawKeepOnDelete {
			delete(m.instances, st.ExternalID)
		}
	}
	st.Step = "complete"
	st.Complete = true
	return st, nil
}

func (m *memDriver) ListInstances(context.Context) ([]drivers.Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []drivers.Instance
	for _, inst := range m.instances {
		out = append(out, inst)
	}
	return out, nil
}

func (m *memDriver) ListResources(context.Context) ([]drivers.Resource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []drivers.Resource
	for id, inst := range m.instances {
		out = append(out, drivers.Resource{Type: "instance", ID: id, Metadata: inst.Metadata})
	}
	return out, nil
}

func (m *memDriver) DeleteResource(_ context.Context, r drivers.Resource) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.instances, r.ID)
	return nil
}

func (m *memDriver) QuotaLimits(context.Context) (drivers.Resources, error) {
	return drivers.Resources{drivers.ResourceInstances: 100}, nil
}

func (m *memDriver) LabelQuota(_ context.Context, pool, label string) (drivers.Resources, error) {
	if pool != "pool" || label != "label" {
		return nil, drivers.Permanent("unknown label %q in pool %q", label, pool)
	}
	return drivers.Resources{drivers.ResourceInstances: 1}, nil
}

func (m *memDriver) Close() error { return nil }

func (m *memDriver) injectNext(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failNext = err
}

// memHarness runs the suite against memDriver with the flaw.
func memHarness(f flaw) Harness {
	var d *memDriver
	inject := func(err error) func(t *testing.T) {
		return func(*testing.T) { d.injectNext(err) }
	}
	return Harness{
		New: func(*testing.T) drivers.Driver {
			d = newMemDriver(f)
			return d
		},
		Pool:                 "pool",
		Label:                "label",
		UnknownExternalID:    "mem-999",
		InjectQuotaError:     inject(drivers.Quota("over quota")),
		InjectCapacityError:  inject(drivers.CapacityRetryAfter(time.Minute, "no capacity")),
		InjectTransientError: inject(drivers.Transient("throttled")),
		InjectPermanentError: inject(drivers.Permanent("bad request")),
		Advance:              func(time.Duration) {},
		MaxSteps:             10,
	}
}

func TestRunPassesConformingDriver(t *testing.T) {
	Run(t, memHarness(flawNone))
}

// flawEnv tells the re-executed test binary which flaw to run the suite with.
const flawEnv = "DRIVERSTEST_FLAW"

// TestFlawedDriverHelper runs the suite against a flawed driver when the test binary
// is re-executed by TestRunCatchesFlaws; otherwise it does nothing.
func TestFlawedDriverHelper(t *testing.T) {
	f, ok := os.LookupEnv(flawEnv)
	if !ok {
		t.Skip("runs only when re-executed by TestRunCatchesFlaws")
	}
	Run(t, memHarness(flaw(f)))
}

func TestRunCatchesFlaws(t *testing.T) {
	tests := []struct {
		flaw flaw
		// failing names subtests that must fail.
		failing []string
	}{
		{flawNoIdempotency, []string{"IdempotentCreateSteps"}},
		{flawLateExternalID, []string{"ExternalIDEarly"}},
		{flawDeleteMissingErr, []string{"DeleteMissing/deleted_instance", "DeleteMissing/unknown_instance", "DeleteTwice"}},
		{flawDropMetadata, []string{"InstanceFields", "LeakCleanup"}},
		{flawIgnoreAttempt, []string{"SecondAttempt"}},
		{flawUnclassified, []string{"ErrorKinds/quota", "ErrorKinds/capacity", "ErrorKinds/permanent", "CapacityRetry/from_the_input_state"}},
		{flawKeepOnDelete, []string{"DeleteToCompletion", "IdempotentDeleteSteps"}},
		{flawNoRetryHint, []string{"CapacityRetry/from_the_returned_state", "CapacityRetry/from_the_input_state"}},
		{flawCapacityLeak, []string{"ErrorKinds/capacity", "CapacityRetry/from_the_returned_state", "CapacityRetry/from_the_input_state"}},
	}
	for _, tc := range tests {
		t.Run(string(tc.flaw), func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFlawedDriverHelper$", "-test.v")
			cmd.Env = append(os.Environ(), flawEnv+"="+string(tc.flaw))
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the suite passed a driver with flaw %q:\n%s", tc.flaw, out)
			for _, name := range tc.failing {
				require.True(t, strings.Contains(string(out), "--- FAIL: TestFlawedDriverHelper/"+name),
					"subtest %s did not fail for flaw %q:\n%s", name, tc.flaw, out)
			}
		})
	}
}
