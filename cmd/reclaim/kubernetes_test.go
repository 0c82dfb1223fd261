package main

// The machines that run the tests have no cluster, so these tests decode the Kubernetes manifests under
// configs/kubernetes strictly into the API types. They then check the values that must agree with the
// program: exit codes, deadlines, paths, flags, credentials and the security context.

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"reclaim/graphclient"
	"reclaim/reclaim"
)

// manifestRoot is configs/kubernetes, seen from this package. Its own files are the kustomize base, and
// its subfolder clientSecretDir is the Component that replaces workload identity with a client secret.
var manifestRoot = filepath.Join("..", "..", "configs", "kubernetes")

// Folders relative to manifestRoot, as loadManifests names them.
const (
	baseDir         = "."
	clientSecretDir = "client-secret"
)

const (
	// containerName is the name of reclaim's container, which podFailurePolicy refers to.
	containerName = "reclaim"
	// distrolessNonroot is the uid and gid of the nonroot user of the distroless image.
	distrolessNonroot = 65532
	// deadlineMargin is the time beyond the drain that a run needs between RECLAIM_DEADLINE and the
	// Job's activeDeadlineSeconds: starting the pod, saving the checkpoint and pushing metrics.
	deadlineMargin = time.Minute
	// graceMargin is the time beyond the drain that a stopped run needs before it is killed, to save
	// the checkpoint and write its outputs.
	graceMargin = 10 * time.Second
	// workloadIdentityUse is the pod label that the Azure workload identity webhook acts on, and
	// workloadIdentityClientID the ServiceAccount annotation it takes the client id from.
	workloadIdentityUse      = "azure.workload.identity/use"
	workloadIdentityClientID = "azure.workload.identity/client-id"
)

// kustomization is the part of a kustomization.yaml file that these tests read. Decoding is strict, so
// a field that kustomize accepts but this type lacks fails the test until it is added here and checked.
type kustomization struct {
	APIVersion      string            `json:"apiVersion"`
	Kind            string            `json:"kind"`
	Resources       []string          `json:"resources"`
	Components      []string          `json:"components"`
	Patches         []kustomizePatch  `json:"patches"`
	Images          []kustomizeImage  `json:"images"`
	SecretGenerator []secretGenerator `json:"secretGenerator"`
}

type kustomizePatch struct {
	Path string `json:"path"`
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName"`
	NewTag  string `json:"newTag"`
}

type secretGenerator struct {
	Name    string   `json:"name"`
	Envs    []string `json:"envs"`
	Options struct {
		DisableNameSuffixHash bool `json:"disableNameSuffixHash"`
	} `json:"options"`
}

// manifestFolder is one kustomization folder under configs/kubernetes with its decoded documents.
type manifestFolder struct {
	// dir is the folder's path relative to configs/kubernetes, with slashes: baseDir or clientSecretDir.
	dir           string
	kustomization kustomization
	// manifests lists the folder's YAML files other than kustomization.yaml.
	manifests       []string
	cronJobs        []*batchv1.CronJob
	configMaps      []*corev1.ConfigMap
	claims          []*corev1.PersistentVolumeClaim
	serviceAccounts []*corev1.ServiceAccount
	secrets         []*corev1.Secret
}

// loadManifests decodes every YAML document under configs/kubernetes strictly, into the API type that
// its kind names, and returns the folders by their path relative to configs/kubernetes.
func loadManifests(t *testing.T) map[string]*manifestFolder {
	t.Helper()
	folders := map[string]*manifestFolder{}
	folder := func(dir string) *manifestFolder {
		if folders[dir] == nil {
			folders[dir] = &manifestFolder{dir: dir}
		}
		return folders[dir]
	}

	err := filepath.WalkDir(manifestRoot, func(file string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() {
			return err
		}
		ext := filepath.Ext(file)
		if ext != ".yaml" && ext != ".yml" {
			return nil
		}
		rel, err := filepath.Rel(manifestRoot, file)
		if err != nil {
			return err
		}
		f := folder(filepath.ToSlash(filepath.Dir(rel)))
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}

		if entry.Name() == "kustomization.yaml" {
			if err := yaml.UnmarshalStrict(data, &f.kustomization); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
			return nil
		}
		f.manifests = append(f.manifests, entry.Name())
		for i, doc := range splitDocuments(data) {
			if err := f.decode(doc); err != nil {
				t.Errorf("%s, document %d: %v", rel, i+1, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(folders) == 0 {
		t.Fatalf("no manifests under %s", manifestRoot)
	}
	return folders
}

// splitDocuments splits a YAML stream at its "---" lines and drops documents that contain only comments.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		for _, line := range strings.Split(doc, "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				docs = append(docs, []byte(doc))
				break
			}
		}
	}
	return docs
}

// decode decodes one document strictly into the type of its kind and adds it to the folder.
func (f *manifestFolder) decode(doc []byte) error {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return err
	}
	wantAPIVersion := map[string]string{
		"CronJob":               "batch/v1",
		"ConfigMap":             "v1",
		"PersistentVolumeClaim": "v1",
		"ServiceAccount":        "v1",
		"Secret":                "v1",
	}
	want, known := wantAPIVersion[meta.Kind]
	if !known {
		return fmt.Errorf("kind %q is not one that these tests check; add it to manifestFolder", meta.Kind)
	}
	if meta.APIVersion != want {
		return fmt.Errorf("%s has apiVersion %q, want %s", meta.Kind, meta.APIVersion, want)
	}

	switch meta.Kind {
	case "CronJob":
		return decodeInto(doc, &f.cronJobs)
	case "ConfigMap":
		return decodeInto(doc, &f.configMaps)
	case "PersistentVolumeClaim":
		return decodeInto(doc, &f.claims)
	case "ServiceAccount":
		return decodeInto(doc, &f.serviceAccounts)
	default:
		return decodeInto(doc, &f.secrets)
	}
}

// decodeInto decodes doc strictly, so that an unknown or misspelt field fails, and appends it to list.
func decodeInto[T any](doc []byte, list *[]*T) error {
	object := new(T)
	if err := yaml.UnmarshalStrict(doc, object); err != nil {
		return err
	}
	*list = append(*list, object)
	return nil
}

// baseManifests is the base, the files directly in configs/kubernetes, which must contain exactly one
// object of each kind.
type baseManifests struct {
	cronJob        *batchv1.CronJob
	configMap      *corev1.ConfigMap
	claim          *corev1.PersistentVolumeClaim
	serviceAccount *corev1.ServiceAccount
}

func loadBase(t *testing.T) baseManifests {
	t.Helper()
	base := loadManifests(t)[baseDir]
	if base == nil {
		t.Fatalf("no base manifests in %s", manifestRoot)
	}
	counts := map[string]int{
		"CronJob":               len(base.cronJobs),
		"ConfigMap":             len(base.configMaps),
		"PersistentVolumeClaim": len(base.claims),
		"ServiceAccount":        len(base.serviceAccounts),
	}
	for kind, n := range counts {
		if n != 1 {
			t.Fatalf("base has %d objects of kind %s, want 1", n, kind)
		}
	}
	return baseManifests{base.cronJobs[0], base.configMaps[0], base.claims[0], base.serviceAccounts[0]}
}

// podSpec returns the pod template of a CronJob and its reclaim container.
func podSpec(t *testing.T, cronJob *batchv1.CronJob) (*corev1.PodSpec, *corev1.Container) {
	t.Helper()
	pod := &cronJob.Spec.JobTemplate.Spec.Template.Spec
	for i := range pod.Containers {
		if pod.Containers[i].Name == containerName {
			return pod, &pod.Containers[i]
		}
	}
	t.Fatalf("CronJob %s has no container named %q", cronJob.Name, containerName)
	return nil, nil
}

// containerEnv returns the environment that a container gets from literal values: the ConfigMaps of
// its envFrom, then its env entries, which win.
func containerEnv(t *testing.T, container *corev1.Container, configMaps []*corev1.ConfigMap) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range container.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		i := slices.IndexFunc(configMaps, func(c *corev1.ConfigMap) bool { return c.Name == from.ConfigMapRef.Name })
		if i < 0 {
			t.Fatalf("container %s takes envFrom ConfigMap %q, which is not in the base", container.Name, from.ConfigMapRef.Name)
		}
		for key, value := range configMaps[i].Data {
			env[from.Prefix+key] = value
		}
	}
	for _, variable := range container.Env {
		if variable.ValueFrom == nil {
			env[variable.Name] = variable.Value
		}
	}
	return env
}

func TestKustomizationsListEveryFile(t *testing.T) {
	folders := loadManifests(t)
	for _, dir := range []string{baseDir, clientSecretDir} {
		if folders[dir] == nil {
			t.Errorf("no manifests in %s", dir)
		}
	}

	for dir, f := range folders {
		// kustomize accepts each kind only with its own apiVersion.
		wantKind, wantAPIVersion := "Kustomization", "kustomize.config.k8s.io/v1beta1"
		if dir == clientSecretDir {
			wantKind, wantAPIVersion = "Component", "kustomize.config.k8s.io/v1alpha1"
		}
		if f.kustomization.Kind != wantKind || f.kustomization.APIVersion != wantAPIVersion {
			t.Errorf("%s: kustomization.yaml missing or of kind %q and apiVersion %q, want %s %s",
				dir, f.kustomization.Kind, f.kustomization.APIVersion, wantKind, wantAPIVersion)
			continue
		}
		folderPath := filepath.Join(manifestRoot, filepath.FromSlash(dir))

		listed := map[string]bool{}
		for _, resource := range f.kustomization.Resources {
			info, err := os.Stat(filepath.Join(folderPath, resource))
			switch {
			case err != nil:
				t.Errorf("%s: resource %s: %v", dir, resource, err)
			case info.IsDir():
				if _, err := os.Stat(filepath.Join(folderPath, resource, "kustomization.yaml")); err != nil {
					t.Errorf("%s: resource %s is a folder without kustomization.yaml", dir, resource)
				}
			default:
				listed[resource] = true
			}
		}
		for _, component := range f.kustomization.Components {
			if _, err := os.Stat(filepath.Join(folderPath, component, "kustomization.yaml")); err != nil {
				t.Errorf("%s: component %s: %v", dir, component, err)
			}
		}
		for _, patch := range f.kustomization.Patches {
			if _, err := os.Stat(filepath.Join(folderPath, patch.Path)); err != nil {
				t.Errorf("%s: patch %s: %v", dir, patch.Path, err)
			}
			listed[patch.Path] = true
		}
		for _, name := range f.manifests {
			if !listed[name] {
				t.Errorf("%s: %s is not listed in resources or patches of kustomization.yaml", dir, name)
			}
		}

		// A generated Secret reads a file that git ignores, next to an example of it that git keeps.
		for _, generator := range f.kustomization.SecretGenerator {
			for _, envFile := range generator.Envs {
				if _, err := os.Stat(filepath.Join(folderPath, envFile+".example")); err != nil {
					t.Errorf("%s: secret %s reads %s, but its example is missing: %v", dir, generator.Name, envFile, err)
				}
				if !slices.Contains(readLines(t, filepath.Join(folderPath, ".gitignore")), envFile) {
					t.Errorf("%s: secret %s reads %s, which %s/.gitignore does not list", dir, generator.Name, envFile, dir)
				}
			}
		}
	}
}

func TestKustomizationImageMatchesCronJob(t *testing.T) {
	base := loadBase(t)
	_, container := podSpec(t, base.cronJob)
	name, _, _ := strings.Cut(container.Image, ":")

	images := loadManifests(t)[baseDir].kustomization.Images
	if !slices.ContainsFunc(images, func(image kustomizeImage) bool { return image.Name == name }) {
		t.Errorf("base kustomization.yaml images = %+v, want an entry named %q to replace the image %q", images, name, container.Image)
	}
}

func TestCronJobPodFailurePolicy(t *testing.T) {
	base := loadBase(t)
	policy := base.cronJob.Spec.JobTemplate.Spec.PodFailurePolicy
	if policy == nil {
		t.Fatal("the Job has no podFailurePolicy")
	}
	pod, _ := podSpec(t, base.cronJob)
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %q, want Never, which podFailurePolicy needs", pod.RestartPolicy)
	}

	// The disruption rule comes first: the first matching rule decides, and a pod that reclaim stopped
	// on eviction exits 4, which must not count against backoffLimit.
	if len(policy.Rules) == 0 || policy.Rules[0].Action != batchv1.PodFailurePolicyActionIgnore {
		t.Fatalf("first podFailurePolicy rule = %+v, want action Ignore", policy.Rules)
	}
	conditions := policy.Rules[0].OnPodConditions
	if len(conditions) != 1 || conditions[0].Type != corev1.DisruptionTarget {
		t.Errorf("Ignore rule on pod conditions %+v, want [DisruptionTarget]", conditions)
	}

	tests := []struct {
		action batchv1.PodFailurePolicyAction
		codes  []int32
	}{
		{batchv1.PodFailurePolicyActionFailJob, []int32{reclaim.ExitRowsFailed, reclaim.ExitUsage, reclaim.ExitAuth}},
		{batchv1.PodFailurePolicyActionCount, []int32{reclaim.ExitStopped}},
	}
	for _, tt := range tests {
		t.Run(string(tt.action), func(t *testing.T) {
			var rules []batchv1.PodFailurePolicyRule
			for _, rule := range policy.Rules {
				if rule.Action == tt.action && rule.OnExitCodes != nil {
					rules = append(rules, rule)
				}
			}
			if len(rules) != 1 {
				t.Fatalf("%d exit code rules with action %s, want 1", len(rules), tt.action)
			}
			codes := rules[0].OnExitCodes
			if got := first(codes.ContainerName); got != containerName {
				t.Errorf("containerName = %v, want %q", got, containerName)
			}
			if codes.Operator != batchv1.PodFailurePolicyOnExitCodesOpIn {
				t.Errorf("operator = %q, want In", codes.Operator)
			}
			got := slices.Sorted(slices.Values(codes.Values))
			if !slices.Equal(got, tt.codes) {
				t.Errorf("exit codes = %v, want %v", got, tt.codes)
			}
		})
	}
}

func TestCronJobSchedulingLimits(t *testing.T) {
	spec := loadBase(t).cronJob.Spec
	if spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy = %q, want Forbid", spec.ConcurrencyPolicy)
	}
	if spec.Schedule == "" {
		t.Error("schedule is empty")
	}
	if spec.TimeZone == nil || *spec.TimeZone != "Etc/UTC" {
		t.Errorf("timeZone = %v, want Etc/UTC", spec.TimeZone)
	}

	tests := []struct {
		field    string
		positive bool
	}{
		{"startingDeadlineSeconds", isPositive(spec.StartingDeadlineSeconds)},
		{"successfulJobsHistoryLimit", isPositive(spec.SuccessfulJobsHistoryLimit)},
		{"failedJobsHistoryLimit", isPositive(spec.FailedJobsHistoryLimit)},
		{"jobTemplate backoffLimit", isPositive(spec.JobTemplate.Spec.BackoffLimit)},
		{"jobTemplate activeDeadlineSeconds", isPositive(spec.JobTemplate.Spec.ActiveDeadlineSeconds)},
	}
	for _, tt := range tests {
		if !tt.positive {
			t.Errorf("%s is not set to a positive number", tt.field)
		}
	}
}

// isPositive reports whether an optional number is set and above zero.
func isPositive[T int32 | int64](p *T) bool {
	return p != nil && *p > 0
}

func TestCronJobDeadlinesCoverDrain(t *testing.T) {
	base := loadBase(t)
	pod, container := podSpec(t, base.cronJob)
	env := containerEnv(t, container, []*corev1.ConfigMap{base.configMap})

	deadline, err := time.ParseDuration(env["RECLAIM_DEADLINE"])
	if err != nil || deadline <= 0 {
		t.Fatalf("RECLAIM_DEADLINE = %q, want a positive Go duration (%v)", env["RECLAIM_DEADLINE"], err)
	}
	active := base.cronJob.Spec.JobTemplate.Spec.ActiveDeadlineSeconds
	if active == nil {
		t.Fatal("the Job has no activeDeadlineSeconds")
	}
	jobDeadline := time.Duration(*active) * time.Second
	if gap, want := jobDeadline-deadline, reclaim.DefaultDrain+deadlineMargin; gap < want {
		t.Errorf("activeDeadlineSeconds %v - RECLAIM_DEADLINE %v = %v, want at least %v (drain %v + margin %v)",
			jobDeadline, deadline, gap, want, reclaim.DefaultDrain, deadlineMargin)
	}

	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds is not set")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if want := reclaim.DefaultDrain + graceMargin; grace < want {
		t.Errorf("terminationGracePeriodSeconds = %v, want at least %v (drain %v + margin %v)", grace, want, reclaim.DefaultDrain, graceMargin)
	}
}

func TestCronJobPathsOnVolume(t *testing.T) {
	base := loadBase(t)
	pod, container := podSpec(t, base.cronJob)
	env := containerEnv(t, container, []*corev1.ConfigMap{base.configMap})

	// The mounts of volumes that are the base's PersistentVolumeClaim.
	claimVolumes := map[string]bool{}
	for _, volume := range pod.Volumes {
		if claim := volume.PersistentVolumeClaim; claim != nil && claim.ClaimName == base.claim.Name && !claim.ReadOnly {
			claimVolumes[volume.Name] = true
		}
	}
	var mounts []string
	for _, mount := range container.VolumeMounts {
		if claimVolumes[mount.Name] && !mount.ReadOnly {
			mounts = append(mounts, path.Clean(mount.MountPath))
		}
	}
	if len(mounts) == 0 {
		t.Fatalf("container %s mounts no volume of PersistentVolumeClaim %s writable", container.Name, base.claim.Name)
	}

	for _, key := range []string{"RECLAIM_INPUT", "RECLAIM_OUT_DIR"} {
		value := path.Clean(env[key])
		onVolume := slices.ContainsFunc(mounts, func(mount string) bool {
			return strings.HasPrefix(value, strings.TrimSuffix(mount, "/")+"/")
		})
		if !onVolume {
			t.Errorf("%s = %q, want a path below one of the mounts %v of PersistentVolumeClaim %s", key, env[key], mounts, base.claim.Name)
		}
	}
}

func TestConfigMapKeysAreRunFlags(t *testing.T) {
	configMap := loadBase(t).configMap
	for _, key := range []string{"RECLAIM_INPUT", "RECLAIM_OUT_DIR", "RECLAIM_DEADLINE", "RECLAIM_RATE", "RECLAIM_LOG_FORMAT"} {
		if _, ok := configMap.Data[key]; !ok {
			t.Errorf("ConfigMap %s has no %s", configMap.Name, key)
		}
	}
	if len(configMap.BinaryData) > 0 {
		t.Errorf("ConfigMap %s has binaryData, want only RECLAIM_ settings in data", configMap.Name)
	}

	flags := newRunFlagSet(&runFlags{})
	byEnvName := map[string]string{}
	flags.VisitAll(func(f *flag.Flag) { byEnvName[envName(f.Name)] = f.Name })
	for key, value := range configMap.Data {
		name, ok := byEnvName[key]
		if !ok {
			t.Errorf("ConfigMap key %s is not the environment variable of a flag of reclaim run", key)
			continue
		}
		if err := flags.Set(name, value); err != nil {
			t.Errorf("ConfigMap %s=%q is not a valid --%s: %v", key, value, name, err)
		}
	}
	if format, ok := configMap.Data["RECLAIM_LOG_FORMAT"]; ok {
		if _, err := newLogger(io.Discard, format, "info"); err != nil {
			t.Errorf("RECLAIM_LOG_FORMAT: %v", err)
		}
	}
}

func TestCronJobSecurityContext(t *testing.T) {
	pod, container := podSpec(t, loadBase(t).cronJob)
	podContext := pod.SecurityContext
	if podContext == nil {
		podContext = &corev1.PodSecurityContext{}
	}
	containerContext := container.SecurityContext
	if containerContext == nil {
		containerContext = &corev1.SecurityContext{}
	}

	// Each field is the container's value where it sets one, else the pod's.
	tests := []struct {
		field string
		got   any
		want  any
	}{
		{"runAsNonRoot", first(containerContext.RunAsNonRoot, podContext.RunAsNonRoot), true},
		{"runAsUser", first(containerContext.RunAsUser, podContext.RunAsUser), int64(distrolessNonroot)},
		{"runAsGroup", first(containerContext.RunAsGroup, podContext.RunAsGroup), int64(distrolessNonroot)},
		{"fsGroup", first(podContext.FSGroup), int64(distrolessNonroot)},
		{"readOnlyRootFilesystem", first(containerContext.ReadOnlyRootFilesystem), true},
		{"allowPrivilegeEscalation", first(containerContext.AllowPrivilegeEscalation), false},
		{"seccompProfile", seccompType(containerContext.SeccompProfile, podContext.SeccompProfile), corev1.SeccompProfileTypeRuntimeDefault},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
	if privileged := containerContext.Privileged; privileged != nil && *privileged {
		t.Error("privileged = true, want it unset or false")
	}

	capabilities := containerContext.Capabilities
	if capabilities == nil || !slices.Equal(capabilities.Drop, []corev1.Capability{"ALL"}) || len(capabilities.Add) > 0 {
		t.Errorf("capabilities = %+v, want drop [ALL] and no add", capabilities)
	}
}

// first returns the value of the first pointer that is set, or nil when none is.
func first[T any](pointers ...*T) any {
	for _, p := range pointers {
		if p != nil {
			return *p
		}
	}
	return nil
}

// seccompType returns the type of the first seccomp profile that is set, or nil when none is.
func seccompType(profiles ...*corev1.SeccompProfile) any {
	for _, profile := range profiles {
		if profile != nil {
			return profile.Type
		}
	}
	return nil
}

func TestCronJobResources(t *testing.T) {
	_, container := podSpec(t, loadBase(t).cronJob)
	resources := container.Resources
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		request, requested := resources.Requests[name]
		limit, limited := resources.Limits[name]
		if !requested || request.IsZero() {
			t.Errorf("no %s request", name)
		}
		if !limited || limit.IsZero() {
			t.Errorf("no %s limit", name)
		}
		if requested && limited && request.Cmp(limit) > 0 {
			t.Errorf("%s request %s is above its limit %s", name, request.String(), limit.String())
		}
	}

	peak := benchmarkPeakMemory(t, "1,000,000")
	if limit := resources.Limits[corev1.ResourceMemory]; limit.Value() < peak {
		t.Errorf("memory limit %s = %d bytes, below the peak of %d bytes that BENCHMARKS.md measured at 1,000,000 rows",
			limit.String(), limit.Value(), peak)
	}
}

// benchmarkPeakMemory returns in bytes the peak resident memory that the "Peak memory of a real run"
// table of BENCHMARKS.md gives for a wave of the given rows, written as in the table.
func benchmarkPeakMemory(t *testing.T, rows string) int64 {
	t.Helper()
	_, section, found := strings.Cut(repoFile(t, "BENCHMARKS.md"), "### Peak memory of a real run")
	if !found {
		t.Fatal(`BENCHMARKS.md has no section "Peak memory of a real run"`)
	}

	column := -1
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(line, "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if column < 0 {
			column = slices.Index(cells, "peak resident memory")
			continue
		}
		if cells[1] != rows || column >= len(cells) {
			continue
		}
		mebibytes, err := strconv.ParseFloat(strings.TrimSuffix(cells[column], " MiB"), 64)
		if err != nil {
			t.Fatalf("BENCHMARKS.md: peak memory at %s rows is %q, want a number of MiB", rows, cells[column])
		}
		return int64(mebibytes * (1 << 20))
	}
	t.Fatalf("BENCHMARKS.md: no peak resident memory for %s rows in the section \"Peak memory of a real run\"", rows)
	return 0
}

func TestWorkloadIdentityInBase(t *testing.T) {
	base := loadBase(t)
	pod, container := podSpec(t, base.cronJob)

	if pod.ServiceAccountName != base.serviceAccount.Name {
		t.Errorf("serviceAccountName = %q, want the base's ServiceAccount %q", pod.ServiceAccountName, base.serviceAccount.Name)
	}
	clientID, ok := base.serviceAccount.Annotations[workloadIdentityClientID]
	if !ok || !guidPattern.MatchString(clientID) {
		t.Errorf("ServiceAccount annotation %s = %q, want a client id in GUID form", workloadIdentityClientID, clientID)
	}
	if got := base.cronJob.Spec.JobTemplate.Spec.Template.Labels[workloadIdentityUse]; got != "true" {
		t.Errorf("pod label %s = %q, want \"true\"", workloadIdentityUse, got)
	}

	// The value must name the credential type of the azidentity version that go.mod requires.
	env := containerEnv(t, container, []*corev1.ConfigMap{base.configMap})
	checkTokenCredentials(t, env["AZURE_TOKEN_CREDENTIALS"], reflect.TypeFor[azidentity.WorkloadIdentityCredential]().Name())
}

func TestClientSecretComponent(t *testing.T) {
	component := loadManifests(t)[clientSecretDir]
	if component == nil || len(component.cronJobs) != 1 {
		t.Fatalf("%s must contain one CronJob patch", clientSecretDir)
	}
	patch := component.cronJobs[0]
	_, container := podSpec(t, patch)
	if base := loadBase(t).cronJob; patch.Name != base.Name {
		t.Errorf("the patch names CronJob %q, want the base's %q", patch.Name, base.Name)
	}
	if got := patch.Spec.JobTemplate.Spec.Template.Labels[workloadIdentityUse]; got != "false" {
		t.Errorf("pod label %s = %q, want \"false\"", workloadIdentityUse, got)
	}

	env := containerEnv(t, container, nil)
	checkTokenCredentials(t, env["AZURE_TOKEN_CREDENTIALS"], reflect.TypeFor[azidentity.EnvironmentCredential]().Name())

	// The Secret the patch refers to is generated from an env file whose example lists every key.
	secretKeys := map[string][]string{}
	for _, generator := range component.kustomization.SecretGenerator {
		for _, envFile := range generator.Envs {
			example := filepath.Join(manifestRoot, clientSecretDir, envFile+".example")
			for key := range readEnvFile(t, example) {
				secretKeys[generator.Name] = append(secretKeys[generator.Name], key)
			}
		}
	}
	for _, name := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"} {
		i := slices.IndexFunc(container.Env, func(v corev1.EnvVar) bool { return v.Name == name })
		if i < 0 || container.Env[i].ValueFrom == nil || container.Env[i].ValueFrom.SecretKeyRef == nil {
			t.Errorf("the patch does not set %s from a secretKeyRef", name)
			continue
		}
		ref := container.Env[i].ValueFrom.SecretKeyRef
		if !slices.Contains(secretKeys[ref.Name], ref.Key) {
			t.Errorf("%s comes from key %s of Secret %q, which the component's secretGenerator does not provide (it provides %v)",
				name, ref.Key, ref.Name, secretKeys)
		}
	}
}

// TestBaseNamesClientSecretComponent checks that the base offers the component to those who read its
// kustomization.yaml, as an entry under components or as that entry commented out.
func TestBaseNamesClientSecretComponent(t *testing.T) {
	base := loadManifests(t)[baseDir]
	if base == nil {
		t.Fatalf("no base manifests in %s", manifestRoot)
	}
	if slices.Contains(base.kustomization.Components, clientSecretDir) {
		return
	}

	lines := readLines(t, filepath.Join(manifestRoot, "kustomization.yaml"))
	i := slices.Index(lines, "# components:")
	if i < 0 || i+1 == len(lines) || strings.Join(strings.Fields(lines[i+1]), " ") != "# - "+clientSecretDir {
		t.Errorf("base kustomization.yaml lists %s neither under components nor in a commented-out entry %q",
			clientSecretDir, "# components:\n#   - "+clientSecretDir)
	}
}

// checkTokenCredentials checks that an AZURE_TOKEN_CREDENTIALS value names the credential type want,
// and that the credential chain of graphclient accepts it. Building the chain sends no request, and
// the test clears the AZURE_ variables and points the authority at an unused loopback port, so that
// nothing could leave the machine.
func checkTokenCredentials(t *testing.T, value, want string) {
	t.Helper()
	if value != want {
		t.Errorf("AZURE_TOKEN_CREDENTIALS = %q, want %q", value, want)
	}

	for _, variable := range os.Environ() {
		if name, _, _ := strings.Cut(variable, "="); strings.HasPrefix(name, "AZURE_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	t.Setenv("AZURE_AUTHORITY_HOST", "https://127.0.0.1:1/")
	t.Setenv("AZURE_TOKEN_CREDENTIALS", value)
	if _, err := graphclient.NewCredential(); err != nil {
		t.Errorf("AZURE_TOKEN_CREDENTIALS=%s: %v", value, err)
	}
}

// guidPattern matches a GUID, such as an Entra tenant, client or object id.
var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// placeholderGUID is the GUID that the manifests use where a real id goes.
const placeholderGUID = "00000000-0000-0000-0000-000000000000"

// secretNamePattern matches names of settings whose value is a secret, such as AZURE_CLIENT_SECRET,
// AZURE_CLIENT_CERTIFICATE_PASSWORD, ACCESS_TOKEN or --client-secret. AZURE_TOKEN_CREDENTIALS and
// AZURE_FEDERATED_TOKEN_FILE do not match: they name a credential type and a file.
var secretNamePattern = regexp.MustCompile(`(?i)secret|passw(or)?d|token$|(^|[_-])key$|private[_-]?key|connection[_-]?string`)

// looksSecret reports whether a value looks like a credential: a GUID other than the placeholder, a
// JSON web token, or a long random-looking word with upper case, lower case and digits, as client
// secrets and keys are. Paths and URLs do not match.
func looksSecret(value string) bool {
	switch {
	case guidPattern.MatchString(value):
		return value != placeholderGUID
	case strings.HasPrefix(value, "eyJ") && strings.Count(value, ".") == 2:
		return true
	case len(value) >= 24 && !strings.ContainsAny(value, " /:"):
		return strings.ContainsAny(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
			strings.ContainsAny(value, "abcdefghijklmnopqrstuvwxyz") &&
			strings.ContainsAny(value, "0123456789")
	}
	return false
}

func TestLooksSecret(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{
		{placeholderGUID, false},
		{"8f14e45f-ceea-467a-9af0-3b1e1c2d0a11", true},
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", true},
		{"Xk28Q~aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", true},
		{"WorkloadIdentityCredential", false},
		{"/data/waves", false},
		{"http://pushgateway.monitoring.svc:9091", false},
		{"52m", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := looksSecret(tt.value); got != tt.want {
			t.Errorf("looksSecret(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}

func TestManifestsHoldNoSecret(t *testing.T) {
	for dir, f := range loadManifests(t) {
		for _, cronJob := range f.cronJobs {
			pod := cronJob.Spec.JobTemplate.Spec.Template.Spec
			for _, container := range slices.Concat(pod.InitContainers, pod.Containers) {
				where := dir + ": CronJob " + cronJob.Name + ", container " + container.Name
				for _, word := range slices.Concat(container.Command, container.Args) {
					name, value, _ := strings.Cut(word, "=")
					if secretNamePattern.MatchString(name) || looksSecret(name) || looksSecret(value) {
						t.Errorf("%s: command or argument %q looks like a secret; pass secrets through a Secret", where, word)
					}
				}
				for _, variable := range container.Env {
					fromSecret := variable.ValueFrom != nil && variable.ValueFrom.SecretKeyRef != nil
					if secretNamePattern.MatchString(variable.Name) && !fromSecret {
						t.Errorf("%s: %s is a secret setting with a literal value, want it from a secretKeyRef", where, variable.Name)
					}
					if looksSecret(variable.Value) {
						t.Errorf("%s: the value of %s looks like a secret", where, variable.Name)
					}
				}
			}
		}

		for _, configMap := range f.configMaps {
			for key, value := range configMap.Data {
				if secretNamePattern.MatchString(key) || looksSecret(value) {
					t.Errorf("%s: ConfigMap %s key %s looks like a secret; put secrets in a Secret", dir, configMap.Name, key)
				}
			}
		}

		for _, secret := range f.secrets {
			for key, value := range secret.StringData {
				checkPlaceholder(t, dir+": Secret "+secret.Name, key, value)
			}
			for key, value := range secret.Data {
				checkPlaceholder(t, dir+": Secret "+secret.Name, key, string(value))
			}
		}
		for _, generator := range f.kustomization.SecretGenerator {
			for _, envFile := range generator.Envs {
				example := filepath.Join(manifestRoot, filepath.FromSlash(dir), envFile+".example")
				for key, value := range readEnvFile(t, example) {
					checkPlaceholder(t, dir+": "+envFile+".example", key, value)
				}
			}
		}
	}
}

// checkPlaceholder fails the test unless a value that git keeps is empty or the placeholder GUID.
func checkPlaceholder(t *testing.T, where, key, value string) {
	t.Helper()
	if value != "" && value != placeholderGUID {
		t.Errorf("%s: %s = %q, want an empty value or %s: real values stay out of git", where, key, value, placeholderGUID)
	}
}

// readEnvFile returns the KEY=VALUE lines of a file as kustomize's secretGenerator reads them, without
// comments and blank lines.
func readEnvFile(t *testing.T, file string) map[string]string {
	t.Helper()
	values := map[string]string{}
	for _, line := range readLines(t, file) {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: line %q is not KEY=VALUE", file, line)
			continue
		}
		values[key] = value
	}
	return values
}

// readLines returns the lines of a file with surrounding spaces removed.
func readLines(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		lines = append(lines, strings.TrimSpace(scanner.Text()))
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
