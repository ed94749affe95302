package drivers

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	hinted := CapacityRetryAfter(30*time.Second, "no %s", "m5.large")
	tests := []struct {
		name string
		err  error
		want time.Duration
	}{
		{"nil", nil, 0},
		{"capacity with a hint", hinted, 30 * time.Second},
		{"wrapped", fmt.Errorf("creating node 1: %w", hinted), 30 * time.Second},
		{"capacity without a hint", Capacity("spot instance reclaimed"), 0},
		{"negative hint", &CapacityError{Err: errors.New("x"), RetryAfter: -time.Second}, 0},
		// Capacity wins over permanent whatever the wrapping, and the hint with it;
		// only capacity errors carry a hint.
		{"inside a permanent error", &PermanentError{Err: hinted}, 30 * time.Second},
		{"beside a quota error", &QuotaError{Err: hinted}, 0},
		{"transient", Transient("throttled"), 0},
		{"unclassified", errors.New("odd"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RetryAfter(tc.err); got != tc.want {
				t.Fatalf("RetryAfter(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
	if got, want := KindOf(hinted), KindCapacity; got != want {
		t.Fatalf("KindOf(%v) = %s, want %s", hinted, got, want)
	}
	if got, want := hinted.Error(), "insufficient capacity (retry after 30s): no m5.large"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if got, want := Capacity("no m5.large").Error(), "insufficient capacity: no m5.large"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
