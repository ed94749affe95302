package openstack

import (
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/driverstest"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ossim"
)

// TestConformance runs the driver conformance suite against the OpenStack-compatible
// endpoint, through gophercloud over HTTP, with the endpoint and the driver on one
// manual clock.
func TestConformance(t *testing.T) {
	var e *env
	inject := func(kind string) func(t *testing.T) {
		return func(*testing.T) { e.sim.InjectError("CreateServer", kind, 1) }
	}
	driverstest.Run(t, driverstest.Harness{
		New: func(t *testing.T) drivers.Driver {
			e = newEnv(t, ossim.Options{})
			return e.driver()
		},
		Provider:             testProvider,
		Pool:                 testPool,
		Label:                "jammy",
		UnknownExternalID:    "00000000-0000-0000-0000-00000000dead",
		InjectQuotaError:     inject(ossim.KindQuota),
		InjectCapacityError:  inject(ossim.KindNoValidHost),
		InjectTransientError: inject(ossim.KindRateLimit),
		Advance:              func(d time.Duration) { e.clock.Advance(d) },
	})
}
