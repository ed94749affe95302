package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// upper decodes itself through yaml.Unmarshaler.
type upper string

func (u *upper) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("upper wants a scalar")
	}
	*u = upper(strings.ToUpper(n.Value))
	return nil
}

type inner struct {
	Depth int `yaml:"depth"`
}

type sample struct {
	Name     string            `yaml:"name"`
	Count    int               `yaml:"count"`
	Small    uint8             `yaml:"small"`
	Ratio    float64           `yaml:"ratio"`
	On       bool              `yaml:"on"`
	Wait     time.Duration     `yaml:"wait"`
	Addr     netip.Addr        `yaml:"addr"`
	Shout    upper             `yaml:"shout"`
	Inner    *inner            `yaml:"inner"`
	List     []inner           `yaml:"list"`
	ByPort   map[int]string    `yaml:"by-port"`
	Any      any               `yaml:"any"`
	Node     yaml.Node         `yaml:"node"`
	NoTag    string            // key "notag", as in yaml.v3
	Skipped  string            `yaml:"-"`
	Rest     map[string]string `yaml:",inline"`
	unexport string
}

func parseNode(t *testing.T, text string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(text), &n))
	return &n
}

func TestDecodeStrict(t *testing.T) {
	n := parseNode(t, `
name: x
count: 3
small: 200
ratio: 2
on: yes
wait: 1m30s
addr: 192.0.2.1
shout: hello
inner: {depth: 2}
list: [{depth: 1}, {depth: 2}]
by-port: {80: http, 443: https}
any: {a: [1, 2]}
node: [free, form]
notag: n
extra: kept
skipped: also-kept
`)
	var s sample
	require.NoError(t, DecodeStrict("s.yaml", "root", n, &s))
	assert.Equal(t, "x", s.Name)
	assert.Equal(t, 3, s.Count)
	assert.Equal(t, uint8(200), s.Small)
	assert.Equal(t, 2.0, s.Ratio)
	assert.True(t, s.On)
	assert.Equal(t, 90*time.Second, s.Wait)
	assert.Equal(t, netip.MustParseAddr("192.0.2.1"), s.Addr)
	assert.Equal(t, upper("HELLO"), s.Shout)
	assert.Equal(t, &inner{Depth: 2}, s.Inner)
	assert.Equal(t, []inner{{1}, {2}}, s.List)
	assert.Equal(t, map[int]string{80: "http", 443: "https"}, s.ByPort)
	assert.Equal(t, map[string]any{"a": []any{1, 2}}, s.Any)
	assert.Equal(t, yaml.SequenceNode, s.Node.Kind)
	assert.Equal(t, "n", s.NoTag)
	assert.Empty(t, s.Skipped)
	// The inline map catches every key no field takes, "skipped" included.
	assert.Equal(t, map[string]string{"extra": "kept", "skipped": "also-kept"}, s.Rest)
	assert.Empty(t, s.unexport)
}

func TestDecodeStrictProblems(t *testing.T) {
	type target struct {
		Count  int            `yaml:"count"`
		Small  uint8          `yaml:"small"`
		Ratio  float64        `yaml:"ratio"`
		On     bool           `yaml:"on"`
		Wait   time.Duration  `yaml:"wait"`
		Addr   netip.Addr     `yaml:"addr"`
		Shout  upper          `yaml:"shout"`
		Inner  *inner         `yaml:"inner"`
		List   []inner        `yaml:"list"`
		ByPort map[int]string `yaml:"by-port"`
	}
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"float into int", "count: 1.5", []string{"f:1: p.count: expected an integer, got number 1.5"}},
		{"string into int", `count: "1"`, []string{`f:1: p.count: expected an integer, got "1"`}},
		{"overflow", "small: 300", []string{"f:1: p.small: expected a non-negative integer, got integer 300"}},
		{"negative unsigned", "small: -1", []string{"f:1: p.small: expected a non-negative integer, got integer -1"}},
		{"bool into float", "ratio: true", []string{"f:1: p.ratio: expected a number, got boolean true"}},
		{"not a bool", "on: maybe", []string{`f:1: p.on: expected a boolean, got "maybe"`}},
		{"bad duration", "wait: soon", []string{`f:1: p.wait: expected a duration, got "soon"`}},
		{"bad address", "addr: nowhere", []string{`f:1: p.addr: ParseAddr("nowhere"): unable to parse IP`}},
		{"unmarshaler error", "shout: [a]", []string{"f:1: p.shout: upper wants a scalar"}},
		{"unknown nested key", "inner: {depth: 1, width: 2}", []string{"f:1: p.inner: field width not found"}},
		{"list item type", "list: [{depth: x}, 3]", []string{
			`f:1: p.list[0].depth: expected an integer, got "x"`,
			"f:1: p.list[1]: expected a mapping, got integer 3",
		}},
		{"map key type", "by-port: {http: x}", []string{`f:1: p.by-port.http: expected an integer, got "http"`}},
		{"mapping keys", "? [a]\n: 1", []string{"f:1: p: mapping keys must be scalars, got a list"}},
		{"several at once", "count: x\nsmall: y\nnope: 1", []string{
			`f:1: p.count: expected an integer, got "x"`,
			`f:2: p.small: expected a non-negative integer, got "y"`,
			"f:3: p: field nope not found",
		}},
		{"nulls are absent", "count: ~\ninner:\nlist: null", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v target
			err := DecodeStrict("f", "p", parseNode(t, tc.text), &v)
			assert.Equal(t, tc.want, problemTexts(err))
		})
	}
}

func TestDecodeStrictTarget(t *testing.T) {
	n := parseNode(t, "a: 1")
	var m map[string]int
	require.Error(t, DecodeStrict("f", "", n, m), "non-pointer target")
	require.Error(t, DecodeStrict("f", "", n, (*map[string]int)(nil)), "nil pointer target")
	require.NoError(t, DecodeStrict("f", "", n, &m))
	assert.Equal(t, map[string]int{"a": 1}, m)
	require.NoError(t, DecodeStrict("f", "", nil, &m), "nil node decodes nothing")
}

func TestPosKeyLine(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Parse("p.yaml", []byte("zookeeper-servers:\n  - host: zk\n\n    port: 1\n"))
	require.NoError(t, err)
	s := c.ZooKeeperServers[0].Pos
	assert.Equal(t, 2, s.Line)
	assert.Equal(t, 4, s.KeyLine(KeyPort))
	assert.Equal(t, 2, s.KeyLine(KeyChroot), "absent keys point at the mapping")
	assert.True(t, s.Has(KeyPort))
	assert.False(t, s.Has(KeyChroot))
	assert.Equal(t, "zookeeper-servers[0].port", s.Child(KeyPort))
}

func TestMergeKeyPrecedence(t *testing.T) {
	n := parseNode(t, `
a: &a {x: 1, y: 1, z: 1}
b: &b {y: 2, w: 2}
c:
  <<: [*a, *b]
  z: 3
d:
  <<: [*a, 5]
`)
	var v struct {
		A map[string]int `yaml:"a"`
		B map[string]int `yaml:"b"`
		C map[string]int `yaml:"c"`
		D map[string]int `yaml:"d"`
	}
	err := DecodeStrict("m.yaml", "", n, &v)
	// Explicit keys win, then earlier merged mappings over later ones.
	assert.Equal(t, map[string]int{"x": 1, "y": 1, "z": 3, "w": 2}, v.C)
	assert.Equal(t, []string{"m.yaml:8: d: merge key values must be mappings, got integer 5"}, problemTexts(err))
}
