package zookeeper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// object is a decoded JSON object whose values are still raw. Decoders take
// the keys they model out of it; what is left over becomes a record's Extra.
type object map[string]json.RawMessage

var jsonNull = json.RawMessage("null")

// parseObject decodes data as a JSON object.
func parseObject(data []byte) (object, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrEmptyRecord
	}
	var m object
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parsing json: %w", err)
	}
	if m == nil {
		return nil, errors.New("record is not a json object")
	}
	return m, nil
}

// rest returns the keys nobody took, or nil when there are none.
func (o object) rest() map[string]json.RawMessage {
	if len(o) == 0 {
		return nil
	}
	out := make(map[string]json.RawMessage, len(o))
	for k, v := range o {
		out[k] = v
	}
	return out
}

// take removes key and returns its raw value; absent and null both yield nil.
func (o object) take(key string) json.RawMessage {
	raw, ok := o[key]
	delete(o, key)
	if !ok || isNull(raw) {
		return nil
	}
	return raw
}

// has reports whether key is present (even with a null value).
func (o object) has(key string) bool {
	_, ok := o[key]
	return ok
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), jsonNull)
}

// kind names the JSON type of raw for error messages.
func kind(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

func typeErr(key, want string, raw json.RawMessage) error {
	return fmt.Errorf("field %q: want %s, got %s", key, want, kind(raw))
}

func (o object) str(key string) (string, error) {
	raw := o.take(key)
	if raw == nil {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", typeErr(key, "string", raw)
	}
	return s, nil
}

func (o object) strPtr(key string) (*string, error) {
	raw := o.take(key)
	if raw == nil {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, typeErr(key, "string", raw)
	}
	return &s, nil
}

func (o object) float(key string) (float64, error) {
	raw := o.take(key)
	if raw == nil {
		return 0, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, typeErr(key, "number", raw)
	}
	return f, nil
}

func (o object) floatPtr(key string) (*float64, error) {
	raw := o.take(key)
	if raw == nil {
		return nil, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, typeErr(key, "number", raw)
	}
	return &f, nil
}

// integer decodes a JSON number as an int, truncating a fraction the way
// Python's int() does and clamping values that do not fit.
func integer(raw json.RawMessage) (int, bool) {
	if kind(raw) != "number" {
		return 0, false
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, false
	}
	if i, err := strconv.ParseInt(string(n), 10, 0); err == nil {
		return int(i), true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	switch {
	case math.IsNaN(f):
		return 0, false
	case f >= math.MaxInt:
		return math.MaxInt, true
	case f <= math.MinInt:
		return math.MinInt, true
	default:
		return int(f), true
	}
}

func (o object) int(key string) (int, error) {
	raw := o.take(key)
	if raw == nil {
		return 0, nil
	}
	i, ok := integer(raw)
	if !ok {
		return 0, typeErr(key, "number", raw)
	}
	return i, nil
}

func (o object) intPtr(key string) (*int, error) {
	raw := o.take(key)
	if raw == nil {
		return nil, nil
	}
	i, ok := integer(raw)
	if !ok {
		return nil, typeErr(key, "number", raw)
	}
	return &i, nil
}

// boolean decodes key; absent yields def, null yields false (Python's None
// is falsy wherever Nodepool tests these flags).
func (o object) boolean(key string, def bool) (bool, error) {
	if !o.has(key) {
		return def, nil
	}
	raw := o.take(key)
	if raw == nil {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, typeErr(key, "bool", raw)
	}
	return b, nil
}

func (o object) strings(key string) ([]string, error) {
	raw := o.take(key)
	if raw == nil {
		return nil, nil
	}
	var s []string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, typeErr(key, "list of strings", raw)
	}
	return s, nil
}

// raw returns key's value unchanged (nil for absent or null).
func (o object) raw(key string) json.RawMessage {
	raw := o.take(key)
	if raw == nil {
		return nil
	}
	return append(json.RawMessage(nil), raw...)
}

// anyMap decodes a JSON object into map[string]any, keeping numbers as
// json.Number so that they are written back exactly.
func (o object) anyMap(key string) (map[string]any, error) {
	raw := o.take(key)
	if raw == nil {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, typeErr(key, "object", raw)
	}
	return m, nil
}

// writer builds a JSON object; keys are written sorted.
type writer struct {
	m   map[string]json.RawMessage
	err error
}

func newWriter(extra map[string]json.RawMessage) *writer {
	w := &writer{m: make(map[string]json.RawMessage, len(extra)+40)}
	for k, v := range extra {
		if isNull(v) {
			w.m[k] = jsonNull
			continue
		}
		w.m[k] = v
	}
	return w
}

// set writes v under key, replacing any extra key of the same name.
func (w *writer) set(key string, v any) {
	if w.err != nil {
		return
	}
	b, err := marshal(v)
	if err != nil {
		w.err = fmt.Errorf("encoding field %q: %w", key, err)
		return
	}
	w.m[key] = b
}

// setRaw writes raw JSON under key; nil is written as null.
func (w *writer) setRaw(key string, raw json.RawMessage) {
	if w.err != nil {
		return
	}
	if isNull(raw) {
		w.m[key] = jsonNull
		return
	}
	if !json.Valid(raw) {
		w.err = fmt.Errorf("encoding field %q: invalid json", key)
		return
	}
	w.m[key] = raw
}

func (w *writer) bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return marshal(w.m)
}

// marshal encodes v without HTML escaping, so that strings such as "<" come
// back the way Python's json module wrote them.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Helpers writing Nodepool's "unset" (None, JSON null) for zero values of
// non-pointer fields.

func strOrNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func floatOrNull(f float64) any {
	if f == 0 {
		return nil
	}
	return f
}

func intOrNull(i int) any {
	if i == 0 {
		return nil
	}
	return i
}

func stringsOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// coerceInt converts a JSON value to an int the way Nodepool coerces
// hold_expiration: numbers are truncated, numeric strings are parsed, and
// anything else becomes 0 (no expiry).
func coerceInt(raw json.RawMessage) int {
	if raw == nil {
		return 0
	}
	if i, ok := integer(raw); ok {
		return i
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if i, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return i
		}
		return 0
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil && b {
		return 1
	}
	return 0
}
