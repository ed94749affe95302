package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
)

// The repository paths the checks read, relative to this package.
const (
	launcherMain = "../cmd/nodepool-launcher/main.go"
	workerGo     = "../worker/worker.go"
	dockerfile   = "../docker/Dockerfile"
	composeFile  = "../docker/compose.yaml"
	webappGo     = "../webapp/webapp.go"
)

// object is a Kubernetes manifest, with the fields the checks read.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`

	file string
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deploymentSpec struct {
	Replicas *int          `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
}

type podSpec struct {
	ServiceAccountName            string `yaml:"serviceAccountName"`
	TerminationGracePeriodSeconds *int   `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []volume    `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name     string `yaml:"name"`
				Key      string `yaml:"key"`
				Optional bool   `yaml:"optional"`
			} `yaml:"secretKeyRef"`
			ConfigMapKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"configMapKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
}

type probe struct {
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
	} `yaml:"secret"`
	Projected *struct {
		Sources []struct {
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
			Secret *struct {
				Name string `yaml:"name"`
			} `yaml:"secret"`
		} `yaml:"sources"`
	} `yaml:"projected"`
	EmptyDir any `yaml:"emptyDir"`
}

type pdbSpec struct {
	MinAvailable   any           `yaml:"minAvailable"`
	MaxUnavailable any           `yaml:"maxUnavailable"`
	Selector       labelSelector `yaml:"selector"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string    `yaml:"name"`
		Port       int       `yaml:"port"`
		TargetPort yaml.Node `yaml:"targetPort"`
	} `yaml:"ports"`
}

type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Resources  []string `yaml:"resources"`
	Images     []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

// knownKinds are the apiVersion of every kind the manifests may use.
var knownKinds = map[string]string{
	"ServiceAccount":      "v1",
	"ConfigMap":           "v1",
	"Secret":              "v1",
	"Service":             "v1",
	"Deployment":          "apps/v1",
	"PodDisruptionBudget": "policy/v1",
}

// manifests is the parsed deployment: every resource of the kustomization.
type manifests struct {
	kust    kustomization
	objects []*object
}

func (m *manifests) byKind(kind string) []*object {
	var out []*object
	for _, o := range m.objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m *manifests) get(kind, name string) *object {
	for _, o := range m.objects {
		if o.Kind == kind && o.Metadata.Name == name {
			return o
		}
	}
	return nil
}

// deployment returns the Deployment of a launcher role (its component label).
func (m *manifests) deployment(t *testing.T, role string) (*object, deploymentSpec) {
	t.Helper()
	for _, o := range m.byKind("Deployment") {
		if o.Metadata.Labels["app.kubernetes.io/component"] == role {
			var spec deploymentSpec
			require.NoError(t, o.Spec.Decode(&spec), "%s: spec", o.file)
			return o, spec
		}
	}
	t.Fatalf("no Deployment with app.kubernetes.io/component=%s", role)
	return nil, deploymentSpec{}
}

// decodeAll parses every YAML document of data.
func decodeAll(name string, data []byte) ([]*object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*object
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if o.Kind == "" && o.APIVersion == "" {
			continue // an empty document
		}
		o.file = name
		out = append(out, &o)
	}
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	data, err := os.ReadFile("kustomization.yaml")
	require.NoError(t, err)
	m := &manifests{}
	require.NoError(t, yaml.Unmarshal(data, &m.kust), "kustomization.yaml")
	require.Equal(t, "Kustomization", m.kust.Kind)
	require.NotEmpty(t, m.kust.Resources)
	for _, r := range m.kust.Resources {
		data, err := os.ReadFile(r)
		require.NoError(t, err, "a resource of kustomization.yaml")
		objs, err := decodeAll(r, data)
		require.NoError(t, err)
		require.NotEmpty(t, objs, "%s has no object", r)
		m.objects = append(m.objects, objs...)
	}
	return m
}

// launcherFlags returns the flags nodepool-launcher defines (name → whether it is a
// boolean flag) and their default values as written.
func launcherFlags(t *testing.T) (flags map[string]bool, defaults map[string]ast.Expr) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), launcherMain, nil, 0)
	require.NoError(t, err)
	flags, defaults = map[string]bool{}, map[string]ast.Expr{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 2 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		switch sel.Sel.Name {
		case "String", "Bool", "Int", "Int64", "Uint", "Float64", "Duration":
		default:
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		name, err := strconv.Unquote(lit.Value)
		if err != nil {
			return true
		}
		flags[name] = sel.Sel.Name == "Bool"
		defaults[name] = call.Args[1]
		return true
	})
	require.Contains(t, flags, "c", "no flags found in %s", launcherMain)
	require.Contains(t, flags, "role")
	return flags, defaults
}

// parseArgs checks args against the launcher's flags, as package flag parses them,
// and returns the value of every flag given.
func parseArgs(flags map[string]bool, args []string) (map[string]string, error) {
	vals := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			return nil, fmt.Errorf("positional argument %q: the launcher takes none", a)
		}
		name := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "---") || name == "" {
			return nil, fmt.Errorf("bad flag syntax %q", a)
		}
		value, hasValue := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, value, hasValue = k, v, true
		}
		isBool, ok := flags[name]
		if !ok {
			return nil, fmt.Errorf("flag %q is not defined by nodepool-launcher", a)
		}
		switch {
		case hasValue:
		case isBool:
			value = "true"
		case i+1 < len(args):
			i++
			value = args[i]
		default:
			return nil, fmt.Errorf("flag %q needs a value", a)
		}
		vals[name] = value
	}
	return vals, nil
}

// durationOf evaluates a duration as the Go source writes it: "30s", N * time.Second
// or time.Minute * N.
func durationOf(e ast.Expr) (time.Duration, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		switch e.Kind {
		case token.STRING:
			s, err := strconv.Unquote(e.Value)
			if err != nil {
				return 0, false
			}
			d, err := time.ParseDuration(s)
			return d, err == nil
		case token.INT:
			n, err := strconv.ParseInt(e.Value, 0, 64)
			return time.Duration(n), err == nil
		}
	case *ast.SelectorExpr:
		units := map[string]time.Duration{"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}
		if x, ok := e.X.(*ast.Ident); ok && x.Name == "time" {
			d, ok := units[e.Sel.Name]
			return d, ok
		}
	case *ast.BinaryExpr:
		if e.Op != token.MUL {
			return 0, false
		}
		a, ok1 := durationOf(e.X)
		b, ok2 := durationOf(e.Y)
		return a * b, ok1 && ok2
	case *ast.ParenExpr:
		return durationOf(e.X)
	}
	return 0, false
}

// drainTimeout returns how long a worker lets running activities finish after
// SIGTERM: the value of a drain flag among args when the launcher has one, else the
// default of worker.Options.StopTimeout in worker.Run.
func drainTimeout(t *testing.T, flags map[string]bool, defaults map[string]ast.Expr, args map[string]string) time.Duration {
	t.Helper()
	for name := range flags {
		if !strings.Contains(name, "drain") && !strings.Contains(name, "stop-timeout") {
			continue
		}
		if v, ok := args[name]; ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				n, nerr := strconv.Atoi(v)
				require.NoError(t, nerr, "--%s %q is neither a duration nor seconds", name, v)
				d = time.Duration(n) * time.Second
			}
			return d
		}
		d, ok := durationOf(defaults[name])
		require.True(t, ok, "cannot evaluate the default of --%s", name)
		return d
	}
	f, err := parser.ParseFile(token.NewFileSet(), workerGo, nil, 0)
	require.NoError(t, err)
	var d time.Duration
	ast.Inspect(f, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
			return true
		}
		if sel, ok := as.Lhs[0].(*ast.SelectorExpr); ok && sel.Sel.Name == "StopTimeout" {
			if v, ok := durationOf(as.Rhs[0]); ok {
				d = v
			}
		}
		return true
	})
	require.NotZero(t, d, "no default StopTimeout found in %s", workerGo)
	return d
}

// subsetOf reports whether every label of sel is in labels.
func subsetOf(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// mountedFiles returns, for each file a pod sees through its ConfigMap and Secret
// volumes, its path in the container and its content.
func mountedFiles(t *testing.T, m *manifests, pod podSpec, c container) map[string]string {
	t.Helper()
	files := map[string]string{}
	addObject := func(dir string, o *object) {
		for k, v := range o.Data {
			files[filepath.Join(dir, k)] = v
		}
		for k, v := range o.StringData {
			files[filepath.Join(dir, k)] = v
		}
	}
	for _, vm := range c.VolumeMounts {
		var v *volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == vm.Name {
				v = &pod.Volumes[i]
			}
		}
		require.NotNil(t, v, "container %s mounts volume %q, which the pod does not define", c.Name, vm.Name)
		require.Empty(t, vm.SubPath, "subPath mounts never see updates; mount whole volumes")
		need := func(kind, name string) *object {
			o := m.get(kind, name)
			require.NotNil(t, o, "volume %q uses %s %q, which no manifest defines", v.Name, kind, name)
			return o
		}
		switch {
		case v.ConfigMap != nil:
			addObject(vm.MountPath, need("ConfigMap", v.ConfigMap.Name))
		case v.Secret != nil:
			addObject(vm.MountPath, need("Secret", v.Secret.SecretName))
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					addObject(vm.MountPath, need("ConfigMap", s.ConfigMap.Name))
				}
				if s.Secret != nil {
					addObject(vm.MountPath, need("Secret", s.Secret.Name))
				}
			}
		}
	}
	return files
}

func TestManifests(t *testing.T) {
	m := loadManifests(t)
	flags, defaults := launcherFlags(t)
	webappSource, err := os.ReadFile(webappGo)
	require.NoError(t, err)

	t.Run("every manifest is a resource", func(t *testing.T) {
		files, err := filepath.Glob("*.yaml")
		require.NoError(t, err)
		for _, f := range files {
			if f == "kustomization.yaml" {
				continue
			}
			require.Contains(t, m.kust.Resources, f, "%s is not listed in kustomization.yaml", f)
		}
	})

	t.Run("kinds and names", func(t *testing.T) {
		seen := map[string]bool{}
		for _, o := range m.objects {
			want, ok := knownKinds[o.Kind]
			require.True(t, ok, "%s: unexpected kind %q", o.file, o.Kind)
			require.Equal(t, want, o.APIVersion, "%s: apiVersion of %s", o.file, o.Kind)
			require.Regexp(t, `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, o.Metadata.Name, "%s: name", o.file)
			key := o.Kind + "/" + o.Metadata.Name
			require.False(t, seen[key], "%s defined twice", key)
			seen[key] = true
			require.Equal(t, "nodepool-temporal", o.Metadata.Labels["app.kubernetes.io/name"], "%s: labels", key)
		}
		require.Len(t, m.byKind("Deployment"), 2, "a poller and a worker Deployment")
		for _, kind := range []string{"ConfigMap", "Secret", "Service", "PodDisruptionBudget", "ServiceAccount"} {
			require.NotEmpty(t, m.byKind(kind), "no %s", kind)
		}
	})

	for _, role := range []string{"poller", "worker"} {
		t.Run(role, func(t *testing.T) {
			o, spec := m.deployment(t, role)
			pod := spec.Template.Spec
			require.True(t, subsetOf(spec.Selector.MatchLabels, spec.Template.Metadata.Labels),
				"%s: the selector %v does not match the pod labels %v", o.file, spec.Selector.MatchLabels, spec.Template.Metadata.Labels)
			require.Equal(t, role, spec.Template.Metadata.Labels["app.kubernetes.io/component"])
			require.NotNil(t, spec.Replicas)
			require.Positive(t, *spec.Replicas)
			require.True(t, pod.SecurityContext.RunAsNonRoot, "pods run as non-root")
			if pod.ServiceAccountName != "" {
				require.NotNil(t, m.get("ServiceAccount", pod.ServiceAccountName), "service account %q", pod.ServiceAccountName)
			}
			require.Len(t, pod.Containers, 1)
			c := pod.Containers[0]
			require.Empty(t, c.Command, "the image's entrypoint is the launcher")
			img := c.Image
			if i := strings.IndexAny(img, ":@"); i >= 0 {
				img = img[:i]
			}
			require.True(t, slices.ContainsFunc(m.kust.Images, func(i struct {
				Name    string `yaml:"name"`
				NewName string `yaml:"newName"`
				NewTag  string `yaml:"newTag"`
			}) bool {
				return i.Name == img
			}), "image %q is not set by kustomization.yaml's images", c.Image)
			require.True(t, c.SecurityContext.ReadOnlyRootFilesystem)
			require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
			require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)

			args, err := parseArgs(flags, c.Args)
			require.NoError(t, err, "%s: args %q", o.file, c.Args)
			require.Equal(t, role, args["role"], "--role")
			for _, env := range c.Env {
				if env.ValueFrom == nil {
					continue
				}
				if r := env.ValueFrom.SecretKeyRef; r != nil {
					s := m.get("Secret", r.Name)
					require.NotNil(t, s, "env %s: no Secret %q", env.Name, r.Name)
					_, inData := s.Data[r.Key]
					_, inString := s.StringData[r.Key]
					require.True(t, r.Optional || inData || inString, "env %s: Secret %q has no key %q", env.Name, r.Name, r.Key)
				}
				if r := env.ValueFrom.ConfigMapKeyRef; r != nil {
					cm := m.get("ConfigMap", r.Name)
					require.NotNil(t, cm, "env %s: no ConfigMap %q", env.Name, r.Name)
					require.Contains(t, cm.Data, r.Key)
				}
			}

			// The configuration and secure files are mounted, and load as the
			// launcher loads them.
			files := mountedFiles(t, m, pod, c)
			cfgPath := args["c"]
			if cfgPath == "" {
				cfgPath = config.DefaultPath
			}
			cfgText, ok := files[cfgPath]
			require.True(t, ok, "-c %s is not a mounted file (mounted: %v)", cfgPath, keys(files))
			dir := t.TempDir()
			local := filepath.Join(dir, "nodepool.yaml")
			require.NoError(t, os.WriteFile(local, []byte(cfgText), 0o600))
			secureLocal := ""
			if sp := args["s"]; sp != "" {
				text, ok := files[sp]
				require.True(t, ok, "-s %s is not a mounted file (mounted: %v)", sp, keys(files))
				secureLocal = filepath.Join(dir, "secure.conf")
				require.NoError(t, os.WriteFile(secureLocal, []byte(text), 0o600))
			}
			cfg, err := launchconfig.Load(local, secureLocal)
			require.NoError(t, err, "the mounted configuration does not load")
			require.True(t, cfg.Launcher.Pos.Has(config.KeyHostname),
				"set launcher.hostname: pool ids must not depend on pod names")
			if tls := cfg.ZooKeeperTLS; tls != nil {
				for _, p := range []string{tls.CA, tls.Cert, tls.Key} {
					_, ok := files[p]
					require.True(t, ok, "zookeeper-tls names %s, which is not mounted (mounted: %v)", p, keys(files))
				}
			}

			if role == "poller" {
				require.True(t, slices.ContainsFunc(c.Ports, func(p struct {
					Name          string `yaml:"name"`
					ContainerPort int    `yaml:"containerPort"`
				}) bool {
					return p.ContainerPort == cfg.Webapp.Port
				}), "the poller exposes the web app port %d", cfg.Webapp.Port)
			}
			// HTTP probes ask the launcher's web app for a path it serves.
			for _, pr := range []*probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
				if pr == nil || pr.HTTPGet == nil {
					continue
				}
				require.NotContains(t, args, "no-webapp", "a probe needs the web app")
				require.Equal(t, cfg.Webapp.Port, containerPort(t, c, pr.HTTPGet.Port), "probe port")
				require.Contains(t, string(webappSource), strconv.Quote(pr.HTTPGet.Path),
					"probe path %s is not served by %s", pr.HTTPGet.Path, webappGo)
			}
			// Prometheus' scrape annotations name the web app's port and metrics path.
			ann := spec.Template.Metadata.Annotations
			if path, ok := ann["prometheus.io/path"]; ok {
				require.NotContains(t, args, "no-webapp", "metrics need the web app")
				require.Contains(t, string(webappSource), strconv.Quote(path), "metrics path %s is not served by %s", path, webappGo)
				require.Equal(t, strconv.Itoa(cfg.Webapp.Port), ann["prometheus.io/port"], "metrics port")
			}
			if role == "worker" {
				drain := drainTimeout(t, flags, defaults, args)
				require.NotNil(t, pod.TerminationGracePeriodSeconds, "workers set terminationGracePeriodSeconds")
				grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
				require.Greater(t, grace, drain, "the grace period must cover the %s drain", drain)
				require.LessOrEqual(t, grace, drain+time.Minute, "a grace period far beyond the drain only delays rollouts")
			}
		})
	}

	t.Run("selectors", func(t *testing.T) {
		_, poller := m.deployment(t, "poller")
		_, worker := m.deployment(t, "worker")
		require.False(t, subsetOf(poller.Selector.MatchLabels, worker.Template.Metadata.Labels), "the poller selects worker pods")
		require.False(t, subsetOf(worker.Selector.MatchLabels, poller.Template.Metadata.Labels), "the worker selects poller pods")

		pdbs := m.byKind("PodDisruptionBudget")
		require.Len(t, pdbs, 1)
		var pdb pdbSpec
		require.NoError(t, pdbs[0].Spec.Decode(&pdb))
		require.True(t, subsetOf(pdb.Selector.MatchLabels, worker.Template.Metadata.Labels), "the budget covers the workers")
		require.False(t, subsetOf(pdb.Selector.MatchLabels, poller.Template.Metadata.Labels), "the budget covers only the workers")
		require.True(t, (pdb.MinAvailable == nil) != (pdb.MaxUnavailable == nil), "exactly one of minAvailable and maxUnavailable")
		if n, ok := pdb.MinAvailable.(int); ok {
			require.Less(t, n, *worker.Replicas, "minAvailable %d blocks every eviction of %d workers", n, *worker.Replicas)
		}

		svcs := m.byKind("Service")
		require.Len(t, svcs, 1)
		var svc serviceSpec
		require.NoError(t, svcs[0].Spec.Decode(&svc))
		require.True(t, subsetOf(svc.Selector, poller.Template.Metadata.Labels), "the web app Service selects the pollers")
		require.False(t, subsetOf(svc.Selector, worker.Template.Metadata.Labels), "the web app Service selects only the pollers")
		require.Len(t, svc.Ports, 1)
		p := svc.Ports[0]
		require.Equal(t, config.DefaultWebappPort, p.Port)
		target := p.TargetPort
		if target.IsZero() {
			target = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(p.Port)}
		}
		require.Equal(t, config.DefaultWebappPort, containerPort(t, poller.Template.Spec.Containers[0], target),
			"the Service's targetPort is the poller's web app port")
	})

	t.Run("kubectl kustomize", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("kubectl is not installed; the kustomization was checked by hand above")
		}
		out, err := exec.Command(kubectl, "kustomize", ".").Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize: %v\n%s", err, ee.Stderr)
		}
		require.NoError(t, err)
		rendered, err := decodeAll("kubectl kustomize", out)
		require.NoError(t, err)
		require.Len(t, rendered, len(m.objects))
		for _, o := range rendered {
			require.Equal(t, "nodepool-temporal", o.Metadata.Labels["app.kubernetes.io/part-of"], "%s/%s", o.Kind, o.Metadata.Name)
			if o.Kind != "Deployment" {
				continue
			}
			var spec deploymentSpec
			require.NoError(t, o.Spec.Decode(&spec))
			img := spec.Template.Spec.Containers[0].Image
			require.Equal(t, m.kust.Images[0].NewName+":"+m.kust.Images[0].NewTag, img)
		}
	})
}

// containerPort resolves a port reference (a number, or the name of one of c's
// ports) to a port number; 0 when a name matches none.
func containerPort(t *testing.T, c container, ref yaml.Node) int {
	t.Helper()
	if ref.Tag == "!!int" {
		n, err := strconv.Atoi(ref.Value)
		require.NoError(t, err)
		return n
	}
	for _, p := range c.Ports {
		if p.Name == ref.Value {
			return p.ContainerPort
		}
	}
	return 0
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// dockerStage is one FROM ... AS name section of the Dockerfile.
type dockerStage struct {
	name, from string
	lines      []string
}

func dockerStages(t *testing.T) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	require.NoError(t, err)
	// Join continuation lines.
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	fromRE := regexp.MustCompile(`(?i)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$`)
	var stages []dockerStage
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := fromRE.FindStringSubmatch(line); m != nil {
			stages = append(stages, dockerStage{name: m[2], from: m[1]})
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
		}
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := dockerStages(t)
	data, err := os.ReadFile(dockerfile)
	require.NoError(t, err)
	args := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ARG\s+(\w+)=(\S+)`).FindAllStringSubmatch(string(data), -1) {
		args[m[1]] = m[2]
	}
	expand := func(s string) string {
		return os.Expand(s, func(k string) string { return args[k] })
	}
	byName := map[string]dockerStage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	require.Equal(t, "launcher", stages[len(stages)-1].name, "the default (last) stage is the launcher")

	// The builds are static, and name packages that exist.
	cmdRE := regexp.MustCompile(`\./cmd/([\w-]+)`)
	built := 0
	for _, s := range stages {
		body := strings.Join(s.lines, "\n")
		if !strings.Contains(body, "go build") && !strings.Contains(body, "scripts/build-") {
			continue
		}
		require.Contains(t, body, "CGO_ENABLED=0", "stage %s builds without CGO_ENABLED=0", s.name)
		for _, m := range cmdRE.FindAllStringSubmatch(body, -1) {
			_, err := os.Stat(filepath.Join("..", "cmd", m[1], "main.go"))
			require.NoError(t, err, "stage %s builds ./cmd/%s", s.name, m[1])
			built++
		}
		for _, m := range regexp.MustCompile(`(scripts/build-[\w-]+\.sh)`).FindAllStringSubmatch(body, -1) {
			_, err := os.Stat(filepath.Join("..", m[1]))
			require.NoError(t, err, "stage %s runs %s", s.name, m[1])
		}
	}
	require.Positive(t, built)

	for _, name := range []string{"launcher", "sim", "temporal-dev", "temporal-cli"} {
		s, ok := byName[name]
		require.True(t, ok, "no stage %q", name)
		from := expand(s.from)
		require.True(t, from == "scratch" || strings.HasPrefix(from, "gcr.io/distroless/static"),
			"stage %s runs on %s; want scratch or distroless/static", name, from)
		body := strings.Join(s.lines, "\n")
		require.Regexp(t, `(?m)^USER\s+[1-9]\d*`, body, "stage %s runs as non-root", name)
		ep := regexp.MustCompile(`(?m)^ENTRYPOINT\s+\["([^"]+)"`).FindStringSubmatch(body)
		require.NotNil(t, ep, "stage %s has an exec-form ENTRYPOINT", name)
		require.True(t, copiesTo(body, ep[1]), "stage %s: the entrypoint %s is not copied in", name, ep[1])
	}

	// The launcher image carries the launcher and the admin CLI.
	launcher := strings.Join(byName["launcher"].lines, "\n")
	for _, m := range regexp.MustCompile(`--from=(\S+)\s+(\S+)`).FindAllStringSubmatch(launcher, -1) {
		src, ok := byName[m[1]]
		require.True(t, ok, "COPY --from=%s names no stage", m[1])
		body := strings.Join(src.lines, "\n")
		require.Contains(t, body, "./cmd/nodepool-launcher")
		require.Contains(t, body, "./cmd/nodepool ")
	}
}

// copiesTo reports whether a stage's COPY lines put a file at path.
func copiesTo(body, path string) bool {
	for _, line := range strings.Split(body, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 || !strings.EqualFold(fields[0], "COPY") {
			continue
		}
		dst := fields[len(fields)-1]
		if dst == path || (strings.HasSuffix(dst, "/") && filepath.Dir(path)+"/" == dst) {
			return true
		}
	}
	return false
}

func TestCompose(t *testing.T) {
	data, err := os.ReadFile(composeFile)
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Build *struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
				Target     string `yaml:"target"`
			} `yaml:"build"`
			Image           string   `yaml:"image"`
			Command         []string `yaml:"command"`
			Volumes         []string `yaml:"volumes"`
			StopGracePeriod string   `yaml:"stop_grace_period"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(data, &compose))
	flags, defaults := launcherFlags(t)
	stages := map[string]bool{}
	for _, s := range dockerStages(t) {
		stages[s.name] = true
	}
	launchers := 0
	for name, svc := range compose.Services {
		if svc.Build != nil {
			require.Equal(t, "docker/Dockerfile", svc.Build.Dockerfile, "service %s", name)
			require.True(t, stages[svc.Build.Target], "service %s builds target %q, which docker/Dockerfile lacks", name, svc.Build.Target)
		}
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				_, err := os.Stat(filepath.Join("..", "docker", src))
				require.NoError(t, err, "service %s mounts %s", name, src)
			}
		}
		if svc.Build == nil || svc.Build.Target != "launcher" {
			continue
		}
		launchers++
		args, err := parseArgs(flags, svc.Command)
		require.NoError(t, err, "service %s: command %q", name, svc.Command)
		mounted := ""
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && parts[1] == args["c"] {
				mounted = filepath.Join("..", "docker", parts[0])
			}
		}
		require.NotEmpty(t, mounted, "service %s: -c %s is not mounted", name, args["c"])
		_, err = launchconfig.Load(mounted, "")
		require.NoError(t, err, "service %s: %s does not load", name, mounted)
		if args["role"] == "worker" {
			grace, err := time.ParseDuration(svc.StopGracePeriod)
			require.NoError(t, err, "service %s: stop_grace_period", name)
			require.Greater(t, grace, drainTimeout(t, flags, defaults, args), "service %s: stop_grace_period must cover the drain", name)
		}
	}
	require.GreaterOrEqual(t, launchers, 2, "a poller and a worker service")
}
