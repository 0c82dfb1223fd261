package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"reclaim/reclaim"
	"reclaim/report"
)

// pushgateway is a loopback HTTP server that records the pushes a Pushgateway would receive.
type pushgateway struct {
	*httptest.Server
	status int

	mu     sync.Mutex
	pushes []push
	errs   []error
}

// push is one request to a pushgateway.
type push struct {
	method string
	path   string
	// metrics maps a metric name, followed by {name="value"} for each label, to its value.
	metrics map[string]float64
}

// startPushgateway starts a pushgateway that responds to every request with status.
func startPushgateway(t *testing.T, status int) *pushgateway {
	t.Helper()
	g := &pushgateway{status: status}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := push{method: r.Method, path: r.URL.Path, metrics: map[string]float64{}}
		err := decodePush(r, p.metrics)
		g.mu.Lock()
		g.pushes = append(g.pushes, p)
		if err != nil {
			g.errs = append(g.errs, err)
		}
		g.mu.Unlock()
		w.WriteHeader(g.status)
	}))
	t.Cleanup(g.Close)
	return g
}

func decodePush(r *http.Request, metrics map[string]float64) error {
	decoder := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
	for {
		var family dto.MetricFamily
		err := decoder.Decode(&family)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, m := range family.GetMetric() {
			key := family.GetName()
			for _, label := range m.GetLabel() {
				key += "{" + label.GetName() + "=\"" + label.GetValue() + "\"}"
			}
			metrics[key] = m.GetGauge().GetValue()
		}
	}
}

// received returns the pushes g received and fails the test if a body did not decode.
func (g *pushgateway) received(t *testing.T) []push {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, err := range g.errs {
		t.Errorf("decode push body: %v", err)
	}
	return append([]push(nil), g.pushes...)
}

// only returns the one push g received, and fails the test unless there was exactly one.
func (g *pushgateway) only(t *testing.T) push {
	t.Helper()
	pushes := g.received(t)
	if len(pushes) != 1 {
		t.Fatalf("pushgateway received %d pushes, want 1", len(pushes))
	}
	return pushes[0]
}

// simulateCommand returns an unstarted "reclaim run --simulate --log-format json" with args after it.
// The simulator runs inside the process and needs no credentials, so the environment holds nothing
// but PATH, HOME and the pinned credential chain.
func simulateCommand(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(reclaimBinary, append([]string{"run", "--simulate", "--log-format", "json"}, args...)...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AZURE_TOKEN_CREDENTIALS=EnvironmentCredential",
	}
	return cmd
}

// checkPushedSummary fails the test unless the job figures of p equal summary.csv in dir.
func checkPushedSummary(t *testing.T, p push, dir string) {
	t.Helper()
	summary := readSummary(t, dir)

	want := map[string]string{}
	var rows float64
	statuses := append([]report.Status{"pending"}, report.Statuses...)
	for _, status := range statuses {
		key := `reclaim_rows{status="` + string(status) + `"}`
		want[key] = summary[string(status)]
		rows += p.metrics[key]
	}
	for _, name := range []string{"requests", "throttled", "reads", "reads_throttled", "retries", "tokens_rejected", "runs"} {
		want["reclaim_"+name] = summary[name]
	}

	for key, wantValue := range want {
		got, ok := p.metrics[key]
		if !ok {
			t.Errorf("pushed metric %s is missing", key)
			continue
		}
		if gotValue := strconv.FormatFloat(got, 'f', -1, 64); gotValue != wantValue {
			t.Errorf("pushed %s = %s, want %s as in summary.csv", key, gotValue, wantValue)
		}
	}

	if got := strconv.FormatFloat(rows, 'f', -1, 64); got != summary["rows"] {
		t.Errorf("pushed rows over all statuses = %s, want %s as in summary.csv", got, summary["rows"])
	}
	if got := strconv.FormatFloat(p.metrics["reclaim_elapsed_seconds"], 'f', 1, 64); got != summary["elapsed_seconds"] {
		t.Errorf("pushed reclaim_elapsed_seconds = %s, want %s as in summary.csv", got, summary["elapsed_seconds"])
	}

	wantComplete := 0.0
	if summary["complete"] == "true" {
		wantComplete = 1
	}
	if got := p.metrics["reclaim_complete"]; got != wantComplete {
		t.Errorf("pushed reclaim_complete = %v, want %v for complete=%s in summary.csv", got, wantComplete, summary["complete"])
	}
}

// expectedExitCode returns the exit code that summary.csv in dir implies for a complete job.
func expectedExitCode(t *testing.T, dir string) int {
	t.Helper()
	summary := readSummary(t, dir)
	for _, status := range []string{"failed", "not_found", "invalid"} {
		if summary[status] != "0" {
			return reclaim.ExitRowsFailed
		}
	}
	return reclaim.ExitOK
}

func TestPushCompleteRun(t *testing.T) {
	t.Parallel()
	gateway := startPushgateway(t, http.StatusOK)
	input, out := writeWave(t, validWave(41, 16)), t.TempDir()

	started := time.Now().Truncate(time.Millisecond)
	res := runProcess(t, simulateCommand(t, "--input", input, "--out-dir", out, "--pushgateway-url", gateway.URL,
		"--pushgateway-job", "offboarding"))
	ended := time.Now()
	res.wantCode(t, expectedExitCode(t, out))

	p := gateway.only(t)
	if p.method != http.MethodPost {
		t.Errorf("push method = %s, want POST", p.method)
	}
	if want := "/metrics/job/offboarding/input/wave.csv"; p.path != want {
		t.Errorf("push path = %s, want %s", p.path, want)
	}
	checkPushedSummary(t, p, out)
	if got := p.metrics["reclaim_last_exit_code"]; got != float64(res.code) {
		t.Errorf("pushed reclaim_last_exit_code = %v, want %d", got, res.code)
	}
	if got := p.metrics["reclaim_run_duration_seconds"]; got <= 0 || got > ended.Sub(started).Seconds() {
		t.Errorf("pushed reclaim_run_duration_seconds = %v, want above 0 and at most %v", got, ended.Sub(started).Seconds())
	}
	last, ok := p.metrics["reclaim_last_complete_timestamp_seconds"]
	if !ok {
		t.Fatal("a complete run pushed no reclaim_last_complete_timestamp_seconds")
	}
	if at := time.UnixMilli(int64(last * 1000)); at.Before(started) || at.After(ended) {
		t.Errorf("pushed last complete time = %v, want between %v and %v", at, started, ended)
	}
}

func TestPushStoppedByDeadline(t *testing.T) {
	t.Parallel()
	gateway := startPushgateway(t, http.StatusOK)
	input, out := writeWave(t, validWave(42, 80)), t.TempDir()

	res := runProcess(t, simulateCommand(t, "--input", input, "--out-dir", out, "--rate", "5", "--deadline", "1s",
		"--pushgateway-url", gateway.URL))
	res.wantCode(t, reclaim.ExitStopped)

	p := gateway.only(t)
	checkPushedSummary(t, p, out)
	if got := p.metrics["reclaim_last_exit_code"]; got != reclaim.ExitStopped {
		t.Errorf("pushed reclaim_last_exit_code = %v, want %d", got, reclaim.ExitStopped)
	}
	if got := p.metrics[`reclaim_rows{status="pending"}`]; got == 0 {
		t.Errorf("pushed pending rows = 0, want some after the deadline")
	}
	if got, ok := p.metrics["reclaim_last_complete_timestamp_seconds"]; ok {
		t.Errorf("a stopped run pushed reclaim_last_complete_timestamp_seconds = %v, want none", got)
	}
}

func TestPushAfterSIGTERM(t *testing.T) {
	t.Parallel()
	gateway := startPushgateway(t, http.StatusOK)
	input, out := writeWave(t, validWave(43, 200)), t.TempDir()

	cmd := simulateCommand(t, "--input", input, "--out-dir", out, "--rate", "5", "--pushgateway-url", gateway.URL)
	stdout, stderr := start(t, cmd)
	// The signal goes out once rows are being sent, so that the run has written summary.csv when it
	// stops, and not while it starts up.
	waitForOutcomes(t, out, 1)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("send SIGTERM: %v", err)
	}
	res := wait(t, cmd, stdout, stderr)
	res.wantCode(t, reclaim.ExitStopped)

	p := gateway.only(t)
	checkPushedSummary(t, p, out)
	if got := p.metrics["reclaim_last_exit_code"]; got != reclaim.ExitStopped {
		t.Errorf("pushed reclaim_last_exit_code = %v, want %d", got, reclaim.ExitStopped)
	}
}

func TestPushFailureKeepsExitCode(t *testing.T) {
	t.Parallel()
	gateway := startPushgateway(t, http.StatusInternalServerError)
	input, out := writeWave(t, validWave(44, 8)), t.TempDir()
	const password = "push-pass-7c1d"
	withPassword := strings.Replace(gateway.URL, "http://", "http://pusher:"+password+"@", 1)

	res := runProcess(t, simulateCommand(t, "--input", input, "--out-dir", out, "--pushgateway-url", withPassword))
	res.wantCode(t, expectedExitCode(t, out))

	if n := len(gateway.received(t)); n != 1 {
		t.Errorf("pushgateway received %d pushes, want 1", n)
	}
	if strings.Contains(res.stderr, password) || strings.Contains(res.stdout, password) {
		t.Errorf("the output contains the Pushgateway password:\n%s", tail(res.stderr, 10))
	}
	var warned bool
	for _, line := range res.logLines(t) {
		if line["level"] != "warn" || !strings.Contains(line["message"].(string), "Pushgateway") {
			continue
		}
		warned = true
		if got, _ := line["url"].(string); !strings.Contains(got, "pusher:xxxxx@127.0.0.1") {
			t.Errorf("warning url = %q, want the redacted URL with pusher:xxxxx@127.0.0.1", got)
		}
		if got, _ := line["error"].(string); !strings.Contains(got, "500") {
			t.Errorf("warning error = %q, want one naming status 500", got)
		}
	}
	if !warned {
		t.Errorf("no warning about the failed push:\n%s", tail(res.stderr, 10))
	}
}

func TestPushAfterInputError(t *testing.T) {
	t.Parallel()
	gateway := startPushgateway(t, http.StatusOK)
	input := filepath.Join(t.TempDir(), "missing.csv")

	res := runProcess(t, simulateCommand(t, "--input", input, "--out-dir", t.TempDir(), "--pushgateway-url", gateway.URL))
	res.wantCode(t, reclaim.ExitUsage)

	p := gateway.only(t)
	if want := "/metrics/job/reclaim/input/missing.csv"; p.path != want {
		t.Errorf("push path = %s, want %s", p.path, want)
	}
	if got := p.metrics["reclaim_last_exit_code"]; got != reclaim.ExitUsage {
		t.Errorf("pushed reclaim_last_exit_code = %v, want %d", got, reclaim.ExitUsage)
	}
	if got, ok := p.metrics["reclaim_last_complete_timestamp_seconds"]; ok {
		t.Errorf("a failed run pushed reclaim_last_complete_timestamp_seconds = %v, want none", got)
	}
	// The run read no job, so it must not replace the job's gauges of an earlier push with zeros.
	if got, ok := p.metrics[`reclaim_rows{status="revoked"}`]; ok {
		t.Errorf("a run that read no job pushed reclaim_rows = %v, want none", got)
	}
}

func TestPushNothingForDryRun(t *testing.T) {
	t.Parallel()
	gateway := startPushgateway(t, http.StatusOK)
	input := writeWave(t, validWave(45, 8))

	res := runProcess(t, simulateCommand(t, "--input", input, "--out-dir", t.TempDir(), "--dry-run", "--pushgateway-url", gateway.URL))
	res.wantCode(t, reclaim.ExitOK)

	if n := len(gateway.received(t)); n != 0 {
		t.Errorf("pushgateway received %d pushes from a dry run, want 0", n)
	}
}

func TestPushNothingWhenBusy(t *testing.T) {
	t.Parallel()
	gateway := startPushgateway(t, http.StatusOK)
	input, out := writeWave(t, validWave(47, 200)), t.TempDir()

	holder := simulateCommand(t, "--input", input, "--out-dir", out, "--rate", "5")
	holderStdout, holderStderr := start(t, holder)
	waitForOutcomes(t, out, 1)

	res := runProcess(t, simulateCommand(t, "--input", input, "--out-dir", out, "--pushgateway-url", gateway.URL))
	if err := holder.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("send SIGTERM to the holder: %v", err)
	}
	wait(t, holder, holderStdout, holderStderr).wantCode(t, reclaim.ExitStopped)
	res.wantCode(t, reclaim.ExitStopped)

	if n := len(gateway.received(t)); n != 0 {
		t.Errorf("pushgateway received %d pushes from a run that found the job busy, want 0", n)
	}
}

func TestPushgatewayURLRejected(t *testing.T) {
	t.Parallel()
	// Every request of the process without a loopback host goes to this proxy, so that a push that
	// should have been rejected stays on this machine and shows up here.
	proxy := startPushgateway(t, http.StatusOK)

	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"http on another host", []string{"--pushgateway-url", "http://pushgateway.monitoring.svc:9091"}, nil, "use https"},
		{"from the environment", nil, []string{"RECLAIM_PUSHGATEWAY_URL=http://pushgateway.monitoring.svc:9091"}, "use https"},
		{"no scheme", []string{"--pushgateway-url", "pushgateway.monitoring.svc:9091"}, nil, "has no host"},
		{"empty job", []string{"--pushgateway-url", "https://pushgateway.monitoring.svc", "--pushgateway-job", ""}, nil, "job is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input, out := writeWave(t, validWave(46, 4)), t.TempDir()
			cmd := simulateCommand(t, append([]string{"--input", input, "--out-dir", out}, tt.args...)...)
			cmd.Env = append(cmd.Env, "HTTP_PROXY="+proxy.URL, "HTTPS_PROXY="+proxy.URL)
			cmd.Env = append(cmd.Env, tt.env...)

			res := runProcess(t, cmd)
			res.wantCode(t, reclaim.ExitUsage)
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr does not contain %q:\n%s", tt.want, tail(res.stderr, 5))
			}
			if strings.Contains(res.stderr, "simulator started") {
				t.Errorf("the run started the simulator before it rejected the Pushgateway flags")
			}
			if _, err := os.Stat(filepath.Join(out, reclaim.SummaryFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat summary.csv = %v, want it missing", err)
			}
		})
	}
	if n := len(proxy.received(t)); n != 0 {
		t.Errorf("the proxy received %d requests, want 0", n)
	}
}
