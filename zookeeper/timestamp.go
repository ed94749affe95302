package zookeeper

import (
	"math"
	"time"
)

// maxTimestamp bounds the timestamps TimeOf converts (about the year 33658), so
// that a corrupt state_time cannot overflow the conversion.
const maxTimestamp = 1e12

// Timestamp returns t in Nodepool's time format: float unix seconds, as Python's
// time.time() writes into state_time, created_time and the like.
func Timestamp(t time.Time) float64 {
	// Seconds and fraction apart: one rounding instead of two.
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

// TimeOf returns the time a Nodepool timestamp stands for, to the nearest
// nanosecond that float seconds can express. 0 (unset) is the Unix epoch, as in
// Nodepool; NaN is read as 0 and values beyond ±1e12 seconds are clamped.
func TimeOf(ts float64) time.Time {
	switch {
	case math.IsNaN(ts):
		ts = 0
	case ts > maxTimestamp:
		ts = maxTimestamp
	case ts < -maxTimestamp:
		ts = -maxTimestamp
	}
	sec, frac := math.Modf(ts)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9)))
}

// unixNow returns the current time as a Nodepool timestamp.
func unixNow() float64 {
	return Timestamp(time.Now())
}
