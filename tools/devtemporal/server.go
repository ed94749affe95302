package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/uuid"
	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/nodepool-temporal/nodepool-temporal/tools/devtemporal/internal/flags"
)

const (
	// clusterName names the single cluster in cluster metadata.
	clusterName = "active"
	// loopback is where the internal services listen.
	loopback = "127.0.0.1"
	// startTimeout bounds the time from launching the services until they
	// answer, the search attributes are in place and the UI serves.
	startTimeout = 2 * time.Minute
)

// devServer is a running server and, optionally, its UI.
type devServer struct {
	server   temporal.Server
	ui       *uiserver.Server
	grpcAddr string
	uiURL    string
}

// stop stops the UI and then the server.
func (s *devServer) stop() error {
	if s.ui != nil {
		s.ui.Stop()
	}
	if err := s.server.Stop(); err != nil {
		return fmt.Errorf("stopping server: %w", err)
	}
	return nil
}

// newLogger returns the server's logger, writing to w at the level and in the
// format of opts (a logger that drops everything for --log-level never), and
// a function that silences all but fatal messages. Shutdown calls that
// function: while the services stop, their internal pollers and persistence
// calls log "context canceled" warnings and errors that mean nothing; a real
// failure to stop is reported by stop's error.
func newLogger(opts flags.Options, w io.Writer) (log.Logger, func()) {
	if opts.LogLevel == "never" {
		return log.NewNoopLogger(), func() {}
	}
	enc := zapcore.NewJSONEncoder(log.DefaultZapEncoderConfig)
	if opts.LogFormat == "console" {
		enc = zapcore.NewConsoleEncoder(log.DefaultZapEncoderConfig)
	}
	level := zap.NewAtomicLevelAt(log.ParseZapLevel(opts.LogLevel))
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	quiet := func() {
		if level.Level() < zapcore.FatalLevel {
			level.SetLevel(zapcore.FatalLevel)
		}
	}
	return log.NewZapLogger(zap.New(core)), quiet
}

// start builds and starts the server and UI and returns once they answer.
func start(ctx context.Context, opts flags.Options, logger log.Logger) (*devServer, error) {
	p, err := pickPorts(opts)
	if err != nil {
		return nil, err
	}
	grpcAddr := net.JoinHostPort(dialIP(opts.IP), strconv.Itoa(p.frontend))

	sqlCfg, err := prepareDatabase(opts)
	if err != nil {
		return nil, err
	}
	cfg := serverConfig(opts, p, sqlCfg)

	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("creating authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("creating claim mapper: %w", err)
	}
	dynamic := make(dynamicconfig.StaticClient, len(opts.DynamicConfig))
	for k, v := range opts.DynamicConfig {
		dynamic[dynamicconfig.MakeKey(k)] = v
	}

	server, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(staticHosts(cfg)),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamic),
	)
	if err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	if err := server.Start(); err != nil {
		return nil, fmt.Errorf("starting server: %w", err)
	}
	ds := &devServer{server: server, grpcAddr: grpcAddr}

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := awaitReady(ctx, grpcAddr, opts); err != nil {
		return nil, errors.Join(err, ds.stop())
	}

	if p.ui != 0 {
		ui, url, err := startUI(ctx, opts, p.ui, grpcAddr)
		if err != nil {
			return nil, errors.Join(err, ds.stop())
		}
		ds.ui, ds.uiURL = ui, url
	}
	return ds, nil
}

// ports holds the chosen listening ports; ui is 0 without a UI.
type ports struct {
	frontend, frontendHTTP, history, matching, worker, ui int
}

// pickPorts returns the frontend and UI ports from opts, choosing free ones
// where opts leaves them open, and free loopback ports for the internal
// services. All candidate listeners stay open until every port is chosen, so
// no two choices collide.
func pickPorts(opts flags.Options) (ports, error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	free := func(ip string) (int, error) {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, fmt.Errorf("finding a free port on %s: %w", ip, err)
		}
		held = append(held, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}

	var p ports
	var err error
	p.frontend = opts.Port
	if p.frontend == 0 {
		if p.frontend, err = free(opts.IP); err != nil {
			return ports{}, err
		}
	}
	switch {
	case !opts.UIEnabled():
	case !opts.UIAuto:
		p.ui = opts.UIPort
	case opts.Port != 0:
		p.ui = opts.Port + 1000
	default:
		if p.ui, err = free(opts.IP); err != nil {
			return ports{}, err
		}
	}
	// The frontend's HTTP API serves Nexus and HTTP clients; without it the
	// server warns on every start.
	if p.frontendHTTP, err = free(opts.IP); err != nil {
		return ports{}, err
	}
	for _, dst := range []*int{&p.history, &p.matching, &p.worker} {
		if *dst, err = free(loopback); err != nil {
			return ports{}, err
		}
	}
	return p, nil
}

// prepareDatabase returns the SQLite persistence config, creating the schema
// when the file is new, and creates the namespaces that do not exist yet,
// with the custom search attributes already in place.
func prepareDatabase(opts flags.Options) (*config.SQL, error) {
	sqlCfg := &config.SQL{
		PluginName: sqliteplugin.PluginName,
		// SQLite serializes writers; a second connection only adds
		// SQLITE_BUSY failures under load.
		MaxConns:     1,
		MaxIdleConns: 1,
	}
	if opts.InMemory() {
		sqlCfg.DatabaseName = "temporal-dev-" + uuid.NewString()
		sqlCfg.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
	} else {
		path, err := filepath.Abs(opts.DB)
		if err != nil {
			return nil, fmt.Errorf("resolving database path %s: %w", opts.DB, err)
		}
		sqlCfg.DatabaseName = path
		sqlCfg.ConnectAttributes = map[string]string{
			"mode":         "rwc",
			"journal_mode": "wal",
			"synchronous":  "normal",
		}
		fresh, err := isNewDatabase(path)
		if err != nil {
			return nil, err
		}
		if fresh {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, fmt.Errorf("creating database directory: %w", err)
			}
			if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
				return nil, fmt.Errorf("creating schema in %s: %w", path, err)
			}
		}
	}

	attrs := make(map[string]enumspb.IndexedValueType, len(opts.SearchAttributes))
	for _, sa := range opts.SearchAttributes {
		attrs[sa.Name] = sa.Type
	}
	namespaces := make([]*sqliteschema.NamespaceConfig, 0, len(opts.Namespaces))
	for _, ns := range opts.Namespaces {
		nc, err := sqliteschema.NewNamespaceConfig(clusterName, ns, false, attrs)
		if err != nil {
			return nil, fmt.Errorf("configuring namespace %s: %w", ns, err)
		}
		namespaces = append(namespaces, nc)
	}
	if err := sqliteschema.CreateNamespaces(sqlCfg, namespaces...); err != nil {
		return nil, fmt.Errorf("creating namespaces: %w", err)
	}
	return sqlCfg, nil
}

// isNewDatabase reports whether path has no schema yet: it does not exist or
// is empty (a file created by an earlier run that stopped before writing).
func isNewDatabase(path string) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("checking database %s: %w", path, err)
	case fi.IsDir():
		return false, fmt.Errorf("database %s is a directory", path)
	default:
		return fi.Size() == 0, nil
	}
}

// serverConfig returns the static server configuration.
func serverConfig(opts flags.Options, p ports, sqlCfg *config.SQL) *config.Config {
	frontendAddr := net.JoinHostPort(dialIP(opts.IP), strconv.Itoa(p.frontend))
	const store = "sqlite-default"
	cfg := &config.Config{}
	cfg.Persistence = config.Persistence{
		DefaultStore:     store,
		VisibilityStore:  store,
		NumHistoryShards: int32(opts.Shards),
		DataStores:       map[string]config.DataStore{store: {SQL: sqlCfg}},
	}
	cfg.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             frontendAddr,
				// A valid ID keeps the server from warning and making one
				// up; a persistent database keeps the ID of its first run.
				ClusterID: uuid.NewString(),
			},
		},
	}
	cfg.DCRedirectionPolicy.Policy = "noop"
	internal := func(port int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: port, BindOnIP: loopback}}
	}
	cfg.Services = map[string]config.Service{
		string(primitives.FrontendService): {RPC: config.RPC{GRPCPort: p.frontend, HTTPPort: p.frontendHTTP, BindOnIP: opts.IP}},
		string(primitives.HistoryService):  internal(p.history),
		string(primitives.MatchingService): internal(p.matching),
		string(primitives.WorkerService):   internal(p.worker),
	}
	cfg.Archival.History.State = "disabled"
	cfg.Archival.Visibility.State = "disabled"
	cfg.NamespaceDefaults.Archival.History.State = "disabled"
	cfg.NamespaceDefaults.Archival.Visibility.State = "disabled"
	cfg.PublicClient.HostPort = frontendAddr
	return cfg
}

// staticHosts maps every service to its own address. A single process needs
// no gossip membership: static resolution opens no membership ports and,
// with a persistent database, never tries to reach members of an earlier
// run.
func staticHosts(cfg *config.Config) map[primitives.ServiceName]static.Hosts {
	hosts := make(map[primitives.ServiceName]static.Hosts, len(cfg.Services))
	for name, svc := range cfg.Services {
		addr := net.JoinHostPort(dialIP(svc.RPC.BindOnIP), strconv.Itoa(svc.RPC.GRPCPort))
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(addr)
	}
	return hosts
}

// dialIP returns the address to dial for a listener bound to ip: loopback
// for the unspecified address, ip otherwise.
func dialIP(ip string) string {
	if parsed := net.ParseIP(ip); parsed != nil && parsed.IsUnspecified() {
		if parsed.To4() == nil {
			return "::1"
		}
		return loopback
	}
	return ip
}

// startUI starts the web UI on port and waits until it answers HTTP 200.
func startUI(ctx context.Context, opts flags.Options, port int, grpcAddr string) (*uiserver.Server, string, error) {
	addr := net.JoinHostPort(opts.IP, strconv.Itoa(port))
	// The UI server exits the process when it cannot listen, so make sure
	// it can before handing it the port.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listening for the UI on %s: %w", addr, err)
	}
	_ = l.Close()

	ui := uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
		Host:                opts.IP,
		Port:                port,
		TemporalGRPCAddress: grpcAddr,
		EnableUI:            true,
		DefaultNamespace:    flags.DefaultNamespace,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		HideLogs:            true,
		DisableNewsFetch:    true,
	}))
	errc := make(chan error, 1)
	go func() { errc <- ui.Start() }()

	url := "http://" + net.JoinHostPort(dialIP(opts.IP), strconv.Itoa(port))
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
		if err != nil {
			ui.Stop()
			return nil, "", fmt.Errorf("building UI probe: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return ui, url, nil
			}
		}
		select {
		case err := <-errc:
			if err == nil {
				err = errors.New("stopped before answering")
			}
			return nil, "", fmt.Errorf("serving UI on %s: %w", addr, err)
		case <-ctx.Done():
			ui.Stop()
			return nil, "", fmt.Errorf("waiting for UI on %s: %w", url, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}
