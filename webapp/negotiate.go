package webapp

import (
	"strconv"
	"strings"
)

// offers are the formats the web app can answer, in upstream's order of preference
// for equal quality: a browser's text/html gets the text table.
var offers = []string{"text/html", "text/plain", "application/json"}

// mediaRange is one element of an Accept header.
type mediaRange struct {
	typ, sub string
	q        float64
}

// parseAccept parses an Accept header leniently: malformed elements are skipped.
func parseAccept(h string) []mediaRange {
	var out []mediaRange
	for _, part := range strings.Split(h, ",") {
		params := strings.Split(part, ";")
		typ, sub, ok := strings.Cut(strings.ToLower(strings.TrimSpace(params[0])), "/")
		if !ok || typ == "" || sub == "" || (typ == "*" && sub != "*") {
			continue
		}
		r := mediaRange{typ: strings.TrimSpace(typ), sub: strings.TrimSpace(sub), q: 1}
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(p, "=")
			if strings.TrimSpace(strings.ToLower(k)) != "q" {
				continue
			}
			if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q >= 0 && q <= 1 {
				r.q = q
			}
		}
		out = append(out, r)
	}
	return out
}

// quality returns the quality the ranges give offer: that of the most specific range
// matching it (type/subtype over type/* over */*), and whether any range matches.
func quality(ranges []mediaRange, offer string) (float64, bool) {
	typ, sub, _ := strings.Cut(offer, "/")
	best, q := 0, 0.0
	for _, r := range ranges {
		spec := 0
		switch {
		case r.typ == typ && r.sub == sub:
			spec = 3
		case r.typ == typ && r.sub == "*":
			spec = 2
		case r.typ == "*" && r.sub == "*":
			spec = 1
		}
		if spec > best || (spec == best && spec > 0 && r.q > q) {
			best, q = spec, r.q
		}
	}
	return q, best > 0
}

// wantsJSON reports whether the best of the offered formats for an Accept header is
// JSON, as upstream negotiates: the highest quality wins, ties go to the earlier
// offer, and no header (or nothing acceptable) means the text table.
func wantsJSON(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return false
	}
	ranges := parseAccept(accept)
	best, bestQ := -1, 0.0
	for i, o := range offers {
		if q, ok := quality(ranges, o); ok && q > bestQ {
			best, bestQ = i, q
		}
	}
	return best >= 0 && offers[best] == "application/json"
}
