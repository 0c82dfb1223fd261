package main

// The end-to-end tests build the reclaim binary once and run it against the Graph simulator over real
// HTTPS: the token comes from the simulator's Entra endpoint through azidentity, trusted through
// SSL_CERT_FILE, exactly as a user's run gets it from a private authority.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

// reclaimBinary is the path of the binary under test, built by TestMain.
var reclaimBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "reclaim-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	reclaimBinary = filepath.Join(dir, "reclaim")
	build := exec.Command("go", "build", "-o", reclaimBinary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build reclaim:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testSecret = "e2e-client-secret-5f8a2c"

// simulator is a graphsim server with the files a client needs to trust it.
type simulator struct {
	*graphsim.Server
	certFile string
	// open is true for an open catalogue, which cannot list license holders: runs against it skip the
	// precheck unless a test turns it on.
	open bool
}

// startSim starts a simulator whose client secret is testSecret and whose catalogue is open
// unless opts sets one.
func startSim(t testing.TB, opts graphsim.Options) *simulator {
	t.Helper()
	opts.ClientSecret = testSecret
	if opts.Apps == nil {
		opts.Open = true
	}
	server, err := graphsim.New(opts)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { server.Close() })
	certFile := filepath.Join(t.TempDir(), "graphsim.pem")
	if err := os.WriteFile(certFile, server.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return &simulator{Server: server, certFile: certFile, open: opts.Open}
}

// env returns the whole environment of a reclaim process that talks to sim. Nothing is inherited, so
// no AZURE_* or RECLAIM_* variable of the machine can leak in, and the credential chain is pinned to
// the environment credential: it can never fall through to managed identity and its metadata address.
func (sim *simulator) env(t testing.TB) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AZURE_TOKEN_CREDENTIALS=EnvironmentCredential",
		"AZURE_AUTHORITY_HOST=" + sim.AuthorityHost(),
		"AZURE_TENANT_ID=" + sim.TenantID(),
		"AZURE_CLIENT_ID=" + sim.ClientID(),
		"AZURE_CLIENT_SECRET=" + testSecret,
		"SSL_CERT_FILE=" + sim.certFile,
	}
}

// result is what a finished reclaim process left.
type result struct {
	code   int
	stdout string
	stderr string
}

// command returns an unstarted reclaim process against sim, with args after
// "run --graph-url ... --log-format json", and after "--precheck=false" on an open catalogue.
func (sim *simulator) command(t testing.TB, args ...string) *exec.Cmd {
	full := []string{"run", "--graph-url", sim.GraphURL(), "--log-format", "json"}
	if sim.open {
		full = append(full, "--precheck=false")
	}
	full = append(full, args...)
	cmd := exec.Command(reclaimBinary, full...)
	cmd.Env = sim.env(t)
	return cmd
}

// start starts cmd with its output captured.
func start(t testing.TB, cmd *exec.Cmd) (*bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start reclaim: %v", err)
	}
	return &stdout, &stderr
}

// runProcess runs cmd to its end.
func runProcess(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	stdout, stderr := start(t, cmd)
	return wait(t, cmd, stdout, stderr)
}

// run runs reclaim against sim to its end.
func (sim *simulator) run(t *testing.T, args ...string) result {
	t.Helper()
	return runProcess(t, sim.command(t, args...))
}

func wait(t testing.TB, cmd *exec.Cmd, stdout, stderr *bytes.Buffer) result {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	limit := 3 * time.Minute
	if _, ok := t.(*testing.B); ok {
		limit = 20 * time.Minute
	}
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("reclaim did not end within %v; stderr:\n%s", limit, tail(stderr.String(), 20))
	}
	return result{code: exitCode(cmd), stdout: stdout.String(), stderr: stderr.String()}
}

func exitCode(cmd *exec.Cmd) int {
	status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ok && status.Signaled() {
		return -int(status.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// wantCode fails the test when r did not exit with want.
func (r result) wantCode(t *testing.T, want int) {
	t.Helper()
	if r.code != want {
		t.Fatalf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, tail(r.stderr, 40))
	}
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// logLines decodes the JSON log lines of stderr.
func (r result) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if line == "" {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		lines = append(lines, fields)
	}
	return lines
}

// row is one generated input row and what the test expects for it.
type row struct {
	app, device string
	// cells replaces the app and device cells when set, for rows that are invalid on purpose.
	cells []string
	want  string
}

// guid returns a GUID made from r, so waves are repeatable.
func guid(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// validWave returns n rows of distinct valid pairs spread over a few apps.
func validWave(seed uint64, n int) []row {
	r := rand.New(rand.NewPCG(seed, seed))
	apps := []string{guid(r), guid(r), guid(r)}
	rows := make([]row, n)
	for i := range rows {
		rows[i] = row{app: apps[i%len(apps)], device: guid(r), want: "revoked"}
	}
	return rows
}

// waveCSV returns rows as a CSV with the header appId,deviceId.
func waveCSV(rows []row) string {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"appId", "deviceId"})
	for _, r := range rows {
		if r.cells != nil {
			w.Write(r.cells)
			continue
		}
		w.Write([]string{r.app, r.device})
	}
	w.Flush()
	return buf.String()
}

// writeWave writes rows as waveCSV does into a new file and returns its path.
func writeWave(t testing.TB, rows []row) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wave.csv")
	if err := os.WriteFile(path, []byte(waveCSV(rows)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// outcome is one line of outcomes.csv.
type outcome struct {
	app, device, status, httpStatus, attempts, errorCode, errorMessage, requestID, finishedAt string
}

// readOutcomes reads outcomes.csv in dir, checks its header and that no row has two lines, and returns
// the lines by row number.
func readOutcomes(t *testing.T, dir string) map[int]outcome {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, reclaim.OutcomesFile))
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("outcomes.csv is not CSV: %v", err)
	}
	if got := strings.Join(records[0], ","); got != "row,app_id,device_id,status,http_status,attempts,error_code,error_message,request_id,finished_at" {
		t.Fatalf("outcomes.csv header = %q", got)
	}
	outcomes := map[int]outcome{}
	for _, record := range records[1:] {
		n, err := strconv.Atoi(record[0])
		if err != nil {
			t.Fatalf("outcome line %q has no row number", record)
		}
		if _, seen := outcomes[n]; seen {
			t.Fatalf("row %d has two outcome lines", n)
		}
		outcomes[n] = outcome{record[1], record[2], record[3], record[4], record[5], record[6], record[7], record[8], record[9]}
	}
	return outcomes
}

// checkOutcomes fails unless outcomes.csv in dir has exactly one line per row, with the expected status.
func checkOutcomes(t *testing.T, dir string, rows []row) map[int]outcome {
	t.Helper()
	outcomes := readOutcomes(t, dir)
	if len(outcomes) != len(rows) {
		t.Errorf("outcomes.csv has %d lines, want %d", len(outcomes), len(rows))
	}
	for i, r := range rows {
		got, ok := outcomes[i+1]
		switch {
		case !ok:
			t.Errorf("row %d has no outcome", i+1)
		case got.status != r.want:
			t.Errorf("row %d (%s/%s) status = %s (%s %s), want %s", i+1, r.app, r.device, got.status, got.errorCode, got.errorMessage, r.want)
		}
	}
	return outcomes
}

// readSummary returns summary.csv in dir as a map.
func readSummary(t testing.TB, dir string) map[string]string {
	t.Helper()
	file, err := os.Open(filepath.Join(dir, reclaim.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	records, err := csv.NewReader(file).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	summary := map[string]string{}
	for _, record := range records[1:] {
		summary[record[0]] = record[1]
	}
	return summary
}

// revokedOnce fails unless the simulator received exactly one accepted revoke for each pair that the
// test expects to be revoked, and nothing for any other row.
func revokedOnce(t *testing.T, stats graphsim.Stats, rows []row) {
	t.Helper()
	for i, r := range rows {
		pair := graphsim.Pair{AppID: normalID(r.app), DeviceID: normalID(r.device)}
		removed := stats.LicensesRemoved[pair]
		switch r.want {
		case "revoked":
			if removed != 1 {
				t.Errorf("row %d: licenses removed for %v = %d, want 1", i+1, pair, removed)
			}
		case "invalid", "duplicate":
			if r.cells == nil && r.want == "invalid" && stats.RevokeCalls[pair] != 0 {
				t.Errorf("row %d (%s): revoke calls = %d, want 0", i+1, r.want, stats.RevokeCalls[pair])
			}
		}
	}
}

// normalID returns a GUID as reclaim sends it: lower case, without braces.
func normalID(id string) string { return strings.ToLower(strings.Trim(id, "{}")) }

// extraCalls returns how many revoke calls reached the simulator beyond one per distinct pair.
func extraCalls(stats graphsim.Stats) int {
	extra := 0
	for _, calls := range stats.RevokeCalls {
		extra += calls - 1
	}
	return extra
}

// signalAfter sends sig to cmd after d, unless the context ends first.
func signalAfter(ctx context.Context, cmd *exec.Cmd, sig os.Signal, d time.Duration) {
	go func() {
		select {
		case <-time.After(d):
			cmd.Process.Signal(sig)
		case <-ctx.Done():
		}
	}()
}

// waitForOutcomes waits until outcomes.csv in dir has at least n lines after its header.
func waitForOutcomes(t *testing.T, dir string, n int) {
	t.Helper()
	path := filepath.Join(dir, reclaim.OutcomesFile)
	for guard := time.Now(); time.Since(guard) < time.Minute; time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(path)
		if strings.Count(string(data), "\n") > n {
			return
		}
	}
	t.Fatalf("%s has fewer than %d lines after a minute", path, n)
}
