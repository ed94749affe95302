package chaos

import "testing"

func TestAttemptReason(t *testing.T) {
	tests := []struct{ in, want string }{
		{
			`activity error (type: CreateStep, scheduledEventID: 31, startedEventID: 32, identity: 1248@vm@): advancing create of node 0000000009: insufficient capacity (retry after 29.9s): running t3.small/on-demand instance for node 0000000009: operation error EC2: RunInstances, https response error StatusCode: 500, api error InsufficientInstanceCapacity: We currently do not have (type: Capacity, retryable: false)`,
			"advancing create of node N: insufficient capacity (retry after Ns): running t3.small/on-demand instance for node N (InsufficientInstanceCapacity)",
		},
		{
			`activity error (type: CreateStep): advancing create of node 0000000003: permanent: instance i-00000000000000029 of node 0000000003 is terminated (type: Permanent)`,
			"advancing create of node N: permanent: instance i-… of node N is terminated",
		},
		{"launch timeout", "launch timeout"},
	}
	for _, tc := range tests {
		if got := attemptReason(tc.in); got != tc.want {
			t.Errorf("attemptReason(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
}
