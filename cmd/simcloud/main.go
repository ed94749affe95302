package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/httpserve"
)

// DefaultListen is the address simcloud listens on without --listen.
const DefaultListen = "127.0.0.1:8124"

// shutdownTimeout bounds the wait for calls in flight when simcloud stops.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "simcloud:", err)
		os.Exit(1)
	}
}

// run serves the cloud until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simcloud", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", DefaultListen, "address to listen on (port 0 picks a free port)")
	configPath := fs.String("config", "", "YAML file with the cloud keys of a sim provider")
	seed := fs.Int64("seed", 0, "seed of the cloud's random generator; overrides the file's seed")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("parsing --log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var cfg sim.Config
	if *configPath != "" {
		c, err := loadConfig(*configPath)
		if err != nil {
			return err
		}
		cfg = c
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seed" {
			cfg.Seed = *seed
		}
	})
	cloud, err := sim.NewCloud(cfg, sim.WithLogger(logger))
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	logger.Info("simcloud started", "addr", ln.Addr().String(), "seed", cfg.Seed)
	fmt.Fprintf(stdout, "simcloud listening on %s\n", ln.Addr())
	err = httpserve.Serve(ctx, ln, sim.NewHandler(cloud, logger), shutdownTimeout)
	logger.Info("simcloud stopped")
	return err
}

// loadConfig reads a configuration file strictly and validates its cloud keys.
func loadConfig(path string) (sim.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return sim.Config{}, fmt.Errorf("reading config: %w", err)
	}
	var cfg sim.Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return sim.Config{}, fmt.Errorf("decoding %s: %w", path, err)
	}
	var problems []error
	if cfg.Server != "" {
		problems = append(problems, errors.New("server: a simcloud server cannot use another server"))
	}
	if err := cfg.ValidateCloud(); err != nil {
		problems = append(problems, err)
	}
	if err := errors.Join(problems...); err != nil {
		return sim.Config{}, fmt.Errorf("validating %s: %w", path, err)
	}
	return cfg, nil
}
