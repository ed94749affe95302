package launchconfig

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-temporal/nodepool-temporal/config"
)

// upstreamDir holds upstream Nodepool's test fixtures (see its README).
const upstreamDir = "../../config/testdata/upstream"

// fixtureFields are the values the sweep gives upstream's template fields, which
// upstream's tests fill with str.format before loading a fixture.
var fixtureFields = map[string]string{
	"zookeeper_host":       "zk.example.com",
	"zookeeper_port":       "2281",
	"zookeeper_chroot":     "/nodepool-test",
	"zookeeper_ca":         "/etc/nodepool/zk-ca.pem",
	"zookeeper_cert":       "/etc/nodepool/zk-client.pem",
	"zookeeper_key":        "/etc/nodepool/zk-client.key",
	"images_dir":           "/var/lib/nodepool/images",
	"build_log_dir":        "/var/log/nodepool/builds",
	"context_name":         "admin-cluster.local",
	"auth_path":            "/etc/nodepool/auth.json",
	"subnet_id":            "subnet-0123456789abcdef0",
	"security_group_id":    "sg-0123456789abcdef0",
	"instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/nodepool",
}

var formatFieldRE = regexp.MustCompile(`\{\{|\}\}|\{([a-z_]*)\}`)

// formatFixture fills a fixture's template fields as Python's str.format does
// ("{{" and "}}" stand for braces). A field the sweep does not know is returned, so
// that a new upstream field is noticed.
func formatFixture(text string) (string, []string) {
	var unknown []string
	out := formatFieldRE.ReplaceAllStringFunc(text, func(m string) string {
		switch m {
		case "{{":
			return "{"
		case "}}":
			return "}"
		}
		name := m[1 : len(m)-1]
		v, ok := fixtureFields[name]
		if !ok {
			unknown = append(unknown, m)
			return m
		}
		return v
	})
	return out, unknown
}

// writeFixture writes the formatted fixture into dir, under its name.
func writeFixture(t *testing.T, dir, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(upstreamDir, name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	text, unknown := formatFixture(string(raw))
	if len(unknown) > 0 {
		t.Fatalf("fixture %s has template fields the sweep does not fill: %s", name, strings.Join(unknown, ", "))
	}
	path := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// notSupported is the wording of problems about upstream features this launcher
// does not have.
const notSupported = "not supported by this launcher"

// verdict is what the launcher makes of a fixture.
type verdict int

const (
	// verdictAccepted: the fixture loads and validates.
	verdictAccepted verdict = iota
	// verdictLikeUpstream: rejected; upstream's validator (or its loader) rejects
	// the fixture too.
	verdictLikeUpstream
	// verdictUnsupported: rejected; upstream accepts the fixture, which uses a
	// feature this launcher does not have: the problems say so, and none is an
	// unknown key.
	verdictUnsupported
	// verdictLimit: rejected; upstream accepts the fixture, which goes beyond a
	// stated limit of this launcher.
	verdictLimit
	// verdictNotConfig: the file is not a configuration of its own.
	verdictNotConfig
)

// match is one problem the launcher must report: a problem whose text has every
// substring, and, when re is set, matches it.
type match struct {
	subs []string
	re   *regexp.Regexp
}

func has(subs ...string) match { return match{subs: subs} }

// unsupportedDriverRE matches the problem of a provider whose driver is one of
// upstream's this launcher does not have.
var unsupportedDriverRE = regexp.MustCompile(`of upstream Nodepool is ` + notSupported)

func driverNotSupported(name string) match {
	return match{subs: []string{`driver "` + name + `"`}, re: unsupportedDriverRE}
}

func (m match) in(problem string) bool {
	for _, s := range m.subs {
		if !strings.Contains(problem, s) {
			return false
		}
	}
	return m.re == nil || m.re.MatchString(problem)
}

func (m match) String() string {
	s := strings.Join(m.subs, " … ")
	if m.re != nil {
		s += " (~ " + m.re.String() + ")"
	}
	return s
}

type expectation struct {
	verdict verdict
	want    []match
	note    string
}

func accepted() expectation { return expectation{verdict: verdictAccepted} }

func likeUpstream(want ...match) expectation {
	return expectation{verdict: verdictLikeUpstream, want: want}
}

func unsupported(want ...match) expectation {
	return expectation{verdict: verdictUnsupported, want: want}
}

func launcherLimit(want ...match) expectation {
	return expectation{verdict: verdictLimit, want: want}
}

func notConfig(note string) expectation { return expectation{verdict: verdictNotConfig, note: note} }

// upstreamFixtures is the verdict on every fixture in config/testdata/upstream.
// Upstream rejects the config_validate fixtures its test_config_validator.py (and
// test_driver_static.py, test_driver_metastatic.py) expect to fail, and
// aws/bad-config-images.yaml; it accepts every other fixture.
var upstreamFixtures = map[string]expectation{
	"aws/aws-dedicated-host.yaml":            accepted(),
	"aws/aws-fleet-old-template.yaml":        accepted(),
	"aws/aws-fleet.yaml":                     accepted(),
	"aws/aws-invalid.yaml":                   accepted(),
	"aws/aws-limits.yaml":                    accepted(),
	"aws/aws-min-ready.yaml":                 accepted(),
	"aws/aws-multiple.yaml":                  accepted(),
	"aws/aws-quota.yaml":                     accepted(),
	"aws/aws-spot.yaml":                      accepted(),
	"aws/aws-volume-quota.yaml":              accepted(),
	"aws/aws.yaml":                           accepted(),
	"aws/bad-config-images.yaml":             likeUpstream(has("cloud-images[0]: exactly one of image-id or image-filters is required")),
	"aws/config.yaml":                        accepted(),
	"aws/diskimage-imdsv2-ebs-snapshot.yaml": unsupported(has("diskimage", notSupported)),
	"aws/diskimage-imdsv2-image.yaml":        unsupported(has("diskimage", notSupported)),
	"aws/diskimage-imdsv2-snapshot.yaml":     unsupported(has("diskimage", notSupported)),
	"aws/diskimage-import-image.yaml":        unsupported(has("diskimage", notSupported)),
	"aws/diskimage.yaml":                     unsupported(has("diskimage", notSupported)),
	"aws/ipv6.yaml":                          accepted(),
	"aws/non-host-key-checking.yaml":         accepted(),
	"aws/private-ip.yaml":                    accepted(),
	"aws/shell-type.yaml":                    accepted(),
	"azure-diskimage.yaml":                   unsupported(driverNotSupported("azure")),
	"azure-external-image.yaml":              unsupported(driverNotSupported("azure")),
	"azure-gallery-image.yaml":               unsupported(driverNotSupported("azure")),
	"azure-min-ready.yaml":                   unsupported(driverNotSupported("azure")),
	"azure.yaml":                             unsupported(driverNotSupported("azure")),
	"broken_provider_config.yaml":            accepted(),
	"builder_2_diskimages.yaml":              unsupported(has("diskimage", notSupported)),
	"builder_image1.yaml":                    unsupported(has("diskimage", notSupported)),
	"builder_image2.yaml":                    unsupported(has("diskimage", notSupported)),
	"cleanup-port.yaml":                      unsupported(has("diskimage", notSupported)),
	"clouds.yaml":                            notConfig("the OpenStack tools' clouds.yaml that upstream's openstack tests point at"),
	"config_validate/aws-fleet-allocation-strategy-error.yaml": likeUpstream(has(`fleet.allocation-strategy: must be one of prioritized, lowest-price for a on-demand fleet, got "not-exist"`)),
	"config_validate/aws-fleet-exclusive-error.yaml":           likeUpstream(has("fleet.instance-requirements: not supported by this launcher")),
	"config_validate/aws-fleet-good.yaml":                      accepted(),
	"config_validate/duplicate_diskimage_name.yaml":            likeUpstream(has(`diskimages[1].name: duplicate diskimage "trusty"`)),
	"config_validate/good.yaml":                                unsupported(driverNotSupported("gce"), driverNotSupported("kubernetes"), driverNotSupported("metastatic"), driverNotSupported("openshift"), driverNotSupported("openshiftpods")),
	"config_validate/k8s_spec_duplicate.yaml":                  likeUpstream(driverNotSupported("kubernetes")),
	"config_validate/metastatic_error.yaml":                    likeUpstream(driverNotSupported("metastatic")),
	"config_validate/metastatic_ok.yaml":                       unsupported(driverNotSupported("metastatic")),
	"config_validate/missing_diskimage_provider.yaml":          likeUpstream(has("diskimages", notSupported)),
	"config_validate/missing_parent_diskimage.yaml":            likeUpstream(has(`diskimages[2].parent: parent diskimage "this_does_not_exist" is not defined`)),
	"config_validate/missing_top_label.yaml":                   likeUpstream(has(`label "trusty" is not defined in the top-level labels`)),
	"config_validate/no_diskimage_name.yaml":                   likeUpstream(has("diskimages[0].name: is required")),
	"config_validate/schema_error.yaml":                        likeUpstream(has("field nothandled not found")),
	"config_validate/static_error.yaml":                        likeUpstream(has("providers[0]: field cloud not found")),
	"config_validate/yaml_error.yaml":                          likeUpstream(has("invalid YAML: did not find expected key")),
	"disabled_provider.yaml":                                   unsupported(has("diskimage", notSupported)),
	"diskimage_build_timeout.yaml":                             accepted(),
	// Upstream's test-only driver lists its pool labels by name; the core decoder
	// wants label mappings and stops before the driver is looked at.
	"external_driver.yaml":                    unsupported(driverNotSupported("test")),
	"gce.yaml":                                unsupported(driverNotSupported("gce")),
	"ibmvpc.yaml":                             unsupported(driverNotSupported("ibmvpc")),
	"ignore_provider_quota_false.yaml":        unsupported(has("diskimage", notSupported)),
	"ignore_provider_quota_true.yaml":         unsupported(has("diskimage", notSupported)),
	"info_cmd_two_provider.yaml":              unsupported(has("diskimage", notSupported)),
	"info_cmd_two_provider_remove.yaml":       unsupported(has("diskimage", notSupported)),
	"integration_noocc.yaml":                  unsupported(has("diskimage", notSupported)),
	"integration_occ.yaml":                    unsupported(has("diskimage", notSupported)),
	"kubernetes-default-limits.yaml":          unsupported(driverNotSupported("kubernetes")),
	"kubernetes-default-resources.yaml":       unsupported(driverNotSupported("kubernetes")),
	"kubernetes-leaked-node.yaml":             unsupported(driverNotSupported("kubernetes")),
	"kubernetes-pool-quota-cores.yaml":        unsupported(driverNotSupported("kubernetes")),
	"kubernetes-pool-quota-extra.yaml":        unsupported(driverNotSupported("kubernetes")),
	"kubernetes-pool-quota-ram.yaml":          unsupported(driverNotSupported("kubernetes")),
	"kubernetes-pool-quota-servers.yaml":      unsupported(driverNotSupported("kubernetes")),
	"kubernetes-tenant-quota-cores.yaml":      unsupported(driverNotSupported("kubernetes")),
	"kubernetes-tenant-quota-extra.yaml":      unsupported(driverNotSupported("kubernetes")),
	"kubernetes-tenant-quota-ram.yaml":        unsupported(driverNotSupported("kubernetes")),
	"kubernetes-tenant-quota-servers.yaml":    unsupported(driverNotSupported("kubernetes")),
	"kubernetes.yaml":                         unsupported(driverNotSupported("kubernetes")),
	"launcher_reg1.yaml":                      unsupported(has("diskimage", notSupported)),
	"launcher_reg2.yaml":                      unsupported(has("diskimage", notSupported)),
	"launcher_two_provider.yaml":              unsupported(has("diskimage", notSupported)),
	"launcher_two_provider_max_1.yaml":        unsupported(has("diskimage", notSupported)),
	"launcher_two_provider_remove.yaml":       unsupported(has("diskimage", notSupported)),
	"leaked_node.yaml":                        unsupported(has("diskimage", notSupported)),
	"leaked_node_nodepool_id.yaml":            unsupported(has("diskimage", notSupported)),
	"metastatic.yaml":                         unsupported(driverNotSupported("metastatic")),
	"multi_drivers.yaml":                      unsupported(driverNotSupported("test")),
	"multiple_pools.yaml":                     unsupported(has("diskimage", notSupported)),
	"multiproviders.yaml":                     accepted(),
	"node-host-key-checking.yaml":             unsupported(has("diskimage", notSupported)),
	"node-network_cli.yaml":                   unsupported(has("diskimage", notSupported)),
	"node.yaml":                               unsupported(has("diskimage", notSupported)),
	"node_auto_floating_ip.yaml":              unsupported(has("diskimage", notSupported)),
	"node_az.yaml":                            unsupported(has("diskimage", notSupported)),
	"node_az_change.yaml":                     unsupported(has("diskimage", notSupported)),
	"node_boot_from_volume.yaml":              unsupported(has("diskimage", notSupported)),
	"node_cmd.yaml":                           unsupported(has("diskimage", notSupported)),
	"node_delete_error.yaml":                  unsupported(has("diskimage", notSupported)),
	"node_disabled_label.yaml":                unsupported(has("diskimage", notSupported)),
	"node_diskimage_cleanup_formats.yaml":     unsupported(has("diskimage", notSupported)),
	"node_diskimage_fail.yaml":                unsupported(has("diskimage", notSupported)),
	"node_diskimage_formats.yaml":             unsupported(has("diskimage", notSupported)),
	"node_diskimage_only.yaml":                accepted(),
	"node_diskimage_parents.yaml":             unsupported(has("diskimage", notSupported)),
	"node_diskimage_pause.yaml":               unsupported(has("diskimage", notSupported)),
	"node_flavor_name.yaml":                   unsupported(has("diskimage", notSupported)),
	"node_image_upload_pause.yaml":            unsupported(has("diskimage", notSupported)),
	"node_ipv6.yaml":                          unsupported(has("diskimage", notSupported)),
	"node_label_provider.yaml":                unsupported(has("diskimage", notSupported)),
	"node_launch_retry.yaml":                  unsupported(has("diskimage", notSupported)),
	"node_launch_timeout.yaml":                unsupported(has("diskimage", notSupported)),
	"node_lost_requests.yaml":                 unsupported(has("diskimage", notSupported)),
	"node_many_labels.yaml":                   unsupported(has("diskimage", notSupported)),
	"node_max_hold_age.yaml":                  unsupported(has("diskimage", notSupported)),
	"node_max_hold_age_2.yaml":                unsupported(has("diskimage", notSupported)),
	"node_max_hold_age_no_default.yaml":       unsupported(has("diskimage", notSupported)),
	"node_max_ready_age.yaml":                 unsupported(has("diskimage", notSupported)),
	"node_min_ready_capacity.yaml":            unsupported(has("diskimage", notSupported)),
	"node_net_name.yaml":                      unsupported(has("diskimage", notSupported)),
	"node_no_min_ready.yaml":                  unsupported(has("diskimage", notSupported)),
	"node_quota_cloud.yaml":                   unsupported(has("diskimage", notSupported)),
	"node_quota_cloud_volumes.yaml":           unsupported(has("diskimage", notSupported)),
	"node_quota_pool_cores.yaml":              unsupported(has("diskimage", notSupported)),
	"node_quota_pool_instances.yaml":          unsupported(has("diskimage", notSupported)),
	"node_quota_pool_ram.yaml":                unsupported(has("diskimage", notSupported)),
	"node_quota_pool_volume_gb.yaml":          unsupported(has("diskimage", notSupported)),
	"node_quota_pool_volumes.yaml":            unsupported(has("diskimage", notSupported)),
	"node_quota_tenant_cores.yaml":            unsupported(has("diskimage", notSupported)),
	"node_quota_tenant_instances.yaml":        unsupported(has("diskimage", notSupported)),
	"node_quota_tenant_min_ready.yaml":        unsupported(has("diskimage", notSupported)),
	"node_quota_tenant_ram.yaml":              unsupported(has("diskimage", notSupported)),
	"node_quota_tenant_volume_gb.yaml":        unsupported(has("diskimage", notSupported)),
	"node_quota_tenant_volumes.yaml":          unsupported(has("diskimage", notSupported)),
	"node_second_provider.yaml":               unsupported(has("diskimage", notSupported)),
	"node_security_group.yaml":                unsupported(has("diskimage", notSupported)),
	"node_two_image.yaml":                     unsupported(has("diskimage", notSupported)),
	"node_two_image_remove.yaml":              unsupported(has("diskimage", notSupported)),
	"node_two_provider.yaml":                  unsupported(has("diskimage", notSupported)),
	"node_two_provider_remove.yaml":           unsupported(has("diskimage", notSupported)),
	"node_two_providers_two_labels.yaml":      unsupported(has("diskimage", notSupported)),
	"node_unmanaged_image.yaml":               accepted(),
	"node_upload_fail.yaml":                   unsupported(has("diskimage", notSupported)),
	"node_upload_hook.yaml":                   unsupported(has("diskimage", notSupported)),
	"node_vhd.yaml":                           unsupported(has("diskimage", notSupported)),
	"node_vhd_and_qcow2.yaml":                 unsupported(has("diskimage", notSupported)),
	"openshift-default-limits.yaml":           unsupported(driverNotSupported("openshift")),
	"openshift-default-resources.yaml":        unsupported(driverNotSupported("openshift")),
	"openshift-pool-quota-cores.yaml":         unsupported(driverNotSupported("openshift")),
	"openshift-pool-quota-extra.yaml":         unsupported(driverNotSupported("openshift")),
	"openshift-pool-quota-ram.yaml":           unsupported(driverNotSupported("openshift")),
	"openshift-pool-quota-servers.yaml":       unsupported(driverNotSupported("openshift")),
	"openshift-tenant-quota-cores.yaml":       unsupported(driverNotSupported("openshift")),
	"openshift-tenant-quota-extra.yaml":       unsupported(driverNotSupported("openshift")),
	"openshift-tenant-quota-ram.yaml":         unsupported(driverNotSupported("openshift")),
	"openshift-tenant-quota-servers.yaml":     unsupported(driverNotSupported("openshift")),
	"openshift.yaml":                          unsupported(driverNotSupported("openshift")),
	"openshiftpods-default-limits.yaml":       unsupported(driverNotSupported("openshiftpods")),
	"openshiftpods-default-resources.yaml":    unsupported(driverNotSupported("openshiftpods")),
	"openshiftpods-pool-quota-cores.yaml":     unsupported(driverNotSupported("openshiftpods")),
	"openshiftpods-pool-quota-extra.yaml":     unsupported(driverNotSupported("openshiftpods")),
	"openshiftpods-pool-quota-ram.yaml":       unsupported(driverNotSupported("openshiftpods")),
	"openshiftpods-pool-quota-servers.yaml":   unsupported(driverNotSupported("openshiftpods")),
	"openshiftpods-tenant-quota-cores.yaml":   unsupported(driverNotSupported("openshiftpods")),
	"openshiftpods-tenant-quota-extra.yaml":   unsupported(driverNotSupported("openshiftpods")),
	"openshiftpods-tenant-quota-ram.yaml":     unsupported(driverNotSupported("openshiftpods")),
	"openshiftpods-tenant-quota-servers.yaml": unsupported(driverNotSupported("openshiftpods")),
	"openshiftpods.yaml":                      unsupported(driverNotSupported("openshiftpods")),
	"pause_declined_1.yaml":                   unsupported(has("diskimage", notSupported)),
	"pause_declined_2.yaml":                   unsupported(has("diskimage", notSupported)),
	"priority.yaml":                           unsupported(has("diskimage", notSupported)),
	"secure_file_config.yaml":                 unsupported(has("diskimage", notSupported)),
	"secure_file_secure.yaml":                 notConfig("the secure file of secure_file_config.yaml, loaded with it"),
	"static-2-nodes-multilabel.yaml":          accepted(),
	"static-2-nodes.yaml":                     accepted(),
	"static-basic.yaml":                       accepted(),
	"static-multilabel.yaml":                  accepted(),
	// Upstream tells static nodes apart by name, username and port; this launcher by name.
	"static-multiname.yaml":              launcherLimit(has(`nodes[1].name: duplicate node "fake-host-1"`, "the driver tells a provider's nodes apart by name")),
	"static-no-check.yaml":               accepted(),
	"static-parallel-increase.yaml":      accepted(),
	"static-python-path.yaml":            accepted(),
	"static-shell-type.yaml":             accepted(),
	"static-two-node.yaml":               accepted(),
	"static-unresolvable.yaml":           accepted(),
	"static-update.yaml":                 accepted(),
	"static.yaml":                        accepted(),
	"unmanaged_image_provider_id.yaml":   accepted(),
	"unmanaged_image_provider_name.yaml": accepted(),
	"webapp.yaml":                        accepted(),
	"wedge_test.yaml":                    unsupported(has("diskimage", notSupported)),
}

// secureFiles names the secure file a fixture is loaded with. Fixtures without
// upstream's ZooKeeper template fields (upstream's tests give those ZooKeeper
// otherwise) get a secure file with zookeeper-servers, as a deployment keeping the
// ensemble out of the main file would.
var secureFiles = map[string]string{
	"secure_file_config.yaml": "secure_file_secure.yaml",
}

const zookeeperSecure = `zookeeper-servers:
  - host: zk.example.com
    port: 2281
    chroot: /nodepool-test
`

// unknownKeyRE matches the problem of a key the launcher does not know.
var unknownKeyRE = regexp.MustCompile(`field \S+ not found`)

// TestUpstreamFixtures loads every upstream Nodepool fixture through Load, as the
// launcher does, and compares the outcome with the expectation table.
func TestUpstreamFixtures(t *testing.T) {
	t.Setenv("NODEPOOL_PORT", "8005") // config_validate/good.yaml, as upstream's test sets it
	var files []string
	for _, pat := range []string{"*.yaml", "*/*.yaml"} {
		m, err := filepath.Glob(filepath.Join(upstreamDir, pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, err := filepath.Rel(upstreamDir, p)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, filepath.ToSlash(rel))
		}
	}
	sort.Strings(files)
	seen := map[string]bool{}
	for _, f := range files {
		seen[f] = true
		if _, ok := upstreamFixtures[f]; !ok {
			t.Errorf("fixture %s has no expectation", f)
		}
	}
	for f := range upstreamFixtures {
		if !seen[f] {
			t.Errorf("expectation for %s, which is not a fixture", f)
		}
	}
	dir := t.TempDir()
	zkSecure := filepath.Join(dir, "zookeeper-secure.yaml")
	if err := os.WriteFile(zkSecure, []byte(zookeeperSecure), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		exp, ok := upstreamFixtures[f]
		if !ok {
			continue
		}
		t.Run(f, func(t *testing.T) {
			path := writeFixture(t, dir, f)
			if exp.verdict == verdictNotConfig {
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				var doc map[string]any
				if err := yaml.Unmarshal(raw, &doc); err != nil || len(doc) == 0 {
					t.Fatalf("%s (%s) is not a YAML mapping: %v", f, exp.note, err)
				}
				return
			}
			secure := ""
			if s, ok := secureFiles[f]; ok {
				secure = writeFixture(t, dir, s)
			} else if raw, err := os.ReadFile(filepath.Join(upstreamDir, f)); err == nil && !strings.Contains(string(raw), "{zookeeper_host}") {
				secure = zkSecure
			}
			_, err := Load(path, secure)
			var problems []string
			for _, p := range config.Problems(err) {
				problems = append(problems, p.Error())
			}
			if err != nil && len(problems) == 0 {
				problems = []string{err.Error()}
			}
			report := strings.Join(problems, "\n")
			if exp.verdict == verdictAccepted {
				if err != nil {
					t.Fatalf("rejected:\n%s", report)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want a rejection with %v", exp.want)
			}
			if len(exp.want) == 0 {
				t.Fatalf("a rejection needs the problems it is for")
			}
			for _, w := range exp.want {
				found := false
				for _, p := range problems {
					if w.in(p) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("no problem matches %v:\n%s", w, report)
				}
			}
			if exp.verdict == verdictUnsupported || exp.verdict == verdictLimit {
				for _, p := range problems {
					if unknownKeyRE.MatchString(p) {
						t.Errorf("an upstream key is reported as unknown: %s", p)
					}
				}
			}
		})
	}
}
