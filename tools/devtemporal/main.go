package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nodepool-temporal/nodepool-temporal/tools/devtemporal/internal/flags"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit: it parses args, starts the server, announces
// readiness on stdout and serves until SIGINT or SIGTERM. It returns the
// process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "service":
			return runService(args[1:], stdout, stderr)
		case "sql-tool":
			return runSQLTool(args[1:], stderr)
		}
	}
	opts, err := flags.Parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "temporal-dev: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger, quiet := newLogger(opts, stderr)
	go func() {
		<-ctx.Done()
		quiet()
	}()
	srv, err := start(ctx, opts, logger)
	if err != nil {
		if ctx.Err() != nil {
			// SIGINT or SIGTERM during start-up: a requested stop, and
			// start has already stopped what it started.
			return 0
		}
		fmt.Fprintf(stderr, "temporal-dev: %v\n", err)
		return 1
	}
	ui := "none"
	if srv.uiURL != "" {
		ui = srv.uiURL
	}
	fmt.Fprintf(stdout, "temporal-dev ready grpc=%s ui=%s\n", srv.grpcAddr, ui)

	<-ctx.Done()
	if err := srv.stop(); err != nil {
		fmt.Fprintf(stderr, "temporal-dev: %v\n", err)
		return 1
	}
	return 0
}
