package activities

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func lockedRetry(what string) error {
	return temporal.NewApplicationError(what+" is locked by someone else", ErrTypeLocked, nil)
}

func asDecodeError(err error, target **zookeeper.DecodeError) bool { return errors.As(err, target) }

func strPtr(s string) *string { return &s }

// optStr returns nil for "", so that Nodepool's nulls stay nulls.
func optStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// externalIDJSON encodes a driver's external id for the node record: a JSON object text
// is stored as an object (as upstream's AWS driver does), anything else as a string.
func externalIDJSON(id string) json.RawMessage {
	if id == "" {
		return nil
	}
	t := strings.TrimSpace(id)
	if strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
		return json.RawMessage(t)
	}
	b, _ := json.Marshal(id)
	return b
}

func toFloat(r drivers.Resources) map[string]float64 {
	if len(r) == 0 {
		return nil
	}
	out := make(map[string]float64, len(r))
	for k, v := range r {
		out[k] = float64(v)
	}
	return out
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
