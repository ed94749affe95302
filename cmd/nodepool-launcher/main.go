// Command nodepool-launcher is the launcher daemon: it serves Zuul's node requests from
// ZooKeeper through Temporal workflows. It takes upstream nodepool-launcher's flags.
//
//	nodepool-launcher -c /etc/nodepool/nodepool.yaml [--role all|poller|worker] [--no-webapp]
//
// Unless --no-webapp is given it serves upstream's web app on the configuration's
// webapp address (port 8005 by default): /node-list, /request-list, /label-list,
// /image-list, /ready, and Prometheus metrics on /metrics. With STATSD_HOST or
// STATSD_PORT set it sends upstream's statsd metrics.
//
// It runs in the foreground (the -d and -f flags are accepted for compatibility) and
// stops gracefully on SIGINT or SIGTERM, letting running activities finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/nodepool-temporal/nodepool-temporal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nodepool-launcher", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", config.DefaultPath, "configuration file")
	securePath := fs.String("s", "", "secure configuration file")
	role := fs.String("role", worker.RoleAll, "what this process runs: all, poller or worker")
	pidFile := fs.String("p", "", "write the process id to this file")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Bool("d", false, "run in the foreground with debug output (accepted for compatibility)")
	fs.Bool("f", false, "run in the foreground (accepted for compatibility; always the case)")
	noWebapp := fs.Bool("no-webapp", false, "do not start the web app (status endpoints, /ready, /metrics)")
	fs.String("l", "", "accepted for compatibility; use --log-level and --log-format")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, "nodepool-launcher", worker.Version)
		return 0
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if debug := fs.Lookup("d"); debug != nil && debug.Value.String() == "true" {
		logger, _ = newLogger(stderr, "debug", *logFormat)
	}
	cfg, err := launchconfig.Load(*cfgPath, *securePath)
	if err != nil {
		fmt.Fprintf(stderr, "refusing to start: invalid configuration %s\n", *cfgPath)
		if problems := config.Problems(err); len(problems) > 0 {
			for _, p := range problems {
				fmt.Fprintln(stderr, "  "+p.Error())
			}
		} else {
			fmt.Fprintln(stderr, "  "+err.Error())
		}
		return 1
	}
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintln(stderr, "writing pid file:", err)
			return 1
		}
		defer os.Remove(*pidFile)
	}
	err = worker.RunReloading(ctx, worker.Options{Config: cfg, Role: *role, Logger: logger, Webapp: !*noWebapp},
		*cfgPath, *securePath, worker.DefaultReloadInterval)
	if err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("launcher stopped", "error", err)
		return 1
	}
	logger.Info("launcher stopped")
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	return worker.NewLogger(w, level, format)
}
