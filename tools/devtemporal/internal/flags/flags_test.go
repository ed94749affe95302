package flags

import (
	"errors"
	"flag"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, o Options)
	}{
		{
			name: "defaults",
			args: nil,
			check: func(t *testing.T, o Options) {
				if o.IP != "127.0.0.1" || o.Port != 7233 {
					t.Errorf("address = %s:%d, want 127.0.0.1:7233", o.IP, o.Port)
				}
				if !o.UIEnabled() || !o.UIAuto {
					t.Errorf("UI: enabled=%v auto=%v, want derived from --port", o.UIEnabled(), o.UIAuto)
				}
				if !o.InMemory() || o.DB != MemoryDB {
					t.Errorf("DB = %q, want %q", o.DB, MemoryDB)
				}
				if !slices.Equal(o.Namespaces, []string{"default"}) {
					t.Errorf("Namespaces = %v, want [default]", o.Namespaces)
				}
				if o.Shards != 1 || o.LogLevel != "warn" || o.LogFormat != "console" {
					t.Errorf("shards/level/format = %d/%s/%s, want 1/warn/console", o.Shards, o.LogLevel, o.LogFormat)
				}
				if !slices.Equal(o.SearchAttributes, ProjectSearchAttributes) {
					t.Errorf("SearchAttributes = %v, want the project's", o.SearchAttributes)
				}
				if !maps.Equal(o.DynamicConfig, DefaultDynamicConfig) || o.DynamicConfig["frontend.enableServerVersionCheck"] != false {
					t.Errorf("DynamicConfig = %v, want the defaults", o.DynamicConfig)
				}
			},
		},
		{
			name: "sdk start-dev shape",
			args: []string{
				"server", "start-dev",
				"--ip", "127.0.0.1", "--port", "40123",
				"--namespace", "default",
				"--dynamic-config-value", "frontend.enableServerVersionCheck=false",
				"--log-level", "error", "--log-format", "pretty",
				"--headless", "--db-filename", "/tmp/x.db",
				"--search-attribute", "CustomerID=Keyword",
			},
			check: func(t *testing.T, o Options) {
				if o.Port != 40123 || o.UIEnabled() {
					t.Errorf("port=%d ui=%v, want 40123 and no UI", o.Port, o.UIEnabled())
				}
				if o.DB != "/tmp/x.db" || o.InMemory() {
					t.Errorf("DB = %q, want /tmp/x.db on disk", o.DB)
				}
				if !slices.Equal(o.Namespaces, []string{"default"}) {
					t.Errorf("Namespaces = %v, want [default] once", o.Namespaces)
				}
				if o.LogLevel != "error" || o.LogFormat != "console" {
					t.Errorf("level/format = %s/%s, want error/console", o.LogLevel, o.LogFormat)
				}
				if o.DynamicConfig["frontend.enableServerVersionCheck"] != false {
					t.Errorf("dynamic config = %v, want enableServerVersionCheck=false", o.DynamicConfig)
				}
				last := o.SearchAttributes[len(o.SearchAttributes)-1]
				if last != (SearchAttribute{Name: "CustomerID", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD}) {
					t.Errorf("last search attribute = %v, want CustomerID Keyword", last)
				}
			},
		},
		{
			name: "explicit ui port and repeated namespaces",
			args: []string{"-port=0", "-ui-port=9999", "-n", "nodepool", "--namespace", "other", "--namespace", "nodepool"},
			check: func(t *testing.T, o Options) {
				if o.Port != 0 || o.UIPort != 9999 || o.UIAuto || !o.UIEnabled() {
					t.Errorf("port=%d ui=%d auto=%v, want 0, 9999, explicit", o.Port, o.UIPort, o.UIAuto)
				}
				if !slices.Equal(o.Namespaces, []string{"default", "nodepool", "other"}) {
					t.Errorf("Namespaces = %v", o.Namespaces)
				}
			},
		},
		{
			name: "ui port zero disables the UI",
			args: []string{"--ui-port", "0", "--db", ""},
			check: func(t *testing.T, o Options) {
				if o.UIEnabled() {
					t.Error("UI enabled, want disabled")
				}
				if !o.InMemory() {
					t.Errorf("DB %q not in memory", o.DB)
				}
			},
		},
		{
			name: "dynamic config values are typed",
			args: []string{
				"--dynamic-config-value", "limit.maxIDLength=255",
				"--dynamic-config-value", "x.ratio=0.5",
				"--dynamic-config-value", `x.name="quoted"`,
				"--dynamic-config-value", "x.bare=10s",
				"--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=false",
			},
			check: func(t *testing.T, o Options) {
				want := map[string]any{
					"limit.maxIDLength": 255,
					"x.ratio":           0.5,
					"x.name":            "quoted",
					"x.bare":            "10s",
					"system.forceSearchAttributesCacheRefreshOnRead": false,
				}
				for k, v := range want {
					if o.DynamicConfig[k] != v {
						t.Errorf("%s = %#v, want %#v", k, o.DynamicConfig[k], v)
					}
				}
			},
		},
		{
			name: "search attribute repeated with the same type is kept once",
			args: []string{"--search-attribute", "NodepoolState=keyword", "--search-attribute", "Count=INDEXED_VALUE_TYPE_INT"},
			check: func(t *testing.T, o Options) {
				if got, want := len(o.SearchAttributes), len(ProjectSearchAttributes)+1; got != want {
					t.Fatalf("%d search attributes, want %d", got, want)
				}
				if last := o.SearchAttributes[len(o.SearchAttributes)-1]; last.Type != enumspb.INDEXED_VALUE_TYPE_INT {
					t.Errorf("Count type = %s, want Int", last.Type)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Parse(tc.args, io.Discard)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.args, err)
			}
			tc.check(t, o)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad ip", []string{"--ip", "localhost"}, "not an IP address"},
		{"port range", []string{"--port", "70000"}, "out of range"},
		{"derived ui port out of range", []string{"--port", "65000"}, "default UI port"},
		{"ui port range", []string{"--ui-port", "-5"}, "out of range"},
		{"zero shards", []string{"--shards", "0"}, "at least 1"},
		{"log level", []string{"--log-level", "loud"}, "--log-level"},
		{"log format", []string{"--log-format", "xml"}, "--log-format"},
		{"search attribute shape", []string{"--search-attribute", "NoType"}, "NAME=TYPE"},
		{"search attribute type", []string{"--search-attribute", "X=Blob"}, "unknown type"},
		{"search attribute conflict", []string{"--search-attribute", "NodepoolLabel=Keyword"}, "already registered"},
		{"dynamic config shape", []string{"--dynamic-config-value", "=1"}, "KEY=VALUE"},
		{"empty namespace", []string{"--namespace", ""}, "empty name"},
		{"stray argument", []string{"start"}, "unexpected argument"},
		{"unknown flag", []string{"--nope"}, "not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) error = %v, want one containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	var out strings.Builder
	_, err := Parse([]string{"--help"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("error = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "-search-attribute") {
		t.Errorf("usage does not list --search-attribute:\n%s", out.String())
	}
}

func TestParseSearchAttributeTypes(t *testing.T) {
	tests := []struct {
		in   string
		want enumspb.IndexedValueType
	}{
		{"A=Keyword", enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		{"A=keywordlist", enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST},
		{"A=Text", enumspb.INDEXED_VALUE_TYPE_TEXT},
		{"A=int", enumspb.INDEXED_VALUE_TYPE_INT},
		{"A=Double", enumspb.INDEXED_VALUE_TYPE_DOUBLE},
		{"A=BOOL", enumspb.INDEXED_VALUE_TYPE_BOOL},
		{"A=Datetime", enumspb.INDEXED_VALUE_TYPE_DATETIME},
		{"A=INDEXED_VALUE_TYPE_KEYWORD_LIST", enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			sa, err := ParseSearchAttribute(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if sa.Name != "A" || sa.Type != tc.want {
				t.Errorf("got %v, want A %s", sa, tc.want)
			}
		})
	}
	if _, err := ParseSearchAttribute("A=Unspecified"); err == nil {
		t.Error("A=Unspecified accepted, want an error")
	}
}
