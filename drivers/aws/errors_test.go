package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
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
		{"AuthFailure", drivers.KindPermanent}, // for a launch: an AMI the account may not use
		{"UnauthorizedOperation", drivers.KindPermanent},
		{"IdempotentParameterMismatch", drivers.KindPermanent},
		{"ServiceUnavailable", drivers.KindTransient},
		{"ExpiredToken", drivers.KindTransient},
		{"RequestExpired", drivers.KindTransient},
		{"EC2ThrottledException", drivers.KindTransient},
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
			if tc.want == drivers.KindCapacity {
				require.Positive(t, drivers.RetryAfter(err), "%v", err)
			}
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
	sent := func(err error) error {
		return &smithy.OperationError{ServiceID: "EC2", OperationName: "X", Err: &smithyhttp.RequestSendError{Err: err}}
	}
	identity := func(err error) error {
		return &smithy.OperationError{ServiceID: "EC2", OperationName: "X", Err: fmt.Errorf("get identity: get credentials: %w", err)}
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
		{"unauthorized operation", opCreate, api("UnauthorizedOperation"), drivers.KindPermanent},
		{"invalid parameter", opCreate, api("InvalidParameterValue"), drivers.KindPermanent},
		{"unknown instance type on read", opRead, api("InvalidInstanceType"), drivers.KindPermanent},
		{"unknown ami on create", opCreate, api("InvalidAMIID.NotFound"), drivers.KindPermanent},
		{"ami not authorized on create", opCreate, api("AuthFailure"), drivers.KindPermanent},

		{"credentials not validated on read", opRead, api("AuthFailure"), drivers.KindTransient},
		{"unknown access key", opRead, api("InvalidClientTokenId"), drivers.KindTransient},
		{"wrong secret", opRead, api("SignatureDoesNotMatch"), drivers.KindTransient},
		{"expired session", opCreate, api("ExpiredToken"), drivers.KindTransient},
		{"service quotas bad token", opRead, api("UnrecognizedClientException"), drivers.KindTransient},
		{"throttling of the sdk's list", opRead, api("SlowDown"), drivers.KindTransient},
		{"ec2 throttling", opCreate, api("EC2ThrottledException"), drivers.KindTransient},
		{"service quotas unavailable", opRead, api("ServiceUnavailableException"), drivers.KindTransient},
		{"internal server", opRead, api("InternalServerException"), drivers.KindTransient},
		{"unknown code with 500", opRead, status(500), drivers.KindTransient},
		{"unknown code with 502", opCreate, status(502), drivers.KindTransient},
		{"unknown code with 503", opRead, status(503), drivers.KindTransient},
		{"unknown code with 504", opDelete, status(504), drivers.KindTransient},
		{"unknown code with 429", opRead, status(429), drivers.KindTransient},
		{"unknown code with 400", opRead, status(400), drivers.KindUnknown},
		{"connection refused", opRead, sent(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), drivers.KindTransient},
		{"connection reset", opCreate, sent(&url.Error{Op: "Post", URL: "https://ec2", Err: &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}), drivers.KindTransient},
		{"connection reset while reading", opRead, &smithy.OperationError{Err: &smithy.DeserializationError{Err: os.NewSyscallError("read", syscall.ECONNRESET)}}, drivers.KindTransient},
		{"connection closed", opRead, sent(&url.Error{Op: "Post", URL: "https://ec2", Err: io.EOF}), drivers.KindTransient},
		{"truncated answer", opRead, fmt.Errorf("reading answer: %w", io.ErrUnexpectedEOF), drivers.KindTransient},
		{"timeout", opRead, sent(&url.Error{Op: "Post", URL: "https://ec2", Err: timeoutError{}}), drivers.KindTransient},
		{"dns failure", opRead, sent(&net.DNSError{Err: "server misbehaving", Name: "ec2.us-east-1.amazonaws.com"}), drivers.KindTransient},
		{"deadline", opRead, fmt.Errorf("op: %w", context.DeadlineExceeded), drivers.KindTransient},
		{"cancelled", opCreate, &smithy.OperationError{Err: &smithy.CanceledError{Err: context.Canceled}}, drivers.KindTransient},
		{"credentials, no instance role", opRead, errors.New("operation error EC2: X, get identity: failed to refresh cached credentials, no EC2 IMDS role found"), drivers.KindTransient},
		{"credentials, metadata service unreachable", opRead, identity(fmt.Errorf("failed to refresh cached credentials, %w", sent(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}))), drivers.KindTransient},
		{"credentials, sts refuses", opCreate, identity(fmt.Errorf("failed to refresh cached credentials, %w", api("AccessDenied"))), drivers.KindTransient},
		{"credentials, sts down", opDelete, identity(fmt.Errorf("failed to refresh cached credentials, %w", status(503))), drivers.KindTransient},
		{"credentials, signing", opRead, &smithy.OperationError{Err: &v4.SigningError{Err: errors.New("failed to retrieve credentials: no profile")}}, drivers.KindTransient},
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

// timeoutError is a network timeout.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
