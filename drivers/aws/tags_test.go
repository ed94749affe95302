package aws

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

func TestFormatTag(t *testing.T) {
	attrs := newRequestAttrs(drivers.RequestInfo{
		ID: "100-0000000001", Labels: []string{"ubuntu", "debian"}, Requestor: "zuul", RelativePriority: 2,
		RequestorData: json.RawMessage(`{"a":1}`), CreatedTime: 1700000000, TenantName: "openstack",
	})
	tests := []struct {
		tmpl    string
		want    string
		wantErr string
	}{
		{"{request.tenant_name}", "openstack", ""},
		{"tenant-{request.tenant_name}-{request.id}", "tenant-openstack-100-0000000001", ""},
		{"{request.labels}", "['ubuntu', 'debian']", ""},
		{"{request.relative_priority}", "2", ""},
		{"{request.created_time}", "1700000000.0", ""},
		{"{request.requestor_data}", `{"a":1}`, ""},
		{"{request.event_id}", "None", ""},
		{"{{literal}} {request.requestor}", "{literal} zuul", ""},
		{"plain", "plain", ""},
		{"{request.password}", "", "unknown field"},
		{"{tenant}", "", "unknown field"},
		{"{request.id", "", "unclosed"},
		{"oops}", "", "single '}'"},
	}
	for _, tc := range tests {
		t.Run(tc.tmpl, func(t *testing.T) {
			got, err := formatTag(tc.tmpl, attrs)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	// A min-ready request has no tenant: upstream renders Python's None.
	got, err := formatTag("{request.tenant_name}", newRequestAttrs(drivers.RequestInfo{}))
	require.NoError(t, err)
	require.Equal(t, "None", got)
}

func TestInstanceTags(t *testing.T) {
	l := &Label{
		Tags:        map[string]string{"team": "ci", "Name": "user-name", drivers.MetaNodeID: "spoofed"},
		DynamicTags: map[string]string{"tenant": "{request.tenant_name}", "bad": "{nope}", "long": strings.Repeat("x", 300)},
	}
	req := request("0000000001", testPool, "jammy", 1)
	tags, skipped := instanceTags(l, req)
	require.Equal(t, map[string]string{
		"team":                   "ci",
		"Name":                   "np0000000001",
		"tenant":                 "openstack",
		"long":                   strings.Repeat("x", 256),
		drivers.MetaNodeID:       "0000000001",
		drivers.MetaPoolName:     testPool,
		drivers.MetaProviderName: testProvider,
	}, tags)
	require.Len(t, skipped, 1)
	require.Contains(t, skipped, "bad")

	// Tags are sent sorted, so a repeated request is identical.
	ec2 := ec2Tags(tags)
	for i := 1; i < len(ec2); i++ {
		require.Less(t, *ec2[i-1].Key, *ec2[i].Key)
	}
	require.Equal(t, tags, tagMap(ec2))
}

func TestExternalID(t *testing.T) {
	require.Equal(t, `{"instance":"i-0abc"}`, formatExternalID("i-0abc"))
	tests := []struct {
		in, want, wantErr string
	}{
		{`{"instance":"i-0abc"}`, "i-0abc", ""},
		{`{"instance": "i-0abc", "host": "h-1"}`, "i-0abc", ""},
		{"i-0abc", "i-0abc", ""},
		{`"i-0abc"`, "i-0abc", ""},
		{"", "", ""},
		{`{"host":"h-1"}`, "", "no instance id"},
		{`{"instance":`, "", "parsing external id"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseExternalID(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Equal(t, drivers.KindPermanent, drivers.KindOf(err))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestExternalIDs(t *testing.T) {
	tests := []struct {
		in      string
		want    externalID
		wantErr string
	}{
		{`{"instance":"i-0abc","host":"h-0def"}`, externalID{Instance: "i-0abc", Host: "h-0def"}, ""},
		{`{"host":"h-0def"}`, externalID{Host: "h-0def"}, ""},
		{`{"instance":"i-0abc"}`, externalID{Instance: "i-0abc"}, ""},
		{"i-0abc", externalID{Instance: "i-0abc"}, ""},
		{"", externalID{}, ""},
		{`{}`, externalID{}, "no instance or host id"},
		{`{"host":`, externalID{}, "parsing external id"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseExternalIDs(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Equal(t, drivers.KindPermanent, drivers.KindOf(err))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			if tc.in != "" && strings.HasPrefix(tc.in, "{") {
				require.Equal(t, tc.in, formatExternalIDs(got.Instance, got.Host), "upstream's form round-trips")
			}
		})
	}
}

func TestHostQuotaCode(t *testing.T) {
	tests := []struct{ instanceType, want string }{
		{"m5.large", "L-8B7BF662"},
		{"m5.24xlarge", "L-8B7BF662"},
		{"c5.large", "L-81657574"},
		{"c5n.large", "L-20F13EBD"},
		{"zz9.large", ""},
		{"m5", ""},
	}
	for _, tc := range tests {
		t.Run(tc.instanceType, func(t *testing.T) {
			require.Equal(t, tc.want, HostQuotaCode(tc.instanceType))
		})
	}
}

func TestQuotaCode(t *testing.T) {
	tests := []struct {
		instanceType string
		spot         bool
		want         string
	}{
		{"m5.large", false, QuotaStandardOnDemand},
		{"m5.large", true, QuotaStandardSpot},
		{"c7gn.xlarge", false, QuotaStandardOnDemand},
		{"t3.micro", true, QuotaStandardSpot},
		{"g4dn.xlarge", false, "L-DB2E81BA"},
		{"p3.2xlarge", true, "L-7212CCBC"},
		{"inf1.xlarge", false, "L-1945791B"},
		{"u-6tb1.metal", false, "L-43DA4232"},
		{"u-6tb1.metal", true, ""},
		{"x2idn.16xlarge", false, "L-7295265B"},
		{"mac1.metal", false, ""},
		{"weird", false, ""},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, QuotaCode(tc.instanceType, tc.spot), "%s spot=%v", tc.instanceType, tc.spot)
	}
}

func TestLabelOfferings(t *testing.T) {
	tests := []struct {
		name  string
		label Label
		want  []string
	}{
		{"on demand", Label{InstanceType: "m5.large"}, []string{"m5.large/on-demand"}},
		{"spot", Label{InstanceType: "m5.large", UseSpot: true}, []string{"m5.large/spot"}},
		{"types", Label{InstanceTypes: []string{"m5.large", "m6i.large"}}, []string{"m5.large/on-demand", "m6i.large/on-demand"}},
		{"spot with fallback", Label{InstanceTypes: []string{"m5.large", "m6i.large"}, UseSpot: true, OnDemandFallback: true},
			[]string{"m5.large/spot", "m6i.large/spot", "m5.large/on-demand", "m6i.large/on-demand"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range labelOfferings(&tc.label) {
				got = append(got, o.String())
			}
			require.Equal(t, tc.want, got)
		})
	}
}
