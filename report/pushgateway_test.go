package report_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"reclaim/report"
)

// pushRequest is one request that a gateway received, with its body decoded.
type pushRequest struct {
	method   string
	path     string
	user     string
	password string
	// metrics maps a metric name, followed by its labels as {name="value"} when it has any, to its value.
	metrics map[string]float64
	// types maps a metric family name to its type.
	types map[string]dto.MetricType
}

// gateway is a loopback HTTP server that records what a Pushgateway would receive and responds with
// status.
type gateway struct {
	*httptest.Server
	status int

	mu       sync.Mutex
	requests []pushRequest
	errs     []error
}

func startGateway(t *testing.T, status int) *gateway {
	t.Helper()
	g := &gateway{status: status}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) serve(w http.ResponseWriter, r *http.Request) {
	got := pushRequest{method: r.Method, path: r.URL.Path, metrics: map[string]float64{}, types: map[string]dto.MetricType{}}
	got.user, got.password, _ = r.BasicAuth()
	err := decodeMetrics(r, got.metrics, got.types)

	g.mu.Lock()
	g.requests = append(g.requests, got)
	if err != nil {
		g.errs = append(g.errs, err)
	}
	g.mu.Unlock()
	w.WriteHeader(g.status)
}

// decodeMetrics decodes the metric families of a push body into metrics and types.
func decodeMetrics(r *http.Request, metrics map[string]float64, types map[string]dto.MetricType) error {
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
		types[family.GetName()] = family.GetType()
		for _, m := range family.GetMetric() {
			key := family.GetName()
			for _, label := range m.GetLabel() {
				key += "{" + label.GetName() + "=\"" + label.GetValue() + "\"}"
			}
			metrics[key] = m.GetGauge().GetValue()
		}
	}
}

// only returns the one request g received, and fails the test unless there was exactly one and its
// body decoded.
func (g *gateway) only(t *testing.T) pushRequest {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, err := range g.errs {
		t.Errorf("decode push body: %v", err)
	}
	if len(g.requests) != 1 {
		t.Fatalf("gateway received %d requests, want 1", len(g.requests))
	}
	return g.requests[0]
}

// jobSummary is a summary whose figures all differ, so that a figure pushed under the wrong name shows.
var jobSummary = report.Summary{
	Rows:           100,
	Counts:         report.Counts{Revoked: 50, NotLicensed: 10, NotFound: 5, Failed: 4, Invalid: 3, Duplicate: 2},
	Requests:       80,
	Throttled:      7,
	Reads:          12,
	ReadsThrottled: 1,
	Retries:        9,
	Rejected:       6,
	Runs:           3,
	Elapsed:        90500 * time.Millisecond,
}

// wantJobMetrics returns the metrics that Push sends for jobSummary, without the ones of the run.
func wantJobMetrics() map[string]float64 {
	return map[string]float64{
		`reclaim_rows{status="revoked"}`:      50,
		`reclaim_rows{status="not_licensed"}`: 10,
		`reclaim_rows{status="not_found"}`:    5,
		`reclaim_rows{status="failed"}`:       4,
		`reclaim_rows{status="invalid"}`:      3,
		`reclaim_rows{status="duplicate"}`:    2,
		`reclaim_rows{status="planned"}`:      0,
		`reclaim_rows{status="pending"}`:      26,
		"reclaim_requests":                    80,
		"reclaim_throttled":                   7,
		"reclaim_reads":                       12,
		"reclaim_reads_throttled":             1,
		"reclaim_retries":                     9,
		"reclaim_tokens_rejected":             6,
		"reclaim_runs":                        3,
		"reclaim_elapsed_seconds":             90.5,
	}
}

// checkMetrics fails the test unless got holds exactly the metrics of want, all of them gauges.
func checkMetrics(t *testing.T, got pushRequest, want map[string]float64) {
	t.Helper()
	for key, wantValue := range want {
		gotValue, ok := got.metrics[key]
		switch {
		case !ok:
			t.Errorf("metric %s is missing", key)
		case gotValue != wantValue:
			t.Errorf("metric %s = %v, want %v", key, gotValue, wantValue)
		}
	}
	for key := range got.metrics {
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected metric %s = %v", key, got.metrics[key])
		}
	}
	for name, kind := range got.types {
		if kind != dto.MetricType_GAUGE {
			t.Errorf("metric %s has type %v, want GAUGE", name, kind)
		}
	}
}

func TestPushCompleteJob(t *testing.T) {
	g := startGateway(t, http.StatusOK)
	summary := jobSummary
	summary.Counts.Revoked += 26
	summary.Complete = true
	ended := time.Date(2026, 5, 4, 3, 2, 1, 250*int(time.Millisecond), time.UTC)

	err := report.Push(context.Background(),
		report.PushTarget{URL: g.URL, Job: "reclaim", Grouping: map[string]string{"input": "wave.csv"}},
		report.Figures{Summary: summary, SummaryRead: true, Duration: 1500 * time.Millisecond, ExitCode: 1, Complete: true, EndedAt: ended})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}

	got := g.only(t)
	if got.method != http.MethodPost {
		t.Errorf("method = %s, want POST", got.method)
	}
	if want := "/metrics/job/reclaim/input/wave.csv"; got.path != want {
		t.Errorf("path = %s, want %s", got.path, want)
	}
	want := wantJobMetrics()
	want[`reclaim_rows{status="revoked"}`] = 76
	want[`reclaim_rows{status="pending"}`] = 0
	want["reclaim_complete"] = 1
	want["reclaim_run_duration_seconds"] = 1.5
	want["reclaim_last_exit_code"] = 1
	want["reclaim_last_complete_timestamp_seconds"] = float64(ended.Unix()) + 0.25
	checkMetrics(t, got, want)
}

func TestPushIncompleteJob(t *testing.T) {
	g := startGateway(t, http.StatusAccepted)

	err := report.Push(context.Background(),
		report.PushTarget{URL: g.URL, Job: "reclaim", Grouping: map[string]string{"input": "wave.csv"}},
		report.Figures{Summary: jobSummary, SummaryRead: true, Duration: 2 * time.Second, ExitCode: 4, EndedAt: time.Now()})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}

	want := wantJobMetrics()
	want["reclaim_complete"] = 0
	want["reclaim_run_duration_seconds"] = 2
	want["reclaim_last_exit_code"] = 4
	checkMetrics(t, g.only(t), want)
}

func TestPushWithoutSummary(t *testing.T) {
	g := startGateway(t, http.StatusOK)

	// A run that ended on a bad flag read no job: its zero summary must not replace the job's gauges.
	err := report.Push(context.Background(),
		report.PushTarget{URL: g.URL, Job: "reclaim", Grouping: map[string]string{"input": "wave.csv"}},
		report.Figures{Summary: jobSummary, Duration: time.Second, ExitCode: 2, EndedAt: time.Now()})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	checkMetrics(t, g.only(t), map[string]float64{"reclaim_run_duration_seconds": 1, "reclaim_last_exit_code": 2})
}

func TestPushPath(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string
		job      string
		grouping map[string]string
		want     string
	}{
		{"plain", "", "reclaim", map[string]string{"input": "wave.csv"}, "/metrics/job/reclaim/input/wave.csv"},
		{"trailing slash", "/", "reclaim", map[string]string{"input": "wave.csv"}, "/metrics/job/reclaim/input/wave.csv"},
		{"path prefix", "/gateway", "reclaim", map[string]string{"input": "wave.csv"}, "/gateway/metrics/job/reclaim/input/wave.csv"},
		{"slash in value", "", "reclaim", map[string]string{"input": "waves/may"}, "/metrics/job/reclaim/input@base64/d2F2ZXMvbWF5"},
		{"slash in job", "", "team/reclaim", map[string]string{"input": "wave.csv"}, "/metrics/job@base64/dGVhbS9yZWNsYWlt/input/wave.csv"},
		{"no grouping", "", "reclaim", nil, "/metrics/job/reclaim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startGateway(t, http.StatusOK)
			err := report.Push(context.Background(), report.PushTarget{URL: g.URL + tt.prefix, Job: tt.job, Grouping: tt.grouping},
				report.Figures{Summary: jobSummary})
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			if got := g.only(t).path; got != tt.want {
				t.Errorf("path = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPushBasicAuth(t *testing.T) {
	g := startGateway(t, http.StatusOK)
	u := strings.Replace(g.URL, "http://", "http://pusher:s3cret-pass@", 1)

	err := report.Push(context.Background(), report.PushTarget{URL: u, Job: "reclaim"}, report.Figures{Summary: jobSummary})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}

	got := g.only(t)
	if got.user != "pusher" || got.password != "s3cret-pass" {
		t.Errorf("basic auth = %q, %q, want pusher, s3cret-pass", got.user, got.password)
	}
}

func TestPushServerError(t *testing.T) {
	g := startGateway(t, http.StatusInternalServerError)
	u := strings.Replace(g.URL, "http://", "http://pusher:s3cret-pass@", 1)

	err := report.Push(context.Background(), report.PushTarget{URL: u, Job: "reclaim"}, report.Figures{Summary: jobSummary})
	if err == nil {
		t.Fatal("Push to a gateway responding with 500 returned no error")
	}
	if !strings.Contains(err.Error(), "500") {
		t.Errorf("error %q does not name status 500", err)
	}
	if strings.Contains(err.Error(), "s3cret-pass") {
		t.Errorf("error %q contains the password", err)
	}
}

func TestPushTimeout(t *testing.T) {
	// The gateway never responds: it holds each request until the client gives up or the test ends.
	release := make(chan struct{})
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(server.Close)
	t.Cleanup(func() { close(release) })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := report.Push(ctx, report.PushTarget{URL: server.URL, Job: "reclaim"}, report.Figures{Summary: jobSummary})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Push to a gateway that never responds = %v, want context.DeadlineExceeded", err)
	}
}

func TestParsePushgatewayURL(t *testing.T) {
	tests := []struct {
		raw string
		// wantErr is a part of the error message, or empty when the URL is valid.
		wantErr string
	}{
		{"https://pushgateway.monitoring:9091", ""},
		{"https://user:pass@pushgateway.monitoring/gateway/", ""},
		{"http://127.0.0.1:9091", ""},
		{"http://localhost:9091", ""},
		{"http://[::1]:9091", ""},
		{"http://pushgateway.monitoring:9091", "uses http on a host other than loopback"},
		{"http://10.0.0.5:9091", "uses http on a host other than loopback"},
		{"ftp://127.0.0.1:9091", "must start with https://"},
		{"pushgateway.monitoring:9091", "has no host"},
		{"localhost:9091", "has no host"},
		{"https://", "has no host"},
		{"https://pushgateway.monitoring:9091?x=1", "has a query or fragment"},
		{"https://pushgateway.monitoring:9091/metrics/job/reclaim", "contains /metrics/"},
		{"https://pushgateway.monitoring:bad", "is not a URL"},
	}
	for _, tt := range tests {
		_, err := report.ParsePushgatewayURL(tt.raw)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParsePushgatewayURL(%q) = %v, want no error", tt.raw, err)
		case tt.wantErr != "" && err == nil:
			t.Errorf("ParsePushgatewayURL(%q) returned no error, want one containing %q", tt.raw, tt.wantErr)
		case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
			t.Errorf("ParsePushgatewayURL(%q) = %v, want an error containing %q", tt.raw, err, tt.wantErr)
		}
	}
}

func TestParsePushgatewayURLHidesPassword(t *testing.T) {
	for _, raw := range []string{
		"http://pusher:s3cret-pass@pushgateway.monitoring:9091",
		"https://pusher:s3cret-pass@pushgateway.monitoring:bad/",
		"https://pusher:s3cret-pass@pushgateway.monitoring:9091?x=1",
		"ftp://pusher:s3cret-pass@127.0.0.1",
	} {
		_, err := report.ParsePushgatewayURL(raw)
		if err == nil {
			t.Errorf("ParsePushgatewayURL(%q) returned no error", raw)
			continue
		}
		if strings.Contains(err.Error(), "s3cret-pass") {
			t.Errorf("ParsePushgatewayURL error %q contains the password", err)
		}
		if !strings.Contains(err.Error(), "pushgateway.monitoring") && !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("ParsePushgatewayURL error %q does not name the host", err)
		}
	}
}

func TestPushTargetValidate(t *testing.T) {
	tests := []struct {
		name    string
		target  report.PushTarget
		wantErr bool
	}{
		{"valid", report.PushTarget{URL: "https://pushgateway.monitoring", Job: "reclaim", Grouping: map[string]string{"input": "wave.csv"}}, false},
		{"empty input value", report.PushTarget{URL: "https://pushgateway.monitoring", Job: "reclaim", Grouping: map[string]string{"input": ""}}, false},
		{"empty job", report.PushTarget{URL: "https://pushgateway.monitoring", Job: ""}, true},
		{"job as grouping label", report.PushTarget{URL: "https://pushgateway.monitoring", Job: "reclaim", Grouping: map[string]string{"job": "x"}}, true},
		{"empty label name", report.PushTarget{URL: "https://pushgateway.monitoring", Job: "reclaim", Grouping: map[string]string{"": "x"}}, true},
		{"bad URL", report.PushTarget{URL: "http://pushgateway.monitoring", Job: "reclaim"}, true},
	}
	for _, tt := range tests {
		err := tt.target.Validate()
		if gotErr := err != nil; gotErr != tt.wantErr {
			t.Errorf("%s: Validate() = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}
