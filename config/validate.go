package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Validate checks what decoding cannot: required keys, unique names, references
// between sections and value ranges. It returns nil or a *ValidationError listing
// every problem, each with file, line and key path. Driver-specific keys are not
// checked here; see ValidateDrivers.
func (c *Config) Validate() error {
	return problemsError(c.problems())
}

// upstreamDrivers are the drivers of upstream Nodepool that this launcher does not
// have: a provider naming one is told so, rather than that its driver is a typo.
var upstreamDrivers = map[string]bool{
	"azure": true, "gce": true, "ibmvpc": true, "kubernetes": true, "metastatic": true,
	"openshift": true, "openshiftpods": true, "test": true,
}

// ValidateDrivers runs Validate and, for every provider, the validator registered for
// its driver name in known (typically one that decodes the provider with
// DecodeDriver and checks the result). A provider whose driver is not in known is
// reported as `providers[i] (name): unknown driver "x"`. All problems, the
// configuration's and the drivers', are returned together. A validator's error that
// carries problems (a *ValidationError, as DecodeDriver returns) contributes them as
// they are; any other error is reported against the provider.
func (c *Config) ValidateDrivers(known map[string]func(p *Provider) error) error {
	ps := c.problems()
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	slices.Sort(names)
	for i := range c.Providers {
		p := &c.Providers[i]
		if p.Driver == "" {
			continue // reported by problems
		}
		subject := p.Pos.Path
		if p.Name != "" {
			subject = fmt.Sprintf("%s (%s)", p.Pos.Path, p.Name)
		}
		fn, ok := known[p.Driver]
		if !ok {
			msg := fmt.Sprintf("unknown driver %q (known drivers: %s)", p.Driver, strings.Join(names, ", "))
			if upstreamDrivers[p.Driver] {
				msg = fmt.Sprintf("driver %q of upstream Nodepool is not supported by this launcher (supported: %s)",
					p.Driver, strings.Join(names, ", "))
			}
			ps = append(ps, Problem{File: p.Pos.File, Line: p.Pos.KeyLine(KeyDriver), Path: subject, Msg: msg})
			continue
		}
		if fn == nil {
			continue
		}
		if err := fn(p); err != nil {
			if dps := Problems(err); len(dps) > 0 {
				ps = append(ps, dps...)
			} else {
				ps = append(ps, Problem{File: p.Pos.File, Line: p.Pos.Line, Path: subject, Msg: err.Error()})
			}
		}
	}
	return problemsError(ps)
}

// validator collects problems.
type validator struct {
	file     string
	problems []Problem
}

func (v *validator) add(p Problem) { v.problems = append(v.problems, p) }

// section returns pos, or a position naming the file and path when the section was
// absent from the file (its Pos is then zero).
func (v *validator) section(pos Pos, path string) Pos {
	if pos.File == "" && pos.Path == "" {
		return Pos{File: v.file, Path: path}
	}
	return pos
}

func (v *validator) required(pos Pos, key, value string) {
	if value == "" {
		v.add(pos.problem(key, "is required"))
	}
}

func (v *validator) atLeast(pos Pos, key string, value, minimum int64) {
	if value < minimum {
		v.add(pos.problem(key, "must be >= %d, got %d", minimum, value))
	}
}

func (v *validator) atLeastPtr(pos Pos, key string, value *int64, minimum int64) {
	if value != nil {
		v.atLeast(pos, key, *value, minimum)
	}
}

func (v *validator) positive(pos Pos, key string, value Seconds) {
	if value <= 0 {
		v.add(pos.problem(key, "must be > 0, got %v", float64(value)))
	}
}

func (v *validator) nonNegative(pos Pos, key string, value Seconds) {
	if value < 0 {
		v.add(pos.problem(key, "must be >= 0, got %v", float64(value)))
	}
}

func (v *validator) resources(pos Pos, key string, m map[string]int64) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] < 0 {
			v.add(Problem{File: pos.File, Line: pos.KeyLine(key), Path: pos.Child(key) + "." + k,
				Msg: fmt.Sprintf("must be >= 0, got %d", m[k])})
		}
	}
}

// unique reports name if an earlier entry used it; seen maps names to their line.
func (v *validator) unique(pos Pos, what, name string, seen map[string]int) {
	if name == "" {
		return
	}
	if first, dup := seen[name]; dup {
		v.add(pos.problem(KeyName, "duplicate %s %q (first defined at line %d)", what, name, first))
		return
	}
	seen[name] = pos.KeyLine(KeyName)
}

func (c *Config) problems() []Problem {
	v := &validator{file: c.Path}
	root := v.section(c.Pos, "")
	c.validateZooKeeper(v, root)

	labels := map[string]int{}
	for _, l := range c.Labels {
		v.required(l.Pos, KeyName, l.Name)
		v.unique(l.Pos, "label", l.Name, labels)
		v.nonNegative(l.Pos, KeyMaxReadyAge, l.MaxReadyAge)
	}

	images := map[string]int{}
	for _, d := range c.DiskImages {
		v.required(d.Pos, KeyName, d.Name)
		v.unique(d.Pos, "diskimage", d.Name, images)
	}
	for _, d := range c.DiskImages {
		if d.Parent == "" {
			continue
		}
		if _, ok := images[d.Parent]; !ok || d.Parent == d.Name {
			v.add(d.Pos.problem(KeyParent, "parent diskimage %q is not defined", d.Parent))
		}
	}

	providers := map[string]int{}
	for i := range c.Providers {
		c.Providers[i].applyDriverDefault()
		c.validateProvider(v, &c.Providers[i], labels, providers)
	}

	tenants := map[string]int{}
	for _, t := range c.TenantResourceLimits {
		v.required(t.Pos, KeyTenantName, t.TenantName)
		if t.TenantName != "" {
			if first, dup := tenants[t.TenantName]; dup {
				v.add(t.Pos.problem(KeyTenantName, "duplicate tenant %q (first defined at line %d)", t.TenantName, first))
			} else {
				tenants[t.TenantName] = t.Pos.KeyLine(KeyTenantName)
			}
		}
		for _, key := range slices.Sorted(maps.Keys(t.Pos.keys)) {
			if key == KeyTenantName {
				continue
			}
			res := key
			if r, ok := tenantKeyResources[key]; ok {
				res = r
			}
			if val := t.Limits[res]; val < 0 {
				v.add(t.Pos.problem(key, "must be >= 0, got %d", val))
			}
		}
	}

	v.nonNegative(root, KeyMaxHoldAge, c.MaxHoldAge)
	v.atLeast(root, KeyBuildLogRetention, int64(c.BuildLogRetention), -1)
	web := v.section(c.Webapp.Pos, KeyWebapp)
	if c.Webapp.Port < 0 || c.Webapp.Port > 65535 {
		v.add(web.problem(KeyPort, "must be between 0 and 65535, got %d", c.Webapp.Port))
	}

	c.validateTemporal(v)

	l := v.section(c.Launcher.Pos, KeyLauncher)
	v.positive(l, KeyPollInterval, c.Launcher.PollInterval)
	v.positive(l, KeyDeleteInterval, c.Launcher.DeleteInterval)
	v.positive(l, KeyCleanupInterval, c.Launcher.CleanupInterval)
	switch {
	case c.Launcher.Hostname == "" && l.Has(KeyHostname):
		v.add(l.problem(KeyHostname, "must not be empty"))
	case c.Launcher.Hostname == "":
		v.add(l.problem(KeyHostname, "is required (the host name of this machine is unknown)"))
	}
	return v.problems
}

func (c *Config) validateZooKeeper(v *validator, root Pos) {
	if len(c.ZooKeeperServers) == 0 {
		if c.SecurePath != "" {
			v.add(root.problem(KeyZooKeeperServers, "at least one server is required, in this file or in the secure file %s", c.SecurePath))
		} else {
			v.add(root.problem(KeyZooKeeperServers, "at least one server is required"))
		}
	}
	for i, s := range c.ZooKeeperServers {
		v.required(s.Pos, KeyHost, s.Host)
		if s.Port < 1 || s.Port > 65535 {
			v.add(s.Pos.problem(KeyPort, "must be between 1 and 65535, got %d", s.Port))
		}
		if s.Chroot != "" && !strings.HasPrefix(s.Chroot, "/") {
			v.add(s.Pos.problem(KeyChroot, "must start with \"/\", got %q", s.Chroot))
		}
		if first := c.ZooKeeperServers[0].Chroot; i > 0 && s.Chroot != first {
			v.add(s.Pos.problem(KeyChroot, "chroot %q differs from %q of zookeeper-servers[0]; all servers must use the same chroot", s.Chroot, first))
		}
	}
	if t := c.ZooKeeperTLS; t != nil {
		for _, kv := range [][2]string{{KeyCert, t.Cert}, {KeyKey, t.Key}, {KeyCA, t.CA}} {
			if kv[1] == "" {
				v.add(t.Pos.problem(kv[0], "is required when zookeeper-tls is present (cert, key and ca)"))
			}
		}
	}
	v.positive(root, KeyZooKeeperTimeout, c.ZooKeeperTimeout)
}

// DefaultDriver is the driver of a provider without a driver key, as upstream has it.
const DefaultDriver = "openstack"

// applyDriverDefault gives a provider without a driver key upstream's default driver,
// openstack.
func (p *Provider) applyDriverDefault() {
	if p.Driver == "" {
		p.Driver = DefaultDriver
	}
}

func (c *Config) validateProvider(v *validator, p *Provider, labels, providers map[string]int) {
	v.required(p.Pos, KeyName, p.Name)
	v.unique(p.Pos, "provider", p.Name, providers)
	v.atLeast(p.Pos, KeyMaxConcurrency, int64(p.MaxConcurrency), -1)
	if p.Rate < 0 {
		v.add(p.Pos.problem(KeyRate, "must be >= 0, got %v", p.Rate))
	}
	v.positive(p.Pos, KeyLaunchTimeout, p.LaunchTimeout)
	v.positive(p.Pos, KeyBootTimeout, p.BootTimeout)
	v.atLeast(p.Pos, KeyLaunchRetries, int64(p.LaunchRetries), 0)
	v.atLeastPtr(p.Pos, KeyMaxCores, p.MaxCores, 0)
	v.atLeastPtr(p.Pos, KeyMaxRAM, p.MaxRAM, 0)
	v.resources(p.Pos, KeyMaxResources, p.MaxResources)

	pools := map[string]int{}
	for _, pool := range p.Pools {
		v.required(pool.Pos, KeyName, pool.Name)
		v.unique(pool.Pos, "pool", pool.Name, pools)
		v.atLeastPtr(pool.Pos, KeyMaxCores, pool.MaxCores, 0)
		v.atLeastPtr(pool.Pos, KeyMaxRAM, pool.MaxRAM, 0)
		v.resources(pool.Pos, KeyMaxResources, pool.MaxResources)
		poolLabels := map[string]int{}
		for _, l := range pool.Labels {
			v.required(l.Pos, KeyName, l.Name)
			v.unique(l.Pos, "label", l.Name, poolLabels)
			if _, ok := labels[l.Name]; l.Name != "" && !ok {
				v.add(l.Pos.problem(KeyName, "label %q is not defined in the top-level labels", l.Name))
			}
		}
	}
}

func (c *Config) validateTemporal(v *validator) {
	t := v.section(c.Temporal.Pos, KeyTemporal)
	v.required(t, KeyAddress, c.Temporal.Address)
	v.required(t, KeyNamespace, c.Temporal.Namespace)
	v.required(t, KeyTaskQueue, c.Temporal.TaskQueue)
	tls := v.section(c.Temporal.TLS.Pos, t.Child(KeyTLS))
	if (c.Temporal.TLS.Cert == "") != (c.Temporal.TLS.Key == "") {
		v.add(tls.problem("", "cert and key must be given together"))
	}
	if c.Temporal.badTLSEnv != "" {
		v.add(Problem{Path: tls.Child(KeyTLSEnabled),
			Msg: fmt.Sprintf("%s=%q is not a boolean", EnvTemporalTLS, c.Temporal.badTLSEnv)})
	}
}
