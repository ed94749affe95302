package aws

import (
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/driverstest"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
)

// TestConformance runs the driver conformance suite against the simulator, through
// the real SDK over HTTP, with the simulator and the driver on one fake clock.
func TestConformance(t *testing.T) {
	var e *env
	inject := func(code string) func(t *testing.T) {
		return func(*testing.T) { e.sim.InjectError("RunInstances", code, 1) }
	}
	driverstest.Run(t, driverstest.Harness{
		New: func(t *testing.T) drivers.Driver {
			e = newEnv(t, ec2sim.Options{})
			return e.driver()
		},
		Provider:             testProvider,
		Pool:                 testPool,
		Label:                "jammy",
		UnknownExternalID:    formatExternalID("i-0000000000000dead"),
		InjectQuotaError:     inject("VcpuLimitExceeded"),
		InjectCapacityError:  inject("InsufficientInstanceCapacity"),
		InjectTransientError: inject("RequestLimitExceeded"),
		InjectPermanentError: inject("InvalidParameterValue"),
		Advance:              func(d time.Duration) { e.clock.Advance(d) },
	})
}
