package static

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// strictDecoder decodes YAML text strictly, as the config package decodes a provider
// section without Nodepool's common keys.
func strictDecoder(text string) func(any) error {
	return func(v any) error {
		dec := yaml.NewDecoder(bytes.NewBufferString(text))
		dec.KnownFields(true)
		if err := dec.Decode(v); !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
}

// upstream is a section in upstream's form, every key used.
const upstream = `
pools:
  - name: main
    nodes:
      - name: trusty.example.com
        labels: trusty-static
        timeout: 13
        connection-port: 22022
        host-key: fake-key
        username: zuul
        max-parallel-jobs: 1
      - name: 192.0.2.10
        labels: [a, b]
        host-key:
          - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGXqY02bdYqg1BcIf2x08zs60rS6XhlBSQ4qE47o5gb
          - ssh-rsa AAAAB3Nza
        host-key-checking: false
        connection-type: network_cli
        python-path: /usr/bin/python3
        shell-type: sh
        max-parallel-jobs: 3
  - name: second
    nodes:
      - name: win.example.com
        labels: "win  win-big"
        connection-type: winrm
        connection-port: 5986
`

func TestDecode(t *testing.T) {
	var cfg Config
	require.NoError(t, strictDecoder(upstream)(&cfg))
	require.NoError(t, cfg.Validate())
	require.Len(t, cfg.Pools, 2)

	first, second := cfg.Pools[0].Nodes[0], cfg.Pools[0].Nodes[1]
	win := cfg.Pools[1].Nodes[0]
	tests := []struct {
		name      string
		got, want any
	}{
		{"string label", first.Labels, Labels{"trusty-static"}},
		{"list of labels", second.Labels, Labels{"a", "b"}},
		{"labels separated by spaces", win.Labels, Labels{"win", "win-big"}},
		{"one host key", first.HostKey, StringList{"fake-key"}},
		{"host keys", len(second.HostKey), 2},
		{"timeout", first.EffectiveTimeout(), 13},
		{"default timeout", second.EffectiveTimeout(), DefaultTimeout},
		{"port", first.EffectiveConnectionPort(), 22022},
		{"default port", second.EffectiveConnectionPort(), 22},
		{"default connection type", first.EffectiveConnectionType(), "ssh"},
		{"connection type", second.EffectiveConnectionType(), "network_cli"},
		{"default username", second.EffectiveUsername(), "zuul"},
		{"default python-path", first.EffectivePythonPath(), "auto"},
		{"python-path", second.EffectivePythonPath(), "/usr/bin/python3"},
		{"default host-key-checking", first.EffectiveHostKeyChecking(), true},
		{"host-key-checking", second.EffectiveHostKeyChecking(), false},
		{"default max-parallel-jobs", win.EffectiveMaxParallelJobs(), 1},
		{"pool labels", cfg.PoolLabels(), map[string][]string{"main": {"trusty-static", "a", "b"}, "second": {"win", "win-big"}}},
		{"pool slots", cfg.PoolSlots(), map[string]int{"main": 4, "second": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.got)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown node key", "pools: [{name: p, nodes: [{name: h, labels: l, ssh-port: 22}]}]", "field ssh-port not found"},
		{"pool-level labels", "pools: [{name: p, labels: [l], nodes: []}]", "field labels not found"},
		{"label not a string", "pools: [{name: p, nodes: [{name: h, labels: 7}]}]", "must be a string or a list of strings"},
		{"label list of mappings", "pools: [{name: p, nodes: [{name: h, labels: [{a: b}]}]}]", "must be a string or a list of strings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			err := strictDecoder(tc.yaml)(&cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // problems, as "path: message" substrings; none means valid
	}{
		{"empty provider", "pools: []", nil},
		{"pool without nodes", "pools: [{name: p}]", nil},
		{"missing names and labels", "pools: [{nodes: [{}]}]", []string{
			"pools[0].name: required", "pools[0].nodes[0].name: required", "pools[0].nodes[0].labels: at least one label",
		}},
		{"duplicate pool", "pools: [{name: p}, {name: p}]", []string{`pools[1].name: duplicate pool "p" (also pools[0])`}},
		{"duplicate node across pools", "pools: [{name: p, nodes: [{name: h, labels: l}]}, {name: q, nodes: [{name: h, labels: l}]}]",
			[]string{`pools[1].nodes[0].name: duplicate node "h" (also pools[0].nodes[0])`}},
		{"name with a slot separator", "pools: [{name: p, nodes: [{name: 'h#1', labels: l}]}]",
			[]string{`pools[0].nodes[0].name: "h#1" is not a host name`}},
		{"duplicate label", "pools: [{name: p, nodes: [{name: h, labels: 'l l'}]}]", []string{`pools[0].nodes[0].labels: duplicate label "l"`}},
		{"bad numbers", "pools: [{name: p, nodes: [{name: h, labels: l, timeout: 0, connection-port: 70000, max-parallel-jobs: 0}]}]", []string{
			"pools[0].nodes[0].timeout: must be at least 1",
			"pools[0].nodes[0].connection-port: must be a TCP port",
			"pools[0].nodes[0].max-parallel-jobs: must be between 1 and 10000",
		}},
		{"empty host key", "pools: [{name: p, nodes: [{name: h, labels: l, host-key: ['']}]}]", []string{"pools[0].nodes[0].host-key[0]: must not be empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			require.NoError(t, strictDecoder(tc.yaml)(&cfg))
			err := cfg.Validate()
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			var p Problem
			assert.ErrorAs(t, err, &p, "problems are Problems")
			_, err = New("static", cfg)
			assert.Error(t, err, "New validates")
		})
	}
}

func TestLocate(t *testing.T) {
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(upstream), &root))
	tests := []struct {
		path string
		line int
	}{
		{"pools", 2},
		{"pools[0]", 3},
		{"pools[0].name", 3},
		{"pools[0].nodes[1].labels", 13},
		{"pools[0].nodes[1].host-key[1]", 16},
		{"pools[0].nodes[1].no-such-key", 12},
		{"pools[1].nodes[0].connection-port", 27},
		{"pools[7].name", 2},
		{"", 2},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			assert.Equal(t, tc.line, Locate(&root, tc.path))
		})
	}
}
