package aws

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// EC2 tag limits.
const (
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

// requestAttrs are the node request's "safe attributes" dynamic tags may use, rendered
// as Python's str.format renders them upstream (None for absent values, lists as
// ['a', 'b']).
type requestAttrs map[string]string

func newRequestAttrs(r drivers.RequestInfo) requestAttrs {
	none := func(s string) string {
		if s == "" {
			return "None"
		}
		return s
	}
	labels := make([]string, 0, len(r.Labels))
	for _, l := range r.Labels {
		labels = append(labels, "'"+strings.ReplaceAll(l, "'", `\'`)+"'")
	}
	created := "None"
	if r.CreatedTime != 0 {
		created = strconv.FormatFloat(r.CreatedTime, 'f', -1, 64)
		if r.CreatedTime == math.Trunc(r.CreatedTime) {
			created += ".0"
		}
	}
	requestorData := "None"
	if len(r.RequestorData) > 0 && string(r.RequestorData) != "null" {
		requestorData = string(r.RequestorData)
	}
	return requestAttrs{
		"id":                r.ID,
		"labels":            "[" + strings.Join(labels, ", ") + "]",
		"requestor":         none(r.Requestor),
		"requestor_data":    requestorData,
		"relative_priority": strconv.Itoa(r.RelativePriority),
		"event_id":          none(r.EventID),
		"created_time":      created,
		"tenant_name":       none(r.TenantName),
	}
}

// safeAttributes are the names a dynamic tag may refer to as {request.NAME}.
var safeAttributes = []string{"id", "labels", "requestor", "requestor_data", "relative_priority", "event_id", "created_time", "tenant_name"}

// formatTag renders a dynamic tag template: "{request.NAME}" is replaced by the
// attribute, "{{" and "}}" stand for literal braces, anything else in braces is an
// error.
func formatTag(tmpl string, attrs requestAttrs) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		switch {
		case c == '{' && i+1 < len(tmpl) && tmpl[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(tmpl) && tmpl[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '}':
			return "", fmt.Errorf("single '}' at offset %d in %q", i, tmpl)
		case c == '{':
			end := strings.IndexByte(tmpl[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("unclosed '{' at offset %d in %q", i, tmpl)
			}
			field := tmpl[i+1 : i+end]
			name, ok := strings.CutPrefix(field, "request.")
			if !ok || !slices.Contains(safeAttributes, name) {
				return "", fmt.Errorf("unknown field {%s} in %q (use {request.<%s>})", field, tmpl, strings.Join(safeAttributes, "|"))
			}
			b.WriteString(attrs[name])
			i += end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// instanceTags builds the tags of a new instance and its volumes: the label's tags,
// then its dynamic tags, then the node metadata, then Name = hostname; later sources
// override earlier ones. It returns the names of dynamic tags that were skipped
// because their template failed.
func instanceTags(l *Label, req drivers.CreateRequest) (map[string]string, map[string]error) {
	tags := maps.Clone(l.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	skipped := map[string]error{}
	attrs := newRequestAttrs(req.Request)
	for _, k := range slices.Sorted(maps.Keys(l.DynamicTags)) {
		v, err := formatTag(l.DynamicTags[k], attrs)
		if err != nil {
			skipped[k] = err
			continue
		}
		tags[k] = v
	}
	maps.Copy(tags, req.Metadata)
	tags["Name"] = req.Hostname
	for k, v := range tags {
		if len(v) > maxTagValueLen {
			tags[k] = v[:maxTagValueLen]
		}
		if len(k) > maxTagKeyLen {
			delete(tags, k)
			skipped[k] = fmt.Errorf("tag key longer than %d characters", maxTagKeyLen)
		}
	}
	return tags, skipped
}

// ec2Tags converts a tag map to EC2 tags, sorted by key so that a repeated request is
// byte-for-byte the same (EC2 compares the arguments of idempotent requests).
func ec2Tags(tags map[string]string) []ec2types.Tag {
	out := make([]ec2types.Tag, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, ec2types.Tag{Key: awssdk.String(k), Value: awssdk.String(tags[k])})
	}
	return out
}

// tagMap converts EC2 tags to a map.
func tagMap(tags []ec2types.Tag) map[string]string {
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		out[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
	}
	return out
}
