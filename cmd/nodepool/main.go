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
	"strings"
	"syscall"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// zkConnectTimeout bounds the wait for a ZooKeeper session.
var zkConnectTimeout = 30 * time.Second

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process the usual way.
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string
	// run parses the command's own arguments with fs and runs it.
	run func(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error
}

// commands lists the subcommands in help order.
var commands = []*command{
	{name: "list", args: "[--detail]", summary: "list nodes", run: cmdList},
	{name: "request-list", summary: "list node requests", run: cmdRequestList},
	{name: "delete", args: "ID [--now]", summary: "place a node in the deleting state", run: cmdDelete},
	{name: "hold", args: "ID [--reason TEXT]", summary: "place a node in the hold state", run: cmdHold},
	{name: "info", args: "PROVIDER", summary: "show ZooKeeper data of a provider", run: cmdInfo},
	{name: "config-validate", summary: "validate the configuration file", run: cmdConfigValidate},
	{name: "request", args: "LABEL [LABEL...] [--priority N] [--tenant T] [--requestor NAME] [--timeout D] [--keep] [--json]",
		summary: "request nodes as Zuul does, use and return them", run: cmdRequest},
}

// session is what a command works with: the output streams and, once open, the
// configuration and a ZooKeeper client.
type session struct {
	stdout, stderr io.Writer
	logger         *slog.Logger
	cfgPath        string
	securePath     string
	cfg            *config.Config
	zk             *zookeeper.Client
}

// usageError is a command line mistake; it is reported with the usage text and
// exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a usageError.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errReported is returned by commands that already explained the failure on
// standard error; run only sets the exit status.
var errReported = errors.New("failure reported")

// run is the whole program: it parses args, runs one command and returns the exit
// status. ctx ends on Ctrl-C or SIGTERM.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nodepool", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(stderr) }
	cfgPath := fs.String("c", config.DefaultPath, "path to the configuration file")
	securePath := fs.String("s", "", "path to the secure configuration file")
	debug := fs.Bool("debug", false, "show debug logging")
	version := fs.Bool("version", false, "show the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *version {
		fmt.Fprintln(stdout, "nodepool", launchconfig.Version)
		return exitOK
	}
	if fs.NArg() == 0 {
		printUsage(stderr)
		return exitFailure
	}
	name := fs.Arg(0)
	cmd := lookupCommand(name)
	if cmd == nil {
		fmt.Fprintf(stderr, "nodepool: unknown command %q\n\n", name)
		printUsage(stderr)
		return exitUsage
	}

	// Problems that matter to a command are reported by the command itself; the
	// library logs (connection events, the plain-connection notice) show with
	// --debug.
	level := slog.LevelError
	if *debug {
		level = slog.LevelDebug
	}
	s := &session{
		stdout:     stdout,
		stderr:     stderr,
		logger:     slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		cfgPath:    *cfgPath,
		securePath: *securePath,
	}

	cfs := flag.NewFlagSet("nodepool "+cmd.name, flag.ContinueOnError)
	cfs.SetOutput(stderr)
	cfs.Usage = func() { printCommandUsage(stderr, cmd, cfs) }
	err := cmd.run(ctx, s, cfs, fs.Args()[1:])
	s.close()
	var uerr *usageError
	var notFound errNodeNotFound
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "nodepool %s: %s\n", cmd.name, uerr.msg)
		printCommandUsage(stderr, cmd, cfs)
		return exitUsage
	case errors.Is(err, errFlagParse):
		return exitUsage
	case errors.As(err, &notFound):
		fmt.Fprintln(stderr, notFound.Error())
		return exitFailure
	case errors.Is(err, errReported):
		return exitFailure
	default:
		fmt.Fprintln(stderr, "error:", err)
		return exitFailure
	}
}

// open loads and validates the configuration and connects to ZooKeeper; commands
// call it once their arguments are parsed. Configuration problems are printed one
// per line.
func (s *session) open(ctx context.Context) error {
	cfg, err := launchconfig.Load(s.cfgPath, s.securePath)
	if err != nil {
		fmt.Fprintf(s.stderr, "invalid configuration %s:\n", s.cfgPath)
		printConfigError(s.stderr, err)
		return errReported
	}
	s.cfg = cfg
	cctx, cancel := context.WithTimeout(ctx, zkConnectTimeout)
	defer cancel()
	zk, err := launchconfig.ConnectZooKeeper(cctx, cfg, s.logger)
	if err != nil {
		if ctx.Err() == nil && cctx.Err() != nil {
			return fmt.Errorf("no ZooKeeper session with %s within %s: %w",
				strings.Join(cfg.ZooKeeperHosts(), ","), zkConnectTimeout, err)
		}
		return err
	}
	s.zk = zk
	return nil
}

// close ends the ZooKeeper session, removing whatever ephemeral znodes it still
// owns.
func (s *session) close() {
	if s.zk != nil {
		s.zk.Close()
	}
}

// printConfigError prints the problems of a configuration error one per line
// ("FILE:LINE: path: message"), or the error itself when it carries none.
func printConfigError(w io.Writer, err error) {
	problems := config.Problems(err)
	if len(problems) == 0 {
		fmt.Fprintln(w, err)
		return
	}
	for _, p := range problems {
		fmt.Fprintln(w, p.Error())
	}
}

func lookupCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// printUsage prints the program's help.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `usage: nodepool [-c CONFIG] [-s SECURE] [--debug] [--version] COMMAND [ARGS]

Administer the launcher through ZooKeeper.

options:
  -c CONFIG   path to the configuration file (default `+config.DefaultPath+`)
  -s SECURE   path to the secure configuration file
  --debug     show debug logging
  --version   show the version and exit

commands:
`)
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun \"nodepool COMMAND -h\" for the arguments of a command.\n")
}

// printCommandUsage prints the help of one command.
func printCommandUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: nodepool %s %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
	flags := 0
	fs.VisitAll(func(*flag.Flag) { flags++ })
	if flags == 0 {
		return
	}
	fmt.Fprintln(w, "\noptions:")
	fs.PrintDefaults()
}

// errFlagParse reports a flag the command does not know or a bad flag value; the
// flag package has already printed the problem and the usage.
var errFlagParse = errors.New("bad command line")

// parseArgs parses the flags of fs wherever they appear among args, as upstream's
// argparse does ("delete ID --now" and "delete --now ID" both work), and returns
// the positional arguments. Everything after "--" is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errFlagParse
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// Parse stops at the first positional argument or right after "--".
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// exactArgs parses args and checks that there are exactly n positional arguments,
// named by names in the error.
func exactArgs(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) < len(names):
		return nil, usagef("missing %s", strings.Join(names[len(pos):], " "))
	case len(pos) > len(names):
		return nil, usagef("unexpected arguments %q", pos[len(names):])
	}
	return pos, nil
}

// cmdConfigValidate loads and validates the configuration, drivers' sections
// included, and prints every problem.
func cmdConfigValidate(_ context.Context, s *session, fs *flag.FlagSet, args []string) error {
	if _, err := exactArgs(fs, args); err != nil {
		return err
	}
	if _, err := launchconfig.Load(s.cfgPath, s.securePath); err != nil {
		printConfigError(s.stderr, err)
		return errReported
	}
	fmt.Fprintln(s.stdout, "Configuration is valid")
	return nil
}
