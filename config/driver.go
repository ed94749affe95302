package config

import (
	"reflect"
	"slices"

	"gopkg.in/yaml.v3"
)

// CommonProviderKeys returns the provider keys this package decodes for every
// driver: name, driver, max-concurrency, priority, rate, launch-timeout,
// boot-timeout, launch-retries, max-servers, max-cores, max-ram, max-resources and
// pools. Every other provider key belongs to the driver.
func CommonProviderKeys() []string { return structKeys(reflect.TypeFor[Provider]()) }

// CommonPoolKeys returns the pool keys this package decodes for every driver: name,
// max-servers, max-cores, max-ram, max-resources, priority, node-attributes and
// labels.
func CommonPoolKeys() []string { return structKeys(reflect.TypeFor[Pool]()) }

// CommonLabelKeys returns the pool-label keys this package decodes: name.
func CommonLabelKeys() []string { return structKeys(reflect.TypeFor[PoolLabel]()) }

func structKeys(t reflect.Type) []string {
	return slices.Clone(getStructInfo(t).keys)
}

func keySet(keys []string, except ...string) map[string]bool {
	m := map[string]bool{}
	for _, k := range keys {
		if !slices.Contains(except, k) {
			m[k] = true
		}
	}
	return m
}

// DriverNode returns the provider's section as the driver sees it: a copy of Raw
// without the common provider keys, whose pools keep only their name, their driver
// keys and their labels, and whose labels keep only their name and their driver
// keys. Line numbers are those of the file.
func (p *Provider) DriverNode() *yaml.Node { return p.driverNode(KeyName) }

// driverNode is DriverNode, keeping the pools' and labels' keys in keep.
func (p *Provider) driverNode(keep ...string) *yaml.Node {
	return strip(&p.Raw, keySet(CommonProviderKeys(), KeyPools), map[string]func(*yaml.Node) *yaml.Node{
		KeyPools: eachItem(func(n *yaml.Node) *yaml.Node {
			return strip(n, keySet(CommonPoolKeys(), append([]string{KeyLabels}, keep...)...), map[string]func(*yaml.Node) *yaml.Node{
				KeyLabels: eachItem(func(n *yaml.Node) *yaml.Node {
					return strip(n, keySet(CommonLabelKeys(), keep...), nil)
				}),
			})
		}),
	})
}

// DecodeDriver decodes the provider's whole driver section (see DriverNode) into v,
// a pointer to the driver's own struct, strictly: a key the struct does not declare
// is a problem such as
//
//	nodepool.yaml:31: providers[0].pools[1].labels[0]: field foo not found
//
// The struct declares the driver's provider-level keys and, if the driver has pool
// or label keys, a `pools` list whose items declare `name`, the pool keys and a
// `labels` list whose items declare `name` and the label keys. Common keys never
// need declaring. The error is a *ValidationError listing every problem. Struct
// tags follow yaml.v3; see DecodeStrict.
func (p *Provider) DecodeDriver(v any) error {
	return DecodeStrict(p.Pos.File, p.Pos.Path, p.DriverNode(), v)
}

// DecodeDriverPositional is DecodeDriver for a driver whose pools and labels are
// the provider's own, matched by position: their names are removed as well (see
// CommonPoolKeys), so the driver's struct declares only its own keys at every
// level.
func (p *Provider) DecodeDriverPositional(v any) error {
	return DecodeStrict(p.Pos.File, p.Pos.Path, p.driverNode(), v)
}

// DriverProblems locates a driver's validation error at the provider's section:
// every error joined in err (errors.Join) becomes one Problem with the
// provider's file, line and path. The result is a *ValidationError, or nil for a
// nil err.
func (p *Provider) DriverProblems(err error) error {
	if err == nil {
		return nil
	}
	var problems []Problem
	for _, e := range unjoin(err) {
		problems = append(problems, Problem{File: p.Pos.File, Line: p.Pos.Line, Path: p.Pos.Path, Msg: e.Error()})
	}
	return &ValidationError{Problems: problems}
}

// unjoin flattens the errors joined in err.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// DriverNode returns a copy of the pool's mapping without the common pool keys
// (name and labels included): only the pool's own driver keys.
func (pool *Pool) DriverNode() *yaml.Node {
	return strip(&pool.Raw, keySet(CommonPoolKeys()), nil)
}

// DecodeDriver decodes just the pool's own driver keys (see DriverNode) into v,
// strictly, with problems located as in Provider.DecodeDriver.
func (pool *Pool) DecodeDriver(v any) error {
	return DecodeStrict(pool.Pos.File, pool.Pos.Path, pool.DriverNode(), v)
}

// DriverNode returns a copy of the label's mapping without its name: only the
// label's driver keys.
func (l *PoolLabel) DriverNode() *yaml.Node {
	return strip(&l.Raw, keySet(CommonLabelKeys()), nil)
}

// DecodeDriver decodes the label's driver keys (see DriverNode) into v, strictly,
// with problems located as in Provider.DecodeDriver.
func (l *PoolLabel) DecodeDriver(v any) error {
	return DecodeStrict(l.Pos.File, l.Pos.Path, l.DriverNode(), v)
}

// strip returns a new mapping holding n's entries (merge keys expanded) except the
// keys in drop, with the values of the keys in child replaced by child's result.
// Nodes are shared with n, never modified. A node that is not a mapping is returned
// as it is, so decoding reports its type.
func strip(n *yaml.Node, drop map[string]bool, child map[string]func(*yaml.Node) *yaml.Node) *yaml.Node {
	rn := resolve(n)
	if rn == nil || rn.Kind == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	if rn.Kind != yaml.MappingNode {
		return rn
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: rn.Style, Line: rn.Line, Column: rn.Column}
	// Problems with the mapping itself (duplicates, bad merges) were reported when
	// the file was loaded; the decoder here only serves to expand merge keys.
	d := &decoder{}
	for _, p := range d.pairs(rn, "") {
		if drop[p.key] {
			continue
		}
		val := p.vNode
		if f := child[p.key]; f != nil {
			val = f(val)
		}
		out.Content = append(out.Content, p.kNode, val)
	}
	return out
}

// eachItem applies f to every item of a list node (other nodes are returned as they
// are).
func eachItem(f func(*yaml.Node) *yaml.Node) func(*yaml.Node) *yaml.Node {
	return func(n *yaml.Node) *yaml.Node {
		rn := resolve(n)
		if rn == nil || rn.Kind != yaml.SequenceNode {
			return n
		}
		out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: rn.Style, Line: rn.Line, Column: rn.Column}
		for _, item := range rn.Content {
			out.Content = append(out.Content, f(item))
		}
		return out
	}
}
