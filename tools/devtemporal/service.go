package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql" // the postgres12 persistence plugin
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/temporal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nodepool-temporal/nodepool-temporal/tools/devtemporal/internal/flags"
	"github.com/nodepool-temporal/nodepool-temporal/tools/devtemporal/internal/service"
)

// serviceStartTimeout bounds the time from starting a cluster service until
// it reports SERVING: long enough for the ring to form while its peers
// start too (ringpop's join takes up to the 30 s MaxJoinDuration).
const serviceStartTimeout = 3 * time.Minute

// namespaceRetention is the retention of the namespaces a frontend creates.
const namespaceRetention = 24 * time.Hour

// healthNames are the gRPC health service names each service reports
// SERVING under once it can take requests (history: once it owns shards).
var healthNames = map[string]string{
	string(primitives.FrontendService): workflowService,
	string(primitives.HistoryService):  "temporal.api.workflowservice.v1.HistoryService",
	string(primitives.MatchingService): "temporal.api.workflowservice.v1.MatchingService",
	string(primitives.WorkerService):   "temporal.api.workflowservice.v1.WorkerService",
}

// runService is "temporal-dev service": one or more services of a
// multi-process cluster on PostgreSQL. It announces readiness on stdout and
// serves until SIGINT or SIGTERM.
func runService(args []string, stdout, stderr io.Writer) int {
	opts, err := service.Parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "temporal-dev service: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger, quiet := newLogger(flags.Options{LogLevel: opts.LogLevel, LogFormat: opts.LogFormat}, stderr)
	go func() {
		<-ctx.Done()
		quiet()
	}()
	srv, err := startService(ctx, opts, logger)
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		fmt.Fprintf(stderr, "temporal-dev service: %v\n", err)
		return 1
	}
	var grpcAddrs []string
	for _, name := range opts.Services {
		grpcAddrs = append(grpcAddrs, name+"="+opts.HealthAddress(name))
	}
	ui := "none"
	if srv.uiURL != "" {
		ui = srv.uiURL
	}
	fmt.Fprintf(stdout, "temporal-dev service ready %s ui=%s\n", strings.Join(grpcAddrs, " "), ui)

	<-ctx.Done()
	if err := srv.stop(); err != nil {
		fmt.Fprintf(stderr, "temporal-dev service: %v\n", err)
		return 1
	}
	return 0
}

// startService starts the services of opts and returns once each reports
// SERVING and, with the frontend, the namespaces and search attributes are
// in place and the UI answers.
func startService(ctx context.Context, opts service.Options, logger log.Logger) (*devServer, error) {
	cfg := opts.Config()
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
		temporal.ForServices(opts.Services),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamic),
	)
	if err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	if err := server.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", strings.Join(opts.Services, ","), err)
	}
	ds := &devServer{server: server}

	ctx, cancel := context.WithTimeout(ctx, serviceStartTimeout)
	defer cancel()
	for _, name := range opts.Services {
		if err := awaitServing(ctx, opts.HealthAddress(name), healthNames[name]); err != nil {
			return nil, errors.Join(fmt.Errorf("waiting for %s: %w", name, err), ds.stop())
		}
	}
	if !opts.Runs(string(primitives.FrontendService)) {
		return ds, nil
	}
	frontend := opts.HealthAddress(string(primitives.FrontendService))
	ds.grpcAddr = frontend
	if err := registerNamespaces(ctx, frontend, opts.Namespaces); err != nil {
		return nil, errors.Join(err, ds.stop())
	}
	devOpts := flags.Options{Namespaces: opts.Namespaces, SearchAttributes: opts.SearchAttributes}
	if err := awaitReady(ctx, frontend, devOpts); err != nil {
		return nil, errors.Join(err, ds.stop())
	}
	if opts.UIPort != 0 {
		uiOpts := flags.Options{IP: opts.IP}
		ui, url, err := startUI(ctx, uiOpts, opts.UIPort, frontend)
		if err != nil {
			return nil, errors.Join(err, ds.stop())
		}
		if host, port, err := net.SplitHostPort(strings.TrimPrefix(url, "http://")); err == nil && host != opts.BroadcastAddress && net.ParseIP(opts.IP).IsUnspecified() {
			url = "http://" + net.JoinHostPort(opts.BroadcastAddress, port)
		}
		ds.ui, ds.uiURL = ui, url
	}
	return ds, nil
}

// dial connects to a service at addr, retrying the connection quickly: the first
// dials race the service's listener, and gRPC's default reconnect backoff (1 s,
// growing to 2 minutes) would delay readiness by as much.
func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: pollInterval, Multiplier: 1.2, Jitter: 0.1, MaxDelay: 250 * time.Millisecond},
			MinConnectTimeout: 2 * time.Second,
		}),
	)
}

// awaitServing polls the gRPC health service name at addr until it reports
// SERVING.
func awaitServing(ctx context.Context, addr, name string) error {
	conn, err := dial(addr)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	health := healthpb.NewHealthClient(conn)
	return poll(ctx, func(ctx context.Context) error {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("%s at %s: status %s", name, addr, resp.GetStatus())
		}
		return nil
	})
}

// registerNamespaces registers each namespace that does not exist yet, with
// namespaceRetention, through the frontend at addr. Several frontends may
// race to register the same namespace; the loser sees it exists.
func registerNamespaces(ctx context.Context, addr string, namespaces []string) error {
	conn, err := dial(addr)
	if err != nil {
		return fmt.Errorf("connecting to frontend %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	client := workflowservice.NewWorkflowServiceClient(conn)
	for _, ns := range namespaces {
		err := poll(ctx, func(ctx context.Context) error {
			_, err := client.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
			var notFound *serviceerror.NamespaceNotFound
			if !errors.As(serviceerror.FromStatus(status.Convert(err)), &notFound) {
				return err
			}
			_, err = client.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
				Namespace:                        ns,
				WorkflowExecutionRetentionPeriod: durationpb.New(namespaceRetention),
				HistoryArchivalState:             enumspb.ARCHIVAL_STATE_DISABLED,
				VisibilityArchivalState:          enumspb.ARCHIVAL_STATE_DISABLED,
			})
			var exists *serviceerror.NamespaceAlreadyExists
			if errors.As(serviceerror.FromStatus(status.Convert(err)), &exists) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("registering namespace %s: %w", ns, err)
		}
	}
	return nil
}
