package ossim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/attachinterfaces"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/availabilityzones"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/limits"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

type fixture struct {
	srv     *Server
	url     string
	clock   *testenv.ManualClock
	compute *gophercloud.ServiceClient
	image   *gophercloud.ServiceClient
	network *gophercloud.ServiceClient
	volume  *gophercloud.ServiceClient
}

func passwordAuth(endpoint string) gophercloud.AuthOptions {
	return gophercloud.AuthOptions{
		IdentityEndpoint: endpoint + "/identity/v3", Username: "zuul", Password: "secret", DomainName: "Default",
		TenantName: "ci", AllowReauth: true,
	}
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	clock := testenv.NewManualClock(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))
	if opts.Clock == nil {
		opts.Clock = clock.Now
	}
	srv := New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ctx := context.Background()
	provider, err := openstack.AuthenticatedClient(ctx, passwordAuth(hs.URL))
	require.NoError(t, err)
	eo := gophercloud.EndpointOpts{Region: DefaultRegion}
	f := &fixture{srv: srv, url: hs.URL, clock: clock}
	f.compute, err = openstack.NewComputeV2(provider, eo)
	require.NoError(t, err)
	f.compute.Microversion = "2.79"
	f.image, err = openstack.NewImageV2(provider, eo)
	require.NoError(t, err)
	f.network, err = openstack.NewNetworkV2(provider, eo)
	require.NoError(t, err)
	f.volume, err = openstack.NewBlockStorageV3(provider, eo)
	require.NoError(t, err)
	return f
}

func (f *fixture) create(t *testing.T, name string, mutate func(*servers.CreateOpts)) *servers.Server {
	t.Helper()
	opts := servers.CreateOpts{
		Name: name, FlavorRef: "3", ImageRef: ImageUbuntuJammy, Networks: []servers.Network{{UUID: NetworkPrivate}},
		Metadata: map[string]string{"nodepool_node_id": name, "nodepool_provider_name": "ossim"},
	}
	if mutate != nil {
		mutate(&opts)
	}
	sv, err := servers.Create(context.Background(), f.compute, opts, nil).Extract()
	require.NoError(t, err)
	require.NotEmpty(t, sv.ID)
	return sv
}

func (f *fixture) get(t *testing.T, id string) *servers.Server {
	t.Helper()
	sv, err := servers.Get(context.Background(), f.compute, id).Extract()
	require.NoError(t, err)
	return sv
}

func (f *fixture) list(t *testing.T, opts servers.ListOpts) []servers.Server {
	t.Helper()
	pages, err := servers.List(f.compute, opts).AllPages(context.Background())
	require.NoError(t, err)
	all, err := servers.ExtractServers(pages)
	require.NoError(t, err)
	return all
}

// raw sends an authenticated request outside gophercloud and decodes the JSON answer.
func (f *fixture) raw(t *testing.T, method, path string, header http.Header) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	require.NoError(t, err)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("X-Auth-Token", f.compute.TokenID)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(body, &out), "body %s", body)
	}
	return resp, out
}

func statusOf(t *testing.T, err error) int {
	t.Helper()
	require.Error(t, err)
	var ue gophercloud.ErrUnexpectedResponseCode
	require.True(t, errors.As(err, &ue), "not an HTTP error: %v", err)
	return ue.Actual
}

func TestAuthenticate(t *testing.T) {
	srv := New(Options{})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	tests := []struct {
		name        string
		opts        gophercloud.AuthOptions
		wantProject string
	}{
		{"password with names", gophercloud.AuthOptions{Username: "zuul", Password: "pw", DomainName: "Default", TenantName: "ci"}, "ci"},
		{"password with ids", gophercloud.AuthOptions{UserID: "u1", Password: "pw", TenantID: "0123456789abcdef0123456789abcdef"}, "0123456789abcdef0123456789abcdef"},
		{"application credential", gophercloud.AuthOptions{ApplicationCredentialID: "ac1", ApplicationCredentialSecret: "s"}, DefaultProject},
		{"application credential by name", gophercloud.AuthOptions{ApplicationCredentialName: "ac", Username: "zuul", DomainName: "Default", ApplicationCredentialSecret: "s"}, DefaultProject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tc.opts.IdentityEndpoint = hs.URL + "/identity/v3"
			provider, err := openstack.NewClient(tc.opts.IdentityEndpoint)
			require.NoError(t, err)
			require.NoError(t, openstack.Authenticate(ctx, provider, tc.opts))
			require.NotEmpty(t, provider.Token())
			assert.Contains(t, srv.Projects(), tc.wantProject)
			for _, newClient := range []func(*gophercloud.ProviderClient, gophercloud.EndpointOpts) (*gophercloud.ServiceClient, error){
				openstack.NewComputeV2, openstack.NewImageV2, openstack.NewNetworkV2, openstack.NewBlockStorageV3,
			} {
				for _, avail := range []gophercloud.Availability{gophercloud.AvailabilityPublic, gophercloud.AvailabilityInternal} {
					sc, err := newClient(provider, gophercloud.EndpointOpts{Region: DefaultRegion, Availability: avail})
					require.NoError(t, err)
					assert.True(t, strings.HasPrefix(sc.Endpoint, hs.URL+"/"), sc.Endpoint)
				}
			}
			_, err = openstack.NewComputeV2(provider, gophercloud.EndpointOpts{Region: "Elsewhere"})
			require.Error(t, err)
		})
	}
}

func TestAuthenticateRefuses(t *testing.T) {
	hs := httptest.NewServer(New(Options{}))
	defer hs.Close()
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantMsg    string
	}{
		{"not json", `{`, 400, "Malformed request body"},
		{"no methods", `{"auth":{"identity":{"methods":[]}}}`, 400, "'methods' is a required property"},
		{"unknown method", `{"auth":{"identity":{"methods":["kerberos"]}}}`, 401, "requires authentication"},
		{"empty password", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"zuul","domain":{"name":"Default"}}}}}}`, 401, "requires authentication"},
		{"user name without domain", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"zuul","password":"pw"}}}}}`, 400, "Expecting to find domain in user"},
		{"project name without domain", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"u","password":"pw"}}},"scope":{"project":{"name":"ci"}}}}`, 400, "Expecting to find domain in project"},
		{"application credential without secret", `{"auth":{"identity":{"methods":["application_credential"],"application_credential":{"id":"ac"}}}}`, 401, "requires authentication"},
		{"unknown token", `{"auth":{"identity":{"methods":["token"],"token":{"id":"nope"}}}}`, 404, "Could not find token: nope."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(hs.URL+"/identity/v3/auth/tokens", "application/json", strings.NewReader(tc.body))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tc.wantStatus, resp.StatusCode)
			assert.Empty(t, resp.Header.Get("X-Subject-Token"))
			var body struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, tc.wantStatus, body.Error.Code)
			assert.Contains(t, body.Error.Message, tc.wantMsg)
		})
	}
}

func TestAuthenticateWithToken(t *testing.T) {
	hs := httptest.NewServer(New(Options{}))
	defer hs.Close()
	ctx := context.Background()
	provider, err := openstack.AuthenticatedClient(ctx, passwordAuth(hs.URL))
	require.NoError(t, err)
	scoped, err := openstack.NewClient(hs.URL + "/identity/v3")
	require.NoError(t, err)
	require.NoError(t, openstack.Authenticate(ctx, scoped, gophercloud.AuthOptions{
		IdentityEndpoint: hs.URL + "/identity/v3", TokenID: provider.Token(), Scope: &gophercloud.AuthScope{ProjectName: "ci", DomainName: "Default"},
	}))
	assert.NotEqual(t, provider.Token(), scoped.Token())
	passthrough, err := openstack.NewClient(hs.URL + "/identity/v3")
	require.NoError(t, err)
	require.NoError(t, openstack.Authenticate(ctx, passthrough, gophercloud.AuthOptions{IdentityEndpoint: hs.URL + "/identity/v3", TokenID: provider.Token()}))
	compute, err := openstack.NewComputeV2(passthrough, gophercloud.EndpointOpts{})
	require.NoError(t, err)
	_, err = limits.Get(ctx, compute, nil).Extract()
	require.NoError(t, err)
}

func TestVersionlessAuthURL(t *testing.T) {
	hs := httptest.NewServer(New(Options{}))
	defer hs.Close()
	opts := passwordAuth(hs.URL)
	opts.IdentityEndpoint = hs.URL + "/identity"
	provider, err := openstack.AuthenticatedClient(context.Background(), opts)
	require.NoError(t, err)
	require.NotEmpty(t, provider.Token())
}

func TestServerLifecycle(t *testing.T) {
	f := newFixture(t, Options{BootTime: 30 * time.Second, DeleteTime: 10 * time.Second})
	ctx := context.Background()
	cd := true
	created := f.create(t, "np0000000001", func(o *servers.CreateOpts) {
		o.UserData = []byte("#!/bin/sh\necho hi\n")
		o.ConfigDrive = &cd
		o.SecurityGroups = []string{"ci"}
		o.AvailabilityZone = DefaultAZ
	})
	assert.Equal(t, int64(1), f.srv.CreationsByNode()["np0000000001"])

	sv := f.get(t, created.ID)
	assert.Equal(t, "BUILD", sv.Status)
	assert.Equal(t, "np0000000001", sv.Name)
	assert.Equal(t, "np0000000001", sv.Metadata["nodepool_node_id"])
	assert.Equal(t, "m1.medium", sv.Flavor["original_name"])
	assert.EqualValues(t, 2, sv.Flavor["vcpus"])
	assert.Equal(t, ImageUbuntuJammy, sv.Image["id"])
	assert.True(t, sv.ConfigDrive)
	assert.Equal(t, DefaultAZ, sv.AvailabilityZone)
	assert.Equal(t, time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC), sv.Created)
	require.Contains(t, sv.Addresses, "private")
	addr := sv.Addresses["private"].([]any)[0].(map[string]any)
	assert.Equal(t, "fixed", addr["OS-EXT-IPS:type"])
	assert.True(t, strings.HasPrefix(addr["addr"].(string), "10."), addr["addr"])

	f.clock.Advance(30 * time.Second)
	sv = f.get(t, created.ID)
	assert.Equal(t, "ACTIVE", sv.Status)
	assert.Equal(t, 1, int(sv.PowerState))
	assert.False(t, sv.LaunchedAt.IsZero())

	ifaces, err := attachinterfaces.List(f.compute, created.ID).AllPages(ctx)
	require.NoError(t, err)
	ia, err := attachinterfaces.ExtractInterfaces(ifaces)
	require.NoError(t, err)
	require.Len(t, ia, 1)
	assert.Equal(t, NetworkPrivate, ia[0].NetID)
	assert.Equal(t, addr["addr"], ia[0].FixedIPs[0].IPAddress)

	f.create(t, "np0000000002", nil)
	f.create(t, "other-host", func(o *servers.CreateOpts) { o.Metadata = nil })
	tests := []struct {
		name string
		opts servers.ListOpts
		want []string
	}{
		{"all newest first", servers.ListOpts{}, []string{"other-host", "np0000000002", "np0000000001"}},
		{"name regex", servers.ListOpts{Name: "^np0+"}, []string{"np0000000002", "np0000000001"}},
		{"name substring", servers.ListOpts{Name: "host"}, []string{"other-host"}},
		{"status", servers.ListOpts{Status: "ACTIVE"}, []string{"np0000000001"}},
		{"paginated", servers.ListOpts{Limit: 1}, []string{"other-host", "np0000000002", "np0000000001"}},
		{"flavor", servers.ListOpts{Flavor: "1"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			for _, s := range f.list(t, tc.opts) {
				names = append(names, s.Name)
			}
			assert.Equal(t, tc.want, names)
		})
	}

	require.NoError(t, servers.Delete(ctx, f.compute, created.ID).ExtractErr())
	resp, body := f.raw(t, http.MethodGet, "/compute/v2.1/servers/"+created.ID, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "deleting", body["server"].(map[string]any)["OS-EXT-STS:task_state"])
	assert.Equal(t, 1, f.srv.Stats().Servers["DELETING"])
	require.NoError(t, servers.Delete(ctx, f.compute, created.ID).ExtractErr(), "deleting twice is accepted")

	f.clock.Advance(10 * time.Second)
	_, err = servers.Get(ctx, f.compute, created.ID).Extract()
	assert.True(t, gophercloud.ResponseCodeIs(err, http.StatusNotFound), "got %v", err)
	assert.Len(t, f.list(t, servers.ListOpts{}), 2)
	err = servers.Delete(ctx, f.compute, created.ID).ExtractErr()
	assert.True(t, gophercloud.ResponseCodeIs(err, http.StatusNotFound), "got %v", err)

	st := f.srv.Stats()
	assert.Equal(t, int64(3), st.Created)
	assert.Equal(t, 2, st.NodesCreated)
	assert.Equal(t, map[string]int{"BUILD": 2}, st.Servers)
	assert.Equal(t, int64(1), st.Calls["CreateServer"]-2)
}

func TestCreateServerValidation(t *testing.T) {
	tests := []struct {
		name       string
		limits     Limits
		unmanaged  int
		mutate     func(*servers.CreateOpts)
		wantStatus int
		wantMsg    string
	}{
		{"unknown flavor", Limits{}, 0, func(o *servers.CreateOpts) { o.FlavorRef = "99" }, 400, "Flavor 99 could not be found."},
		{"unknown image", Limits{}, 0, func(o *servers.CreateOpts) { o.ImageRef = "nope" }, 400, "Image nope could not be found."},
		{"unknown network", Limits{}, 0, func(o *servers.CreateOpts) { o.Networks = []servers.Network{{UUID: "nope"}} }, 400, "Network nope could not be found."},
		{"unknown zone", Limits{}, 0, func(o *servers.CreateOpts) { o.AvailabilityZone = "mars" }, 400, "availability zone is not available"},
		{"no image and no boot volume", Limits{}, 0, func(o *servers.CreateOpts) { o.ImageRef = "" }, 400, "Block Device Mapping is Invalid"},
		{"cores quota", Limits{MaxCores: 4}, 2, nil, 403, "Quota exceeded for cores: Requested 2, but already used 4 of 4 cores"},
		{"instances quota", Limits{MaxInstances: 2}, 2, nil, 403, "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"},
		{"ram quota", Limits{MaxRAM: 4096}, 0, func(o *servers.CreateOpts) { o.FlavorRef = "5" }, 403, "Quota exceeded for ram: Requested 16384, but already used 0 of 4096 ram"},
		{"unlimited", Limits{MaxInstances: -1, MaxCores: -1, MaxRAM: -1}, 3, nil, 202, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{Limits: tc.limits})
			for range tc.unmanaged {
				f.srv.AddUnmanagedServer("mirror", "m1.medium")
			}
			opts := servers.CreateOpts{Name: "np1", FlavorRef: "3", ImageRef: ImageUbuntuJammy}
			if tc.mutate != nil {
				tc.mutate(&opts)
			}
			sv, err := servers.Create(context.Background(), f.compute, opts, nil).Extract()
			if tc.wantStatus == http.StatusAccepted {
				require.NoError(t, err)
				require.NotEmpty(t, sv.ID)
				return
			}
			require.Equal(t, tc.wantStatus, statusOf(t, err))
			var ue gophercloud.ErrUnexpectedResponseCode
			require.True(t, errors.As(err, &ue))
			assert.Contains(t, string(ue.Body), tc.wantMsg)
			key := map[int]string{400: "badRequest", 403: "forbidden"}[tc.wantStatus]
			var body map[string]map[string]any
			require.NoError(t, json.Unmarshal(ue.Body, &body))
			assert.EqualValues(t, tc.wantStatus, body[key]["code"])
		})
	}
}

func TestCatalogsAndLimits(t *testing.T) {
	f := newFixture(t, Options{Limits: Limits{MaxInstances: 10}})
	ctx := context.Background()
	f.srv.AddUnmanagedServer("mirror", "m1.large")
	f.create(t, "np1", nil)

	lim, err := limits.Get(ctx, f.compute, nil).Extract()
	require.NoError(t, err)
	assert.Equal(t, 10, lim.Absolute.MaxTotalInstances)
	assert.Equal(t, DefaultLimits.MaxCores, lim.Absolute.MaxTotalCores)
	assert.Equal(t, DefaultLimits.MaxRAM, lim.Absolute.MaxTotalRAMSize)
	assert.Equal(t, 2, lim.Absolute.TotalInstancesUsed)
	assert.Equal(t, 6, lim.Absolute.TotalCoresUsed)
	assert.Equal(t, 8192+4096, lim.Absolute.TotalRAMUsed)

	f.srv.SetLimits(Limits{MaxCores: 5})
	lim, err = limits.Get(ctx, f.compute, nil).Extract()
	require.NoError(t, err)
	assert.Equal(t, 5, lim.Absolute.MaxTotalCores)
	assert.Equal(t, DefaultLimits.MaxInstances, lim.Absolute.MaxTotalInstances)

	pages, err := flavors.ListDetail(f.compute, nil).AllPages(ctx)
	require.NoError(t, err)
	fls, err := flavors.ExtractFlavors(pages)
	require.NoError(t, err)
	require.Len(t, fls, len(DefaultFlavors))
	assert.Equal(t, "m1.tiny", fls[0].Name)
	assert.Equal(t, 512, fls[0].RAM)
	fl, err := flavors.Get(ctx, f.compute, "4").Extract()
	require.NoError(t, err)
	assert.Equal(t, 4, fl.VCPUs)
	_, err = flavors.Get(ctx, f.compute, "nope").Extract()
	assert.True(t, gophercloud.ResponseCodeIs(err, http.StatusNotFound))

	azPages, err := availabilityzones.List(f.compute).AllPages(ctx)
	require.NoError(t, err)
	azs, err := availabilityzones.ExtractAvailabilityZones(azPages)
	require.NoError(t, err)
	require.Len(t, azs, 1)
	assert.Equal(t, DefaultAZ, azs[0].ZoneName)

	imageTests := []struct {
		name string
		opts images.ListOpts
		want []string
	}{
		{"all", images.ListOpts{}, []string{"ubuntu-jammy", "debian-bookworm", "centos-9-stream"}},
		{"by name", images.ListOpts{Name: "debian-bookworm"}, []string{"debian-bookworm"}},
		{"paginated", images.ListOpts{Limit: 2}, []string{"ubuntu-jammy", "debian-bookworm", "centos-9-stream"}},
		{"unknown name", images.ListOpts{Name: "windows"}, nil},
	}
	for _, tc := range imageTests {
		t.Run("images "+tc.name, func(t *testing.T) {
			pages, err := images.List(f.image, tc.opts).AllPages(ctx)
			require.NoError(t, err)
			ims, err := images.ExtractImages(pages)
			require.NoError(t, err)
			var names []string
			for _, im := range ims {
				names = append(names, im.Name)
			}
			assert.Equal(t, tc.want, names)
		})
	}
	im, err := images.Get(ctx, f.image, ImageCentOS9Stream).Extract()
	require.NoError(t, err)
	assert.Equal(t, "centos", im.Properties["os_distro"])
	assert.Equal(t, images.ImageStatusActive, im.Status)
	_, err = images.Get(ctx, f.image, "nope").Extract()
	assert.True(t, gophercloud.ResponseCodeIs(err, http.StatusNotFound))

	external := true
	netTests := []struct {
		name string
		opts networks.ListOpts
		want []string
	}{
		{"all", networks.ListOpts{}, []string{"public", "private"}},
		{"by name", networks.ListOpts{Name: "private"}, []string{"private"}},
	}
	for _, tc := range netTests {
		t.Run("networks "+tc.name, func(t *testing.T) {
			pages, err := networks.List(f.network, tc.opts).AllPages(ctx)
			require.NoError(t, err)
			nws, err := networks.ExtractNetworks(pages)
			require.NoError(t, err)
			var names []string
			for _, n := range nws {
				names = append(names, n.Name)
			}
			assert.Equal(t, tc.want, names)
		})
	}
	resp, body := f.raw(t, http.MethodGet, "/networking/v2.0/networks?router:external="+url.QueryEscape("True"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	nets := body["networks"].([]any)
	require.Len(t, nets, 1)
	assert.Equal(t, external, nets[0].(map[string]any)["router:external"])
}

func TestNoValidHost(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*Server) error
	}{
		{"one-shot", func(s *Server) error { s.InjectError("CreateServer", KindNoValidHost, 1); return nil }},
		{"rate", func(s *Server) error { return s.SetFaults(Faults{Errors: ErrorRates{NoValidHost: 1}}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{BootTime: time.Minute})
			require.NoError(t, tc.setup(f.srv))
			created := f.create(t, "np1", nil)
			sv := f.get(t, created.ID)
			assert.Equal(t, "ERROR", sv.Status)
			assert.Equal(t, 500, sv.Fault.Code)
			assert.Equal(t, noValidHostMessage, sv.Fault.Message)
			assert.Empty(t, sv.Addresses)
			assert.Equal(t, int64(1), f.srv.CreationsByNode()["np1"])
			require.NoError(t, servers.Delete(context.Background(), f.compute, created.ID).ExtractErr())
			f.clock.Advance(time.Second)
			assert.Empty(t, f.list(t, servers.ListOpts{}))
		})
	}
}

func TestFloatingIPLifecycle(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	created := f.create(t, "np1", nil)

	pages, err := ports.List(f.network, ports.ListOpts{DeviceID: created.ID}).AllPages(ctx)
	require.NoError(t, err)
	ps, err := ports.ExtractPorts(pages)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	p := ps[0]
	assert.Equal(t, NetworkPrivate, p.NetworkID)
	assert.Equal(t, "compute:"+DefaultAZ, p.DeviceOwner)

	errTests := []struct {
		name string
		opts floatingips.CreateOpts
		want int
	}{
		{"tenant network", floatingips.CreateOpts{FloatingNetworkID: NetworkPrivate}, http.StatusBadRequest},
		{"unknown network", floatingips.CreateOpts{FloatingNetworkID: "nope"}, http.StatusNotFound},
		{"unknown port", floatingips.CreateOpts{FloatingNetworkID: NetworkPublic, PortID: "nope"}, http.StatusNotFound},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := floatingips.Create(ctx, f.network, tc.opts).Extract()
			require.Equal(t, tc.want, statusOf(t, err))
			var ue gophercloud.ErrUnexpectedResponseCode
			require.True(t, errors.As(err, &ue))
			assert.Contains(t, string(ue.Body), "NeutronError")
		})
	}

	fip, err := floatingips.Create(ctx, f.network, floatingips.CreateOpts{FloatingNetworkID: NetworkPublic, PortID: p.ID}).Extract()
	require.NoError(t, err)
	assert.Equal(t, p.FixedIPs[0].IPAddress, fip.FixedIP)
	assert.Equal(t, "ACTIVE", fip.Status)
	assert.True(t, strings.HasPrefix(fip.FloatingIP, "172.24."), fip.FloatingIP)
	_, err = floatingips.Create(ctx, f.network, floatingips.CreateOpts{FloatingNetworkID: NetworkPublic, PortID: p.ID}).Extract()
	assert.Equal(t, http.StatusConflict, statusOf(t, err))

	sv := f.get(t, created.ID)
	var kinds []string
	for _, a := range sv.Addresses["private"].([]any) {
		m := a.(map[string]any)
		kinds = append(kinds, m["OS-EXT-IPS:type"].(string)+"="+m["addr"].(string))
	}
	assert.Equal(t, []string{"fixed=" + p.FixedIPs[0].IPAddress, "floating=" + fip.FloatingIP}, kinds)

	listed := func(opts floatingips.ListOpts) []floatingips.FloatingIP {
		pages, err := floatingips.List(f.network, opts).AllPages(ctx)
		require.NoError(t, err)
		out, err := floatingips.ExtractFloatingIPs(pages)
		require.NoError(t, err)
		return out
	}
	require.Len(t, listed(floatingips.ListOpts{PortID: p.ID}), 1)
	require.Empty(t, listed(floatingips.ListOpts{PortID: "other"}))

	require.NoError(t, servers.Delete(ctx, f.compute, created.ID).ExtractErr())
	f.clock.Advance(time.Second)
	all := listed(floatingips.ListOpts{})
	require.Len(t, all, 1, "the floating IP outlives its server")
	assert.Empty(t, all[0].PortID)
	assert.Equal(t, "DOWN", all[0].Status)
	st := f.srv.Stats()
	assert.Equal(t, 1, st.FloatingIPs)
	assert.Equal(t, 0, st.FloatingIPsAttached)

	require.NoError(t, floatingips.Delete(ctx, f.network, fip.ID).ExtractErr())
	assert.Empty(t, listed(floatingips.ListOpts{}))
	err = floatingips.Delete(ctx, f.network, fip.ID).ExtractErr()
	assert.True(t, gophercloud.ResponseCodeIs(err, http.StatusNotFound))
}

func TestFloatingIPUpdate(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	created := f.create(t, "np1", nil)
	fip, err := floatingips.Create(ctx, f.network, floatingips.CreateOpts{FloatingNetworkID: NetworkPublic}).Extract()
	require.NoError(t, err)
	assert.Equal(t, "DOWN", fip.Status)
	pages, err := ports.List(f.network, ports.ListOpts{DeviceID: created.ID}).AllPages(ctx)
	require.NoError(t, err)
	ps, err := ports.ExtractPorts(pages)
	require.NoError(t, err)
	fip, err = floatingips.Update(ctx, f.network, fip.ID, floatingips.UpdateOpts{PortID: &ps[0].ID}).Extract()
	require.NoError(t, err)
	assert.Equal(t, ps[0].ID, fip.PortID)
	fip, err = floatingips.Update(ctx, f.network, fip.ID, floatingips.UpdateOpts{PortID: new(string)}).Extract()
	require.NoError(t, err)
	assert.Empty(t, fip.PortID)
}

func TestBootFromVolume(t *testing.T) {
	f := newFixture(t, Options{DeleteTime: 5 * time.Second})
	ctx := context.Background()
	created := f.create(t, "np1", func(o *servers.CreateOpts) {
		o.ImageRef = ""
		o.BlockDevice = []servers.BlockDevice{
			{SourceType: servers.SourceImage, DestinationType: servers.DestinationVolume, UUID: ImageDebianBookworm, VolumeSize: 40, DeleteOnTermination: true},
			{SourceType: servers.SourceBlank, DestinationType: servers.DestinationVolume, VolumeSize: 10, BootIndex: 1},
		}
	})
	listVolumes := func(opts volumes.ListOpts) []volumes.Volume {
		pages, err := volumes.List(f.volume, opts).AllPages(ctx)
		require.NoError(t, err)
		vs, err := volumes.ExtractVolumes(pages)
		require.NoError(t, err)
		return vs
	}
	vs := listVolumes(volumes.ListOpts{})
	require.Len(t, vs, 2)
	byBoot := map[string]volumes.Volume{}
	for _, v := range vs {
		byBoot[v.Bootable] = v
		assert.Equal(t, "in-use", v.Status)
		assert.Equal(t, "np1", v.Metadata["nodepool_node_id"])
		require.Len(t, v.Attachments, 1)
		assert.Equal(t, created.ID, v.Attachments[0].ServerID)
	}
	assert.Equal(t, 40, byBoot["true"].Size)
	assert.Equal(t, ImageDebianBookworm, byBoot["true"].VolumeImageMetadata["image_id"])
	assert.Equal(t, 10, byBoot["false"].Size)
	assert.Len(t, listVolumes(volumes.ListOpts{Metadata: map[string]string{"nodepool_node_id": "np1"}}), 2)
	assert.Empty(t, listVolumes(volumes.ListOpts{Metadata: map[string]string{"nodepool_node_id": "np2"}}))

	sv := f.get(t, created.ID)
	assert.Nil(t, sv.Image)
	assert.Len(t, sv.AttachedVolumes, 2)

	err := volumes.Delete(ctx, f.volume, byBoot["true"].ID, nil).ExtractErr()
	assert.Equal(t, http.StatusBadRequest, statusOf(t, err))

	require.NoError(t, servers.Delete(ctx, f.compute, created.ID).ExtractErr())
	f.clock.Advance(5 * time.Second)
	vs = listVolumes(volumes.ListOpts{})
	require.Len(t, vs, 1, "the delete-on-termination volume goes with the server")
	assert.Equal(t, byBoot["false"].ID, vs[0].ID)
	assert.Equal(t, "available", vs[0].Status)
	assert.Empty(t, vs[0].Attachments)

	require.NoError(t, volumes.Delete(ctx, f.volume, vs[0].ID, nil).ExtractErr())
	assert.Empty(t, listVolumes(volumes.ListOpts{}))
	_, err = volumes.Get(ctx, f.volume, vs[0].ID).Extract()
	assert.True(t, gophercloud.ResponseCodeIs(err, http.StatusNotFound))
}

func TestInjectedErrors(t *testing.T) {
	tests := []struct {
		name       string
		op, kind   string
		call       func(f *fixture) error
		wantStatus int
		wantBody   string
		retryAfter bool
	}{
		{"rate limit", "ListServers", KindRateLimit, func(f *fixture) error {
			_, err := servers.List(f.compute, nil).AllPages(context.Background())
			return err
		}, http.StatusTooManyRequests, `"overLimit"`, true},
		{"over limit", "GetLimits", KindOverLimit, func(f *fixture) error {
			_, err := limits.Get(context.Background(), f.compute, nil).Extract()
			return err
		}, http.StatusRequestEntityTooLarge, `"retryAfter"`, true},
		{"internal", "CreateServer", KindInternal, func(f *fixture) error {
			_, err := servers.Create(context.Background(), f.compute, servers.CreateOpts{Name: "x", FlavorRef: "1", ImageRef: ImageUbuntuJammy}, nil).Extract()
			return err
		}, http.StatusInternalServerError, `"computeFault"`, false},
		{"quota", "CreateServer", KindQuota, func(f *fixture) error {
			_, err := servers.Create(context.Background(), f.compute, servers.CreateOpts{Name: "x", FlavorRef: "1", ImageRef: ImageUbuntuJammy}, nil).Extract()
			return err
		}, http.StatusForbidden, "Quota exceeded for cores", false},
		{"unavailable", "ListFloatingIPs", KindUnavailable, func(f *fixture) error {
			_, err := floatingips.List(f.network, nil).AllPages(context.Background())
			return err
		}, http.StatusServiceUnavailable, `"NeutronError"`, false},
		{"image internal", "ListImages", KindInternal, func(f *fixture) error {
			_, err := images.List(f.image, nil).AllPages(context.Background())
			return err
		}, http.StatusInternalServerError, "500 Internal Server Error", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			f.srv.InjectError(tc.op, tc.kind, 1)
			err := tc.call(f)
			require.Equal(t, tc.wantStatus, statusOf(t, err))
			var ue gophercloud.ErrUnexpectedResponseCode
			require.True(t, errors.As(err, &ue))
			assert.Contains(t, string(ue.Body), tc.wantBody)
			if tc.retryAfter {
				assert.Equal(t, "1", ue.ResponseHeader.Get("Retry-After"))
			}
			require.NoError(t, tc.call(f), "the injected error is one-shot")
			assert.Equal(t, int64(1), f.srv.Stats().Errors[tc.kind])
		})
	}
}

func TestErrorRates(t *testing.T) {
	f := newFixture(t, Options{Seed: 7})
	ctx := context.Background()
	require.NoError(t, f.srv.SetFaults(Faults{Errors: ErrorRates{RateLimit: 0.5}}))
	failed := 0
	for range 40 {
		if _, err := limits.Get(ctx, f.compute, nil).Extract(); err != nil {
			require.Equal(t, http.StatusTooManyRequests, statusOf(t, err))
			failed++
		}
	}
	assert.Greater(t, failed, 5)
	assert.Less(t, failed, 35)

	require.Error(t, f.srv.SetFaults(Faults{Errors: ErrorRates{Internal: 1.5}}))
	require.Error(t, f.srv.SetFaults(Faults{Delays: map[string]float64{"GetLimits": -1}}))
	require.NoError(t, f.srv.SetFaults(Faults{}))
	_, err := limits.Get(ctx, f.compute, nil).Extract()
	require.NoError(t, err)
}

func TestErrorRatesReachAuthentication(t *testing.T) {
	srv := New(Options{Errors: ErrorRates{Internal: 1}})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	_, err := openstack.AuthenticatedClient(context.Background(), passwordAuth(hs.URL))
	require.Equal(t, http.StatusInternalServerError, statusOf(t, err))
	var ue gophercloud.ErrUnexpectedResponseCode
	require.True(t, errors.As(err, &ue))
	assert.Contains(t, string(ue.Body), `"error"`)

	resp, err := http.Get(hs.URL + "/identity/v3")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode, "version documents are spared")
}

func TestTokenExpiryReauthenticates(t *testing.T) {
	tests := []struct {
		name   string
		expire func(f *fixture)
	}{
		{"ttl passed", func(f *fixture) { f.clock.Advance(DefaultTokenTTL + time.Second) }},
		{"tokens expired", func(f *fixture) { f.srv.ExpireTokens() }},
		{"injected 401", func(f *fixture) { f.srv.InjectError("ListServers", KindUnauthorized, 1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			old := f.compute.TokenID
			require.Equal(t, int64(1), f.srv.Calls("Authenticate"))
			tc.expire(f)
			assert.Empty(t, f.list(t, servers.ListOpts{}))
			assert.Equal(t, int64(2), f.srv.Calls("Authenticate"))
			assert.NotEqual(t, old, f.compute.TokenID)
			assert.Equal(t, int64(2), f.srv.Calls("ListServers"), "the refused call and its retry")
		})
	}

	t.Run("without reauth", func(t *testing.T) {
		f := newFixture(t, Options{})
		resp, body := f.raw(t, http.MethodGet, "/compute/v2.1/servers/detail", http.Header{})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		f.srv.ExpireTokens()
		resp, body = f.raw(t, http.MethodGet, "/compute/v2.1/servers/detail", nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.EqualValues(t, 401, body["error"].(map[string]any)["code"])
	})
}

func TestProtocolDetails(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		name       string
		method     string
		path       string
		header     http.Header
		wantStatus int
		check      func(t *testing.T, resp *http.Response, body map[string]any)
	}{
		{"microversion echoed", http.MethodGet, "/compute/v2.1/servers", http.Header{"X-Openstack-Nova-Api-Version": {"2.79"}}, 200,
			func(t *testing.T, resp *http.Response, _ map[string]any) {
				assert.Equal(t, "2.79", resp.Header.Get("X-OpenStack-Nova-API-Version"))
				assert.Equal(t, "compute 2.79", resp.Header.Get("OpenStack-API-Version"))
			}},
		{"latest microversion", http.MethodGet, "/compute/v2.1/flavors", http.Header{"Openstack-Api-Version": {"compute latest"}}, 200,
			func(t *testing.T, resp *http.Response, _ map[string]any) {
				assert.Equal(t, maxMicroversion, resp.Header.Get("X-OpenStack-Nova-API-Version"))
			}},
		{"unsupported microversion", http.MethodGet, "/compute/v2.1/servers", http.Header{"X-Openstack-Nova-Api-Version": {"2.200"}}, 406,
			func(t *testing.T, _ *http.Response, body map[string]any) {
				assert.Equal(t, "Version 2.200 is not supported by the API. Minimum is 2.1 and maximum is 2.96.",
					body["notAcceptable"].(map[string]any)["message"])
			}},
		{"malformed microversion", http.MethodGet, "/compute/v2.1/servers", http.Header{"X-Openstack-Nova-Api-Version": {"two"}}, 400, nil},
		{"unknown compute path", http.MethodGet, "/compute/v2.1/os-hypervisors", nil, 404,
			func(t *testing.T, _ *http.Response, body map[string]any) { assert.Contains(t, body, "itemNotFound") }},
		{"unknown service", http.MethodGet, "/object-store/v1", nil, 404,
			func(t *testing.T, _ *http.Response, body map[string]any) { assert.Contains(t, body, "error") }},
		{"unknown server", http.MethodGet, "/compute/v2.1/servers/nope", nil, 404,
			func(t *testing.T, _ *http.Response, body map[string]any) {
				assert.Equal(t, "Instance nope could not be found.", body["itemNotFound"].(map[string]any)["message"])
			}},
		{"bad marker", http.MethodGet, "/compute/v2.1/servers/detail?marker=nope", nil, 400, nil},
		{"bad name regex", http.MethodGet, "/compute/v2.1/servers/detail?name=(", nil, 400, nil},
		{"compute version", http.MethodGet, "/compute/v2.1/", nil, 200,
			func(t *testing.T, _ *http.Response, body map[string]any) {
				assert.Equal(t, maxMicroversion, body["version"].(map[string]any)["version"])
			}},
		{"token validation", http.MethodGet, "/identity/v3/auth/tokens", nil, 200, nil},
		{"network versions", http.MethodGet, "/networking/", nil, 200, nil},
		{"volume versions", http.MethodGet, "/volume/", nil, 300, nil},
		{"volume version", http.MethodGet, "/volume/v3/", nil, 200,
			func(t *testing.T, _ *http.Response, body map[string]any) {
				assert.Equal(t, "v3.0", body["version"].(map[string]any)["id"])
			}},
		{"image versions", http.MethodGet, "/image/v2/", nil, 200,
			func(t *testing.T, _ *http.Response, body map[string]any) { assert.Len(t, body["versions"], 1) }},
		{"network resources", http.MethodGet, "/networking/v2.0/", nil, 200,
			func(t *testing.T, _ *http.Response, body map[string]any) { assert.Len(t, body["resources"], 4) }},
		{"identity versions", http.MethodGet, "/identity/", nil, 300, nil},
		{"unknown network path", http.MethodGet, "/networking/v2.0/routers", nil, 404,
			func(t *testing.T, _ *http.Response, body map[string]any) { assert.Contains(t, body, "NeutronError") }},
		{"unknown image", http.MethodGet, "/image/v2/images/nope", nil, 404, nil},
		{"unknown volume", http.MethodDelete, "/volume/v3/p/volumes/nope", nil, 404,
			func(t *testing.T, _ *http.Response, body map[string]any) { assert.Contains(t, body, "itemNotFound") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header.Clone()
			if tc.name == "token validation" {
				h = http.Header{"X-Subject-Token": {f.compute.TokenID}}
			}
			resp, body := f.raw(t, tc.method, tc.path, h)
			require.Equal(t, tc.wantStatus, resp.StatusCode)
			if tc.check != nil {
				tc.check(t, resp, body)
			}
		})
	}
}

func TestSSHAddr(t *testing.T) {
	f := newFixture(t, Options{SSHAddr: "127.0.0.1:2222"})
	ctx := context.Background()
	created := f.create(t, "np1", nil)
	f.create(t, "np2", nil)
	sv := f.get(t, created.ID)
	assert.Equal(t, "127.0.0.1", sv.Addresses["private"].([]any)[0].(map[string]any)["addr"])
	fip, err := floatingips.Create(ctx, f.network, floatingips.CreateOpts{FloatingNetworkID: NetworkPublic}).Extract()
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", fip.FloatingIP)
}

func TestDelay(t *testing.T) {
	f := newFixture(t, Options{})
	f.srv.SetDelay("GetLimits", 150*time.Millisecond)
	assert.Equal(t, 0.15, f.srv.Faults().Delays["GetLimits"])
	start := time.Now()
	_, err := limits.Get(context.Background(), f.compute, nil).Extract()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
}

func TestAdminEndpoints(t *testing.T) {
	f := newFixture(t, Options{})
	f.create(t, "np1", nil)
	post := func(path, contentType, body string) *http.Response {
		resp, err := http.Post(f.url+path, contentType, strings.NewReader(body))
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		return resp
	}
	put := func(path, body string) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodPut, f.url+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, b
	}
	getJSON := func(path string, v any) int {
		resp, err := http.Get(f.url + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
		}
		return resp.StatusCode
	}

	var st Stats
	require.Equal(t, 200, getJSON("/_stats", &st))
	assert.Equal(t, int64(1), st.Calls["CreateServer"])
	assert.Equal(t, map[string]int64{"ci": 1}, st.Projects)
	var creations map[string]int64
	require.Equal(t, 200, getJSON("/_creations", &creations))
	assert.Equal(t, map[string]int64{"np1": 1}, creations)

	injectTests := []struct {
		name, form string
		want       int
	}{
		{"valid", "op=GetLimits&kind=Internal&count=2", http.StatusNoContent},
		{"missing kind", "op=GetLimits", http.StatusBadRequest},
		{"unknown kind", "op=GetLimits&kind=Meteor", http.StatusBadRequest},
		{"bad count", "op=GetLimits&kind=Internal&count=0", http.StatusBadRequest},
	}
	for _, tc := range injectTests {
		t.Run("inject "+tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, post("/_inject", "application/x-www-form-urlencoded", tc.form).StatusCode)
		})
	}
	for range 2 {
		_, err := limits.Get(context.Background(), f.compute, nil).Extract()
		assert.Equal(t, http.StatusInternalServerError, statusOf(t, err))
	}
	_, err := limits.Get(context.Background(), f.compute, nil).Extract()
	require.NoError(t, err)

	faultTests := []struct {
		name, body string
		want       int
	}{
		{"valid", `{"errors":{"rate_limit":0.25,"no_valid_host":0.1},"delays":{"ListServers":0.5}}`, 200},
		{"out of range", `{"errors":{"internal":2}}`, 400},
		{"unknown field", `{"errors":{"meteor":0.1}}`, 400},
	}
	for _, tc := range faultTests {
		t.Run("faults "+tc.name, func(t *testing.T) {
			resp, _ := put("/_faults", tc.body)
			assert.Equal(t, tc.want, resp.StatusCode)
		})
	}
	var faults Faults
	require.Equal(t, 200, getJSON("/_faults", &faults))
	assert.Equal(t, Faults{Errors: ErrorRates{RateLimit: 0.25, NoValidHost: 0.1}, Delays: map[string]float64{"ListServers": 0.5}}, faults)

	resp, body := put("/_limits", `{"max_cores":8}`)
	require.Equal(t, 200, resp.StatusCode)
	assert.JSONEq(t, `{"max_instances":100,"max_cores":8,"max_ram":512000}`, string(body))

	assert.Equal(t, http.StatusNoContent, post("/_tokens/expire", "", "").StatusCode)
	r, _ := f.raw(t, http.MethodGet, "/compute/v2.1/limits", nil)
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode)

	assert.Equal(t, http.StatusNoContent, post("/_stats/reset", "", "").StatusCode)
	var reset Stats
	require.Equal(t, 200, getJSON("/_stats", &reset))
	assert.Empty(t, reset.Calls)
	assert.Equal(t, map[string]int{"ACTIVE": 1}, reset.Servers)
	assert.Equal(t, 404, getJSON("/_nothing", &st))
}

func TestBlockDeviceValidation(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	// A volume left behind by a server whose mapping kept it.
	kept := f.create(t, "np-keep", func(o *servers.CreateOpts) {
		o.BlockDevice = []servers.BlockDevice{{SourceType: servers.SourceBlank, DestinationType: servers.DestinationVolume, VolumeSize: 5, BootIndex: 1}}
	})
	attached := f.get(t, kept.ID).AttachedVolumes
	require.Len(t, attached, 1)
	volumeID := attached[0].ID

	tests := []struct {
		name    string
		bds     []servers.BlockDevice
		wantMsg string
	}{
		{"image without size", []servers.BlockDevice{{SourceType: servers.SourceImage, DestinationType: servers.DestinationVolume, UUID: ImageUbuntuJammy}}, "need to have a non-zero size"},
		{"unknown image", []servers.BlockDevice{{SourceType: servers.SourceImage, DestinationType: servers.DestinationVolume, UUID: "nope", VolumeSize: 10}}, "Image nope could not be found."},
		{"blank without size", []servers.BlockDevice{{SourceType: servers.SourceBlank, DestinationType: servers.DestinationVolume, BootIndex: 1}}, "Block Device Mapping is Invalid"},
		{"unknown volume", []servers.BlockDevice{{SourceType: servers.SourceVolume, DestinationType: servers.DestinationVolume, UUID: "nope"}}, "failed to get volume nope"},
		{"volume in use", []servers.BlockDevice{{SourceType: servers.SourceVolume, DestinationType: servers.DestinationVolume, UUID: volumeID}}, "status must be 'available'"},
		{"snapshot", []servers.BlockDevice{{SourceType: servers.SourceSnapshot, DestinationType: servers.DestinationVolume, UUID: "s"}}, "is not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := servers.Create(ctx, f.compute, servers.CreateOpts{Name: "x", FlavorRef: "1", BlockDevice: tc.bds}, nil).Extract()
			require.Equal(t, http.StatusBadRequest, statusOf(t, err))
			var ue gophercloud.ErrUnexpectedResponseCode
			require.True(t, errors.As(err, &ue))
			assert.Contains(t, string(ue.Body), tc.wantMsg)
		})
	}

	require.NoError(t, servers.Delete(ctx, f.compute, kept.ID).ExtractErr())
	v, err := volumes.Get(ctx, f.volume, volumeID).Extract()
	require.NoError(t, err)
	assert.Equal(t, "available", v.Status)

	reuse := f.create(t, "np-reuse", func(o *servers.CreateOpts) {
		o.ImageRef = ""
		o.BlockDevice = []servers.BlockDevice{{SourceType: servers.SourceVolume, DestinationType: servers.DestinationVolume, UUID: volumeID, DeleteOnTermination: true}}
	})
	v, err = volumes.Get(ctx, f.volume, volumeID).Extract()
	require.NoError(t, err)
	assert.Equal(t, "in-use", v.Status)
	assert.Equal(t, reuse.ID, v.Attachments[0].ServerID)
	require.NoError(t, servers.Delete(ctx, f.compute, reuse.ID).ExtractErr())
	_, err = volumes.Get(ctx, f.volume, volumeID).Extract()
	assert.True(t, gophercloud.ResponseCodeIs(err, http.StatusNotFound), "got %v", err)
}

func TestNetworkResources(t *testing.T) {
	f := newFixture(t, Options{BootTime: time.Minute})
	ctx := context.Background()
	created := f.create(t, "np1", func(o *servers.CreateOpts) {
		o.Networks = []servers.Network{{UUID: NetworkPrivate}, {UUID: NetworkPublic}}
	})
	nw, err := networks.Get(ctx, f.network, NetworkPublic).Extract()
	require.NoError(t, err)
	assert.Equal(t, "public", nw.Name)
	require.Len(t, nw.Subnets, 1)
	_, err = networks.Get(ctx, f.network, "nope").Extract()
	assert.True(t, gophercloud.ResponseCodeIs(err, http.StatusNotFound))

	resp, body := f.raw(t, http.MethodGet, "/networking/v2.0/subnets?network_id="+NetworkPublic, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	subnets := body["subnets"].([]any)
	require.Len(t, subnets, 1)
	sub := subnets[0].(map[string]any)
	assert.Equal(t, nw.Subnets[0], sub["id"])
	assert.Equal(t, "172.24.4.0/22", sub["cidr"])
	assert.Equal(t, []any{map[string]any{"start": "172.24.4.2", "end": "172.24.7.254"}}, sub["allocation_pools"])

	sv := f.get(t, created.ID)
	require.Contains(t, sv.Addresses, "public")
	require.Contains(t, sv.Addresses, "private")
	public := sv.Addresses["public"].([]any)[0].(map[string]any)
	assert.Equal(t, "fixed", public["OS-EXT-IPS:type"])
	assert.True(t, strings.HasPrefix(public["addr"].(string), "172.24.4."), public["addr"])

	portTests := []struct {
		name string
		opts ports.ListOpts
		want int
	}{
		{"by server", ports.ListOpts{DeviceID: created.ID}, 2},
		{"by server and network", ports.ListOpts{DeviceID: created.ID, NetworkID: NetworkPublic}, 1},
		{"down while building", ports.ListOpts{Status: "DOWN"}, 2},
		{"other server", ports.ListOpts{DeviceID: "nope"}, 0},
	}
	for _, tc := range portTests {
		t.Run(tc.name, func(t *testing.T) {
			pages, err := ports.List(f.network, tc.opts).AllPages(ctx)
			require.NoError(t, err)
			ps, err := ports.ExtractPorts(pages)
			require.NoError(t, err)
			assert.Len(t, ps, tc.want)
		})
	}
	pages, err := ports.List(f.network, ports.ListOpts{DeviceID: created.ID, NetworkID: NetworkPrivate}).AllPages(ctx)
	require.NoError(t, err)
	ps, err := ports.ExtractPorts(pages)
	require.NoError(t, err)
	p, err := ports.Get(ctx, f.network, ps[0].ID).Extract()
	require.NoError(t, err)
	assert.Equal(t, created.ID, p.DeviceID)
	f.clock.Advance(time.Minute)
	p, err = ports.Get(ctx, f.network, ps[0].ID).Extract()
	require.NoError(t, err)
	assert.Equal(t, "ACTIVE", p.Status)

	fip, err := floatingips.Create(ctx, f.network, floatingips.CreateOpts{FloatingNetworkID: NetworkPublic, PortID: p.ID}).Extract()
	require.NoError(t, err)
	got, err := floatingips.Get(ctx, f.network, fip.ID).Extract()
	require.NoError(t, err)
	assert.Equal(t, p.ID, got.PortID)
	_, err = floatingips.Create(ctx, f.network, floatingips.CreateOpts{FloatingNetworkID: NetworkPublic, PortID: ps[0].ID}).Extract()
	assert.Equal(t, http.StatusConflict, statusOf(t, err))
}

func TestFloatingIPExhaustion(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	var last *floatingips.FloatingIP
	for range 1021 {
		fip, err := floatingips.Create(ctx, f.network, floatingips.CreateOpts{FloatingNetworkID: NetworkPublic}).Extract()
		require.NoError(t, err)
		last = fip
	}
	_, err := floatingips.Create(ctx, f.network, floatingips.CreateOpts{FloatingNetworkID: NetworkPublic}).Extract()
	require.Equal(t, http.StatusConflict, statusOf(t, err))
	var ue gophercloud.ErrUnexpectedResponseCode
	require.True(t, errors.As(err, &ue))
	assert.Contains(t, string(ue.Body), "IpAddressGenerationFailure")

	require.NoError(t, floatingips.Delete(ctx, f.network, last.ID).ExtractErr())
	again, err := floatingips.Create(ctx, f.network, floatingips.CreateOpts{FloatingNetworkID: NetworkPublic}).Extract()
	require.NoError(t, err)
	assert.Equal(t, last.FloatingIP, again.FloatingIP, "a released address is allocated again")
}

func TestServerExtras(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	created := f.create(t, "np1", nil)
	resp, body := f.raw(t, http.MethodGet, "/compute/v2.1/servers/"+created.ID+"/metadata", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "np1", body["metadata"].(map[string]any)["nodepool_node_id"])

	pages, err := servers.ListSimple(f.compute, servers.ListOpts{Name: "np"}).AllPages(ctx)
	require.NoError(t, err)
	brief, err := servers.ExtractServers(pages)
	require.NoError(t, err)
	require.Len(t, brief, 1)
	assert.Equal(t, created.ID, brief[0].ID)
	assert.Empty(t, brief[0].Status, "the brief list has ids and names only")

	resp, body = f.raw(t, http.MethodGet, "/compute/v2.1/servers?name=(", nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, "badRequest")

	resp, _ = f.raw(t, http.MethodGet, "/identity/v3/", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	tok := f.compute.TokenID
	resp, _ = f.raw(t, http.MethodDelete, "/identity/v3/auth/tokens", http.Header{"X-Subject-Token": {tok}})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, int64(1), f.srv.Calls("RevokeToken"))
	resp, body = f.raw(t, http.MethodGet, "/identity/v3/auth/tokens", http.Header{"X-Subject-Token": {tok}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, body, "error")
}

func TestCreateServerLenientTypes(t *testing.T) {
	tests := []struct {
		name       string
		bdm        string
		wantStatus int
	}{
		{"numbers", `{"source_type":"image","destination_type":"volume","uuid":"` + ImageUbuntuJammy + `","boot_index":0,"volume_size":20,"delete_on_termination":true}`, 202},
		{"strings", `{"source_type":"image","destination_type":"volume","uuid":"` + ImageUbuntuJammy + `","boot_index":"0","volume_size":"20","delete_on_termination":"True"}`, 202},
		{"bad index", `{"source_type":"image","destination_type":"volume","uuid":"` + ImageUbuntuJammy + `","boot_index":"first","volume_size":20}`, 400},
		{"bad flag", `{"source_type":"image","destination_type":"volume","uuid":"` + ImageUbuntuJammy + `","boot_index":0,"volume_size":20,"delete_on_termination":[]}`, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			body := `{"server":{"name":"np1","flavorRef":"1","networks":"auto","block_device_mapping_v2":[` + tc.bdm + `]}}`
			req, err := http.NewRequest(http.MethodPost, f.url+"/compute/v2.1/servers", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("X-Auth-Token", f.compute.TokenID)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, tc.wantStatus, resp.StatusCode)
			if tc.wantStatus != http.StatusAccepted {
				return
			}
			all := f.list(t, servers.ListOpts{})
			require.Len(t, all, 1)
			require.Len(t, all[0].AttachedVolumes, 1)
			require.NoError(t, servers.Delete(context.Background(), f.compute, all[0].ID).ExtractErr())
			assert.Empty(t, f.srv.Stats().Volumes, "the volume is deleted on termination")
		})
	}
}
