package ec2sim

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// params is a view on the flattened Query API form: a structure member "A.B" is the key
// "A.B", and a list member is numbered from 1 ("Filter.1.Name", "Filter.1.Value.2").
type params struct {
	prefix string // "" for the root, "Filter.1." for a nested structure
	v      url.Values
}

func newParams(v url.Values) params { return params{v: v} }

// str returns the value of a scalar member, or "".
func (p params) str(name string) string { return p.v.Get(p.prefix + name) }

// has reports whether the scalar member is present.
func (p params) has(name string) bool {
	_, ok := p.v[p.prefix+name]
	return ok
}

// boolean parses a boolean member; absent yields def.
func (p params) boolean(name string, def bool) (bool, *apiError) {
	s := p.str(name)
	if s == "" {
		return def, nil
	}
	b, perr := strconv.ParseBool(s)
	if perr != nil {
		return false, invalidParameter("Invalid value '%s' for %s%s", s, p.prefix, name)
	}
	return b, nil
}

// integer parses an integer member; absent yields def.
func (p params) integer(name string, def int) (int, *apiError) {
	s := p.str(name)
	if s == "" {
		return def, nil
	}
	n, perr := strconv.Atoi(s)
	if perr != nil {
		return 0, invalidParameter("Invalid value '%s' for %s%s", s, p.prefix, name)
	}
	return n, nil
}

// sub returns the nested structure "name.".
func (p params) sub(name string) params { return params{prefix: p.prefix + name + ".", v: p.v} }

// indices returns the sorted list indices used under "name.", and an error when an
// index is not a positive integer.
func (p params) indices(name string) ([]int, *apiError) {
	pre := p.prefix + name + "."
	seen := map[int]bool{}
	for k := range p.v {
		if !strings.HasPrefix(k, pre) {
			continue
		}
		rest := k[len(pre):]
		seg, _, _ := strings.Cut(rest, ".")
		n, perr := strconv.Atoi(seg)
		if perr != nil || n < 1 {
			return nil, invalidParameter("Invalid list index in parameter %s", k)
		}
		seen[n] = true
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}

// list returns the scalar list "name.1", "name.2", ...
func (p params) list(name string) ([]string, *apiError) {
	idx, err := p.indices(name)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(idx))
	for _, n := range idx {
		out = append(out, p.str(fmt.Sprintf("%s.%d", name, n)))
	}
	return out, nil
}

// structs returns the structure list "name.1.", "name.2.", ...
func (p params) structs(name string) ([]params, *apiError) {
	idx, err := p.indices(name)
	if err != nil {
		return nil, err
	}
	out := make([]params, 0, len(idx))
	for _, n := range idx {
		out = append(out, p.sub(fmt.Sprintf("%s.%d", name, n)))
	}
	return out, nil
}

// filter is one parsed Filter.N member.
type filter struct {
	name   string
	values []string
}

// filters parses the Filter.N list.
func (p params) filters() ([]filter, *apiError) {
	fs, err := p.structs("Filter")
	if err != nil {
		return nil, err
	}
	out := make([]filter, 0, len(fs))
	for _, f := range fs {
		name := f.str("Name")
		if name == "" {
			return nil, invalidParameter("The filter name must not be empty")
		}
		vals, err := f.list("Value")
		if err != nil {
			return nil, err
		}
		out = append(out, filter{name: name, values: vals})
	}
	return out, nil
}

// tags parses a Tag.N list of Key/Value structures.
func (p params) tags(name string) (map[string]string, *apiError) {
	ts, err := p.structs(name)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ts))
	for _, t := range ts {
		k := t.str("Key")
		if k == "" {
			return nil, invalidParameter("Tag keys must not be empty")
		}
		if len(k) > 128 || len(t.str("Value")) > 256 {
			return nil, invalidParameter("Tag %q is too long", k)
		}
		out[k] = t.str("Value")
	}
	return out, nil
}

// globMatch matches s against an EC2 filter value, where '*' matches any run of
// characters and '?' any single character.
func globMatch(pattern, s string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == s
	}
	// Iterative wildcard matching with backtracking on the last '*'.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchAny reports whether s matches any of the filter values.
func matchAny(values []string, s string) bool {
	for _, v := range values {
		if globMatch(v, s) {
			return true
		}
	}
	return false
}

// matchTags applies a tag:KEY or tag-key filter; ok is false when f is not a tag filter.
func matchTags(f filter, tags map[string]string) (match, ok bool) {
	if key, found := strings.CutPrefix(f.name, "tag:"); found {
		v, has := tags[key]
		return has && matchAny(f.values, v), true
	}
	if f.name == "tag-key" {
		for k := range tags {
			if matchAny(f.values, k) {
				return true, true
			}
		}
		return false, true
	}
	if f.name == "tag-value" {
		for _, v := range tags {
			if matchAny(f.values, v) {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}
