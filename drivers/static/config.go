package static

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Defaults of a static node's keys, as upstream Nodepool has them.
const (
	DefaultUsername        = "zuul"
	DefaultTimeout         = 5 // seconds
	DefaultConnectionType  = "ssh"
	DefaultConnectionPort  = 22
	DefaultPythonPath      = "auto"
	DefaultMaxParallelJobs = 1
	DefaultHostKeyChecking = true
)

// Config is the static driver's part of a provider section, decoded strictly from
// YAML. Nodepool's common keys (driver, max-servers, priority, node-attributes, ...)
// are not part of it; the pool names are, since they tie the nodes to the pools.
type Config struct {
	Pools []PoolConfig `yaml:"pools"`
}

// PoolConfig is a pool of static nodes.
type PoolConfig struct {
	Name  string       `yaml:"name"`
	Nodes []NodeConfig `yaml:"nodes"`
}

// NodeConfig is a static node: a host that is handed out to jobs, up to
// max-parallel-jobs at a time. Pointer fields are nil when the key is absent; the
// Effective* methods apply the defaults.
type NodeConfig struct {
	// Name is the host name or address; it becomes the node's interface_ip and
	// hostname.
	Name string `yaml:"name"`
	// Labels the node offers: a list, or a string of labels separated by spaces.
	Labels Labels `yaml:"labels"`
	// Username is the user Zuul logs in as.
	Username string `yaml:"username"`
	// HostKey is the node's host key, or a list of them, "<type> <base64>".
	HostKey StringList `yaml:"host-key"`
	// HostKeyChecking: when true the host is scanned, its keys must include HostKey,
	// and it is handed out only while it answers; when false HostKey is used as it is
	// and the host is assumed to be up.
	HostKeyChecking *bool `yaml:"host-key-checking"`
	// Timeout is the scan timeout in seconds.
	Timeout        *int   `yaml:"timeout"`
	ConnectionType string `yaml:"connection-type"`
	ConnectionPort *int   `yaml:"connection-port"`
	PythonPath     string `yaml:"python-path"`
	ShellType      string `yaml:"shell-type"`
	// MaxParallelJobs is the number of slots: nodes of the host in use at once.
	MaxParallelJobs *int `yaml:"max-parallel-jobs"`
}

// Labels is a list of labels that YAML may also give as one string of labels
// separated by white space, as upstream accepts.
type Labels []string

// UnmarshalYAML accepts a string or a list of strings.
func (l *Labels) UnmarshalYAML(n *yaml.Node) error {
	list, err := decodeStrings(n)
	if err != nil {
		return err
	}
	out := Labels{}
	for _, s := range list {
		out = append(out, strings.Fields(s)...)
	}
	*l = out
	return nil
}

// StringList is a list of strings that YAML may also give as a single string.
type StringList []string

// UnmarshalYAML accepts a string or a list of strings.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	list, err := decodeStrings(n)
	if err != nil {
		return err
	}
	*l = list
	return nil
}

// decodeStrings decodes a string scalar or a list of string scalars.
func decodeStrings(n *yaml.Node) ([]string, error) {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	isString := func(n *yaml.Node) bool {
		return n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str"
	}
	switch {
	case isString(n):
		return []string{n.Value}, nil
	case n != nil && n.Kind == yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, item := range n.Content {
			for item != nil && item.Kind == yaml.AliasNode {
				item = item.Alias
			}
			if !isString(item) {
				return nil, fmt.Errorf("line %d: must be a string or a list of strings", item.Line)
			}
			out = append(out, item.Value)
		}
		return out, nil
	}
	return nil, errors.New("must be a string or a list of strings")
}

// EffectiveUsername is the user Zuul logs in as.
func (n *NodeConfig) EffectiveUsername() string { return or(n.Username, DefaultUsername) }

// EffectiveHostKeyChecking reports whether the host is scanned.
func (n *NodeConfig) EffectiveHostKeyChecking() bool {
	if n.HostKeyChecking == nil {
		return DefaultHostKeyChecking
	}
	return *n.HostKeyChecking
}

// EffectiveTimeout is the scan timeout in seconds.
func (n *NodeConfig) EffectiveTimeout() int { return orInt(n.Timeout, DefaultTimeout) }

// EffectiveConnectionType is the node's connection type.
func (n *NodeConfig) EffectiveConnectionType() string {
	return or(n.ConnectionType, DefaultConnectionType)
}

// EffectiveConnectionPort is the node's connection port. It is 22 for every
// connection type unless configured, as upstream's static driver has it.
func (n *NodeConfig) EffectiveConnectionPort() int {
	return orInt(n.ConnectionPort, DefaultConnectionPort)
}

// EffectivePythonPath is the node's python-path.
func (n *NodeConfig) EffectivePythonPath() string { return or(n.PythonPath, DefaultPythonPath) }

// EffectiveMaxParallelJobs is the node's number of slots.
func (n *NodeConfig) EffectiveMaxParallelJobs() int {
	return orInt(n.MaxParallelJobs, DefaultMaxParallelJobs)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// maxSlots bounds max-parallel-jobs, so that a typo cannot make millions of slots.
const maxSlots = 10000

// Problem is one problem of a static provider section, at a key path relative to the
// section (for example "pools[0].nodes[2].labels").
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) Error() string { return p.Path + ": " + p.Msg }

// Problems returns the Problems joined in an error of Validate.
func Problems(err error) []Problem {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []Problem
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	var p Problem
	if errors.As(err, &p) {
		return []Problem{p}
	}
	return []Problem{{Msg: err.Error()}}
}

// Validate reports every problem of the configuration, as Problems joined with
// errors.Join.
func (c *Config) Validate() error {
	var problems []error
	add := func(path, format string, args ...any) {
		problems = append(problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	pools := map[string]int{}
	nodes := map[string]string{}
	for i, p := range c.Pools {
		path := fmt.Sprintf("pools[%d]", i)
		switch j, dup := pools[p.Name]; {
		case p.Name == "":
			add(path+".name", "required")
		case dup:
			add(path+".name", "duplicate pool %q (also pools[%d])", p.Name, j)
		default:
			pools[p.Name] = i
		}
		for j, n := range p.Nodes {
			path := fmt.Sprintf("%s.nodes[%d]", path, j)
			switch other, dup := nodes[n.Name]; {
			case n.Name == "":
				add(path+".name", "required")
			case strings.ContainsAny(n.Name, "# \t\n"):
				add(path+".name", "%q is not a host name or address", n.Name)
			case dup:
				add(path+".name", "duplicate node %q (also %s); the driver tells a provider's nodes apart by name", n.Name, other)
			default:
				nodes[n.Name] = path
			}
			if len(n.Labels) == 0 {
				add(path+".labels", "at least one label is required")
			}
			seen := map[string]bool{}
			for _, l := range n.Labels {
				if seen[l] {
					add(path+".labels", "duplicate label %q", l)
				}
				seen[l] = true
			}
			for k, key := range n.HostKey {
				if strings.TrimSpace(key) == "" {
					add(fmt.Sprintf("%s.host-key[%d]", path, k), "must not be empty")
				}
			}
			if n.Timeout != nil && *n.Timeout < 1 {
				add(path+".timeout", "must be at least 1 (seconds), got %d", *n.Timeout)
			}
			if n.ConnectionPort != nil && (*n.ConnectionPort < 1 || *n.ConnectionPort > 65535) {
				add(path+".connection-port", "must be a TCP port, got %d", *n.ConnectionPort)
			}
			if n.MaxParallelJobs != nil && (*n.MaxParallelJobs < 1 || *n.MaxParallelJobs > maxSlots) {
				add(path+".max-parallel-jobs", "must be between 1 and %d, got %d", maxSlots, *n.MaxParallelJobs)
			}
		}
	}
	return errors.Join(problems...)
}

// PoolLabels returns the labels each pool offers (the union of its nodes' labels, in
// file order). A static pool lists its labels on its nodes rather than in a pool-level
// "labels" key, so this, not the pool's common label list, tells which requests the
// pool can serve.
func (c *Config) PoolLabels() map[string][]string {
	out := map[string][]string{}
	for _, p := range c.Pools {
		labels := []string{}
		for _, n := range p.Nodes {
			for _, l := range n.Labels {
				if !slices.Contains(labels, l) {
					labels = append(labels, l)
				}
			}
		}
		out[p.Name] = labels
	}
	return out
}

// PoolSlots returns each pool's number of slots: the sum of its nodes'
// max-parallel-jobs.
func (c *Config) PoolSlots() map[string]int {
	out := map[string]int{}
	for _, p := range c.Pools {
		slots := 0
		for i := range p.Nodes {
			slots += p.Nodes[i].EffectiveMaxParallelJobs()
		}
		out[p.Name] += slots
	}
	return out
}

// pathElem matches one element of a key path: a key, optionally indexed; digits finds
// its indexes.
var (
	pathElem = regexp.MustCompile(`^([^.\[\]]+)?((?:\[\d+\])*)$`)
	digits   = regexp.MustCompile(`\d+`)
)

// Locate returns the line of the key path (as in a Problem) in the YAML mapping root,
// or of its closest enclosing key that exists, or root's line when none does. The
// line lets a problem be reported as file:line.
func Locate(root *yaml.Node, path string) int {
	n := deref(root)
	if n == nil {
		return 0
	}
	line := n.Line
	for _, elem := range strings.Split(path, ".") {
		m := pathElem.FindStringSubmatch(elem)
		if m == nil {
			return line
		}
		if key := m[1]; key != "" {
			if n.Kind != yaml.MappingNode {
				return line
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k := deref(n.Content[i]); k != nil && k.Value == key {
					line = k.Line
					next = deref(n.Content[i+1])
					break
				}
			}
			if next == nil {
				return line
			}
			n = next
		}
		for _, idx := range digits.FindAllString(m[2], -1) {
			i, _ := strconv.Atoi(idx)
			if n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return line
			}
			n = deref(n.Content[i])
			line = n.Line
		}
	}
	return line
}

// deref follows aliases and unwraps documents.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch n.Kind {
		case yaml.AliasNode:
			n = n.Alias
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		default:
			return n
		}
	}
	return nil
}
