// Package service parses the command line of "temporal-dev service", which
// runs one or more Temporal services of a multi-process cluster on
// PostgreSQL, and builds the server configuration every process of that
// cluster shares.
//
//	temporal-dev service --service history --pg-port 5432 --history-port 7234 ...
//
// Every process of a cluster is given the same ports, database and shard
// count; --service selects which of the four services this process runs.
package service

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/common/primitives"

	"github.com/nodepool-temporal/nodepool-temporal/tools/devtemporal/internal/flags"
)

// ClusterName names the single cluster in cluster metadata.
const ClusterName = "active"

// MaxMembershipPort is the highest membership port: the SQL schemas keep it in
// a smallint column (cluster_membership.rpc_port).
const MaxMembershipPort = 32767

// Services are the service names --service accepts, in start order.
var Services = []string{
	string(primitives.FrontendService),
	string(primitives.HistoryService),
	string(primitives.MatchingService),
	string(primitives.WorkerService),
}

// Ports are a service's listening ports: gRPC and ringpop membership.
type Ports struct {
	GRPC       int
	Membership int
}

// Options is the parsed command line.
type Options struct {
	// Services are the services this process runs, in Services order.
	Services []string
	// IP is the address every listener binds to.
	IP string
	// BroadcastAddress is the address other members dial for membership
	// and gRPC; IP unless IP is unspecified (0.0.0.0), then required.
	BroadcastAddress string
	// Ports holds every service's ports, by service name.
	Ports map[string]Ports
	// FrontendHTTPPort is the frontend's HTTP API port (0 = none).
	FrontendHTTPPort int
	// FrontendAddress is the address of the cluster's frontend as clients
	// (the worker service, the UI) dial it.
	FrontendAddress string
	// PG* locate the PostgreSQL server and its credentials.
	PGHost, PGUser, PGPassword string
	PGPort                     int
	// Database and VisibilityDatabase are the database names of the
	// default and the visibility store.
	Database, VisibilityDatabase string
	// MaxConns bounds each store's connection pool.
	MaxConns int
	// Shards is the number of history shards; every process of the
	// cluster and every start must use the same value.
	Shards int
	// ClusterID is the cluster ID written to cluster metadata on the
	// first start; every process of the cluster passes the same one.
	ClusterID string
	// UIPort serves the web UI from this process when non-zero.
	UIPort int
	// Namespaces are created by a process running the frontend, with the
	// project's search attributes, before it reports ready.
	Namespaces []string
	// SearchAttributes are registered on every namespace.
	SearchAttributes []flags.SearchAttribute
	// LogLevel and LogFormat as for the dev server.
	LogLevel, LogFormat string
	// DynamicConfig holds dynamic config values by key.
	DynamicConfig map[string]any
}

// Runs reports whether this process runs service name.
func (o Options) Runs(name string) bool { return slices.Contains(o.Services, name) }

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// defaultPorts are Temporal's customary ports.
var defaultPorts = map[string]Ports{
	string(primitives.FrontendService): {GRPC: 7233, Membership: 6933},
	string(primitives.HistoryService):  {GRPC: 7234, Membership: 6934},
	string(primitives.MatchingService): {GRPC: 7235, Membership: 6935},
	string(primitives.WorkerService):   {GRPC: 7239, Membership: 6939},
}

// Parse parses args (without "temporal-dev service"). It returns
// flag.ErrHelp after printing usage to out when -h or --help is given.
func Parse(args []string, out io.Writer) (Options, error) {
	fs := flag.NewFlagSet("temporal-dev service", flag.ContinueOnError)
	fs.SetOutput(out)
	var (
		o          Options
		services   string
		namespaces listFlag
		attrs      listFlag
		dynamic    listFlag
		frontend   string
	)
	ports := make(map[string]*Ports, len(Services))
	fs.StringVar(&services, "service", "", "services to run: comma-separated frontend, history, matching, worker, or all (required)")
	fs.StringVar(&o.IP, "ip", "127.0.0.1", "address every listener binds to")
	fs.StringVar(&o.BroadcastAddress, "broadcast-address", "", "address other members reach this process on (default --ip)")
	for _, name := range Services {
		p := defaultPorts[name]
		ports[name] = &p
		fs.IntVar(&ports[name].GRPC, name+"-port", p.GRPC, name+" gRPC port")
		fs.IntVar(&ports[name].Membership, name+"-membership-port", p.Membership, name+" ringpop membership port")
	}
	fs.IntVar(&o.FrontendHTTPPort, "frontend-http-port", 7243, "frontend HTTP API port (0 = none)")
	fs.StringVar(&frontend, "frontend-address", "", "frontend address clients dial (default the broadcast address and --frontend-port)")
	fs.StringVar(&o.PGHost, "pg-host", "127.0.0.1", "PostgreSQL host")
	fs.IntVar(&o.PGPort, "pg-port", 5432, "PostgreSQL port")
	fs.StringVar(&o.PGUser, "pg-user", "temporal", "PostgreSQL user")
	fs.StringVar(&o.PGPassword, "pg-password", "", "PostgreSQL password (or $TEMPORAL_PG_PASSWORD)")
	fs.StringVar(&o.Database, "db", "temporal", "database of the default store")
	fs.StringVar(&o.VisibilityDatabase, "visibility-db", "temporal_visibility", "database of the visibility store")
	fs.IntVar(&o.MaxConns, "max-conns", 10, "connection pool size of each store")
	fs.IntVar(&o.Shards, "shards", 4, "number of history shards (the same in every process, fixed on the first start)")
	fs.StringVar(&o.ClusterID, "cluster-id", "", "cluster ID written on the first start (a UUID; the same in every process)")
	fs.IntVar(&o.UIPort, "ui-port", 0, "serve the web UI on this port (0 = no UI)")
	fs.Var(&namespaces, "namespace", "namespace to create besides \"default\" when running the frontend (repeatable)")
	fs.StringVar(&o.LogLevel, "log-level", "warn", "server log level: debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "json", "server log format: json or console")
	fs.Var(&attrs, "search-attribute", "extra custom search attribute NAME=TYPE (repeatable)")
	fs.Var(&dynamic, "dynamic-config-value", "dynamic config KEY=VALUE, VALUE as JSON or a bare string (repeatable)")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	svcs, err := parseServices(services)
	if err != nil {
		return Options{}, err
	}
	o.Services = svcs

	ip := net.ParseIP(o.IP)
	if ip == nil {
		return Options{}, fmt.Errorf("--ip %q: not an IP address", o.IP)
	}
	switch {
	case o.BroadcastAddress == "" && ip.IsUnspecified():
		return Options{}, fmt.Errorf("--ip %s: give --broadcast-address, the address other members reach this one on", o.IP)
	case o.BroadcastAddress == "":
		o.BroadcastAddress = o.IP
	case net.ParseIP(o.BroadcastAddress) == nil:
		return Options{}, fmt.Errorf("--broadcast-address %q: not an IP address", o.BroadcastAddress)
	}

	o.Ports = make(map[string]Ports, len(ports))
	seen := make(map[int]string)
	claim := func(port int, what string) error {
		if port < 1 || port > 65535 {
			return fmt.Errorf("--%s %d: out of range", what, port)
		}
		if other, dup := seen[port]; dup {
			return fmt.Errorf("--%s %d: also given as --%s", what, port, other)
		}
		seen[port] = what
		return nil
	}
	for _, name := range Services {
		p := *ports[name]
		if err := claim(p.GRPC, name+"-port"); err != nil {
			return Options{}, err
		}
		if err := claim(p.Membership, name+"-membership-port"); err != nil {
			return Options{}, err
		}
		if p.Membership > MaxMembershipPort {
			return Options{}, fmt.Errorf("--%s-membership-port %d: above %d, which the SQL schema's cluster_membership table can hold",
				name, p.Membership, MaxMembershipPort)
		}
		o.Ports[name] = p
	}
	if o.FrontendHTTPPort != 0 {
		if err := claim(o.FrontendHTTPPort, "frontend-http-port"); err != nil {
			return Options{}, err
		}
	}
	if o.UIPort != 0 {
		if !o.Runs(string(primitives.FrontendService)) {
			return Options{}, errors.New("--ui-port: the web UI is served by the process that runs the frontend")
		}
		if err := claim(o.UIPort, "ui-port"); err != nil {
			return Options{}, err
		}
	}

	o.FrontendAddress = frontend
	if o.FrontendAddress == "" {
		o.FrontendAddress = net.JoinHostPort(o.BroadcastAddress, fmt.Sprint(o.Ports[string(primitives.FrontendService)].GRPC))
	} else if _, _, err := net.SplitHostPort(o.FrontendAddress); err != nil {
		return Options{}, fmt.Errorf("--frontend-address %q: %w", o.FrontendAddress, err)
	}

	if o.PGPassword == "" {
		o.PGPassword = os.Getenv("TEMPORAL_PG_PASSWORD")
	}
	if o.PGPort < 1 || o.PGPort > 65535 {
		return Options{}, fmt.Errorf("--pg-port %d: out of range", o.PGPort)
	}
	if o.PGHost == "" || o.PGUser == "" || o.Database == "" || o.VisibilityDatabase == "" {
		return Options{}, errors.New("--pg-host, --pg-user, --db and --visibility-db must not be empty")
	}
	if o.Database == o.VisibilityDatabase {
		return Options{}, fmt.Errorf("--db and --visibility-db are both %q; the stores need a database each", o.Database)
	}
	if o.MaxConns < 1 {
		return Options{}, fmt.Errorf("--max-conns %d: must be at least 1", o.MaxConns)
	}
	if o.Shards < 1 {
		return Options{}, fmt.Errorf("--shards %d: must be at least 1", o.Shards)
	}

	o.Namespaces = []string{flags.DefaultNamespace}
	for _, ns := range namespaces {
		if ns == "" {
			return Options{}, errors.New("--namespace: empty name")
		}
		if !slices.Contains(o.Namespaces, ns) {
			o.Namespaces = append(o.Namespaces, ns)
		}
	}

	// The dev server's parser validates the shared flags; reuse it for
	// log settings, search attributes and dynamic config.
	devArgs := []string{"--log-level", o.LogLevel, "--log-format", o.LogFormat}
	for _, a := range attrs {
		devArgs = append(devArgs, "--search-attribute", a)
	}
	for _, d := range dynamic {
		devArgs = append(devArgs, "--dynamic-config-value", d)
	}
	dev, err := flags.Parse(devArgs, io.Discard)
	if err != nil {
		return Options{}, err
	}
	if o.LogLevel == "never" {
		return Options{}, errors.New(`--log-level "never": want debug, info, warn or error`)
	}
	o.LogFormat = dev.LogFormat
	o.SearchAttributes = dev.SearchAttributes
	o.DynamicConfig = dev.DynamicConfig
	return o, nil
}

// parseServices parses --service.
func parseServices(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, errors.New("--service: required (frontend, history, matching, worker or all)")
	}
	if v == "all" {
		return slices.Clone(Services), nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(Services, s) {
			return nil, fmt.Errorf("--service: unknown service %q (want frontend, history, matching, worker or all)", s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(Services, a) - slices.Index(Services, b) })
	return out, nil
}

// Store names in the persistence configuration.
const (
	DefaultStore    = "postgres-default"
	VisibilityStore = "postgres-visibility"
)

// SQL returns the PostgreSQL connection settings of database db.
func (o Options) SQL(db string) *config.SQL {
	return &config.SQL{
		PluginName:      postgresql.PluginName,
		DatabaseName:    db,
		ConnectAddr:     net.JoinHostPort(o.PGHost, fmt.Sprint(o.PGPort)),
		ConnectProtocol: "tcp",
		User:            o.PGUser,
		Password:        o.PGPassword,
		MaxConns:        o.MaxConns,
		MaxIdleConns:    o.MaxConns,
		MaxConnLifetime: time.Hour,
	}
}

// Config returns the server configuration of the cluster: the same for
// every process, which starts only the services it runs.
func (o Options) Config() *config.Config {
	cfg := &config.Config{}
	cfg.Global.Membership = config.Membership{
		MaxJoinDuration:  30 * time.Second,
		BroadcastAddress: o.BroadcastAddress,
	}
	cfg.Persistence = config.Persistence{
		DefaultStore:     DefaultStore,
		VisibilityStore:  VisibilityStore,
		NumHistoryShards: int32(o.Shards),
		DataStores: map[string]config.DataStore{
			DefaultStore:    {SQL: o.SQL(o.Database)},
			VisibilityStore: {SQL: o.SQL(o.VisibilityDatabase)},
		},
	}
	cfg.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        ClusterName,
		CurrentClusterName:       ClusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			ClusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             o.FrontendAddress,
				ClusterID:              o.ClusterID,
			},
		},
	}
	cfg.DCRedirectionPolicy.Policy = "noop"
	cfg.Services = make(map[string]config.Service, len(Services))
	for _, name := range Services {
		p := o.Ports[name]
		rpc := config.RPC{GRPCPort: p.GRPC, MembershipPort: p.Membership, BindOnIP: o.IP}
		if name == string(primitives.FrontendService) {
			rpc.HTTPPort = o.FrontendHTTPPort
		}
		cfg.Services[name] = config.Service{RPC: rpc}
	}
	cfg.Archival.History.State = "disabled"
	cfg.Archival.Visibility.State = "disabled"
	cfg.NamespaceDefaults.Archival.History.State = "disabled"
	cfg.NamespaceDefaults.Archival.Visibility.State = "disabled"
	cfg.PublicClient.HostPort = o.FrontendAddress
	return cfg
}

// HealthAddress returns the address a readiness probe dials for service name.
func (o Options) HealthAddress(name string) string {
	return net.JoinHostPort(o.BroadcastAddress, fmt.Sprint(o.Ports[name].GRPC))
}
