package drivers

import "sort"

// Standard resource names, as Nodepool stores them in a node's "resources".
const (
	ResourceInstances = "instances"
	ResourceCores     = "cores"
	ResourceRAM       = "ram"
)

// Resources maps resource names to amounts. As a limit, an absent key is unlimited; as
// a usage, an absent key is zero.
type Resources map[string]int64

// Add returns the sum of r and o (absent keys count as zero).
func (r Resources) Add(o Resources) Resources {
	out := make(Resources, len(r)+len(o))
	for k, v := range r {
		out[k] = v
	}
	for k, v := range o {
		out[k] += v
	}
	return out
}

// Sub returns r minus o (absent keys count as zero).
func (r Resources) Sub(o Resources) Resources {
	out := make(Resources, len(r)+len(o))
	for k, v := range r {
		out[k] = v
	}
	for k, v := range o {
		out[k] -= v
	}
	return out
}

// Scale returns r with every amount multiplied by n.
func (r Resources) Scale(n int64) Resources {
	out := make(Resources, len(r))
	for k, v := range r {
		out[k] = v * n
	}
	return out
}

// Fits reports whether used plus need stays within the limits r, where r is a limit
// (absent keys unlimited). It returns the names of the exceeded resources, sorted.
func (r Resources) Fits(used, need Resources) (bool, []string) {
	var over []string
	for k, limit := range r {
		if used[k]+need[k] > limit {
			over = append(over, k)
		}
	}
	sort.Strings(over)
	return len(over) == 0, over
}

// Clone returns a copy of r.
func (r Resources) Clone() Resources {
	if r == nil {
		return nil
	}
	out := make(Resources, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}
