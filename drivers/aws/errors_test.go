package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
)

// TestRunInstancesErrorMapping injects EC2 error codes into RunInstances of the
// simulator and checks the kind the driver's create step returns, through the real SDK
// and HTTP. Each error costs exactly one call: the SDK does not retry.
func TestRunInstancesErrorMapping(t *testing.T) {
	tests := []struct {
		code string
		want drivers.Kind
	}{
		{"InsufficientInstanceCapacity", drivers.KindCapacity},
		{"InsufficientFreeAddressesInSubnet", drivers.KindCapacity},
		{"VcpuLimitExceeded", drivers.KindQuota},
		{"InstanceLimitExceeded", drivers.KindQuota},
		{"MaxSpotInstanceCountExceeded", drivers.KindQuota},
		{"VolumeLimitExceeded", drivers.KindQuota},
		{"RequestLimitExceeded", drivers.KindTransient},
		{"InternalError", drivers.KindTransient},
		{"Unavailable", drivers.KindTransient},
		{"InvalidParameterValue", drivers.KindPermanent},
		{"InvalidAMIID.NotFound", drivers.KindPermanent},
		{"InvalidAMIID.Malformed", drivers.KindPermanent},
		{"InvalidSubnetID.NotFound", drivers.KindPermanent},
		{"InvalidKeyPair.NotFound", drivers.KindPermanent},
		{"Unsupported", drivers.KindPermanent},
		{"InvalidInstanceType", drivers.KindPermanent},
		{"AuthFailure", drivers.KindPermanent},
		{"UnauthorizedOperation", drivers.KindPermanent},
		{"IdempotentParameterMismatch", drivers.KindPermanent},
	}
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	start, err := d.AdvanceCreate(context.Background(), drivers.CreateState{Request: request("0000002000", testPool, "jammy", 1)})
	require.NoError(t, err)
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			before := e.sim.Calls("RunInstances")
			e.sim.InjectError("RunInstances", tc.code, 1)
			_, err := d.AdvanceCreate(context.Background(), start)
			require.Error(t, err)
			require.Equal(t, tc.want, drivers.KindOf(err), "%v", err)
			require.Contains(t, err.Error(), tc.code)
			require.Equal(t, before+1, e.sim.Calls("RunInstances"), "one call, no SDK retry")
		})
	}
}

func TestTerminateErrorMapping(t *testing.T) {
	tests := []struct {
		code     string
		want     drivers.Kind
		complete bool
	}{
		{"InvalidInstanceID.NotFound", "", true},
		{"RequestLimitExceeded", drivers.KindTransient, false},
		{"UnauthorizedOperation", drivers.KindPermanent, false},
	}
	e := newEnv(t, ec2sim.Options{})
	d := e.driver()
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			e.sim.InjectError("TerminateInstances", tc.code, 1)
			st, err := d.AdvanceDelete(context.Background(), drivers.DeleteState{ExternalID: "i-0000000000000abc"})
			if tc.want == "" {
				require.NoError(t, err)
				require.Equal(t, StepDeletingVolumes, st.Step)
				return
			}
			require.Equal(t, tc.want, drivers.KindOf(err), "%v", err)
		})
	}
}

func TestClassify(t *testing.T) {
	api := func(code string) error {
		return &smithy.OperationError{ServiceID: "EC2", OperationName: "X", Err: &smithy.GenericAPIError{Code: code, Message: "m"}}
	}
	status := func(code int) error {
		return &smithy.OperationError{ServiceID: "EC2", OperationName: "X", Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("body")},
		}}
	}
	tests := []struct {
		name string
		op   op
		err  error
		want drivers.Kind
	}{
		{"capacity", opCreate, api("InsufficientInstanceCapacity"), drivers.KindCapacity},
		{"vcpu quota", opCreate, api("VcpuLimitExceeded"), drivers.KindQuota},
		{"throttling", opRead, api("Throttling"), drivers.KindTransient},
		{"service quotas throttling", opRead, api("TooManyRequestsException"), drivers.KindTransient},
		{"instance not found on delete", opDelete, api("InvalidInstanceID.NotFound"), drivers.KindNotFound},
		{"volume not found on read", opRead, api("InvalidVolume.NotFound"), drivers.KindNotFound},
		{"malformed instance id on delete", opDelete, api("InvalidInstanceID.Malformed"), drivers.KindNotFound},
		{"subnet not found on create", opCreate, api("InvalidSubnetID.NotFound"), drivers.KindPermanent},
		{"profile not found on create", opCreate, api("InvalidIamInstanceProfile.NotFound"), drivers.KindPermanent},
		{"ami not found on read", opRead, api("InvalidAMIID.NotFound"), drivers.KindPermanent},
		{"volume in use", opDelete, api("VolumeInUse"), drivers.KindTransient},
		{"access denied", opRead, api("AccessDeniedException"), drivers.KindPermanent},
		{"unknown code with 503", opRead, status(503), drivers.KindTransient},
		{"unknown code with 429", opRead, status(429), drivers.KindTransient},
		{"unknown code with 400", opRead, status(400), drivers.KindUnknown},
		{"connection refused", opRead, &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}}, drivers.KindTransient},
		{"deadline", opRead, fmt.Errorf("op: %w", context.DeadlineExceeded), drivers.KindTransient},
		{"credentials", opRead, errors.New("operation error EC2: X, get identity: failed to refresh cached credentials, no EC2 IMDS role found"), drivers.KindPermanent},
		{"already classified", opRead, drivers.Quota("x"), drivers.KindQuota},
		{"not found sentinel", opRead, drivers.ErrNotFound, drivers.KindNotFound},
		{"unknown", opRead, errors.New("something odd"), drivers.KindUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.op, "doing it", tc.err)
			require.Error(t, err)
			require.Equal(t, tc.want, drivers.KindOf(err), "%v", err)
			require.ErrorIs(t, err, tc.err, "the cause stays in the chain")
			require.Contains(t, err.Error(), "doing it: ")
		})
	}
	require.NoError(t, classify(opRead, "nothing", nil))
}
