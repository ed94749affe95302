package zookeeper

import (
	"math"
	"testing"
	"time"
)

func TestTimestamp(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want float64
	}{
		{"epoch", time.Unix(0, 0), 0},
		{"whole seconds", time.Unix(1_700_000_000, 0), 1_700_000_000},
		{"fraction", time.Unix(1_700_000_000, 250_000_000), 1_700_000_000.25},
		{"before the epoch", time.Unix(-2, 500_000_000), -1.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertEqual(t, "timestamp", Timestamp(tc.in), tc.want)
		})
	}
}

func TestTimeOf(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want time.Time
	}{
		{"unset is the epoch", 0, time.Unix(0, 0)},
		{"whole seconds", 1_700_000_000, time.Unix(1_700_000_000, 0)},
		{"fraction", 1_700_000_000.25, time.Unix(1_700_000_000, 250_000_000)},
		{"microseconds as Python writes them", 1_700_000_000.123456, time.Unix(1_700_000_000, 123_456_000)},
		{"before the epoch", -1.5, time.Unix(-2, 500_000_000)},
		{"not a number", math.NaN(), time.Unix(0, 0)},
		{"far future clamped", 1e300, time.Unix(1e12, 0)},
		{"infinite clamped", math.Inf(-1), time.Unix(-1e12, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A float64 holds today's unix time to about 240 ns.
			got := TimeOf(tc.in)
			if d := got.Sub(tc.want).Abs(); d > 250*time.Nanosecond {
				t.Errorf("TimeOf(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestTimestampRoundTrip(t *testing.T) {
	now := time.Now()
	back := TimeOf(Timestamp(now))
	if d := back.Sub(now).Abs(); d > time.Microsecond {
		t.Errorf("round trip of %v is off by %v", now, d)
	}
}
