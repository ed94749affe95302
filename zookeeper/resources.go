package zookeeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
)

// MaxResource bounds every resource amount of a node (cores, ram in MiB,
// instances, ...). No real node comes near it, and quota arithmetic on amounts
// up to it cannot overflow an int64, however many nodes are added up.
const MaxResource = 1 << 40

// sanitizeResource returns v as a usable resource amount: NaN, infinities and
// negative amounts become 0, amounts above MaxResource become MaxResource. The
// second result says why v was changed ("" when it was not).
func sanitizeResource(v float64) (float64, string) {
	switch {
	case math.IsNaN(v):
		return 0, "not a number, read as 0"
	case math.IsInf(v, 0):
		return 0, "infinite, read as 0"
	case v < 0:
		return 0, "negative, read as 0"
	case v > MaxResource:
		return MaxResource, fmt.Sprintf("above %d, read as %d", int64(MaxResource), int64(MaxResource))
	case v == 0:
		return 0, "" // -0 too
	}
	return v, ""
}

// resources decodes a node's resources: an object of numbers, each made usable
// by sanitizeResource. A literal too large for a float64 counts as above
// MaxResource. Every changed amount is described in the returned notes.
func (o object) resources(key string) (map[string]float64, []string, error) {
	raw := o.take(key)
	if raw == nil {
		return nil, nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, nil, typeErr(key, "object of numbers", raw)
	}
	out := make(map[string]float64, len(m))
	var notes []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		v := m[name]
		if kind(v) != "number" {
			return nil, nil, typeErr(key, "object of numbers", raw)
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, nil, typeErr(key, "object of numbers", raw)
		}
		if math.IsInf(f, 0) {
			f = math.Copysign(math.MaxFloat64, f) // a huge literal, not an infinity: JSON has none
		}
		clean, why := sanitizeResource(f)
		if why != "" {
			notes = append(notes, fmt.Sprintf("%s.%s: %s is %s", key, name, v, why))
		}
		out[name] = clean
	}
	return out, notes, nil
}

// ResourceCounts returns the node's resources as whole amounts, the way quota
// is counted: each amount made usable (NaN, infinite and negative amounts count
// 0, amounts above MaxResource count MaxResource) and truncated as Python's
// int() does. It is nil when the node has no resources.
func (n *Node) ResourceCounts() map[string]int64 {
	if n.Resources == nil {
		return nil
	}
	out := make(map[string]int64, len(n.Resources))
	for k, v := range n.Resources {
		clean, _ := sanitizeResource(v)
		out[k] = int64(clean)
	}
	return out
}

// maxCorrectedWarnings bounds the memory of which node versions were reported.
const maxCorrectedWarnings = 4096

// warnCorrected logs the corrections decoding made to node n, once per node
// version: the poller reads every node every few seconds.
func (c *Client) warnCorrected(id string, n *Node) {
	key := fmt.Sprintf("%s@%d", id, n.Version)
	c.wmu.Lock()
	if c.warned == nil || len(c.warned) >= maxCorrectedWarnings {
		c.warned = make(map[string]bool)
	}
	seen := c.warned[key]
	c.warned[key] = true
	c.wmu.Unlock()
	if !seen {
		c.log.Warn("node record has unusable values", "node_id", id, "corrected", n.Corrected)
	}
}
