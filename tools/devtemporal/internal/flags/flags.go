package flags

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
)

// MemoryDB is the --db value that selects an in-memory database, which is
// lost when the process exits. An empty --db means the same.
const MemoryDB = ":memory:"

// DefaultNamespace is always created, whatever --namespace adds.
const DefaultNamespace = "default"

// SearchAttribute is a custom search attribute registered in every namespace
// the server creates.
type SearchAttribute struct {
	// Name is the attribute's name as workflows and queries use it.
	Name string
	// Type is the attribute's indexed value type.
	Type enumspb.IndexedValueType
}

// ProjectSearchAttributes are registered on every start, so that the
// launcher can set and query them on a fresh server without an operator
// step.
var ProjectSearchAttributes = []SearchAttribute{
	{Name: "NodepoolRequestID", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{Name: "NodepoolLabel", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST},
	{Name: "NodepoolProvider", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{Name: "NodepoolPool", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{Name: "NodepoolNodeID", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST},
	{Name: "NodepoolTenant", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{Name: "NodepoolState", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
}

// DefaultDynamicConfig holds the dynamic config values the dev server sets
// unless a --dynamic-config-value overrides them.
//
// system.forceSearchAttributesCacheRefreshOnRead is deliberately left off: it
// makes every search attribute lookup (each workflow start and upsert) read
// the cluster metadata through SQLite's single connection, which costs
// 15-20 % more server CPU per workflow, and on SQL visibility it gains
// nothing (attributes added at run time are namespace aliases; the start-up
// probe waits until the frontend accepts them).
var DefaultDynamicConfig = map[string]any{
	// No calls home for version checks: the server often runs offline.
	"frontend.enableServerVersionCheck": false,
	// Timers fire within 100 ms of their time instead of within a second: workflows
	// poll cloud state machines with timers of a second or less.
	"history.timerProcessorMaxTimeShift": "100ms",
}

// Options is the parsed command line.
type Options struct {
	// IP is the address every listener binds to.
	IP string
	// Port is the frontend gRPC port; 0 picks a free one.
	Port int
	// UIPort is the web UI port; 0 means no UI. When UIAuto is set the port
	// is derived from Port once that is known.
	UIPort int
	// UIAuto reports that --ui-port was not given: the UI listens on
	// Port+1000, or on a free port when Port is 0.
	UIAuto bool
	// DB is the SQLite file, or MemoryDB.
	DB string
	// Namespaces lists the namespaces to create, DefaultNamespace first.
	Namespaces []string
	// Shards is the number of history shards of a new database.
	Shards int
	// LogLevel is one of debug, info, warn, error or never.
	LogLevel string
	// LogFormat is json or console.
	LogFormat string
	// SearchAttributes are the custom search attributes to register:
	// ProjectSearchAttributes followed by those given with --search-attribute.
	SearchAttributes []SearchAttribute
	// DynamicConfig holds dynamic config values by key: DefaultDynamicConfig
	// overlaid with --dynamic-config-value.
	DynamicConfig map[string]any
}

// InMemory reports whether the database lives in memory only.
func (o Options) InMemory() bool { return o.DB == "" || o.DB == MemoryDB }

// UIEnabled reports whether the web UI is served.
func (o Options) UIEnabled() bool { return o.UIAuto || o.UIPort != 0 }

// portFlag is an optional port: unset until a value is given, so that the
// usage text shows no made-up default.
type portFlag struct {
	set  bool
	port int
}

func (p *portFlag) String() string {
	if p == nil || !p.set {
		return ""
	}
	return strconv.Itoa(p.port)
}

func (p *portFlag) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not a number")
	}
	if n < 0 || n > 65535 {
		return fmt.Errorf("%d out of range", n)
	}
	p.set, p.port = true, n
	return nil
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// Parse parses args (without the program name). It returns flag.ErrHelp
// after printing usage to out when -h or --help is given.
func Parse(args []string, out io.Writer) (Options, error) {
	if len(args) >= 2 && args[0] == "server" && args[1] == "start-dev" {
		args = args[2:]
	}
	fs := flag.NewFlagSet("temporal-dev", flag.ContinueOnError)
	fs.SetOutput(out)
	var (
		o          Options
		uiPort     portFlag
		headless   bool
		db         string
		dbFilename string
		namespaces listFlag
		attrs      listFlag
		dynamic    listFlag
	)
	fs.StringVar(&o.IP, "ip", "127.0.0.1", "address to bind the gRPC frontend and the UI to")
	fs.IntVar(&o.Port, "port", 7233, "frontend gRPC port (0 = pick a free port)")
	fs.Var(&uiPort, "ui-port", "web UI port (default --port + 1000, or a free port when --port is 0; 0 disables the UI)")
	fs.BoolVar(&headless, "headless", false, "do not serve the web UI")
	fs.StringVar(&db, "db", MemoryDB, "SQLite database file ("+MemoryDB+" = in memory, lost on exit)")
	fs.StringVar(&dbFilename, "db-filename", "", "same as --db")
	fs.Var(&namespaces, "namespace", "namespace to create besides \"default\" (repeatable)")
	fs.Var(&namespaces, "n", "short for --namespace")
	fs.IntVar(&o.Shards, "shards", 1, "number of history shards; fixed when the database is created")
	fs.StringVar(&o.LogLevel, "log-level", "warn", "server log level: debug, info, warn, error or never")
	fs.StringVar(&o.LogFormat, "log-format", "pretty", "server log format: json, or pretty (console) for people")
	fs.Var(&attrs, "search-attribute", "extra custom search attribute NAME=TYPE, TYPE one of Keyword, KeywordList, Text, Int, Double, Bool, Datetime (repeatable)")
	fs.Var(&dynamic, "dynamic-config-value", "dynamic config KEY=VALUE, VALUE as JSON or a bare string (repeatable)")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	if net.ParseIP(o.IP) == nil {
		return Options{}, fmt.Errorf("--ip %q: not an IP address", o.IP)
	}
	if o.Port < 0 || o.Port > 65535 {
		return Options{}, fmt.Errorf("--port %d: out of range", o.Port)
	}
	switch {
	case headless:
		o.UIPort = 0
	case !uiPort.set:
		o.UIAuto = true
		if o.Port != 0 && o.Port+1000 > 65535 {
			return Options{}, fmt.Errorf("--port %d: default UI port %d out of range; give --ui-port or --headless", o.Port, o.Port+1000)
		}
	default:
		o.UIPort = uiPort.port
	}

	o.DB = db
	if dbFilename != "" {
		o.DB = dbFilename
	}
	if o.DB == "" {
		o.DB = MemoryDB
	}

	o.Namespaces = []string{DefaultNamespace}
	for _, ns := range namespaces {
		if ns == "" {
			return Options{}, errors.New("--namespace: empty name")
		}
		if !slices.Contains(o.Namespaces, ns) {
			o.Namespaces = append(o.Namespaces, ns)
		}
	}

	if o.Shards < 1 {
		return Options{}, fmt.Errorf("--shards %d: must be at least 1", o.Shards)
	}
	switch o.LogLevel {
	case "debug", "info", "warn", "error", "never":
	default:
		return Options{}, fmt.Errorf("--log-level %q: want debug, info, warn, error or never", o.LogLevel)
	}
	switch o.LogFormat {
	case "json":
	case "console", "pretty", "text":
		o.LogFormat = "console"
	default:
		return Options{}, fmt.Errorf("--log-format %q: want json or console", o.LogFormat)
	}

	sas, err := searchAttributes(attrs)
	if err != nil {
		return Options{}, err
	}
	o.SearchAttributes = sas

	o.DynamicConfig = make(map[string]any, len(DefaultDynamicConfig)+len(dynamic))
	for k, v := range DefaultDynamicConfig {
		o.DynamicConfig[k] = v
	}
	for _, kv := range dynamic {
		k, v, err := dynamicConfigValue(kv)
		if err != nil {
			return Options{}, err
		}
		o.DynamicConfig[k] = v
	}
	return o, nil
}

// searchAttributes returns ProjectSearchAttributes followed by the given
// NAME=TYPE pairs. A name repeated with the same type is kept once; with a
// different type it is an error.
func searchAttributes(pairs []string) ([]SearchAttribute, error) {
	out := slices.Clone(ProjectSearchAttributes)
	for _, pair := range pairs {
		sa, err := ParseSearchAttribute(pair)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(out, func(o SearchAttribute) bool { return o.Name == sa.Name })
		switch {
		case i < 0:
			out = append(out, sa)
		case out[i].Type != sa.Type:
			return nil, fmt.Errorf("--search-attribute %q: %s is already registered as %s", pair, sa.Name, out[i].Type)
		}
	}
	return out, nil
}

// ParseSearchAttribute parses NAME=TYPE. TYPE is matched without regard to
// case against the short names (Keyword, KeywordList, Text, Int, Double,
// Bool, Datetime) and the full enum names (INDEXED_VALUE_TYPE_KEYWORD).
func ParseSearchAttribute(pair string) (SearchAttribute, error) {
	name, typ, ok := strings.Cut(pair, "=")
	name, typ = strings.TrimSpace(name), strings.TrimSpace(typ)
	if !ok || name == "" || typ == "" {
		return SearchAttribute{}, fmt.Errorf("--search-attribute %q: want NAME=TYPE", pair)
	}
	for short, v := range enumspb.IndexedValueType_shorthandValue {
		t := enumspb.IndexedValueType(v)
		if t == enumspb.INDEXED_VALUE_TYPE_UNSPECIFIED {
			continue
		}
		if strings.EqualFold(typ, short) || strings.EqualFold(typ, enumspb.IndexedValueType_name[v]) {
			return SearchAttribute{Name: name, Type: t}, nil
		}
	}
	return SearchAttribute{}, fmt.Errorf("--search-attribute %q: unknown type %q", pair, typ)
}

// dynamicConfigValue parses KEY=VALUE. VALUE is decoded as JSON when it is
// valid JSON (true, 10, "s", [..]) and taken as a plain string otherwise.
func dynamicConfigValue(kv string) (string, any, error) {
	k, raw, ok := strings.Cut(kv, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return "", nil, fmt.Errorf("--dynamic-config-value %q: want KEY=VALUE", kv)
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return k, raw, nil
	}
	return k, normalizeNumbers(v), nil
}

// normalizeNumbers turns JSON numbers into int where they are whole and into
// float64 otherwise, because the server's dynamic config converters accept
// int for integer settings but not float64.
func normalizeNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return int(i)
		}
		f, err := v.Float64()
		if err != nil {
			return v.String()
		}
		return f
	case []any:
		for i := range v {
			v[i] = normalizeNumbers(v[i])
		}
		return v
	case map[string]any:
		for k := range v {
			v[k] = normalizeNumbers(v[k])
		}
		return v
	default:
		return v
	}
}
