// Package logging is the launcher's log format: upstream Nodepool's logger names and
// context prefixes on top of log/slog.
//
// In text mode a record is one line (more for a multi-line message) in the layout of
// Nodepool's "%(asctime)s %(levelname)s %(name)s: %(message)s":
//
//	2025-03-01 12:00:00,123 INFO nodepool.driver.NodeRequestHandler: [e: 5f3c…] [node_request: 200-0000000042] [node: 0000000007] phase phase=launching
//
// The logger name comes from the record's "logger" attribute, or else from what the
// record is about (see Name). The prefixes name the Zuul event ("event_id"), the node
// request ("request_id") and the node ("node_id"), each only when known; those three
// attributes are not repeated among the key=value pairs that follow the message.
// Levels are spelled as Python spells them: DEBUG, INFO, WARNING, ERROR.
//
// In JSON mode a record is one JSON object per line with the same facts as fields:
// "time", "level", "logger", "event_id", "request_id", "node_id" (when known), "msg",
// then every other attribute. Attributes of groups are flattened to "group.key" in
// both modes.
//
// Adapt adds the logger name to a handler of another kind, for callers that bring
// their own.
package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Attribute keys with a meaning to the format.
const (
	// KeyLogger names the logger explicitly, e.g. "nodepool.NodePool".
	KeyLogger = "logger"
	// KeyEventID is the Zuul event id of the node request ("event_id" of the request).
	KeyEventID = "event_id"
	// KeyRequestID is a node request id.
	KeyRequestID = "request_id"
	// KeyNodeID is a node id.
	KeyNodeID = "node_id"
	// KeyComponent names the part of the launcher a logger belongs to (poller,
	// activities, temporal); it chooses the logger name when nothing more specific
	// does.
	KeyComponent = "component"
)

// Formats.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Options configure a Handler.
type Options struct {
	// Format is FormatText (the default) or FormatJSON.
	Format string
	// Level is the minimum level logged; nil means info.
	Level slog.Leveler
}

// New returns a logger writing to w. level is debug, info, warn (or warning) or
// error, optionally with an offset as slog spells it ("info+2"); format is text or
// json.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	lv, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	h, err := NewHandler(w, Options{Format: format, Level: lv})
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// ParseLevel parses a level name: debug, info, warn, warning or error, in any case.
func ParseLevel(s string) (slog.Level, error) {
	up := strings.ToUpper(strings.TrimSpace(s))
	if rest, ok := strings.CutPrefix(up, "WARNING"); ok {
		up = "WARN" + rest
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(up)); err != nil {
		return 0, fmt.Errorf("bad log level %q (want debug, info, warning or error)", s)
	}
	return lv, nil
}

// LevelName spells a level as Python's logging does: DEBUG, INFO, WARNING, ERROR,
// and slog's "INFO+2" style for levels in between.
func LevelName(l slog.Level) string {
	switch l {
	case slog.LevelWarn:
		return "WARNING"
	}
	s := l.String()
	if rest, ok := strings.CutPrefix(s, "WARN"); ok {
		return "WARNING" + rest
	}
	return s
}

// output is what the handlers derived from one NewHandler share.
type output struct {
	mu    sync.Mutex
	w     io.Writer
	json  bool
	level slog.Leveler
}

// Handler formats records as described in the package documentation.
type Handler struct {
	out *output
	// attrs are the attributes added by WithAttrs, flattened and qualified by the
	// groups open when they were added.
	attrs []slog.Attr
	// prefix qualifies the keys of attributes added later ("g1.g2.").
	prefix string
}

// NewHandler returns a handler writing to w.
func NewHandler(w io.Writer, o Options) (*Handler, error) {
	out := &output{w: w, level: o.Level}
	switch o.Format {
	case "", FormatText:
	case FormatJSON:
		out.json = true
	default:
		return nil, fmt.Errorf("bad log format %q (want text or json)", o.Format)
	}
	if out.level == nil {
		out.level = slog.LevelInfo
	}
	return &Handler{out: out}, nil
}

// Enabled reports whether records of level l are logged.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.out.level.Level()
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = flatten(slices.Clip(h.attrs), h.prefix, attrs)
	return &h2
}

// WithGroup returns a handler that qualifies later attributes with name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

// Handle writes one record.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	attrs := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		attrs = flatten(attrs, h.prefix, []slog.Attr{a})
		return true
	})
	facts := collect(attrs, r.Message)
	var b bytes.Buffer
	if h.out.json {
		writeJSON(&b, r, facts)
	} else {
		writeText(&b, r, facts)
	}
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	_, err := h.out.w.Write(b.Bytes())
	return err
}

// facts are what a record says, sorted for the format.
type facts struct {
	name                    string
	eventID, request, node  string
	hasEvent, hasReq, hasNd bool
	// rest are the remaining attributes in order; component is kept for JSON.
	rest []slog.Attr
}

// collect picks the context attributes (the last value of each wins) and the logger
// name out of attrs.
func collect(attrs []slog.Attr, msg string) facts {
	var f facts
	lookup := map[string]string{}
	for _, a := range attrs {
		switch a.Key {
		case KeyEventID, KeyRequestID, KeyNodeID:
			s := valueString(a.Value)
			if s == "" {
				continue
			}
			switch a.Key {
			case KeyEventID:
				f.eventID, f.hasEvent = s, true
			case KeyRequestID:
				f.request, f.hasReq = s, true
			case KeyNodeID:
				f.node, f.hasNd = s, true
			}
			lookup[a.Key] = s
		case KeyLogger:
			lookup[a.Key] = valueString(a.Value)
		default:
			if a.Value.Kind() == slog.KindString || a.Value.Kind() == slog.KindAny {
				lookup[a.Key] = valueString(a.Value)
			}
			f.rest = append(f.rest, a)
		}
	}
	f.name = Name(func(k string) string { return lookup[k] }, msg)
	return f
}

// flatten appends attrs to dst, resolving values and qualifying keys with prefix;
// groups are flattened into "group.key" and empty attributes dropped.
func flatten(dst []slog.Attr, prefix string, attrs []slog.Attr) []slog.Attr {
	for _, a := range attrs {
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			continue
		}
		if a.Value.Kind() == slog.KindGroup {
			p := prefix
			if a.Key != "" {
				p = prefix + a.Key + "."
			}
			dst = flatten(dst, p, a.Value.Group())
			continue
		}
		a.Key = prefix + a.Key
		dst = append(dst, a)
	}
	return dst
}

// asctime is Python logging's default time layout.
const asctime = "2006-01-02 15:04:05,000"

func writeText(b *bytes.Buffer, r slog.Record, f facts) {
	var head bytes.Buffer
	if !r.Time.IsZero() {
		head.WriteString(r.Time.Format(asctime))
		head.WriteByte(' ')
	}
	head.WriteString(LevelName(r.Level))
	head.WriteByte(' ')
	head.WriteString(f.name)
	head.WriteString(": ")

	lines := strings.Split(strings.TrimRight(r.Message, "\n"), "\n")
	b.Write(head.Bytes())
	if f.hasEvent {
		fmt.Fprintf(b, "[e: %s] ", f.eventID)
	}
	if f.hasReq {
		fmt.Fprintf(b, "[node_request: %s] ", f.request)
	}
	if f.hasNd {
		fmt.Fprintf(b, "[node: %s] ", f.node)
	}
	b.WriteString(lines[0])
	for _, a := range f.rest {
		if a.Key == KeyComponent {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(textKey(a.Key))
		b.WriteByte('=')
		b.WriteString(textValue(a.Value))
	}
	b.WriteByte('\n')
	// Continuation lines carry the header again, indented, as Nodepool's
	// multi-line formatter writes them.
	for _, l := range lines[1:] {
		b.Write(head.Bytes())
		b.WriteString("  ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
}

func writeJSON(b *bytes.Buffer, r slog.Record, f facts) {
	b.WriteByte('{')
	first := true
	field := func(k string, v any) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeJSONValue(b, k)
		b.WriteByte(':')
		writeJSONValue(b, v)
	}
	if !r.Time.IsZero() {
		field("time", r.Time.Format(time.RFC3339Nano))
	}
	field("level", LevelName(r.Level))
	field(KeyLogger, f.name)
	if f.hasEvent {
		field(KeyEventID, f.eventID)
	}
	if f.hasReq {
		field(KeyRequestID, f.request)
	}
	if f.hasNd {
		field(KeyNodeID, f.node)
	}
	field("msg", r.Message)
	for _, a := range f.rest {
		field(a.Key, jsonValue(a.Value))
	}
	b.WriteString("}\n")
}

// writeJSONValue writes v as JSON, or its string form when it has none.
func writeJSONValue(b *bytes.Buffer, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		data, _ = json.Marshal(fmt.Sprintf("%+v", v))
	}
	b.Write(data)
}

// jsonValue returns what a value is written as in JSON.
func jsonValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindFloat64:
		return v.Float64()
	case slog.KindBool:
		return v.Bool()
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	}
	switch x := v.Any().(type) {
	case error:
		return x.Error()
	case json.Marshaler:
		return x
	case fmt.Stringer:
		return x.String()
	case *string:
		if x == nil {
			return nil
		}
		return *x
	case []byte:
		return string(x)
	}
	return v.Any()
}

// valueString renders a value for text: strings as they are, errors by their
// message, pointers to strings by what they point to (nil as empty).
func valueString(v slog.Value) string {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case nil:
			return ""
		case error:
			return x.Error()
		case fmt.Stringer:
			return x.String()
		case *string:
			if x == nil {
				return ""
			}
			return *x
		case []byte:
			return string(x)
		case json.RawMessage:
			return string(x)
		case []string:
			return strings.Join(x, ",")
		}
	}
	return v.String()
}

// textValue renders a value of a key=value pair, quoted when needed.
func textValue(v slog.Value) string {
	s := valueString(v)
	if needsQuoting(s) {
		return strconv.Quote(s)
	}
	return s
}

// textKey renders a key, quoted when needed.
func textKey(k string) string {
	if needsQuoting(k) {
		return strconv.Quote(k)
	}
	return k
}

// needsQuoting reports whether s must be quoted to stay one token: empty, or with
// spaces, '=', quotes or unprintable characters.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			return true
		}
		if c == '=' || c == '"' || unicode.IsSpace(c) || !unicode.IsPrint(c) {
			return true
		}
		i += size
	}
	return false
}
