package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// Pos locates a decoded mapping in its file. The decoder fills in any struct field
// of this type named Pos.
type Pos struct {
	// File is the file name given to Load or Parse.
	File string
	// Line and Column of the mapping's first key (1-based; 0 if unknown).
	Line, Column int
	// Path is the key path of the mapping, for example "providers[0].pools[1]"; empty
	// for the top level.
	Path string

	keys map[string]int // key -> line of the key
}

// KeyLine returns the line of key within the mapping, or the mapping's own line when
// the key is absent.
func (p Pos) KeyLine(key string) int {
	if l, ok := p.keys[key]; ok {
		return l
	}
	return p.Line
}

// Has reports whether key was present in the mapping.
func (p Pos) Has(key string) bool {
	_, ok := p.keys[key]
	return ok
}

// Child returns the key path of key inside the mapping.
func (p Pos) Child(key string) string {
	return joinPath(p.Path, key)
}

// problem returns a Problem about key (the mapping itself when key is empty).
func (p Pos) problem(key, format string, args ...any) Problem {
	pr := Problem{File: p.File, Line: p.Line, Path: p.Path, Msg: fmt.Sprintf(format, args...)}
	if key != "" {
		pr.Line = p.KeyLine(key)
		pr.Path = p.Child(key)
	}
	return pr
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// DecodeStrict decodes n into v, which must be a non-nil pointer, the way Load
// decodes the configuration file: every key of a mapping decoded into a struct must
// match a field (by its yaml tag, or the lowercased field name), scalars must have
// the field's type (an integer field rejects 1.5 and "1"), duplicate keys are
// rejected, and anchors, aliases and "<<" merge keys are resolved. A field of type
// yaml.Node receives the raw node, and types implementing yaml.Unmarshaler or
// encoding.TextUnmarshaler decode themselves. Struct fields tagged ",inline" are
// supported as in yaml.v3. Decoding continues past errors; the returned
// *ValidationError lists all of them, each with file, line and a key path that
// starts at path.
func DecodeStrict(file, path string, n *yaml.Node, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("decoding %s: target must be a non-nil pointer, got %T", path, v)
	}
	d := &decoder{file: file}
	if n != nil {
		d.decode(n, rv.Elem(), path)
	}
	return problemsError(d.problems)
}

// decoder walks a yaml.Node tree alongside a Go value, recording every problem.
type decoder struct {
	file     string
	problems []Problem
}

// nodeDecoder is implemented by the package's types whose keys are not fixed.
type nodeDecoder interface {
	decodeFrom(d *decoder, n *yaml.Node, path string)
}

// defaulter is implemented by the package's structs that have non-zero defaults; it
// is called on every freshly allocated list element, map value or pointer target.
type defaulter interface {
	setDefaults()
}

var (
	nodeType            = reflect.TypeFor[yaml.Node]()
	posType             = reflect.TypeFor[Pos]()
	durationType        = reflect.TypeFor[time.Duration]()
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (d *decoder) add(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// resolve follows aliases and unwraps documents.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch n.Kind {
		case yaml.AliasNode:
			n = n.Alias
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		default:
			return n
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// pair is one key/value of a mapping after merge keys are applied.
type pair struct {
	key   string
	kNode *yaml.Node
	vNode *yaml.Node
}

// pairs returns the entries of mapping n in order, with "<<" merge keys expanded
// (explicit keys win over merged ones, earlier merged mappings over later ones).
// Duplicate explicit keys and non-scalar keys are reported.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var out []pair
	seen := map[string]int{} // key -> index in out
	var merged [][]pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeSources(val, path)...)
			continue
		}
		rk := resolve(k)
		if rk == nil || rk.Kind != yaml.ScalarNode {
			d.add(k, path, "mapping keys must be scalars, got %s", describe(rk))
			continue
		}
		if j, dup := seen[rk.Value]; dup {
			d.add(k, joinPath(path, rk.Value), "duplicate key (first defined at line %d)", out[j].kNode.Line)
			continue
		}
		seen[rk.Value] = len(out)
		out = append(out, pair{key: rk.Value, kNode: k, vNode: val})
	}
	for _, ps := range merged {
		for _, p := range ps {
			if _, dup := seen[p.key]; dup {
				continue
			}
			seen[p.key] = len(out)
			out = append(out, p)
		}
	}
	return out
}

// mergeSources returns the pair lists of the mapping(s) named by a merge key's value.
func (d *decoder) mergeSources(val *yaml.Node, path string) [][]pair {
	rv := resolve(val)
	switch {
	case rv != nil && rv.Kind == yaml.MappingNode:
		return [][]pair{d.pairs(rv, path)}
	case rv != nil && rv.Kind == yaml.SequenceNode:
		var out [][]pair
		for _, item := range rv.Content {
			ri := resolve(item)
			if ri == nil || ri.Kind != yaml.MappingNode {
				d.add(item, path, "merge key values must be mappings, got %s", describe(ri))
				continue
			}
			out = append(out, d.pairs(ri, path))
		}
		return out
	default:
		d.add(val, path, "merge key values must be mappings, got %s", describe(rv))
		return nil
	}
}

// describe names a node's kind and, for scalars, its value, for messages.
func describe(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		case "!!null":
			return "null"
		case "!!str":
			return strconv.Quote(n.Value)
		default:
			return n.ShortTag() + " " + strconv.Quote(n.Value)
		}
	}
	return "an unexpected node"
}

// typeName names a Go type the way a configuration author thinks of it.
func typeName(t reflect.Type) string {
	if t == durationType {
		return "a duration"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return t.String()
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// cleanYAMLError turns a yaml.v3 error into a message without the "yaml:" and
// "line N:" prefixes (the problem carries the line).
func cleanYAMLError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = yamlLineRE.ReplaceAllString(m, "")
		}
		return strings.Join(msgs, "; ")
	}
	return yamlLineRE.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	t := v.Type()
	if t == nodeType {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if t.Kind() == reflect.Pointer {
		if v.IsNil() {
			nv := reflect.New(t.Elem())
			setDefaults(nv)
			v.Set(nv)
		}
		d.decode(n, v.Elem(), path)
		return
	}
	if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
		nd.decodeFrom(d, n, path)
		return
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(unmarshalerType) || (n.Kind == yaml.ScalarNode && pt.Implements(textUnmarshalerType)) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.add(n, path, "%s", cleanYAMLError(err))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Interface:
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.add(n, path, "%s", cleanYAMLError(err))
		}
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if n.Kind != yaml.ScalarNode {
		d.add(n, path, "expected %s, got %s", typeName(t), describe(n))
		return
	}
	tag := n.ShortTag()
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		// yaml.v3 truncates 1.5 to 1 for integer targets; reject it instead.
		if tag != "!!int" && t != durationType {
			d.add(n, path, "expected %s, got %s", typeName(t), describe(n))
			return
		}
	case reflect.Float32, reflect.Float64:
		if tag != "!!int" && tag != "!!float" {
			d.add(n, path, "expected %s, got %s", typeName(t), describe(n))
			return
		}
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.add(n, path, "expected %s, got %s", typeName(t), describe(n))
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.add(n, path, "expected a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		e := s.Index(i)
		setDefaults(e.Addr())
		d.decode(item, e, indexPath(path, i))
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.add(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	t := v.Type()
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	for _, p := range d.pairs(n, path) {
		kv := reflect.New(t.Key()).Elem()
		d.decode(p.kNode, kv, joinPath(path, p.key))
		ev := reflect.New(t.Elem())
		setDefaults(ev)
		d.decode(p.vNode, ev.Elem(), joinPath(path, p.key))
		v.SetMapIndex(kv, ev.Elem())
	}
}

// structInfo describes how a struct type maps to YAML keys.
type structInfo struct {
	fields    map[string][]int // key -> field index path
	keys      []string         // keys in declaration order
	pos       []int            // index of the Pos field, if any
	raw       []int            // index of the field tagged `config:"raw"`, if any
	inlineMap []int            // index of an inline map field, if any
}

var structInfoCache sync.Map // reflect.Type -> *structInfo

func getStructInfo(t reflect.Type) *structInfo {
	if si, ok := structInfoCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{fields: map[string][]int{}}
	collectFields(t, nil, si)
	actual, _ := structInfoCache.LoadOrStore(t, si)
	return actual.(*structInfo)
}

func collectFields(t reflect.Type, prefix []int, si *structInfo) {
	for i := range t.NumField() {
		f := t.Field(i)
		idx := append(append([]int(nil), prefix...), i)
		if f.Tag.Get("config") == "raw" && f.Type == nodeType {
			si.raw = idx
			continue
		}
		if f.Type == posType && f.Name == "Pos" {
			si.pos = idx
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		inline := slices.Contains(strings.Split(opts, ","), "inline")
		// As in yaml.v3, an unexported embedded struct may still be inlined.
		if !f.IsExported() && !(inline && f.Anonymous) {
			continue
		}
		if inline {
			switch f.Type.Kind() {
			case reflect.Struct:
				collectFields(f.Type, idx, si)
			case reflect.Map:
				si.inlineMap = idx
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		si.fields[name] = idx
		si.keys = append(si.keys, name)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.add(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	si := getStructInfo(v.Type())
	var pos *Pos
	if si.pos != nil {
		pos = v.FieldByIndex(si.pos).Addr().Interface().(*Pos)
		*pos = Pos{File: d.file, Line: n.Line, Column: n.Column, Path: path, keys: map[string]int{}}
	}
	if si.raw != nil {
		v.FieldByIndex(si.raw).Set(reflect.ValueOf(*n))
	}
	for _, p := range d.pairs(n, path) {
		if pos != nil {
			pos.keys[p.key] = p.kNode.Line
		}
		if idx, ok := si.fields[p.key]; ok {
			d.decode(p.vNode, fieldByIndexAlloc(v, idx), joinPath(path, p.key))
			continue
		}
		if si.inlineMap != nil {
			m := fieldByIndexAlloc(v, si.inlineMap)
			if m.IsNil() {
				m.Set(reflect.MakeMap(m.Type()))
			}
			ev := reflect.New(m.Type().Elem())
			d.decode(p.vNode, ev.Elem(), joinPath(path, p.key))
			kv := reflect.New(m.Type().Key()).Elem()
			d.decode(p.kNode, kv, joinPath(path, p.key))
			m.SetMapIndex(kv, ev.Elem())
			continue
		}
		if si.raw != nil {
			// Keys this package does not know belong to whoever decodes the raw node.
			continue
		}
		d.add(p.kNode, path, "field %s not found", p.key)
	}
}

// fieldByIndexAlloc is reflect.Value.FieldByIndex, allocating nil embedded pointers.
func fieldByIndexAlloc(v reflect.Value, idx []int) reflect.Value {
	for i, x := range idx {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

func setDefaults(ptr reflect.Value) {
	if df, ok := ptr.Interface().(defaulter); ok {
		df.setDefaults()
	}
}
