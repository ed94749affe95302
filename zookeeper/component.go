package zookeeper

import (
	"encoding/json"
	"fmt"
)

// Component kinds and states of Nodepool's component registry.
const (
	// ComponentKindPool is the kind of a pool worker registration.
	ComponentKindPool = "pool"
	// ComponentKindLauncher is the kind of a launcher process registration.
	ComponentKindLauncher = "launcher"
	// ComponentStateInitializing: starting up.
	ComponentStateInitializing = "initializing"
	// ComponentStateRunning: serving.
	ComponentStateRunning = "running"
	// ComponentStatePaused: paused.
	ComponentStatePaused = "paused"
	// ComponentStateStopped: shut down.
	ComponentStateStopped = "stopped"
	// DefaultPoolPriority is the priority of a pool that does not set one.
	DefaultPoolPriority = 100
)

// PoolComponent is a pool worker's registration at
// /nodepool/components/pool/<hostname><seq>. Launchers use it to decide when
// every pool declined a request and which pool goes first; Zuul reads id and
// supported_labels for its label list.
type PoolComponent struct {
	// Hostname is the launcher's host name; it also prefixes the znode name.
	Hostname string `json:"hostname"`
	// State is the component state, e.g. "running".
	State string `json:"state"`
	// Kind is "pool".
	Kind string `json:"kind"`
	// Version is the software version string.
	Version string `json:"version"`
	// ModelAPI is the data model API version (0).
	ModelAPI int `json:"model_api"`
	// ID is the pool worker id, the value written to declined_by.
	ID string `json:"id"`
	// Name is the pool name.
	Name string `json:"name"`
	// ProviderName is the provider name.
	ProviderName string `json:"provider_name"`
	// SupportedLabels lists the labels this pool serves.
	SupportedLabels []string `json:"supported_labels"`
	// Priority orders pools; lower is preferred (default 100).
	Priority int `json:"priority"`
	// Paused reports a pool waiting for quota.
	Paused bool `json:"paused"`
	// Path is the registration znode path relative to the chroot; not part
	// of the JSON.
	Path string `json:"-"`
}

// Encode returns the registration JSON with sorted keys, as Nodepool writes it.
func (p *PoolComponent) Encode() ([]byte, error) {
	if p.Kind == ComponentKindLauncher {
		// A launcher component has the common fields only.
		return marshal(map[string]any{
			"hostname": p.Hostname, "state": p.State, "kind": p.Kind,
			"version": p.Version, "model_api": p.ModelAPI,
		})
	}
	q := *p
	q.SupportedLabels = stringsOrEmpty(q.SupportedLabels)
	data, err := marshal(q)
	if err != nil {
		return nil, fmt.Errorf("encoding pool component: %w", err)
	}
	// Round-trip through a map: encoding/json writes map keys sorted.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("encoding pool component: %w", err)
	}
	return marshal(m)
}

// DecodePoolComponent decodes the registration at path.
func DecodePoolComponent(path string, data []byte) (*PoolComponent, error) {
	o, err := parseObject(data)
	if err != nil {
		return nil, &DecodeError{Path: path, Err: err}
	}
	p := &PoolComponent{Path: path}
	fail := func(err error) (*PoolComponent, error) {
		return nil, &DecodeError{Path: path, Err: err}
	}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"hostname", &p.Hostname},
		{"state", &p.State},
		{"kind", &p.Kind},
		{"version", &p.Version},
		{"id", &p.ID},
		{"name", &p.Name},
		{"provider_name", &p.ProviderName},
	} {
		if *f.dst, err = o.str(f.key); err != nil {
			return fail(err)
		}
	}
	if p.ModelAPI, err = o.int("model_api"); err != nil {
		return fail(err)
	}
	if p.SupportedLabels, err = o.strings("supported_labels"); err != nil {
		return fail(err)
	}
	if !o.has("priority") {
		p.Priority = DefaultPoolPriority
	} else if p.Priority, err = o.int("priority"); err != nil {
		return fail(err)
	}
	if p.Paused, err = o.boolean("paused", false); err != nil {
		return fail(err)
	}
	return p, nil
}
