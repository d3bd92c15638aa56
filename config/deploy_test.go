package config

// These tests keep deploy/ (the Dockerfile, the systemd unit and the
// Kubernetes manifests) correct without Docker, systemd or a cluster: every
// YAML document parses; every agent configuration shipped there loads with
// this package, with the environment its unit or container provides; and the
// facts that must agree across files do (a config's state_dir is on a
// writable volume, its API key file is a mounted Secret, the grace period
// outlasts shutdown_timeout, --shard matches completions, ...).
//
// They live in package config because config owns yaml.v3.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// deployRoot is the repository's deploy/ directory, seen from this package.
const deployRoot = "../deploy"

// deployTestKey is the API key written where a deployment mounts the real
// one; it has the shape the validator expects, so no warning is raised.
const deployTestKey = "mlps_deploytest0123456789"

// deployAgentConfigs are the YAML files outside deploy/kubernetes; each is an
// agent configuration checked by a test named here. A new one must be added
// with a test that loads it in the environment it runs in.
var deployAgentConfigs = map[string]string{
	"systemd/agent.yaml": "TestDeploySystemd",
}

// deployWantFiles must exist: walking an emptied directory must not pass.
var deployWantFiles = []string{
	"README.md",
	"docker/Dockerfile",
	"docker/Dockerfile.dockerignore",
	"systemd/mlop-agent.service",
	"systemd/agent.yaml",
	"kubernetes/daemonset/kustomization.yaml",
	"kubernetes/daemonset/daemonset.yaml",
	"kubernetes/daemonset/configmap.yaml",
	"kubernetes/sidecar/kustomization.yaml",
	"kubernetes/sidecar/job.yaml",
	"kubernetes/sidecar/configmap.yaml",
	"kubernetes/migration-job/kustomization.yaml",
	"kubernetes/migration-job/job.yaml",
	"kubernetes/migration-job/pvc.yaml",
}

// ---- YAML loading -----------------------------------------------------------

// deployDoc is one YAML document of a file under deploy/.
type deployDoc struct {
	file string     // slash path relative to deploy/
	line int        // first line of the document
	node *yaml.Node // the document's root (mapping) node
	obj  k8sObject  // decoded, for files under kubernetes/
}

func (d deployDoc) String() string { return fmt.Sprintf("%s:%d", d.file, d.line) }

// dir is the directory of the document's file, relative to deploy/.
func (d deployDoc) dir() string { return path.Dir(d.file) }

// loadDeployYAML parses every *.yaml and *.yml under deploy/, all documents
// of each, failing the test on a syntax error, a duplicate key or an empty
// document.
func loadDeployYAML(t *testing.T) []deployDoc {
	t.Helper()
	var docs []deployDoc
	err := filepath.WalkDir(deployRoot, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() || (filepath.Ext(p) != ".yaml" && filepath.Ext(p) != ".yml") {
			return nil
		}
		rel, err := filepath.Rel(deployRoot, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				if i == 0 {
					t.Errorf("%s: no YAML document", rel)
				}
				break
			}
			if err != nil {
				t.Errorf("%s: document %d: %v", rel, i+1, err)
				break
			}
			if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
				t.Errorf("%s: document %d (line %d) is not a mapping", rel, i+1, doc.Line)
				continue
			}
			d := deployDoc{file: rel, line: doc.Content[0].Line, node: doc.Content[0]}
			checkDuplicateKeys(t, d.String(), d.node)
			if strings.HasPrefix(rel, "kubernetes/") {
				if err := d.node.Decode(&d.obj); err != nil {
					t.Errorf("%s: decode: %v", d, err)
				}
			}
			docs = append(docs, d)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", deployRoot, err)
	}
	return docs
}

// checkDuplicateKeys reports a mapping key that appears twice: yaml.v3
// accepts it in a node tree, kubectl's strict decoding does not, and the
// last value silently wins elsewhere.
func checkDuplicateKeys(t *testing.T, where string, n *yaml.Node) {
	t.Helper()
	if n.Kind == yaml.MappingNode {
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if first, dup := seen[k.Value]; dup {
				t.Errorf("%s: line %d: key %q repeats the one on line %d", where, k.Line, k.Value, first)
			}
			seen[k.Value] = k.Line
		}
	}
	for _, c := range n.Content {
		checkDuplicateKeys(t, where, c)
	}
}

// ---- the Kubernetes subset these tests read --------------------------------

type k8sObject struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   k8sMeta           `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`       // ConfigMap, Secret
	StringData map[string]string `yaml:"stringData"` // Secret
	Resources  []string          `yaml:"resources"`  // Kustomization
	Spec       k8sSpec           `yaml:"spec"`
}

type k8sMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// k8sSpec holds the fields of DaemonSet, Deployment, StatefulSet and Job
// specs that the tests look at.
type k8sSpec struct {
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata k8sMeta    `yaml:"metadata"`
		Spec     k8sPodSpec `yaml:"spec"`
	} `yaml:"template"`
	CompletionMode       string `yaml:"completionMode"`
	Completions          *int   `yaml:"completions"`
	Parallelism          *int   `yaml:"parallelism"`
	BackoffLimitPerIndex *int   `yaml:"backoffLimitPerIndex"`
	PodFailurePolicy     struct {
		Rules []struct {
			Action      string `yaml:"action"`
			OnExitCodes *struct {
				ContainerName string `yaml:"containerName"`
				Operator      string `yaml:"operator"`
				Values        []int  `yaml:"values"`
			} `yaml:"onExitCodes"`
		} `yaml:"rules"`
	} `yaml:"podFailurePolicy"`
}

type k8sPodSpec struct {
	ServiceAccountName            string         `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool          `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int           `yaml:"terminationGracePeriodSeconds"`
	RestartPolicy                 string         `yaml:"restartPolicy"`
	SecurityContext               k8sSecurity    `yaml:"securityContext"`
	InitContainers                []k8sContainer `yaml:"initContainers"`
	Containers                    []k8sContainer `yaml:"containers"`
	Volumes                       []k8sVolume    `yaml:"volumes"`
}

// k8sSecurity merges the pod and container fields of that name.
type k8sSecurity struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	Privileged               *bool  `yaml:"privileged"`
	Capabilities             struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
	SeccompProfile struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type k8sContainer struct {
	Name          string      `yaml:"name"`
	Image         string      `yaml:"image"`
	Command       []string    `yaml:"command"`
	Args          []string    `yaml:"args"`
	RestartPolicy string      `yaml:"restartPolicy"`
	Env           []k8sEnvVar `yaml:"env"`
	Ports         []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	VolumeMounts []k8sMount `yaml:"volumeMounts"`
	Resources    struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext k8sSecurity `yaml:"securityContext"`
	LivenessProbe   *k8sProbe   `yaml:"livenessProbe"`
	ReadinessProbe  *k8sProbe   `yaml:"readinessProbe"`
}

type k8sEnvVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		SecretKeyRef    *k8sKeyRef `yaml:"secretKeyRef"`
		ConfigMapKeyRef *k8sKeyRef `yaml:"configMapKeyRef"`
	} `yaml:"valueFrom"`
}

type k8sKeyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

type k8sMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type k8sVolume struct {
	Name      string       `yaml:"name"`
	ConfigMap *k8sFilesRef `yaml:"configMap"`
	Secret    *k8sFilesRef `yaml:"secret"`
	EmptyDir  *yaml.Node   `yaml:"emptyDir"`
	HostPath  *struct {
		Path string `yaml:"path"`
	} `yaml:"hostPath"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
	Projected *struct {
		DefaultMode *int `yaml:"defaultMode"`
		Sources     []struct {
			ConfigMap *k8sFilesRef `yaml:"configMap"`
			Secret    *k8sFilesRef `yaml:"secret"`
		} `yaml:"sources"`
	} `yaml:"projected"`
}

// k8sFilesRef is a configMap or secret volume or projection.
type k8sFilesRef struct {
	Name        string `yaml:"name"`
	SecretName  string `yaml:"secretName"`
	DefaultMode *int   `yaml:"defaultMode"`
	Items       []struct {
		Key  string `yaml:"key"`
		Path string `yaml:"path"`
	} `yaml:"items"`
}

func (r *k8sFilesRef) objName() string { return r.Name + r.SecretName }

// k8sWorkloads are the kinds whose spec.template is a pod template.
var k8sWorkloads = []string{"DaemonSet", "Deployment", "StatefulSet", "Job"}

// k8sDocs returns the Kubernetes documents, and an index by directory,
// kind and name.
func k8sDocs(docs []deployDoc) ([]deployDoc, map[[3]string]deployDoc) {
	var out []deployDoc
	index := map[[3]string]deployDoc{}
	for _, d := range docs {
		if strings.HasPrefix(d.file, "kubernetes/") {
			out = append(out, d)
			index[[3]string{d.dir(), d.obj.Kind, d.obj.Metadata.Name}] = d
		}
	}
	return out, index
}

// ---- the tests ---------------------------------------------------------------

func TestDeployYAML(t *testing.T) {
	for _, f := range deployWantFiles {
		if _, err := os.Stat(filepath.Join(deployRoot, f)); err != nil {
			t.Errorf("deploy/%s: %v", f, err)
		}
	}
	docs := loadDeployYAML(t)
	kinds := map[string]int{}
	for _, d := range docs {
		if !strings.HasPrefix(d.file, "kubernetes/") {
			if _, ok := deployAgentConfigs[d.file]; !ok {
				t.Errorf("%s: a YAML file outside deploy/kubernetes is taken for an agent config, but no test loads it; add it to deployAgentConfigs with a test", d.file)
			}
			continue
		}
		o := d.obj
		kinds[o.Kind]++
		if o.APIVersion == "" || o.Kind == "" {
			t.Errorf("%s: apiVersion %q, kind %q: both are required", d, o.APIVersion, o.Kind)
		}
		if o.Kind != "Kustomization" && o.Metadata.Name == "" {
			t.Errorf("%s: %s without metadata.name", d, o.Kind)
		}
	}
	// The manifests the README promises.
	for kind, min := range map[string]int{"DaemonSet": 1, "Job": 2, "ConfigMap": 2, "Kustomization": 3, "PersistentVolumeClaim": 1} {
		if kinds[kind] < min {
			t.Errorf("found %d %s document(s) under deploy/kubernetes, want at least %d", kinds[kind], kind, min)
		}
	}
}

// TestDeployKustomizations checks that each kustomization lists exactly the
// manifests beside it (examples excepted, so a placeholder Secret is never
// applied), and that a directory's objects share one namespace.
func TestDeployKustomizations(t *testing.T) {
	docs, _ := k8sDocs(loadDeployYAML(t))
	byDir := map[string][]deployDoc{}
	for _, d := range docs {
		byDir[d.dir()] = append(byDir[d.dir()], d)
	}
	for dir, ds := range byDir {
		var kust *deployDoc
		files := map[string]bool{}
		namespaces := map[string]string{} // namespace -> where
		for i, d := range ds {
			base := path.Base(d.file)
			if d.obj.Kind == "Kustomization" {
				kust = &ds[i]
				continue
			}
			if !strings.HasSuffix(base, ".example.yaml") {
				files[base] = true
			}
			ns := d.obj.Metadata.Namespace
			if d.obj.Kind == "Namespace" {
				ns = d.obj.Metadata.Name
			}
			namespaces[ns] = d.String()
		}
		if len(namespaces) > 1 {
			t.Errorf("%s: objects in more than one namespace: %v", dir, namespaces)
		}
		if kust == nil {
			t.Errorf("%s: no kustomization.yaml", dir)
			continue
		}
		listed := map[string]bool{}
		for _, r := range kust.obj.Resources {
			listed[r] = true
			if _, err := os.Stat(filepath.Join(deployRoot, dir, r)); err != nil {
				t.Errorf("%s: resource %s: %v", kust, r, err)
			}
			if strings.HasSuffix(r, ".example.yaml") {
				t.Errorf("%s: lists the example %s; examples hold placeholders and must not be applied", kust, r)
			}
		}
		for f := range files {
			if !listed[f] {
				t.Errorf("%s: %s is not in resources (name it *.example.yaml if it is not meant to be applied)", kust, f)
			}
		}
	}
}

// TestDeployPodSpecs checks every pod template: references resolve within
// its directory, every container is locked down and has resources, and
// $(VAR) references in commands are defined.
func TestDeployPodSpecs(t *testing.T) {
	docs, index := k8sDocs(loadDeployYAML(t))
	pods := 0
	for _, d := range docs {
		if !slices.Contains(k8sWorkloads, d.obj.Kind) {
			continue
		}
		pods++
		tmpl := d.obj.Spec.Template
		pod := tmpl.Spec
		where := d.String()

		if len(pod.Containers) == 0 {
			t.Errorf("%s: no containers", where)
		}
		if d.obj.Kind != "Job" {
			for k, v := range d.obj.Spec.Selector.MatchLabels {
				if tmpl.Metadata.Labels[k] != v {
					t.Errorf("%s: selector %s=%s does not match the template's labels %v", where, k, v, tmpl.Metadata.Labels)
				}
			}
			if len(d.obj.Spec.Selector.MatchLabels) == 0 {
				t.Errorf("%s: no spec.selector.matchLabels", where)
			}
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false: the agent does not use the Kubernetes API", where)
		}
		if sa := pod.ServiceAccountName; sa != "" {
			if _, ok := index[[3]string{d.dir(), "ServiceAccount", sa}]; !ok {
				t.Errorf("%s: serviceAccountName %s is not defined in %s", where, sa, d.dir())
			}
		}
		if got := pod.SecurityContext.SeccompProfile.Type; got != "RuntimeDefault" {
			t.Errorf("%s: pod seccompProfile.type = %q, want RuntimeDefault", where, got)
		}
		if pod.TerminationGracePeriodSeconds == nil {
			t.Errorf("%s: no terminationGracePeriodSeconds (the default, 30s, leaves no time beyond shutdown_timeout)", where)
		}

		mounted := map[string]bool{}
		for _, c := range k8sAllContainers(pod) {
			cw := fmt.Sprintf("%s: container %s", where, c.Name)
			if c.Image == "" {
				t.Errorf("%s: no image", cw)
			}
			for _, k := range []string{"cpu", "memory"} {
				if c.Resources.Requests[k] == "" {
					t.Errorf("%s: no resources.requests.%s", cw, k)
				}
			}
			if c.Resources.Limits["memory"] == "" {
				t.Errorf("%s: no resources.limits.memory", cw)
			}
			sc := c.SecurityContext
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation must be false", cw)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem must be true", cw)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", cw)
			}
			if !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: capabilities.drop must contain ALL, got %v", cw, sc.Capabilities.Drop)
			}
			if k8sIsAgent(c) {
				if len(sc.Capabilities.Add) > 0 {
					t.Errorf("%s: the agent needs no capabilities, got add %v", cw, sc.Capabilities.Add)
				}
				if uid := k8sRunAsUser(pod, c); uid == nil || *uid == 0 || !k8sRunAsNonRoot(pod, c) {
					t.Errorf("%s: the agent must run as a non-root uid with runAsNonRoot", cw)
				}
			}
			declared := map[string]bool{}
			for _, e := range c.Env {
				declared[e.Name] = true
				if e.ValueFrom != nil {
					for _, ref := range []struct {
						kind string
						r    *k8sKeyRef
					}{{"Secret", e.ValueFrom.SecretKeyRef}, {"ConfigMap", e.ValueFrom.ConfigMapKeyRef}} {
						if ref.r != nil {
							k8sCheckObjectKey(t, index, fmt.Sprintf("%s: env %s", cw, e.Name), d.dir(), ref.kind, ref.r.Name, ref.r.Key)
						}
					}
				}
			}
			for _, arg := range slices.Concat(c.Command, c.Args) {
				for _, m := range k8sVarRef.FindAllStringSubmatch(arg, -1) {
					if !declared[m[1]] {
						t.Errorf("%s: %q refers to $(%s), which is not in env (Kubernetes would pass it through literally)", cw, arg, m[1])
					}
				}
			}
			for _, m := range c.VolumeMounts {
				mounted[m.Name] = true
				if k8sVolumeNamed(pod, m.Name) == nil {
					t.Errorf("%s: volumeMount %s has no volume", cw, m.Name)
				}
			}
			for _, p := range []*k8sProbe{c.LivenessProbe, c.ReadinessProbe} {
				if p != nil && p.HTTPGet != nil && k8sContainerPort(c, p.HTTPGet.Port) == 0 {
					t.Errorf("%s: probe port %q is not one of the container's ports", cw, p.HTTPGet.Port)
				}
			}
		}
		for _, v := range pod.Volumes {
			vw := fmt.Sprintf("%s: volume %s", where, v.Name)
			if !mounted[v.Name] {
				t.Errorf("%s: not mounted by any container", vw)
			}
			for _, fr := range v.fileRefs() {
				if len(fr.ref.Items) == 0 {
					k8sCheckObjectKey(t, index, vw, d.dir(), fr.kind, fr.ref.objName(), "")
				}
				for _, it := range fr.ref.Items {
					k8sCheckObjectKey(t, index, vw, d.dir(), fr.kind, fr.ref.objName(), it.Key)
				}
				if fr.kind == "Secret" {
					mode := fr.ref.DefaultMode
					if v.Projected != nil {
						mode = v.Projected.DefaultMode
					}
					if mode == nil || *mode&0o007 != 0 {
						t.Errorf("%s: a Secret's files must not be readable by others: set defaultMode (e.g. 0440 with fsGroup)", vw)
					}
				}
			}
			if v.PersistentVolumeClaim != nil {
				if _, ok := index[[3]string{d.dir(), "PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName}]; !ok {
					t.Errorf("%s: PersistentVolumeClaim %s is not defined in %s", vw, v.PersistentVolumeClaim.ClaimName, d.dir())
				}
			}
		}
	}
	if pods == 0 {
		t.Fatal("no pod templates found under deploy/kubernetes")
	}
}

// TestDeployAgentConfigs loads every agent configuration a Kubernetes
// container runs with: the ConfigMap key its -c file is projected from,
// with the container's env, through ParseWithEnv; then checks that the
// paths the config names are where the pod mounts them.
func TestDeployAgentConfigs(t *testing.T) {
	docs, index := k8sDocs(loadDeployYAML(t))
	used := map[string]bool{} // "dir/ConfigMap/name/key" -> loaded
	for _, d := range docs {
		if !slices.Contains(k8sWorkloads, d.obj.Kind) {
			continue
		}
		tmpl := d.obj.Spec.Template
		pod := tmpl.Spec
		for _, c := range k8sAllContainers(pod) {
			if !k8sIsAgent(c) || len(c.Args) == 0 || !slices.Contains([]string{"run", "backfill", "check"}, c.Args[0]) {
				continue
			}
			cw := fmt.Sprintf("%s: container %s", d, c.Name)
			t.Run(strings.ReplaceAll(d.file, "/", "_")+"_"+c.Name, func(t *testing.T) {
				cfgFile := deployArgValue(c.Args, "c", "config")
				if cfgFile == "" {
					t.Fatalf("%s: args %v have no -c FILE", cw, c.Args)
				}
				src := k8sResolveFile(pod, c, cfgFile)
				if src.kind != "ConfigMap" {
					t.Fatalf("%s: -c %s is not a file projected from a ConfigMap (%+v)", cw, cfgFile, src)
				}
				cm, ok := index[[3]string{d.dir(), "ConfigMap", src.name}]
				text, hasKey := cm.obj.Data[src.key]
				if !ok || !hasKey {
					t.Fatalf("%s: -c %s comes from ConfigMap %s key %s, which %s does not define", cw, cfgFile, src.name, src.key, d.dir())
				}
				used[d.dir()+"/ConfigMap/"+src.name+"/"+src.key] = true
				name := fmt.Sprintf("%s[%s]", cm.file, src.key)

				text = substituteDeployKeyFile(t, name, text, func(p string) error {
					if ks := k8sResolveFile(pod, c, p); ks.kind != "Secret" || !ks.readOnly {
						return fmt.Errorf("server.api_key_file %s is not a file of a Secret mounted read-only in %s (%+v)", p, cw, ks)
					}
					return nil
				})
				env := k8sContainerEnv(c)
				cfg, err := ParseWithEnv([]byte(text), name, envOf(env))
				if err != nil {
					t.Fatalf("%s does not load with the env of %s (%v):\n%v", name, cw, deploySortedKeys(env), err)
				}
				checkDeployedConfig(t, name, cfg)

				// Where the config's paths land in the container.
				type pathRule struct {
					key, path string
					writable  bool
				}
				mounts := []pathRule{{"state_dir", cfg.StateDir, true}}
				if cfg.DeadLetter.Path != "" {
					mounts = append(mounts, pathRule{"dead_letter.path", filepath.Dir(cfg.DeadLetter.Path), true})
				}
				for i, s := range cfg.Sources {
					for j, p := range s.Paths {
						mounts = append(mounts, pathRule{fmt.Sprintf("sources[%d].paths[%d]", i, j), globBase(p), false})
					}
				}
				for _, m := range mounts {
					f := k8sResolveFile(pod, c, m.path)
					switch {
					case f.mount == nil:
						t.Errorf("%s: %s (%s) is on no volume of %s", name, m.key, m.path, cw)
					case m.writable && (f.readOnly || !slices.Contains([]string{"hostPath", "emptyDir", "persistentVolumeClaim"}, f.kind)):
						t.Errorf("%s: %s (%s) must be on a writable hostPath, emptyDir or PVC mount; it is on %s %s (readOnly %v)", name, m.key, m.path, f.kind, f.mount.Name, f.readOnly)
					case !m.writable && !f.readOnly:
						t.Errorf("%s: %s (%s): mount %s read-only; the agent only reads the logs", name, m.key, m.path, f.mount.Name)
					}
				}
				if d.obj.Kind == "DaemonSet" {
					if f := k8sResolveFile(pod, c, cfg.StateDir); f.kind != "hostPath" {
						t.Errorf("%s: state_dir %s is on a %s volume; a DaemonSet keeps it on a hostPath so a new pod on the node resumes", name, cfg.StateDir, f.kind)
					}
				}

				if g := pod.TerminationGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second <= time.Duration(cfg.ShutdownTimeout) {
					t.Errorf("%s: terminationGracePeriodSeconds %d is not above shutdown_timeout %s: the kubelet kills the drain", cw, *g, cfg.ShutdownTimeout)
				}

				// The HTTP listener: on the pod IP, on the probed port,
				// on the port Prometheus is told about.
				host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
				if err != nil {
					t.Fatalf("%s: http.listen %q: %v; the probes need it", name, cfg.HTTP.Listen, err)
				}
				if host != "" && host != "0.0.0.0" && host != "::" {
					t.Errorf("%s: http.listen %s: the kubelet probes the pod IP, listen on 0.0.0.0", name, cfg.HTTP.Listen)
				}
				for what, p := range map[string]*k8sProbe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
					switch {
					case p == nil || p.HTTPGet == nil:
						t.Errorf("%s: no httpGet probe on %s", cw, what)
					case p.HTTPGet.Path != what:
						t.Errorf("%s: probe path %s, want %s", cw, p.HTTPGet.Path, what)
					case strconv.Itoa(k8sContainerPort(c, p.HTTPGet.Port)) != port:
						t.Errorf("%s: probe %s goes to port %s, http.listen is %s", cw, what, p.HTTPGet.Port, cfg.HTTP.Listen)
					}
				}
				if ann := tmpl.Metadata.Annotations["prometheus.io/port"]; ann != port {
					t.Errorf("%s: prometheus.io/port annotation %q, http.listen port %s", d, ann, port)
				}

				// Memory: the buffer and GOMEMLIMIT fit the limit with room
				// for the runtime.
				limit, err := parseDeploySize(c.Resources.Limits["memory"], k8sSizeUnits)
				if err != nil {
					t.Fatalf("%s: limits.memory: %v", cw, err)
				}
				if b := int64(cfg.Buffer.MaxBytes); 2*b > limit {
					t.Errorf("%s: buffer.max_bytes %s is more than half of limits.memory %s", name, cfg.Buffer.MaxBytes, c.Resources.Limits["memory"])
				}
				if v, ok := env["GOMEMLIMIT"]; ok {
					if gl, err := parseDeploySize(v, goSizeUnits); err != nil || gl >= limit {
						t.Errorf("%s: GOMEMLIMIT %s must be below limits.memory %s (%v)", cw, v, c.Resources.Limits["memory"], err)
					}
				}

				// --exit-when-done --sentinel FILE: the file must be on a
				// volume another container writes.
				if s := deployArgValue(c.Args, "sentinel"); s != "" {
					f := k8sResolveFile(pod, c, s)
					writer := false
					for _, o := range k8sAllContainers(pod) {
						if o.Name != c.Name && f.mount != nil {
							for _, m := range o.VolumeMounts {
								writer = writer || (m.Name == f.mount.Name && !m.ReadOnly)
							}
						}
					}
					if !writer {
						t.Errorf("%s: --sentinel %s is not on a volume another container of the pod writes", cw, s)
					}
					if !slices.Contains(c.Args, "--exit-when-done") {
						t.Errorf("%s: --sentinel without --exit-when-done", cw)
					}
				}
			})
		}
	}
	// A ConfigMap config that no container runs would never be checked.
	for _, d := range docs {
		if d.obj.Kind != "ConfigMap" {
			continue
		}
		for key := range d.obj.Data {
			if strings.HasSuffix(key, ".yaml") && !used[d.dir()+"/ConfigMap/"+d.obj.Metadata.Name+"/"+key] {
				t.Errorf("%s: ConfigMap %s key %s is not the -c file of any agent container in %s", d, d.obj.Metadata.Name, key, d.dir())
			}
		}
	}
	if len(used) == 0 {
		t.Fatal("no agent configuration found in deploy/kubernetes")
	}
}

// TestDeployMigrationJob checks the sharded import: an Indexed Job whose
// --shard matches completions, with one state directory per shard and the
// exit codes mapped to what they mean.
func TestDeployMigrationJob(t *testing.T) {
	docs, _ := k8sDocs(loadDeployYAML(t))
	found := 0
	for _, d := range docs {
		if d.obj.Kind != "Job" {
			continue
		}
		pod := d.obj.Spec.Template.Spec
		for _, c := range pod.Containers {
			if !k8sIsAgent(c) || len(c.Args) < 2 || c.Args[0] != "import" {
				continue
			}
			found++
			cw := fmt.Sprintf("%s: container %s", d, c.Name)
			s := d.obj.Spec
			if s.CompletionMode != "Indexed" {
				t.Errorf("%s: completionMode %q, want Indexed", d, s.CompletionMode)
			}
			if s.Completions == nil || *s.Completions < 1 {
				t.Fatalf("%s: no completions", d)
			}
			n := *s.Completions
			if s.Parallelism == nil || *s.Parallelism < 1 || *s.Parallelism > n {
				t.Errorf("%s: parallelism must be 1..completions (%d)", d, n)
			}
			if want := fmt.Sprintf("$(JOB_COMPLETION_INDEX)/%d", n); deployArgValue(c.Args, "shard") != want {
				t.Errorf("%s: --shard %q, want %q (completions is %d)", cw, deployArgValue(c.Args, "shard"), want, n)
			}
			stateDir := deployArgValue(c.Args, "state-dir")
			if !strings.Contains(stateDir, "$(JOB_COMPLETION_INDEX)") {
				t.Errorf("%s: --state-dir %q is shared by all shards; its lock lets one run at a time. Put $(JOB_COMPLETION_INDEX) in it", cw, stateDir)
			}
			if f := k8sResolveFile(pod, c, stateDir); f.kind != "persistentVolumeClaim" || f.readOnly {
				t.Errorf("%s: --state-dir %s must be on a writable PVC so a retried shard resumes (it is on %q)", cw, stateDir, f.kind)
			}
			if len(c.Args) < 3 {
				t.Fatalf("%s: args %v: want import neptune-export DATA_DIR ...", cw, c.Args)
			}
			if f := k8sResolveFile(pod, c, c.Args[2]); f.mount == nil || !f.readOnly {
				t.Errorf("%s: the export %s must be on a read-only mount", cw, c.Args[2])
			}
			if deployArgValue(c.Args, "project") == "" || deployArgValue(c.Args, "parallel") == "" {
				t.Errorf("%s: --project and --parallel are required", cw)
			}
			if pod.RestartPolicy != "Never" {
				t.Errorf("%s: restartPolicy %q; podFailurePolicy needs Never", d, pod.RestartPolicy)
			}
			if s.BackoffLimitPerIndex == nil {
				t.Errorf("%s: no backoffLimitPerIndex: one bad shard would use up the whole Job's retries", d)
			}
			actions := map[int]string{}
			for _, r := range s.PodFailurePolicy.Rules {
				if r.OnExitCodes != nil && r.OnExitCodes.Operator == "In" && (r.OnExitCodes.ContainerName == "" || r.OnExitCodes.ContainerName == c.Name) {
					for _, v := range r.OnExitCodes.Values {
						if _, dup := actions[v]; !dup {
							actions[v] = r.Action
						}
					}
				}
			}
			for code, want := range map[int]string{2: "FailJob", 3: "FailIndex", 4: "Ignore"} {
				if actions[code] != want {
					t.Errorf("%s: exit code %d: podFailurePolicy action %q, want %s", d, code, actions[code], want)
				}
			}
			if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= time.Duration(Default().ShutdownTimeout) {
				t.Errorf("%s: terminationGracePeriodSeconds must exceed the default shutdown_timeout %s", d, Default().ShutdownTimeout)
			}
		}
	}
	if found != 1 {
		t.Errorf("found %d import containers in Jobs, want 1 (deploy/kubernetes/migration-job)", found)
	}
}

// TestDeploySystemd checks the unit's directives and loads agent.yaml the
// way the unit runs it: with its Environment= and the credentials directory
// systemd creates from LoadCredential=.
func TestDeploySystemd(t *testing.T) {
	u := parseSystemdUnit(t, filepath.Join(deployRoot, "systemd", "mlop-agent.service"))
	svc := u["Service"]
	one := func(key string) string {
		if v := svc[key]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	for _, tc := range []struct{ key, want string }{
		{"Type", "simple"},
		{"Restart", "on-failure"},
		{"KillSignal", "SIGTERM"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "read-only"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectKernelLogs", "yes"},
		{"ProtectControlGroups", "yes"},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"RestrictNamespaces", "yes"},
		{"LockPersonality", "yes"},
		{"MemoryDenyWriteExecute", "yes"},
		{"CapabilityBoundingSet", ""},
		{"StateDirectory", "mlop-agent"},
		{"RestartPreventExitStatus", "2"},
	} {
		got, ok := svc[tc.key]
		if !ok || one(tc.key) != tc.want {
			t.Errorf("[Service] %s = %q (set: %v), want %q", tc.key, got, ok, tc.want)
		}
	}
	if !slices.Contains(svc["SystemCallFilter"], "@system-service") {
		t.Errorf("[Service] SystemCallFilter = %q, want @system-service among them", svc["SystemCallFilter"])
	}
	if one("DynamicUser") != "yes" && one("User") == "" {
		t.Errorf("[Service] neither DynamicUser=yes nor User=: the agent would run as root")
	}
	if !slices.ContainsFunc(svc["ExecReload"], func(s string) bool {
		return strings.HasPrefix(s, "/bin/kill ") && strings.Contains(s, "-HUP $MAINPID")
	}) {
		t.Errorf("[Service] ExecReload = %q, want /bin/kill -HUP $MAINPID", svc["ExecReload"])
	}
	exec := strings.Fields(one("ExecStart"))
	if len(exec) < 2 || exec[0] != "/usr/local/bin/mlop-agent" || exec[1] != "run" {
		t.Fatalf("[Service] ExecStart = %q, want /usr/local/bin/mlop-agent run -c FILE", one("ExecStart"))
	}
	if got := deployArgValue(exec[2:], "c", "config"); got != "/etc/mlop-agent/agent.yaml" {
		t.Errorf("ExecStart -c %q, want /etc/mlop-agent/agent.yaml (where the README installs systemd/agent.yaml)", got)
	}
	for _, r := range svc["ExecReload"] {
		if f := strings.Fields(r); len(f) > 1 && f[0] == exec[0] && deployArgValue(f[1:], "c", "config") != "/etc/mlop-agent/agent.yaml" {
			t.Errorf("ExecReload %q checks another file than ExecStart runs", r)
		}
	}

	// The environment the agent gets.
	env := map[string]string{}
	for _, e := range svc["Environment"] {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			env[k] = v
		}
	}
	credDir := t.TempDir()
	env["CREDENTIALS_DIRECTORY"] = credDir
	for _, lc := range svc["LoadCredential"] {
		id, src, ok := strings.Cut(lc, ":")
		if !ok || !filepath.IsAbs(src) {
			t.Errorf("LoadCredential=%s: want ID:/absolute/path", lc)
		}
		writeFile(t, credDir, id, deployTestKey+"\n", 0o400)
	}
	data, err := os.ReadFile(filepath.Join(deployRoot, "systemd", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseWithEnv(data, "deploy/systemd/agent.yaml", envOf(env))
	if err != nil {
		t.Fatalf("deploy/systemd/agent.yaml does not load with the unit's environment %v:\n%v", deploySortedKeys(env), err)
	}
	checkDeployedConfig(t, "deploy/systemd/agent.yaml", cfg)
	if !strings.HasPrefix(cfg.Server.APIKeyFile, credDir+string(filepath.Separator)) {
		t.Errorf("server.api_key_file = %s, want ${CREDENTIALS_DIRECTORY}/<id> (LoadCredential=)", cfg.Server.APIKeyFile)
	}
	if want := "/var/lib/" + one("StateDirectory"); cfg.StateDir != want {
		t.Errorf("state_dir = %s, want %s (StateDirectory=%s)", cfg.StateDir, want, one("StateDirectory"))
	}
	if p := cfg.DeadLetter.Path; p != "" && !deployPathUnder(p, "/var/log/"+one("LogsDirectory")) {
		t.Errorf("dead_letter.path %s is not in LogsDirectory=%s (/var/log/%[2]s): ProtectSystem=strict makes everything else read-only", p, one("LogsDirectory"))
	}
	stop, err := time.ParseDuration(one("TimeoutStopSec"))
	if err != nil || stop <= time.Duration(cfg.ShutdownTimeout) {
		t.Errorf("TimeoutStopSec=%s must be a duration above shutdown_timeout %s (%v)", one("TimeoutStopSec"), cfg.ShutdownTimeout, err)
	}
	var roots []string
	for _, r := range svc["ReadOnlyPaths"] {
		for _, p := range strings.Fields(r) {
			roots = append(roots, strings.TrimLeft(p, "-+"))
		}
	}
	for i, s := range cfg.Sources {
		for _, p := range s.Paths {
			if !slices.ContainsFunc(roots, func(r string) bool { return deployPathUnder(globBase(p), r) }) {
				t.Errorf("sources[%d].paths %s is not under ReadOnlyPaths %v", i, p, roots)
			}
		}
	}
	mem, err := parseDeploySize(one("MemoryMax"), systemdSizeUnits)
	if err != nil {
		t.Fatalf("MemoryMax=%q: %v", one("MemoryMax"), err)
	}
	if 2*int64(cfg.Buffer.MaxBytes) > mem {
		t.Errorf("buffer.max_bytes %s is more than half of MemoryMax=%s", cfg.Buffer.MaxBytes, one("MemoryMax"))
	}
	if v, ok := env["GOMEMLIMIT"]; ok {
		if gl, err := parseDeploySize(v, goSizeUnits); err != nil || gl >= mem {
			t.Errorf("GOMEMLIMIT=%s must be below MemoryMax=%s (%v)", v, one("MemoryMax"), err)
		}
	}
}

// TestDeployDockerfile checks the image build: a Go builder stage producing
// a static, stamped binary, copied into a distroless non-root final stage.
func TestDeployDockerfile(t *testing.T) {
	stages := parseDeployDockerfile(t, filepath.Join(deployRoot, "docker", "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d stage(s), want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if build.name == "" || !strings.Contains(build.image, "golang:") {
		t.Errorf("first stage FROM %s AS %q: want a named golang stage (FROM golang:... AS build)", build.image, build.name)
	}
	if !strings.HasPrefix(final.image, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static...", final.image)
	}
	buildRun := strings.Join(build.all("RUN"), "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "./cmd/mlop-agent", "go mod download"} {
		if !strings.Contains(buildRun, want) {
			t.Errorf("build stage RUN has no %q", want)
		}
	}
	if !slices.ContainsFunc(build.all("ARG"), func(a string) bool { return strings.HasPrefix(a, "VERSION") }) {
		t.Errorf("build stage has no ARG VERSION")
	}
	// go.mod/go.sum are copied and the modules downloaded before the rest
	// of the source, so the download layer survives source edits.
	iMod, iDownload, iAll := -1, -1, -1
	for i, in := range build.instrs {
		switch {
		case in.cmd == "COPY" && strings.Contains(in.args, "go.mod") && strings.Contains(in.args, "go.sum"):
			iMod = i
		case in.cmd == "RUN" && strings.Contains(in.args, "go mod download") && iDownload < 0:
			iDownload = i
		case in.cmd == "COPY" && strings.HasPrefix(in.args, ". "):
			iAll = i
		}
	}
	if iMod < 0 || iDownload < iMod || iAll < iDownload {
		t.Errorf("build stage order: COPY go.mod go.sum (%d), RUN go mod download (%d), COPY . . (%d): want them in that order", iMod, iDownload, iAll)
	}
	if !slices.ContainsFunc(final.all("COPY"), func(a string) bool {
		return strings.Contains(a, "--from="+build.name) && strings.Contains(a, "/mlop-agent")
	}) {
		t.Errorf("final stage does not COPY --from=%s the binary", build.name)
	}
	users := final.all("USER")
	if len(users) == 0 || slices.Contains([]string{"root", "0", "0:0", "root:root"}, users[len(users)-1]) {
		t.Errorf("final stage USER %v: want a non-root user", users)
	}
	for _, tc := range []struct{ cmd, want string }{
		{"ENTRYPOINT", `["/mlop-agent"]`},
		{"CMD", `["run", "-c", "/etc/mlop-agent/agent.yaml"]`},
		{"EXPOSE", "9464"},
	} {
		if got := final.all(tc.cmd); len(got) == 0 || got[len(got)-1] != tc.want {
			t.Errorf("final stage %s %v, want %s", tc.cmd, got, tc.want)
		}
	}
	if labels := strings.Join(final.all("LABEL"), " "); !strings.Contains(labels, "org.opencontainers.image.source=") || !strings.Contains(labels, "org.opencontainers.image.version=") {
		t.Errorf("final stage has no OCI source/version labels: %s", labels)
	}

	// The ignore file must not drop what the build needs.
	ignore, err := os.ReadFile(filepath.Join(deployRoot, "docker", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum", "cmd/mlop-agent/main.go"}
	entries, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		// The go command ignores testdata directories, whatever they hold.
		if e.IsDir() && e.Name() != "testdata" && deployHasGoSource(filepath.Join("..", e.Name())) {
			needed = append(needed, e.Name())
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(ignore))
	for sc.Scan() {
		pat := strings.TrimSpace(sc.Text())
		if pat == "" || strings.HasPrefix(pat, "#") || strings.HasPrefix(pat, "!") {
			continue
		}
		for _, n := range needed {
			if ok, _ := filepath.Match(pat, n); ok {
				t.Errorf("Dockerfile.dockerignore: %q excludes %s, which the build needs", pat, n)
			}
		}
	}
}

// ---- helpers ----------------------------------------------------------------

// checkDeployedConfig holds what every shipped config must satisfy once
// loaded: no warnings, TLS verification on, https to the server, the key
// from a file, and an HTTP listener to probe and scrape.
func checkDeployedConfig(t *testing.T, name string, cfg *Config) {
	t.Helper()
	if len(cfg.Warnings) > 0 {
		t.Errorf("%s: warnings:\n%s", name, strings.Join(cfg.Warnings, "\n"))
	}
	if cfg.Server.TLS.InsecureSkipVerify {
		t.Errorf("%s: server.tls.insecure_skip_verify is on", name)
	}
	for key, u := range map[string]string{"url_api": cfg.Server.URLAPI, "url_ingest": cfg.Server.URLIngest, "url_py": cfg.Server.URLPy} {
		if !strings.HasPrefix(u, "https://") {
			t.Errorf("%s: server.%s %s: the API key would travel in clear text; use https", name, key, u)
		}
	}
	if cfg.Server.APIKeyFile == "" {
		t.Errorf("%s: no server.api_key_file: deployments mount the key from a Secret or credential", name)
	}
	if cfg.HTTP.Listen == "" {
		t.Errorf("%s: no http.listen: nothing to probe or scrape", name)
	}
}

// substituteDeployKeyFile returns text with server.api_key_file pointing at a
// temporary file holding deployTestKey: the real file exists only in the
// deployment. check vets the original path first.
func substituteDeployKeyFile(t *testing.T, name, text string, check func(path string) error) string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	n := deployMappingValue(deployMappingValue(doc.Content[0], "server"), "api_key_file")
	if n == nil || n.Kind != yaml.ScalarNode || !filepath.IsAbs(n.Value) {
		t.Fatalf("%s: server.api_key_file must be set to an absolute path (the mounted Secret)", name)
	}
	if err := check(n.Value); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	n.Value = writeFile(t, t.TempDir(), "api-key", deployTestKey+"\n", 0o400)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out)
}

// deployMappingValue returns the value of key in mapping n, or nil.
func deployMappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// k8sVarRef matches $(VAR) in a command or argument; $$(VAR) is an escape.
var k8sVarRef = regexp.MustCompile(`(?:^|[^$])\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func k8sAllContainers(p k8sPodSpec) []k8sContainer {
	return slices.Concat(p.InitContainers, p.Containers)
}

// k8sIsAgent reports whether c runs the mlop-agent image.
func k8sIsAgent(c k8sContainer) bool { return strings.Contains(c.Image, "mlop-agent") }

func k8sRunAsUser(p k8sPodSpec, c k8sContainer) *int64 {
	if c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	return p.SecurityContext.RunAsUser
}

func k8sRunAsNonRoot(p k8sPodSpec, c k8sContainer) bool {
	if v := c.SecurityContext.RunAsNonRoot; v != nil {
		return *v
	}
	v := p.SecurityContext.RunAsNonRoot
	return v != nil && *v
}

func k8sVolumeNamed(p k8sPodSpec, name string) *k8sVolume {
	for i := range p.Volumes {
		if p.Volumes[i].Name == name {
			return &p.Volumes[i]
		}
	}
	return nil
}

// k8sContainerPort returns the port a probe's port (number or name) refers to
// when it is one of c's ports, else 0.
func k8sContainerPort(c k8sContainer, port string) int {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(p.ContainerPort) == port {
			return p.ContainerPort
		}
	}
	return 0
}

// k8sContainerEnv is c's environment as the agent sees it; values from the
// downward API, Secrets or ConfigMaps get stand-ins.
func k8sContainerEnv(c k8sContainer) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = deployTestKey
		default:
			env[e.Name] = "test-" + strings.ToLower(e.Name)
		}
	}
	return env
}

// k8sFileRef is one ConfigMap or Secret whose keys a volume shows as files.
type k8sFileRef struct {
	kind string // ConfigMap or Secret
	ref  *k8sFilesRef
}

func (v k8sVolume) fileRefs() []k8sFileRef {
	var out []k8sFileRef
	if v.ConfigMap != nil {
		out = append(out, k8sFileRef{"ConfigMap", v.ConfigMap})
	}
	if v.Secret != nil {
		out = append(out, k8sFileRef{"Secret", v.Secret})
	}
	if v.Projected != nil {
		for _, s := range v.Projected.Sources {
			if s.ConfigMap != nil {
				out = append(out, k8sFileRef{"ConfigMap", s.ConfigMap})
			}
			if s.Secret != nil {
				out = append(out, k8sFileRef{"Secret", s.Secret})
			}
		}
	}
	return out
}

func (v k8sVolume) kind() string {
	switch {
	case v.HostPath != nil:
		return "hostPath"
	case v.EmptyDir != nil:
		return "emptyDir"
	case v.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim"
	case v.ConfigMap != nil, v.Secret != nil, v.Projected != nil:
		return "files"
	}
	return "unknown"
}

// k8sFileSource says where a path in a container comes from.
type k8sFileSource struct {
	mount    *k8sMount
	readOnly bool
	kind     string // ConfigMap, Secret (a file of one), or the volume's kind
	name     string // ConfigMap or Secret name
	key      string // its key
}

// k8sResolveFile finds the mount holding p in container c (the longest
// mountPath containing it) and, for ConfigMap/Secret volumes, the key p is.
func k8sResolveFile(pod k8sPodSpec, c k8sContainer, p string) k8sFileSource {
	var best *k8sMount
	for i, m := range c.VolumeMounts {
		if deployPathUnder(p, m.MountPath) && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	if best == nil {
		return k8sFileSource{}
	}
	src := k8sFileSource{mount: best, readOnly: best.ReadOnly}
	v := k8sVolumeNamed(pod, best.Name)
	if v == nil {
		return src
	}
	src.kind = v.kind()
	rel := strings.TrimPrefix(strings.TrimPrefix(path.Clean(p), path.Clean(best.MountPath)), "/")
	for _, fr := range v.fileRefs() {
		if len(fr.ref.Items) == 0 && rel != "" && !strings.Contains(rel, "/") {
			// Without items every key is a file of its own name; whether
			// the key exists is checked against the object.
			src.kind, src.name, src.key = fr.kind, fr.ref.objName(), rel
		}
		for _, it := range fr.ref.Items {
			if it.Path == rel {
				return k8sFileSource{mount: best, readOnly: best.ReadOnly, kind: fr.kind, name: fr.ref.objName(), key: it.Key}
			}
		}
	}
	return src
}

// k8sCheckObjectKey reports a reference to a ConfigMap or Secret (key may be
// "") that is not defined in dir. Secrets are found in *.example.yaml: the
// real ones are created by hand.
func k8sCheckObjectKey(t *testing.T, index map[[3]string]deployDoc, where, dir, kind, name, key string) {
	t.Helper()
	d, ok := index[[3]string{dir, kind, name}]
	if !ok {
		t.Errorf("%s: %s %s is not defined in %s", where, kind, name, dir)
		return
	}
	if key == "" {
		return
	}
	_, inData := d.obj.Data[key]
	_, inString := d.obj.StringData[key]
	if !inData && !inString {
		t.Errorf("%s: %s %s has no key %s", where, kind, name, key)
	}
}

// deployArgValue returns the value of the first of names (without dashes) in
// args, written -name v, --name v, -name=v or --name=v; "" if absent.
func deployArgValue(args []string, names ...string) string {
	for i, a := range args {
		for _, n := range names {
			for _, p := range []string{"-" + n, "--" + n} {
				if a == p && i+1 < len(args) {
					return args[i+1]
				}
				if v, ok := strings.CutPrefix(a, p+"="); ok {
					return v
				}
			}
		}
	}
	return ""
}

// deployPathUnder reports whether p is dir or inside it.
func deployPathUnder(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

func deploySortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Units of the three memory notations met here.
var (
	k8sSizeUnits     = map[string]int64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
	goSizeUnits      = map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
	systemdSizeUnits = map[string]int64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
)

// parseDeploySize parses an integer with one of units' suffixes.
func parseDeploySize(s string, units map[string]int64) (int64, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	u, ok := units[s[i:]]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q", s, s[i:])
	}
	return n * u, nil
}

func TestDeployParseSize(t *testing.T) {
	tests := []struct {
		s     string
		units map[string]int64
		want  int64
		ok    bool
	}{
		{"256Mi", k8sSizeUnits, 256 << 20, true},
		{"1G", k8sSizeUnits, 1e9, true},
		{"200MiB", goSizeUnits, 200 << 20, true},
		{"512M", systemdSizeUnits, 512 << 20, true},
		{"12345", goSizeUnits, 12345, true},
		{"256MB", k8sSizeUnits, 0, false},
		{"Mi", k8sSizeUnits, 0, false},
	}
	for _, tc := range tests {
		got, err := parseDeploySize(tc.s, tc.units)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, ok %v", tc.s, got, err, tc.want, tc.ok)
		}
	}
}

// systemdUnit is a systemd unit file: section -> key -> values in order.
type systemdUnit map[string]map[string][]string

// parseSystemdUnit reads a unit file: [Section] headers, Key=Value lines, # and ;
// comments, and backslash line continuations.
func parseSystemdUnit(t *testing.T, file string) systemdUnit {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u := systemdUnit{}
	section := ""
	var cont strings.Builder
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if cont.Len() == 0 && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cont.WriteString(s + " ")
			continue
		}
		cont.WriteString(line)
		line = cont.String()
		cont.Reset()
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: %q is not Key=Value in a section", file, i+1, line)
		}
		u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return u
}

// dockerStage is one FROM ... section of a Dockerfile.
type dockerStage struct {
	image, name string
	instrs      []dockerInstr
}

type dockerInstr struct{ cmd, args string }

// all returns the arguments of every cmd instruction of the stage.
func (s dockerStage) all(cmd string) []string {
	var out []string
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// parseDeployDockerfile splits a Dockerfile into stages of instructions, joining
// continuation lines and dropping comments.
func parseDeployDockerfile(t *testing.T, file string) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := dockerInstr{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")}
		if in.cmd == "FROM" {
			f := strings.Fields(args)
			var st dockerStage
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					st.name = f[i+1]
					i++
				case st.image == "":
					st.image = f[i]
				}
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Errorf("%s: %s before the first FROM", file, in.cmd)
			}
			return
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // comments, also inside continued instructions
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

// deployHasGoSource reports whether dir holds a non-test .go file at any depth.
func deployHasGoSource(dir string) bool {
	found := false
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "testdata" {
			return fs.SkipDir // not part of any build
		}
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	return found
}
