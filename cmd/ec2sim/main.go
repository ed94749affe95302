// Command ec2sim serves an EC2-compatible Query API endpoint (see internal/ec2sim) for
// tests and demos of the AWS driver without AWS.
//
// Usage:
//
//	ec2sim --listen 127.0.0.1:PORT [--seed N] [--boot-time 2s] [--terminate-time 1s]
//	       [--error-rate throttle=0.05,capacity=0.01,quota=0,internal=0]
//	       [--vcpu-limit L-1216C47A=64 ...] [--listing-lag 0s] [--region us-east-1]
//	       [--log-level info]
//
// It prints "ec2sim listening on ADDR" once it accepts connections, and serves until
// SIGINT or SIGTERM. Point the driver's `endpoint` at http://ADDR; any credentials are
// accepted.
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

	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/httpserve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ec2sim:", err)
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
	fs := flag.NewFlagSet("ec2sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen     = fs.String("listen", "127.0.0.1:0", "address to listen on")
		seed       = fs.Uint64("seed", 1, "seed of the injected-error random source")
		bootTime   = fs.Duration("boot-time", 2*time.Second, "time an instance stays pending")
		termTime   = fs.Duration("terminate-time", time.Second, "time an instance stays shutting-down")
		listingLag = fs.Duration("listing-lag", 0, "time before a new instance appears in filtered listings")
		region     = fs.String("region", ec2sim.DefaultRegion, "region name")
		logLevel   = fs.String("log-level", "info", "log level: debug, info, warn, error")
		errorRates = kvFlag{}
		vcpuLimits = kvFlag{}
	)
	fs.Var(errorRates, "error-rate", "injected error rates, e.g. throttle=0.05,capacity=0.01,quota=0,internal=0")
	fs.Var(vcpuLimits, "vcpu-limit", "vCPU limit per quota code, e.g. L-1216C47A=64 (repeatable)")
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
	limits := map[string]int{}
	for code, v := range vcpuLimits {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("parsing --vcpu-limit %s: %q is not a non-negative integer", code, v)
		}
		limits[code] = n
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	srv := ec2sim.New(ec2sim.Options{
		Region: *region, Seed: *seed, BootTime: *bootTime, TerminateTime: *termTime, ListingLag: *listingLag,
		Errors: rates, VCPULimits: limits, Logger: logger,
	})

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	fmt.Fprintf(stdout, "ec2sim listening on %s\n", ln.Addr())
	logger.Info("serving", "addr", ln.Addr().String(), "boot_time", *bootTime, "seed", *seed)
	return httpserve.Serve(ctx, ln, srv, 5*time.Second)
}

func parseRates(kv kvFlag) (ec2sim.ErrorRates, error) {
	var r ec2sim.ErrorRates
	for k, v := range kv {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return r, fmt.Errorf("parsing --error-rate %s: %q is not a fraction between 0 and 1", k, v)
		}
		switch k {
		case "throttle":
			r.Throttle = f
		case "capacity":
			r.Capacity = f
		case "quota":
			r.Quota = f
		case "internal":
			r.Internal = f
		default:
			return r, fmt.Errorf("parsing --error-rate: unknown kind %q (want throttle, capacity, quota or internal)", k)
		}
	}
	return r, nil
}
