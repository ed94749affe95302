package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/nodepool-temporal/nodepool-temporal/internal/logging"
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
	code := runIO(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
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
	{name: "label-list", summary: "list the labels of every registered pool", run: cmdLabelList},
	{name: "image-list", summary: "list image uploads", run: cmdImageList},
	{name: "delete", args: "ID [--now]", summary: "place a node in the deleting state", run: cmdDelete},
	{name: "hold", args: "ID [--reason TEXT] [--hold-expiration SECONDS]", summary: "place a node in the hold state", run: cmdHold},
	{name: "info", args: "PROVIDER", summary: "show ZooKeeper data of a provider", run: cmdInfo},
	{name: "erase", args: "PROVIDER [--force]", summary: "erase ZooKeeper data of a provider that is no longer configured", run: cmdErase},
	{name: "config-validate", summary: "validate the configuration file", run: cmdConfigValidate},
	{name: "explain", args: "REQUEST [--web-url URL]", summary: "explain why a node request waits or failed", run: cmdExplain},
	{name: "request", args: "LABEL [LABEL...] [--priority N] [--tenant T] [--requestor NAME] [--timeout D] [--keep]",
		summary: "request nodes as Zuul does, use and return them", run: cmdRequest},
}

// globals are the options every command accepts, before or after its name.
type globals struct {
	cfgPath    string
	securePath string
	debug      bool
	json       bool
	logConfig  string
}

// globalFlags names the global options, for the commands' help.
var globalFlags = map[string]bool{"c": true, "s": true, "debug": true, "json": true, "l": true}

// register adds the global options to fs, with their current values as defaults
// (so that a value given before the command survives).
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.cfgPath, "c", g.cfgPath, "path to the configuration file")
	fs.StringVar(&g.securePath, "s", g.securePath, "path to the secure configuration file")
	fs.BoolVar(&g.debug, "debug", g.debug, "show debug logging")
	fs.BoolVar(&g.json, "json", g.json, "print JSON instead of tables")
	fs.StringVar(&g.logConfig, "l", g.logConfig, "accepted for compatibility (logging goes to standard error)")
}

// session is what a command works with: the options, the standard streams and,
// once open, the configuration and a ZooKeeper client.
type session struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	g              *globals
	logger         *slog.Logger
	cfg            *config.Config
	zk             *zookeeper.Client
	// mu serializes progress lines written from several goroutines.
	mu sync.Mutex
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

// run is the whole program with an empty standard input.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runIO(ctx, args, strings.NewReader(""), stdout, stderr)
}

// runIO is the whole program: it parses args, runs one command and returns the
// exit status. ctx ends on Ctrl-C or SIGTERM. Global options may come before or
// after the command's name.
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{cfgPath: config.DefaultPath}
	fs := flag.NewFlagSet("nodepool", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(stderr) }
	g.register(fs)
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

	s := &session{
		stdout: stdout,
		stderr: stderr,
		stdin:  stdin,
		g:      g,
		logger: slog.New(slog.DiscardHandler),
	}

	cfs := flag.NewFlagSet("nodepool "+cmd.name, flag.ContinueOnError)
	cfs.SetOutput(stderr)
	cfs.Usage = func() { printCommandUsage(stderr, cmd, cfs) }
	g.register(cfs)
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

// newLogger returns the logger of the libraries the CLI uses (connection events,
// the plain-connection notice): errors only, everything with --debug, in the
// launcher's text format.
func (s *session) newLogger() *slog.Logger {
	level := slog.LevelError
	if s.g.debug {
		level = slog.LevelDebug
	}
	h, err := logging.NewHandler(s.stderr, logging.Options{Level: level})
	if err != nil {
		return slog.New(slog.DiscardHandler)
	}
	return logging.Named(slog.New(h), "nodepool.cmd")
}

// open loads and validates the configuration and connects to ZooKeeper; commands
// call it once their arguments are parsed. Configuration problems are printed one
// per line.
func (s *session) open(ctx context.Context) error {
	s.logger = s.newLogger()
	cfg, err := launchconfig.Load(s.g.cfgPath, s.g.securePath)
	if err != nil {
		fmt.Fprintf(s.stderr, "invalid configuration %s:\n", s.g.cfgPath)
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

// printJSON prints v as indented JSON.
func (s *session) printJSON(v any) error {
	enc := json.NewEncoder(s.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// output prints v as JSON with --json, else the table t.
func (s *session) output(t *table, v any) error {
	if s.g.json {
		return s.printJSON(v)
	}
	t.write(s.stdout)
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
	fmt.Fprint(w, `usage: nodepool [-c CONFIG] [-s SECURE] [--json] [--debug] [--version] COMMAND [ARGS]

Administer the launcher through ZooKeeper.

options (also accepted after the command):
  -c CONFIG   path to the configuration file (default `+config.DefaultPath+`)
  -s SECURE   path to the secure configuration file
  --json      print JSON instead of tables
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

// printCommandUsage prints the help of one command: its own options (the global
// ones are described by the program's help).
func printCommandUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: nodepool %s %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
	own := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	own.SetOutput(w)
	fs.VisitAll(func(f *flag.Flag) {
		if !globalFlags[f.Name] {
			own.Var(f.Value, f.Name, f.Usage)
			own.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	flags := 0
	own.VisitAll(func(*flag.Flag) { flags++ })
	if flags > 0 {
		fmt.Fprintln(w, "\noptions:")
		own.PrintDefaults()
	}
	fmt.Fprintln(w, "\nThe global options (-c, -s, --json, --debug) may also follow the command.")
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
	_, err := launchconfig.Load(s.g.cfgPath, s.g.securePath)
	if s.g.json {
		out := struct {
			Valid    bool     `json:"valid"`
			Problems []string `json:"problems"`
		}{Valid: err == nil, Problems: []string{}}
		if err != nil {
			if problems := config.Problems(err); len(problems) > 0 {
				for _, p := range problems {
					out.Problems = append(out.Problems, p.Error())
				}
			} else {
				out.Problems = append(out.Problems, err.Error())
			}
		}
		if perr := s.printJSON(out); perr != nil {
			return perr
		}
		if err != nil {
			return errReported
		}
		return nil
	}
	if err != nil {
		printConfigError(s.stderr, err)
		return errReported
	}
	fmt.Fprintln(s.stdout, "Configuration is valid")
	return nil
}
