package service

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"

	"github.com/nodepool-temporal/nodepool-temporal/tools/devtemporal/internal/flags"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, o Options)
	}{
		{
			name: "defaults are Temporal's ports",
			args: []string{"--service", "history"},
			check: func(t *testing.T, o Options) {
				if !slices.Equal(o.Services, []string{"history"}) {
					t.Errorf("Services = %v, want [history]", o.Services)
				}
				want := map[string]Ports{
					"frontend": {7233, 6933}, "history": {7234, 6934}, "matching": {7235, 6935}, "worker": {7239, 6939},
				}
				for name, p := range want {
					if o.Ports[name] != p {
						t.Errorf("Ports[%s] = %+v, want %+v", name, o.Ports[name], p)
					}
				}
				if o.BroadcastAddress != "127.0.0.1" || o.FrontendAddress != "127.0.0.1:7233" {
					t.Errorf("broadcast/frontend = %s/%s, want 127.0.0.1/127.0.0.1:7233", o.BroadcastAddress, o.FrontendAddress)
				}
				if o.PGHost != "127.0.0.1" || o.PGPort != 5432 || o.PGUser != "temporal" || o.Database != "temporal" ||
					o.VisibilityDatabase != "temporal_visibility" {
					t.Errorf("PostgreSQL = %s:%d %s %s/%s", o.PGHost, o.PGPort, o.PGUser, o.Database, o.VisibilityDatabase)
				}
				if o.Shards != 4 || o.MaxConns != 10 || o.UIPort != 0 || o.LogFormat != "json" {
					t.Errorf("shards/conns/ui/format = %d/%d/%d/%s", o.Shards, o.MaxConns, o.UIPort, o.LogFormat)
				}
				if !slices.Equal(o.Namespaces, []string{"default"}) || !slices.Equal(o.SearchAttributes, flags.ProjectSearchAttributes) {
					t.Errorf("namespaces %v, search attributes %v", o.Namespaces, o.SearchAttributes)
				}
				if o.DynamicConfig["frontend.enableServerVersionCheck"] != false {
					t.Errorf("DynamicConfig = %v, want the dev server's defaults", o.DynamicConfig)
				}
			},
		},
		{
			name: "all services in start order, UI on the frontend's process",
			args: []string{"--service", "all", "--ui-port", "8233", "--namespace", "ci", "--namespace", "default"},
			check: func(t *testing.T, o Options) {
				if !slices.Equal(o.Services, Services) {
					t.Errorf("Services = %v, want %v", o.Services, Services)
				}
				if o.UIPort != 8233 || !slices.Equal(o.Namespaces, []string{"default", "ci"}) {
					t.Errorf("ui %d, namespaces %v", o.UIPort, o.Namespaces)
				}
			},
		},
		{
			name: "a list is deduplicated and ordered",
			args: []string{"--service", "worker,frontend,worker"},
			check: func(t *testing.T, o Options) {
				if !slices.Equal(o.Services, []string{"frontend", "worker"}) {
					t.Errorf("Services = %v, want [frontend worker]", o.Services)
				}
			},
		},
		{
			name: "all interfaces with a broadcast address",
			args: []string{"--service", "frontend", "--ip", "0.0.0.0", "--broadcast-address", "10.0.0.5", "--frontend-port", "7000"},
			check: func(t *testing.T, o Options) {
				if o.FrontendAddress != "10.0.0.5:7000" || o.HealthAddress("frontend") != "10.0.0.5:7000" {
					t.Errorf("frontend %s, health %s, want 10.0.0.5:7000", o.FrontendAddress, o.HealthAddress("frontend"))
				}
			},
		},
		{
			name: "password from the environment",
			args: []string{"--service", "matching"},
			check: func(t *testing.T, o Options) {
				if o.PGPassword != "secret" {
					t.Errorf("PGPassword = %q, want it from TEMPORAL_PG_PASSWORD", o.PGPassword)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TEMPORAL_PG_PASSWORD", "secret")
			o, err := Parse(tt.args, io.Discard)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.args, err)
			}
			tt.check(t, o)
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "--service: required"},
		{[]string{"--service", "gateway"}, `unknown service "gateway"`},
		{[]string{"--service", "history", "--ip", "0.0.0.0"}, "give --broadcast-address"},
		{[]string{"--service", "history", "--ip", "nope"}, "not an IP address"},
		{[]string{"--service", "history", "--broadcast-address", "host"}, "not an IP address"},
		{[]string{"--service", "history", "--history-port", "7233"}, "also given as --frontend-port"},
		{[]string{"--service", "history", "--history-membership-port", "40000"}, "cluster_membership"},
		{[]string{"--service", "history", "--ui-port", "8233"}, "the process that runs the frontend"},
		{[]string{"--service", "history", "--db", "x", "--visibility-db", "x"}, "a database each"},
		{[]string{"--service", "history", "--shards", "0"}, "--shards 0"},
		{[]string{"--service", "history", "--max-conns", "0"}, "--max-conns 0"},
		{[]string{"--service", "history", "--log-level", "never"}, `"never"`},
		{[]string{"--service", "history", "--log-level", "loud"}, "--log-level"},
		{[]string{"--service", "history", "--search-attribute", "X=Nope"}, "unknown type"},
		{[]string{"--service", "history", "--frontend-address", "nohostport"}, "--frontend-address"},
		{[]string{"--service", "history", "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := Parse(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	var out strings.Builder
	if _, err := Parse([]string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-service", "-history-membership-port", "-pg-port", "-visibility-db"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %s", want)
		}
	}
}

func TestConfig(t *testing.T) {
	o, err := Parse([]string{"--service", "frontend", "--pg-port", "5433", "--frontend-port", "7000",
		"--frontend-membership-port", "16000", "--frontend-http-port", "7001", "--shards", "8", "--cluster-id",
		"6f1c3b2e-9a7d-4e55-8a1e-3c2b1d0e9f8a"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.Config()
	if cfg.Persistence.NumHistoryShards != 8 || cfg.Persistence.DefaultStore != DefaultStore || cfg.Persistence.VisibilityStore != VisibilityStore {
		t.Errorf("persistence = %+v", cfg.Persistence)
	}
	for store, db := range map[string]string{DefaultStore: "temporal", VisibilityStore: "temporal_visibility"} {
		sql := cfg.Persistence.DataStores[store].SQL
		if sql == nil || sql.PluginName != postgresql.PluginName || sql.DatabaseName != db || sql.ConnectAddr != "127.0.0.1:5433" ||
			sql.User != "temporal" || sql.MaxConns != 10 {
			t.Errorf("store %s = %+v", store, sql)
		}
	}
	fe := cfg.Services["frontend"].RPC
	if fe.GRPCPort != 7000 || fe.MembershipPort != 16000 || fe.HTTPPort != 7001 || fe.BindOnIP != "127.0.0.1" {
		t.Errorf("frontend RPC = %+v", fe)
	}
	if h := cfg.Services["history"].RPC; h.GRPCPort != 7234 || h.MembershipPort != 6934 || h.HTTPPort != 0 {
		t.Errorf("history RPC = %+v", h)
	}
	if cfg.Global.Membership.BroadcastAddress != "127.0.0.1" || cfg.Global.Membership.MaxJoinDuration <= 0 {
		t.Errorf("membership = %+v", cfg.Global.Membership)
	}
	info := cfg.ClusterMetadata.ClusterInformation[ClusterName]
	if info.RPCAddress != "127.0.0.1:7000" || info.ClusterID != "6f1c3b2e-9a7d-4e55-8a1e-3c2b1d0e9f8a" || cfg.PublicClient.HostPort != "127.0.0.1:7000" {
		t.Errorf("cluster information %+v, public client %s", info, cfg.PublicClient.HostPort)
	}
}
