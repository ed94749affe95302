package drivers

import "fmt"

// PoolSpec carries the name of a pool and of its labels, in the order of the
// provider's pools and of the pool's labels, as the caller read them from the common
// keys. Drivers that keep their own pool keys check them against it.
type PoolSpec struct {
	Name   string
	Labels []string
}

// CheckPoolSpecs reports, through add, what is wrong with a provider's pool and label
// names: a provider without pools, pool specs that do not match the configured pools
// (configured is how many the driver decoded), and missing or duplicate names. Paths
// are relative to the provider section (pools[1].labels[0].name).
func CheckPoolSpecs(pools []PoolSpec, configured int, add func(path, format string, args ...any)) {
	if configured == 0 {
		add("pools", "at least one pool is required")
	}
	if pools != nil && len(pools) != configured {
		add("pools", "%d pools decoded but %d named", configured, len(pools))
	}
	poolNames := map[string]bool{}
	for i, ps := range pools {
		if ps.Name == "" {
			add(fmt.Sprintf("pools[%d].name", i), "required")
		} else if poolNames[ps.Name] {
			add(fmt.Sprintf("pools[%d].name", i), "duplicate pool %q", ps.Name)
		}
		poolNames[ps.Name] = true
		labelNames := map[string]bool{}
		for j, l := range ps.Labels {
			if l == "" || labelNames[l] {
				add(fmt.Sprintf("pools[%d].labels[%d].name", i, j), "missing or duplicate label name %q", l)
			}
			labelNames[l] = true
		}
	}
}
