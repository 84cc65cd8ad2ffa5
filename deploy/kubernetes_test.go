package deploy_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered manifest.
type object struct {
	Kind string
	Name string
	raw  []byte
}

// manifests renders the Kustomize base as kubectl would and splits it.
func manifests(t *testing.T) []object {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "kubernetes")
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, object{Kind: head.Kind, Name: head.Metadata.Name, raw: doc})
	}
	return objs
}

// decodeStrict decodes o into v, refusing any field the type lacks.
func decodeStrict(t *testing.T, o object, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(o.raw, v); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Name, err)
	}
}

// scaledObject is the part of KEDA's ScaledObject (keda.sh/v1alpha1) the
// manifests use: KEDA's types are a CRD, not in k8s.io/api.
type scaledObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		ScaleTargetRef struct {
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount int `json:"minReplicaCount"`
		MaxReplicaCount int `json:"maxReplicaCount"`
		PollingInterval int `json:"pollingInterval"`
		CooldownPeriod  int `json:"cooldownPeriod"`
		Triggers        []struct {
			Type     string            `json:"type"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// rendered is the base, decoded by kind.
type rendered struct {
	deployments map[string]appsv1.Deployment
	services    map[string]corev1.Service
	config      corev1.ConfigMap
	secret      corev1.Secret
	hpas        []autoscalingv2.HorizontalPodAutoscaler
	pdbs        map[string]policyv1.PodDisruptionBudget
	jobs        []batchv1.Job
	policies    []networkingv1.NetworkPolicy
	scaled      []scaledObject
}

func render(t *testing.T) rendered {
	t.Helper()
	r := rendered{deployments: map[string]appsv1.Deployment{}, services: map[string]corev1.Service{}, pdbs: map[string]policyv1.PodDisruptionBudget{}}
	for _, o := range manifests(t) {
		switch o.Kind {
		case "Deployment":
			var d appsv1.Deployment
			decodeStrict(t, o, &d)
			r.deployments[d.Name] = d
		case "Service":
			var s corev1.Service
			decodeStrict(t, o, &s)
			r.services[s.Name] = s
		case "ConfigMap":
			decodeStrict(t, o, &r.config)
		case "Secret":
			decodeStrict(t, o, &r.secret)
		case "HorizontalPodAutoscaler":
			var h autoscalingv2.HorizontalPodAutoscaler
			decodeStrict(t, o, &h)
			r.hpas = append(r.hpas, h)
		case "PodDisruptionBudget":
			var p policyv1.PodDisruptionBudget
			decodeStrict(t, o, &p)
			r.pdbs[p.Name] = p
		case "Job":
			var j batchv1.Job
			decodeStrict(t, o, &j)
			r.jobs = append(r.jobs, j)
		case "NetworkPolicy":
			var p networkingv1.NetworkPolicy
			decodeStrict(t, o, &p)
			r.policies = append(r.policies, p)
		case "ScaledObject":
			var s scaledObject
			decodeStrict(t, o, &s)
			r.scaled = append(r.scaled, s)
		case "Namespace":
			var n corev1.Namespace
			decodeStrict(t, o, &n)
		default:
			t.Errorf("unexpected kind %s (%s): add its checks", o.Kind, o.Name)
		}
	}
	return r
}

// secretNames are the variables that must come from the Secret.
var secretNames = []string{"DATABASE_URL", "DATABASE_MIGRATE_URL", "REDIS_URL", "TOKEN_KEYS", "ADMIN_TOKEN", "METRICS_TOKEN",
	"MONITORING_PASSWORD", "SPOTIFY_CLIENT_SECRET", "GOOGLE_CLIENT_SECRET", "APPLE_PRIVATE_KEY"}

// TestKubernetesManifests renders the base and checks its invariants.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	r := render(t)
	api, worker := r.deployments["presave-api"], r.deployments["presave-worker"]
	if api.Name == "" || worker.Name == "" || len(r.deployments) != 2 {
		t.Fatalf("deployments %v, want presave-api and presave-worker", keysOf(r.deployments))
	}
	for _, name := range secretNames {
		if _, ok := r.secret.StringData[name]; !ok {
			t.Errorf("the Secret lacks %s", name)
		}
		if v := r.secret.StringData[name]; v != "" {
			t.Errorf("the Secret in git holds a value for %s", name)
		}
		if _, ok := r.config.Data[name]; ok {
			t.Errorf("%s is in the ConfigMap, not the Secret", name)
		}
	}
	pods := map[string]corev1.PodSpec{"Deployment presave-api": api.Spec.Template.Spec, "Deployment presave-worker": worker.Spec.Template.Spec}
	for _, j := range r.jobs {
		pods["Job "+j.Name] = j.Spec.Template.Spec
	}
	for where, pod := range pods {
		checkPod(t, where, pod, r)
	}

	// Shutdown: the grace period exceeds SHUTDOWN_TIMEOUT, with margin.
	shutdown, err := time.ParseDuration(r.config.Data["SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatalf("SHUTDOWN_TIMEOUT: %v", err)
	}
	if g := worker.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < shutdown+10*time.Second {
		t.Errorf("the workers' terminationGracePeriodSeconds does not exceed SHUTDOWN_TIMEOUT (%s) by 10 s", shutdown)
	}
	checkProbes(t, api, "http", 8080)
	checkProbes(t, worker, "ops", 9090)
	if r.config.Data["WORKER_ADDR"] != "0.0.0.0:9090" || r.config.Data["API_ADDR"] != "0.0.0.0:8080" {
		t.Errorf("listen addresses %q %q do not match the probed ports", r.config.Data["API_ADDR"], r.config.Data["WORKER_ADDR"])
	}
	if m := r.jobs; len(m) != 1 || strings.Join(m[0].Spec.Template.Spec.Containers[0].Command, " ") != "/usr/local/bin/worker migrate" {
		t.Errorf("want one migration Job running `worker migrate`, got %d", len(m))
	}
	checkScaling(t, r)
	checkNetworkPolicies(t, r)
}

// checkPod: no secret as a plain value, the Secret and ConfigMap the
// pods read exist, resource requests set, non-root.
func checkPod(t *testing.T, where string, pod corev1.PodSpec, r rendered) {
	t.Helper()
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("%s may run as root", where)
	}
	for _, c := range pod.Containers {
		for _, e := range c.Env {
			for _, s := range secretNames {
				if e.Name == s && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("%s/%s: %s is not read from a Secret", where, c.Name, e.Name)
				}
			}
		}
		fromSecret := false
		for _, ef := range c.EnvFrom {
			switch {
			case ef.SecretRef != nil && ef.SecretRef.Name == r.secret.Name:
				fromSecret = true
			case ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == r.config.Name:
			default:
				t.Errorf("%s/%s reads %+v, which the base does not define", where, c.Name, ef)
			}
		}
		if !fromSecret {
			t.Errorf("%s/%s does not read the Secret", where, c.Name)
		}
		req := c.Resources.Requests
		if req.Cpu().IsZero() || req.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: CPU and memory requests and a memory limit must be set: %v", where, c.Name, c.Resources)
		}
		if c.Image != "ghcr.io/example/presave:latest" {
			t.Errorf("%s/%s: image %q is not the kustomization's", where, c.Name, c.Image)
		}
	}
}

// checkProbes: readiness on /readyz and liveness on /healthz, on the
// named port, which is the container's listen port.
func checkProbes(t *testing.T, d appsv1.Deployment, port string, number int32) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.Ports) != 1 || c.Ports[0].Name != port || c.Ports[0].ContainerPort != number {
		t.Errorf("%s ports %v, want %s %d", d.Name, c.Ports, port, number)
	}
	for probe, path := range map[*corev1.Probe]string{c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != port {
			t.Errorf("%s: want a probe on %s port %s, got %+v", d.Name, path, port, probe)
		}
	}
}

// checkScaling: the API scales on CPU and keeps one replica through
// disruptions; KEDA scales the workers on the queues.
func checkScaling(t *testing.T, r rendered) {
	t.Helper()
	if len(r.hpas) != 1 || r.hpas[0].Spec.ScaleTargetRef.Name != "presave-api" || len(r.hpas[0].Spec.Metrics) != 1 ||
		r.hpas[0].Spec.Metrics[0].Resource == nil || r.hpas[0].Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("want one HPA on the API's CPU, got %+v", r.hpas)
	}
	for _, name := range []string{"presave-api", "presave-worker"} {
		p, ok := r.pdbs[name]
		if !ok || p.Spec.Selector == nil || p.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != name {
			t.Errorf("no PodDisruptionBudget selects %s", name)
		}
	}
	if len(r.scaled) != 1 {
		t.Fatalf("want one ScaledObject, got %d", len(r.scaled))
	}
	so := r.scaled[0]
	if so.APIVersion != "keda.sh/v1alpha1" || so.Spec.ScaleTargetRef.Name != "presave-worker" || so.Spec.MinReplicaCount < 1 ||
		so.Spec.MaxReplicaCount <= so.Spec.MinReplicaCount || len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "prometheus" ||
		!strings.Contains(so.Spec.Triggers[0].Metadata["query"], "asynq_queue_size") || so.Spec.Triggers[0].Metadata["threshold"] == "" {
		t.Errorf("ScaledObject %+v", so.Spec)
	}
}

// checkNetworkPolicies: a default deny; the API's port open; the
// workers' ops port open to the monitoring namespace only.
func checkNetworkPolicies(t *testing.T, r rendered) {
	t.Helper()
	var deny, api, worker bool
	for _, p := range r.policies {
		sel := p.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"]
		switch {
		case len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.Ingress) == 0:
			deny = true
		case sel == "presave-api" && len(p.Spec.Ingress) == 1 && len(p.Spec.Ingress[0].From) == 0 &&
			fmt.Sprint(p.Spec.Ingress[0].Ports[0].Port) == "8080":
			api = true
		case sel == "presave-worker" && len(p.Spec.Ingress) == 1 && len(p.Spec.Ingress[0].From) == 1 &&
			p.Spec.Ingress[0].From[0].NamespaceSelector != nil &&
			p.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "monitoring" &&
			fmt.Sprint(p.Spec.Ingress[0].Ports[0].Port) == "9090":
			worker = true
		default:
			t.Errorf("NetworkPolicy %s opens more than the checks know: %+v", p.Name, p.Spec)
		}
	}
	if !deny || !api || !worker {
		t.Errorf("network policies: default deny %v, API open %v, worker metrics from monitoring only %v", deny, api, worker)
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
