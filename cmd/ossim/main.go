// Command ossim serves an OpenStack-compatible endpoint (Keystone, Nova, Glance,
// Neutron and Cinder; see internal/ossim) for tests and demos of the OpenStack driver
// without an OpenStack cloud.
//
// Usage:
//
//	ossim --listen 127.0.0.1:PORT [--seed N] [--boot-time 2s] [--delete-time 1s]
//	      [--error-rate rate_limit=0.05,internal=0,quota=0,no_valid_host=0.01]
//	      [--max-instances 100] [--max-cores 200] [--max-ram 512000]
//	      [--token-ttl 1h] [--ssh-addr 127.0.0.1:2222] [--region RegionOne]
//	      [--log-level info]
//
// It prints "ossim listening on ADDR" once it accepts connections, and serves until
// SIGINT or SIGTERM. Point the driver's (or clouds.yaml's) auth_url at
// http://ADDR/identity/v3; any credentials are accepted.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/httpserve"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ossim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ossim:", err)
		os.Exit(1)
	}
}

// kvFlag collects repeated KEY=VALUE flags.
type kvFlag map[string]string

func (f kvFlag) String() string { return fmt.Sprint(map[string]string(f)) }

func (f kvFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return fmt.Errorf("expected KEY=VALUE, got %q", part)
		}
		f[k] = val
	}
	return nil
}

// run parses args, serves until ctx ends, and shuts the server down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ossim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen       = fs.String("listen", "127.0.0.1:0", "address to listen on")
		seed         = fs.Uint64("seed", 1, "seed of the injected-error random source")
		bootTime     = fs.Duration("boot-time", 2*time.Second, "time a server stays in BUILD")
		deleteTime   = fs.Duration("delete-time", time.Second, "time a deleted server stays listed")
		tokenTTL     = fs.Duration("token-ttl", ossim.DefaultTokenTTL, "lifetime of issued tokens")
		maxInstances = fs.Int("max-instances", ossim.DefaultLimits.MaxInstances, "instance limit (-1: unlimited)")
		maxCores     = fs.Int("max-cores", ossim.DefaultLimits.MaxCores, "core limit (-1: unlimited)")
		maxRAM       = fs.Int("max-ram", ossim.DefaultLimits.MaxRAM, "RAM limit in MiB (-1: unlimited)")
		sshAddr      = fs.String("ssh-addr", "", "host:port whose IP every server address points at")
		region       = fs.String("region", ossim.DefaultRegion, "region name")
		logLevel     = fs.String("log-level", "info", "log level: debug, info, warn, error")
		errorRates   = kvFlag{}
	)
	fs.Var(errorRates, "error-rate", "injected error rates, e.g. rate_limit=0.05,internal=0,quota=0,no_valid_host=0.01")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("parsing --log-level: %w", err)
	}
	rates, err := parseRates(errorRates)
	if err != nil {
		return err
	}
	limits := ossim.Limits{MaxInstances: *maxInstances, MaxCores: *maxCores, MaxRAM: *maxRAM}
	for name, v := range map[string]int{"--max-instances": limits.MaxInstances, "--max-cores": limits.MaxCores, "--max-ram": limits.MaxRAM} {
		if v < -1 {
			return fmt.Errorf("%s: %d is not a limit (-1 means unlimited)", name, v)
		}
	}
	if *sshAddr != "" {
		if _, _, err := net.SplitHostPort(*sshAddr); err != nil {
			return fmt.Errorf("parsing --ssh-addr: %w", err)
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	srv := ossim.New(ossim.Options{
		Region: *region, Seed: *seed, BootTime: *bootTime, DeleteTime: *deleteTime, TokenTTL: *tokenTTL,
		Limits: limits, Errors: rates, SSHAddr: *sshAddr, Logger: logger,
	})

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	fmt.Fprintf(stdout, "ossim listening on %s\n", ln.Addr())
	logger.Info("serving", "addr", ln.Addr().String(), "auth_url", "http://"+ln.Addr().String()+"/identity/v3",
		"boot_time", *bootTime, "seed", *seed)
	return httpserve.Serve(ctx, ln, srv, 5*time.Second)
}

func parseRates(kv kvFlag) (ossim.ErrorRates, error) {
	var r ossim.ErrorRates
	for k, v := range kv {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return r, fmt.Errorf("parsing --error-rate %s: %q is not a fraction between 0 and 1", k, v)
		}
		switch k {
		case "rate_limit":
			r.RateLimit = f
		case "internal":
			r.Internal = f
		case "quota":
			r.Quota = f
		case "no_valid_host":
			r.NoValidHost = f
		default:
			return r, fmt.Errorf("parsing --error-rate: unknown kind %q (want rate_limit, internal, quota or no_valid_host)", k)
		}
	}
	return r, nil
}
