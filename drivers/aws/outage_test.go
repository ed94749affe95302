package aws

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
)

// TestLabelQuotaEndpointOutage: while the EC2 endpoint drops every connection,
// LabelQuota fails with a transient error (so the launcher does not decline the
// label's requests), and the failure is not remembered: once the endpoint is back the
// next call answers.
func TestLabelQuotaEndpointOutage(t *testing.T) {
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	ctx := context.Background()

	e.setDown(true)
	for range 2 {
		_, err := d.LabelQuota(ctx, testPool, "jammy")
		require.Error(t, err)
		require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "%v", err)
	}
	_, err := d.QuotaLimits(ctx)
	require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "no limits read yet: %v", err)

	e.setDown(false)
	q, err := d.LabelQuota(ctx, testPool, "jammy")
	require.NoError(t, err)
	require.Equal(t, int64(8192), q[drivers.ResourceRAM])
}

// credentialsServer serves credentials as the container credentials endpoint does, and
// can fail the way an instance role being replaced does (an error answer) or the way
// an unreachable endpoint does (connections dropped).
type credentialsServer struct {
	mu   sync.Mutex
	mode string // "", "no role" or "down"
}

func (c *credentialsServer) set(mode string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mode = mode
}

func (c *credentialsServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	mode := c.mode
	c.mu.Unlock()
	switch mode {
	case "down":
		dropConnection(w)
	case "no role":
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": "NotFound", "message": "no role attached"})
	default:
		_ = json.NewEncoder(w).Encode(map[string]string{
			"AccessKeyId": "AKIDTEST", "SecretAccessKey": "secret", "Token": "token",
			"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
	}
}

// TestLabelQuotaCredentialsOutage: credentials that cannot be retrieved are a
// transient failure of LabelQuota, QuotaLimits and the create steps, never a
// permanent one, and the driver recovers once they can be retrieved again.
func TestLabelQuotaCredentialsOutage(t *testing.T) {
	for _, mode := range []string{"no role", "down"} {
		t.Run(mode, func(t *testing.T) {
			creds := &credentialsServer{}
			cs := httptest.NewServer(creds)
			t.Cleanup(cs.Close)
			e := newEnv(t, ec2sim.Options{})
			d := e.driver(WithCredentials(endpointcreds.New(cs.URL, func(o *endpointcreds.Options) {
				o.Retryer = awssdk.NopRetryer{}
			})))
			ctx := context.Background()

			creds.set(mode)
			_, err := d.LabelQuota(ctx, testPool, "jammy")
			require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "%v", err)
			_, err = d.QuotaLimits(ctx)
			require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "%v", err)
			_, err = d.AdvanceCreate(ctx, drivers.CreateState{Request: request("0000004000", testPool, "jammy", 1)})
			require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "%v", err)
			_, err = d.ListInstances(ctx)
			require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "%v", err)

			creds.set("")
			_, err = d.LabelQuota(ctx, testPool, "jammy")
			require.NoError(t, err)
			_, err = d.QuotaLimits(ctx)
			require.NoError(t, err)
			e.create(d, drivers.CreateState{Request: request("0000004000", testPool, "jammy", 1)})
		})
	}
}

// TestQuotaLimitsTransientFailure: a passing failure of Service Quotas keeps the limits
// last read instead of reporting none (which would lift every provider limit), and is
// not remembered.
func TestQuotaLimitsTransientFailure(t *testing.T) {
	e := newEnv(t, ec2sim.Options{VCPULimits: map[string]int{QuotaStandardOnDemand: 4}})
	d := e.driver()
	ctx := context.Background()
	want := drivers.Resources{QuotaStandardOnDemand: 4}

	e.sim.InjectError("ListServiceQuotas", "ServiceUnavailableException", 1)
	_, err := d.QuotaLimits(ctx)
	require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "%v", err)
	limits, err := d.QuotaLimits(ctx)
	require.NoError(t, err, "the failure is not remembered")
	require.Equal(t, want, limits)

	e.clock.Advance(DefaultCacheTTL)
	e.sim.InjectError("ListServiceQuotas", "TooManyRequestsException", 1)
	limits, err = d.QuotaLimits(ctx)
	require.NoError(t, err)
	require.Equal(t, want, limits, "the limits last read stay in use")
	require.Equal(t, int64(3), e.sim.Calls("ListServiceQuotas"))
}
