package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/tiers"
)

// readVars is every environment variable the binary reads, taken from the
// config code itself: loadConfig runs with a getenv that records each name
// it is asked for.
func readVars(t *testing.T) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	if _, err := loadConfig(func(name string) string { seen[name] = true; return "" }); err != nil {
		t.Fatalf("loadConfig with an empty environment: %v", err)
	}
	if len(seen) < 20 || !seen["REDIS_URL"] || !seen["TLS_CERT_FILE"] {
		t.Fatalf("recorded only %v", seen)
	}
	return seen
}

func checkVars(t *testing.T, where string, names []string, known map[string]bool) {
	t.Helper()
	if len(names) == 0 {
		t.Errorf("%s sets no variable: the test read nothing", where)
	}
	for _, n := range names {
		if !known[n] {
			t.Errorf("%s sets %s, which claude-route never reads", where, n)
		}
	}
}

// The compose file, the Kubernetes manifests, the env-file example and the
// Dockerfile set only variables the binary reads: a typo there (REDIS_UR)
// would be silently ignored by the service.
func TestDeployFilesSetOnlyVariablesTheBinaryReads(t *testing.T) {
	known := readVars(t)
	root := filepath.Join("..", "..")

	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
			EnvFile     []string          `yaml:"env_file"`
			Healthcheck map[string]any    `yaml:"healthcheck"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	replicas := 0
	for name, svc := range compose.Services {
		if !strings.HasPrefix(svc.Image, "claude-route") {
			continue
		}
		replicas++
		checkVars(t, "docker-compose.yml "+name, keysOf(svc.Environment), known)
		if svc.Healthcheck == nil || len(svc.EnvFile) == 0 {
			t.Errorf("%s: a health check and an env file are required", name)
		}
		mounts := strings.Join(svc.Volumes, " ")
		for _, d := range []string{svc.Environment["ACCOUNT_DIR"], svc.Environment["PRODUCT_DIR"]} {
			if d == "" || !strings.Contains(mounts, ":"+d) {
				t.Errorf("%s: %q is not a volume (%s)", name, d, mounts)
			}
		}
		for _, f := range svc.EnvFile {
			checkVars(t, f+".example", envFileVars(t, filepath.Join(root, f+".example")), known)
		}
	}
	if replicas != 2 {
		t.Errorf("compose runs %d claude-route replicas, want 2", replicas)
	}
	if cmd := compose.Services["redis"]; cmd.Healthcheck == nil || !bytes.Contains(b, []byte(`"--appendonly", "yes"`)) {
		t.Error("compose's Redis needs a health check and AOF on")
	}

	docs := kubeDocs(t, filepath.Join(root, "deploy", "kubernetes"))
	dep := docs.only(t, "Deployment")
	if dep.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas %d, want 2", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	for _, c := range pod.Containers {
		var names []string
		for _, e := range c.Env {
			names = append(names, e.Name)
		}
		checkVars(t, "deployment.yaml container "+c.Name, names, known)
		if c.ReadinessProbe.HTTPGet.Path != "/health" {
			t.Errorf("readiness probe on %q, want /health", c.ReadinessProbe.HTTPGet.Path)
		}
		if ref := c.envFrom("REDIS_URL"); ref == nil || docs.secret(ref.Name) == nil {
			t.Errorf("REDIS_URL must come from a Secret of the manifests: %+v", ref)
		}
	}
	if len(docs.kind("PodDisruptionBudget")) != 1 {
		t.Error("no PodDisruptionBudget")
	}

	// The tiers file comes from the ConfigMap and loads as a tiers file.
	c := pod.Containers[0]
	tiersFile := c.value("TIERS_FILE")
	vol := pod.volumeAt(c, path.Dir(tiersFile))
	if vol == nil || vol.ConfigMap == nil {
		t.Fatalf("TIERS_FILE %s is not on a ConfigMap volume", tiersFile)
	}
	cm := docs.configMap(vol.ConfigMap.Name)
	if cm == nil {
		t.Fatalf("ConfigMap %s not in the manifests", vol.ConfigMap.Name)
	}
	table, err := tiers.Parse([]byte(cm.Data[path.Base(tiersFile)]))
	if err != nil {
		t.Fatalf("the ConfigMap's tiers file: %v", err)
	}

	// account/ from a Secret: lay it out as the kubelet does ("..data"
	// links) and load it with the real account loader.
	vol = pod.volumeAt(c, c.value("ACCOUNT_DIR"))
	if vol == nil || vol.Secret == nil {
		t.Fatal("ACCOUNT_DIR is not a Secret volume")
	}
	sec := docs.secret(vol.Secret.SecretName)
	if sec == nil {
		t.Fatalf("Secret %s not in the manifests", vol.Secret.SecretName)
	}
	dir := t.TempDir()
	ts := "..2026_12_07_03_00_00.000000001"
	want := map[string]string{} // account name → tier
	for _, it := range vol.Secret.Items {
		content, ok := sec.StringData[it.Key]
		if !ok {
			t.Fatalf("item %s: no such key in the Secret", it.Key)
		}
		full := filepath.Join(dir, ts, filepath.FromSlash(it.Path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o440); err != nil {
			t.Fatal(err)
		}
		top := strings.SplitN(it.Path, "/", 2)[0]
		if _, err := os.Lstat(filepath.Join(dir, top)); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", top), filepath.Join(dir, top)); err != nil {
				t.Fatal(err)
			}
		}
		want[strings.TrimSuffix(path.Base(it.Path), ".json")] = top
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	loaded, bad := accounts.LoadDir(dir, func(tier string) bool { _, ok := table.Get(tier); return ok })
	if len(bad) != 0 || len(loaded) != len(want) || len(want) == 0 {
		t.Fatalf("the Secret layout loaded %v, errors %v; want %v", loaded, bad, want)
	}
	for _, a := range loaded {
		if want[a.Name] != a.Tier {
			t.Errorf("account %s in tier %s, want %q", a.Name, a.Tier, want[a.Name])
		}
	}

	var image []string // the Dockerfile's ENV line
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(df), "\n") {
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			for _, kv := range strings.Fields(rest) {
				image = append(image, strings.SplitN(kv, "=", 2)[0])
			}
		}
	}
	checkVars(t, "Dockerfile", image, known)
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// envFileVars reads NAME=value lines (comments skipped).
func envFileVars(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.SplitN(line, "=", 2)[0])
	}
	return out
}

// kubeDoc is the part of a manifest the test reads.
type kubeDoc struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas int `yaml:"replicas"`
		Template struct {
			Spec kubePod `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type kubePod struct {
	Containers []kubeContainer `yaml:"containers"`
	Volumes    []kubeVolume    `yaml:"volumes"`
}

type kubeContainer struct {
	Name string `yaml:"name"`
	Env  []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
		} `yaml:"httpGet"`
	} `yaml:"readinessProbe"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type kubeVolume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
		Items      []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
}

func (c kubeContainer) value(name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

type secretRef struct{ Name, Key string }

func (c kubeContainer) envFrom(name string) *secretRef {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom.SecretKeyRef != nil {
			return &secretRef{e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key}
		}
	}
	return nil
}

// volumeAt is the volume the container mounts at dir.
func (p kubePod) volumeAt(c kubeContainer, dir string) *kubeVolume {
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		for i := range p.Volumes {
			if p.Volumes[i].Name == m.Name {
				return &p.Volumes[i]
			}
		}
	}
	return nil
}

type kubeSet []kubeDoc

func kubeDocs(t *testing.T, dir string) kubeSet {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	var out kubeSet
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var d kubeDoc
			if err := dec.Decode(&d); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, d)
		}
	}
	return out
}

func (s kubeSet) kind(k string) []kubeDoc {
	var out []kubeDoc
	for _, d := range s {
		if d.Kind == k {
			out = append(out, d)
		}
	}
	return out
}

func (s kubeSet) only(t *testing.T, k string) kubeDoc {
	t.Helper()
	ds := s.kind(k)
	if len(ds) != 1 {
		t.Fatalf("%d %s manifests, want 1", len(ds), k)
	}
	return ds[0]
}

func (s kubeSet) named(kind, name string) *kubeDoc {
	for i := range s {
		if s[i].Kind == kind && s[i].Metadata.Name == name {
			return &s[i]
		}
	}
	return nil
}

func (s kubeSet) secret(name string) *kubeDoc    { return s.named("Secret", name) }
func (s kubeSet) configMap(name string) *kubeDoc { return s.named("ConfigMap", name) }
