package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

func TestWaveMixedRows(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	vpp, notVPP, unknownApp := guid(r), guid(r), guid(r)
	licensed := []string{guid(r), guid(r), guid(r), guid(r), guid(r)}
	unknownDevice := guid(r)
	sim := startSim(t, graphsim.Options{Apps: map[string]graphsim.App{
		vpp:    {VPP: true, Licensed: licensed},
		notVPP: {VPP: false},
	}, Devices: licensed})

	rows := []row{
		{app: vpp, device: licensed[0], want: "revoked"},
		{app: strings.ToUpper(vpp), device: "{" + strings.ToUpper(licensed[1]) + "}", want: "revoked"},
		{app: vpp, device: licensed[2], want: "revoked"},
		{app: vpp, device: licensed[0], want: "duplicate"},
		{app: vpp, device: "{" + licensed[1] + "}", want: "duplicate"},
		{app: notVPP, device: licensed[3], want: "failed"},
		{app: unknownApp, device: licensed[3], want: "not_found"},
		{app: vpp, device: unknownDevice, want: "not_found"},
		{cells: []string{vpp, "not-a-guid"}, want: "invalid"},
		{cells: []string{"", licensed[4]}, want: "invalid"},
		{cells: []string{vpp}, want: "invalid"},
		{cells: []string{vpp, licensed[4], "extra"}, want: "invalid"},
		{cells: []string{"=cmd|' /C calc'!A0", licensed[4]}, want: "invalid"},
		{app: vpp, device: licensed[4], want: "revoked"},
	}
	input := writeWave(t, rows)
	out := t.TempDir()

	// Without the precheck, so that every response of the revoke action shows. precheck_test.go covers
	// the same kinds of rows with it.
	res := sim.run(t, "--input", input, "--out-dir", out, "--rate", "50", "--precheck=false")
	res.wantCode(t, reclaim.ExitRowsFailed)

	outcomes := checkOutcomes(t, out, rows)
	revokedOnce(t, sim.Stats(), rows)
	if got := sim.Stats().RevokeCalls; len(got) != 7 {
		t.Errorf("pairs sent = %d, want 7 (four licensed, one non-VPP, one unknown app, one unknown device)", len(got))
	}

	if got := outcomes[2]; got.app != vpp || got.device != licensed[1] {
		t.Errorf("row 2 ids = %s/%s, want them normalised to %s/%s", got.app, got.device, vpp, licensed[1])
	}
	if got := outcomes[1]; got.httpStatus != "204" || got.attempts != "1" || got.requestID == "" || got.finishedAt == "" {
		t.Errorf("row 1 = %+v, want http 204, 1 attempt, a request id and a time", got)
	}
	if got := outcomes[6]; got.errorCode != "BadRequest" || got.httpStatus != "400" {
		t.Errorf("row 6 (not a VPP app) = %+v, want 400 BadRequest", got)
	}
	if got := outcomes[13]; !strings.HasPrefix(got.app, "'=") {
		t.Errorf("row 13 app cell = %q, want it prefixed with ' so Excel shows text", got.app)
	}
	for n, o := range outcomes {
		if o.status == "invalid" && o.errorMessage == "" {
			t.Errorf("invalid row %d has no reason", n)
		}
	}

	summary := readSummary(t, out)
	want := map[string]string{"rows": "14", "revoked": "4", "duplicate": "2", "failed": "1", "not_found": "2",
		"invalid": "5", "planned": "0", "pending": "0", "complete": "true", "requests": "7"}
	for metric, value := range want {
		if summary[metric] != value {
			t.Errorf("summary %s = %q, want %q", metric, summary[metric], value)
		}
	}
	if !strings.Contains(res.stdout, "complete") || !strings.Contains(res.stdout, "revoked       4") {
		t.Errorf("stdout does not end with the summary:\n%s", res.stdout)
	}

	var failedLogged bool
	for _, line := range res.logLines(t) {
		if line["status"] == "failed" && line["row"] == float64(6) {
			failedLogged = line["app_id"] == notVPP && line["request_id"] != ""
		}
	}
	if !failedLogged {
		t.Errorf("the failed row 6 was not logged with its ids and request_id")
	}
}

func TestWaveThrottledBelowRate(t *testing.T) {
	t.Parallel()
	styles := []graphsim.RetryAfterStyle{graphsim.RetryAfterSeconds, graphsim.RetryAfterDecimal,
		graphsim.RetryAfterDate, graphsim.RetryAfterList, graphsim.RetryAfterNone}
	for i, style := range styles {
		t.Run(string(style), func(t *testing.T) {
			t.Parallel()
			// The service allows 10 writes a second, and reclaim is set to 40.
			sim := startSim(t, graphsim.Options{WriteLimit: 5, WriteWindow: 500 * time.Millisecond, RetryAfter: style})
			rows := validWave(uint64(10+i), 40)
			out := t.TempDir()

			res := sim.run(t, "--input", writeWave(t, rows), "--out-dir", out, "--rate", "40", "--burst", "4", "--workers", "8")
			res.wantCode(t, reclaim.ExitOK)

			checkOutcomes(t, out, rows)
			stats := sim.Stats()
			revokedOnce(t, stats, rows)
			if stats.Throttled == 0 {
				t.Errorf("the simulator answered no 429, so throttling was not exercised")
			}
			if got := readSummary(t, out)["throttled"]; got == "0" {
				t.Errorf("summary throttled = %s, want the 429 answers counted", got)
			}
		})
	}
}

func TestWaveServerFaultsAndResets(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{FaultRate: 0.1, ResetRate: 0.1, Seed: 7,
		LatencyMin: 5 * time.Millisecond, LatencyMax: 20 * time.Millisecond})
	rows := validWave(3, 120)
	out := t.TempDir()

	res := sim.run(t, "--input", writeWave(t, rows), "--out-dir", out, "--rate", "100", "--workers", "8")
	res.wantCode(t, reclaim.ExitOK)

	checkOutcomes(t, out, rows)
	stats := sim.Stats()
	revokedOnce(t, stats, rows)
	if stats.Faults == 0 || stats.Resets == 0 {
		t.Errorf("faults %d, resets %d; want both above 0", stats.Faults, stats.Resets)
	}
	if got := readSummary(t, out)["retries"]; got == "0" {
		t.Errorf("summary retries = %s, want the retries counted", got)
	}
}

func TestWaveTokensExpireMidRun(t *testing.T) {
	t.Parallel()
	// Tokens are advertised for an hour but the service drops them after one second, as when they are
	// revoked: reclaim must get a new one on the 401 instead of failing rows.
	sim := startSim(t, graphsim.Options{TokenLifetime: time.Second, TokenExpiresIn: time.Hour})
	rows := validWave(4, 40)
	out := t.TempDir()

	res := sim.run(t, "--input", writeWave(t, rows), "--out-dir", out, "--rate", "10")
	res.wantCode(t, reclaim.ExitOK)

	checkOutcomes(t, out, rows)
	stats := sim.Stats()
	revokedOnce(t, stats, rows)
	if stats.Unauthorized == 0 || stats.TokensIssued < 3 {
		t.Errorf("unauthorized %d, tokens issued %d; want 401 answers and at least 3 tokens over 4 s", stats.Unauthorized, stats.TokensIssued)
	}
}

func TestWaveForbiddenStopsAndResumes(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{Forbidden: true})
	rows := validWave(5, 20)
	input, out := writeWave(t, rows), t.TempDir()

	res := sim.run(t, "--input", input, "--out-dir", out)
	res.wantCode(t, reclaim.ExitAuth)
	if !strings.Contains(res.stderr, "DeviceManagementApps.ReadWrite.All") {
		t.Errorf("stderr does not name the permission:\n%s", tail(res.stderr, 10))
	}
	if got := len(readOutcomes(t, out)); got != 0 {
		t.Errorf("outcomes after 403 = %d lines, want 0: the rows stay pending", got)
	}
	if got := readSummary(t, out)["complete"]; got != "false" {
		t.Errorf("summary complete = %s, want false", got)
	}

	sim.SetForbidden(false)
	res = sim.run(t, "--input", input, "--out-dir", out, "--rate", "50")
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
	revokedOnce(t, sim.Stats(), rows)
}

func TestWaveUncastFormOnly(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{Forms: graphsim.FormUncast})
	rows := validWave(6, 30)
	out := t.TempDir()

	res := sim.run(t, "--input", writeWave(t, rows), "--out-dir", out, "--rate", "50", "--workers", "4")
	res.wantCode(t, reclaim.ExitOK)

	checkOutcomes(t, out, rows)
	stats := sim.Stats()
	revokedOnce(t, stats, rows)
	if cast := stats.ByForm["cast"]; cast < 1 || cast > 4 {
		t.Errorf("cast requests = %d, want 1 to 4: one probe per worker at most", cast)
	}
	checkpoint, err := os.ReadFile(filepath.Join(out, reclaim.CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(checkpoint), `"url_form": "uncast"`) {
		t.Errorf("checkpoint does not record the uncast form:\n%s", checkpoint)
	}
}

func TestWaveNoURLFormWorks(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{Forms: graphsim.FormNone})
	rows := validWave(7, 10)
	out := t.TempDir()

	res := sim.run(t, "--input", writeWave(t, rows), "--out-dir", out)
	res.wantCode(t, reclaim.ExitUsage)
	if !strings.Contains(res.stderr, "revokeDeviceLicense") {
		t.Errorf("stderr does not explain the missing action:\n%s", tail(res.stderr, 10))
	}
	if got := len(readOutcomes(t, out)); got != 0 {
		t.Errorf("outcomes = %d lines, want 0: no row failed for the service's problem", got)
	}
	if got := sim.Stats().GraphRequests; got > 2*reclaim.DefaultWorkers {
		t.Errorf("Graph requests = %d, want at most one per form and worker", got)
	}
}

func TestWaveDryRunSendsNothing(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(8, 10)
	rows = append(rows, row{app: rows[0].app, device: rows[0].device, want: "duplicate"},
		row{cells: []string{rows[0].app, "x"}, want: "invalid"})
	input, out := writeWave(t, rows), t.TempDir()

	// No credentials at all: a dry run must not need them.
	cmd := sim.command(t, "--input", input, "--out-dir", out, "--dry-run")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AZURE_TOKEN_CREDENTIALS=EnvironmentCredential"}
	res := runProcess(t, cmd)
	res.wantCode(t, reclaim.ExitRowsFailed)
	if !strings.Contains(res.stdout, "dry run") || !strings.Contains(res.stdout, filepath.Join(out, reclaim.DryRunDir, reclaim.OutcomesFile)) {
		t.Errorf("stdout does not say it was a dry run and where the outcomes are:\n%s", res.stdout)
	}

	for i := range rows[:10] {
		rows[i].want = "planned"
	}
	checkOutcomes(t, filepath.Join(out, reclaim.DryRunDir), rows)
	stats := sim.Stats()
	if stats.GraphRequests != 0 || stats.TokenRequests != 0 {
		t.Errorf("Graph requests %d, token requests %d; want 0 and 0", stats.GraphRequests, stats.TokenRequests)
	}
	if _, err := os.Stat(filepath.Join(out, reclaim.CheckpointFile)); !os.IsNotExist(err) {
		t.Errorf("dry run left a checkpoint (%v); a real run would take the job as started", err)
	}

	// The real run afterwards sends every planned row.
	res = sim.run(t, "--input", input, "--out-dir", out, "--rate", "50")
	res.wantCode(t, reclaim.ExitRowsFailed)
	for i := range rows[:10] {
		rows[i].want = "revoked"
	}
	checkOutcomes(t, out, rows)
}
