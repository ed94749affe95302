package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// EnvPrefix is the prefix of the environment variables that %(NAME) references in
// the configuration files may name.
const EnvPrefix = "NODEPOOL_"

// envRefRE matches %(NODEPOOL_XYZ).
var envRefRE = regexp.MustCompile(`%\((` + EnvPrefix + `[A-Za-z0-9_]+)\)`)

// Load reads and decodes the configuration file at path. See LoadWithSecure.
func Load(path string) (*Config, error) {
	return LoadWithSecure(path, "")
}

// LoadWithSecure reads the configuration file at path and, unless securePath is
// empty, merges the secure file at securePath into it (see MergeSecure). The Temporal
// section is then overridden from the environment (see Temporal.WithEnv).
//
// Loading substitutes %(NODEPOOL_XYZ) references, decodes strictly and applies
// defaults; it does not check cross-references or limits: call Validate (or
// ValidateDrivers) next. A decoding failure is a *ValidationError listing every
// problem with its file, line and key path.
func LoadWithSecure(path, securePath string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration file: %w", err)
	}
	c, err := parse(path, data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if securePath != "" {
		sdata, err := os.ReadFile(securePath)
		if err != nil {
			return nil, fmt.Errorf("reading secure configuration file: %w", err)
		}
		if err := c.mergeSecure(securePath, sdata, os.LookupEnv); err != nil {
			return nil, err
		}
	}
	c.Temporal = c.Temporal.WithEnv(os.Getenv)
	return c, nil
}

// Parse decodes configuration text; name is used as the file name in problems. It
// substitutes %(NODEPOOL_XYZ) references from the environment and applies the
// Temporal environment overrides, like Load.
func Parse(name string, data []byte) (*Config, error) {
	c, err := parse(name, data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	c.Temporal = c.Temporal.WithEnv(os.Getenv)
	return c, nil
}

// MergeSecure merges secure-file text (name is used in problems) into c, as upstream
// does: a non-empty zookeeper-servers replaces the main file's list, zookeeper-tls
// keys override the main file's, and each diskimages entry's env-vars are merged
// into the top-level diskimage of the same name (an unknown name is a problem). No
// other keys are allowed. %(NODEPOOL_XYZ) references are substituted.
func (c *Config) MergeSecure(name string, data []byte) error {
	return c.mergeSecure(name, data, os.LookupEnv)
}

func parse(name string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	data, problems := substituteEnv(name, data, lookup)
	root, ps := parseYAML(name, data)
	problems = append(problems, ps...)
	c := Default()
	c.Path = name
	if root != nil {
		d := &decoder{file: name}
		d.decode(root, reflect.ValueOf(c).Elem(), "")
		problems = append(problems, d.problems...)
	} else {
		c.Pos = Pos{File: name}
	}
	if err := problemsError(problems); err != nil {
		return nil, err
	}
	c.link()
	return c, nil
}

// substituteEnv replaces every %(NODEPOOL_XYZ) in data with the variable's value. A
// variable that is not set is a problem (its reference is left in place). Lines that
// are entirely a comment are left alone.
func substituteEnv(file string, data []byte, lookup func(string) (string, bool)) ([]byte, []Problem) {
	matches := envRefRE.FindAllSubmatchIndex(data, -1)
	if len(matches) == 0 {
		return data, nil
	}
	var out bytes.Buffer
	var problems []Problem
	last := 0
	for _, m := range matches {
		out.Write(data[last:m[0]])
		last = m[1]
		lineStart := bytes.LastIndexByte(data[:m[0]], '\n') + 1
		if bytes.HasPrefix(bytes.TrimLeft(data[lineStart:m[0]], " \t"), []byte("#")) {
			out.Write(data[m[0]:m[1]])
			continue
		}
		name := string(data[m[2]:m[3]])
		val, ok := lookup(name)
		if !ok {
			problems = append(problems, Problem{
				File: file,
				Line: bytes.Count(data[:m[0]], []byte("\n")) + 1,
				Msg:  fmt.Sprintf("environment variable %s referenced by %%(%s) is not set", name, name),
			})
			out.Write(data[m[0]:m[1]])
			continue
		}
		out.WriteString(val)
	}
	out.Write(data[last:])
	return out.Bytes(), problems
}

var syntaxLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses a single YAML document. It returns nil for an empty file.
func parseYAML(file string, data []byte) (*yaml.Node, []Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, []Problem{syntaxProblem(file, err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, []Problem{syntaxProblem(file, err)}
	default:
		return nil, []Problem{{File: file, Line: extra.Line, Msg: "only one YAML document is allowed"}}
	}
	root := resolve(&doc)
	if isNull(root) {
		return nil, nil
	}
	return root, nil
}

func syntaxProblem(file string, err error) Problem {
	if m := syntaxLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return Problem{File: file, Msg: "invalid YAML: " + cleanYAMLError(err)}
}

// secureFile is the shape of the secure file.
type secureFile struct {
	Pos              Pos
	ZooKeeperServers []ZooKeeperServer `yaml:"zookeeper-servers"`
	ZooKeeperTLS     *ZooKeeperTLS     `yaml:"zookeeper-tls"`
	DiskImages       []secureDiskImage `yaml:"diskimages"`
}

type secureDiskImage struct {
	Pos     Pos
	Name    string            `yaml:"name"`
	EnvVars map[string]string `yaml:"env-vars"`
}

func (c *Config) mergeSecure(name string, data []byte, lookup func(string) (string, bool)) error {
	data, problems := substituteEnv(name, data, lookup)
	root, ps := parseYAML(name, data)
	problems = append(problems, ps...)
	var s secureFile
	if root != nil {
		d := &decoder{file: name}
		d.decode(root, reflect.ValueOf(&s).Elem(), "")
		problems = append(problems, d.problems...)
	}
	for _, sd := range s.DiskImages {
		switch _, ok := c.DiskImage(sd.Name); {
		case sd.Name == "":
			problems = append(problems, sd.Pos.problem(KeyName, "is required"))
		case !ok:
			problems = append(problems, sd.Pos.problem(KeyName, "unknown diskimage %q", sd.Name))
		}
	}
	if err := problemsError(problems); err != nil {
		return err
	}
	// Everything checked: apply.
	if len(s.ZooKeeperServers) > 0 {
		c.ZooKeeperServers = s.ZooKeeperServers
	}
	if t := s.ZooKeeperTLS; t != nil {
		if c.ZooKeeperTLS == nil {
			c.ZooKeeperTLS = t
		} else {
			merged := *c.ZooKeeperTLS
			if t.Cert != "" {
				merged.Cert = t.Cert
			}
			if t.Key != "" {
				merged.Key = t.Key
			}
			if t.CA != "" {
				merged.CA = t.CA
			}
			c.ZooKeeperTLS = &merged
		}
	}
	for _, sd := range s.DiskImages {
		di, _ := c.DiskImage(sd.Name)
		env := maps.Clone(di.EnvVars)
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, sd.EnvVars)
		di.EnvVars = env
	}
	c.SecurePath = name
	return nil
}
