package openstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/stretchr/testify/assert"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

func TestClassify(t *testing.T) {
	code := func(status int, body string) error {
		return gophercloud.ErrUnexpectedResponseCode{Actual: status, Body: []byte(body), Method: "POST", URL: "http://x/servers"}
	}
	tests := []struct {
		name string
		op   op
		err  error
		want drivers.Kind
	}{
		{"not found", opRead, code(404, `{"itemNotFound": {"code": 404}}`), drivers.KindNotFound},
		{"nova quota", opCreate, code(403, `{"forbidden": {"message": "Quota exceeded for cores: Requested 2, but already used 20 of 20 cores"}}`), drivers.KindQuota},
		{"old nova quota", opCreate, code(413, `{"overLimit": {"message": "Quota exceeded for instances"}}`), drivers.KindQuota},
		{"neutron quota", opCreate, code(409, `{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['floatingip']."}}`), drivers.KindQuota},
		{"quota text on a read", opRead, code(403, `Quota exceeded`), drivers.KindPermanent},
		{"rate limit", opCreate, code(429, `Rate limit exceeded`), drivers.KindTransient},
		{"over limit", opCreate, code(413, `This request was rate-limited.`), drivers.KindTransient},
		{"conflict", opDelete, code(409, `{"conflictingRequest": {}}`), drivers.KindTransient},
		{"expired token", opRead, code(401, ``), drivers.KindTransient},
		{"internal", opCreate, code(500, `{"computeFault": {}}`), drivers.KindTransient},
		{"unavailable", opRead, code(503, ``), drivers.KindTransient},
		{"bad request", opCreate, code(400, `{"badRequest": {"message": "Invalid key_name provided."}}`), drivers.KindPermanent},
		{"forbidden", opCreate, code(403, `{"forbidden": {"message": "Policy doesn't allow"}}`), drivers.KindPermanent},
		{"timeout", opCreate, context.DeadlineExceeded, drivers.KindTransient},
		{"network", opRead, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, drivers.KindTransient},
		{"missing endpoint", opRead, &gophercloud.ErrEndpointNotFound{}, drivers.KindPermanent},
		{"already typed", opRead, drivers.Permanent("no flavor"), drivers.KindPermanent},
		{"unknown", opRead, errors.New("boom"), drivers.KindTransient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.op, "doing "+tc.name, tc.err)
			assert.Equal(t, tc.want, drivers.KindOf(err), "kind of %v", err)
			assert.Contains(t, err.Error(), "doing "+tc.name)
			assert.Nil(t, classify(tc.op, "x", nil))
		})
	}
}

func TestNoValidHostFault(t *testing.T) {
	tests := []struct {
		fault string
		want  bool
	}{
		{"No valid host was found. There are not enough hosts available.", true},
		{"No valid host was found. ", true},
		{"Build of instance abc aborted: Insufficient compute capacity", true},
		{"Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.fault), func(t *testing.T) {
			assert.Equal(t, tc.want, noValidHost(tc.fault))
		})
	}
}
