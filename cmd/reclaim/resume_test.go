package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

func TestResumeAfterKillAtRandomMoments(t *testing.T) {
	t.Parallel()
	// The simulator applies each revoke before its latency, so a request that a kill cuts off is
	// counted, as a real service would have processed it.
	sim := startSim(t, graphsim.Options{LatencyMin: 10 * time.Millisecond, LatencyMax: 60 * time.Millisecond, Seed: 11,
		ProcessBeforeLatency: true})
	rows := validWave(20, 400)
	rows[50] = row{app: rows[10].app, device: rows[10].device, want: "duplicate"}
	rows[77] = row{cells: []string{"bad", "row"}, want: "invalid"}
	input, out := writeWave(t, rows), t.TempDir()
	const workers = 8
	args := []string{"--input", input, "--out-dir", out, "--rate", "150", "--burst", "8", "--workers", "8"}

	r := rand.New(rand.NewPCG(5, 6))
	kills := 0
	var res result
	for run := 0; ; run++ {
		cmd := sim.command(t, args...)
		stdout, stderr := start(t, cmd)
		if run < 8 {
			time.Sleep(time.Duration(100+r.IntN(500)) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
		}
		res = wait(t, cmd, stdout, stderr)
		if res.code == -int(syscall.SIGKILL) {
			kills++
			continue
		}
		break
	}
	res.wantCode(t, reclaim.ExitRowsFailed)
	if kills < 3 {
		t.Fatalf("only %d runs were killed before the job ended; the test needs more", kills)
	}

	checkOutcomes(t, out, rows)
	stats := sim.Stats()
	revokedOnce(t, stats, rows)
	// Only requests in flight at a kill may be sent again: at most one per worker and kill.
	if extra := extraCalls(stats); extra > kills*workers {
		t.Errorf("revoke calls beyond one per pair = %d after %d kills, want at most %d", extra, kills, kills*workers)
	}
	summary := readSummary(t, out)
	if summary["complete"] != "true" || summary["rows"] != "400" {
		t.Errorf("summary = %v, want a complete job of 400 rows", summary)
	}
	t.Logf("%d kills, %d revoke calls beyond one per pair", kills, extraCalls(stats))
}

func TestResumeAfterSIGTERM(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{LatencyMin: 200 * time.Millisecond, LatencyMax: 400 * time.Millisecond})
	rows := validWave(21, 200)
	input, out := writeWave(t, rows), t.TempDir()
	args := []string{"--input", input, "--out-dir", out, "--rate", "20", "--workers", "6"}

	cmd := sim.command(t, args...)
	stdout, stderr := start(t, cmd)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signalAfter(ctx, cmd, syscall.SIGTERM, 1500*time.Millisecond)
	res := wait(t, cmd, stdout, stderr)
	res.wantCode(t, reclaim.ExitStopped)
	if !strings.Contains(res.stderr, "interrupted") {
		t.Errorf("stderr does not give the stop reason:\n%s", tail(res.stderr, 5))
	}

	done := readOutcomes(t, out)
	if len(done) == 0 || len(done) >= len(rows) {
		t.Fatalf("after SIGTERM %d rows are done, want some but not all", len(done))
	}
	// Requests in flight finished and were recorded, so the simulator saw exactly the finished rows.
	if got := len(sim.Stats().RevokeCalls); got != len(done) {
		t.Errorf("pairs the simulator received = %d, rows recorded = %d; want equal", got, len(done))
	}
	summary := readSummary(t, out)
	if summary["complete"] != "false" || summary["revoked"] != strconv.Itoa(len(done)) {
		t.Errorf("summary = %v, want incomplete with %d revoked", summary, len(done))
	}

	res = sim.run(t, args...)
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
	stats := sim.Stats()
	revokedOnce(t, stats, rows)
	if extra := extraCalls(stats); extra != 0 {
		t.Errorf("revoke calls beyond one per pair = %d, want 0 after a clean stop", extra)
	}
	if got := readSummary(t, out)["runs"]; got != "2" {
		t.Errorf("summary runs = %s, want 2", got)
	}
}

func TestResumeAfterDeadline(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(22, 60)
	input, out := writeWave(t, rows), t.TempDir()

	res := sim.run(t, "--input", input, "--out-dir", out, "--rate", "20", "--deadline", "1s")
	res.wantCode(t, reclaim.ExitStopped)
	if !strings.Contains(res.stderr, "deadline") {
		t.Errorf("stderr does not name the deadline:\n%s", tail(res.stderr, 5))
	}
	if got := len(readOutcomes(t, out)); got == 0 || got >= len(rows) {
		t.Fatalf("after the deadline %d rows are done, want some but not all", got)
	}

	res = sim.run(t, "--input", input, "--out-dir", out, "--rate", "50")
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
	revokedOnce(t, sim.Stats(), rows)
}

func TestResumeCompleteJobSendsNothing(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := append(validWave(23, 5), row{cells: []string{"x", "y"}, want: "invalid"})
	input, out := writeWave(t, rows), t.TempDir()
	sim.run(t, "--input", input, "--out-dir", out).wantCode(t, reclaim.ExitRowsFailed)
	before := sim.Stats()

	res := sim.run(t, "--input", input, "--out-dir", out)
	res.wantCode(t, reclaim.ExitRowsFailed)
	after := sim.Stats()
	if after.GraphRequests != before.GraphRequests || after.TokenRequests != before.TokenRequests {
		t.Errorf("a complete job sent %d Graph and %d token requests, want none",
			after.GraphRequests-before.GraphRequests, after.TokenRequests-before.TokenRequests)
	}
	if !strings.Contains(res.stdout, "complete") {
		t.Errorf("stdout does not show the summary:\n%s", res.stdout)
	}
	checkOutcomes(t, out, rows)
}

func TestResumeRejectsDifferentInput(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(24, 10)
	input, out := writeWave(t, rows), t.TempDir()
	sim.run(t, "--input", input, "--out-dir", out, "--rate", "50").wantCode(t, reclaim.ExitOK)
	before := sim.Stats()

	changed := validWave(25, 10)
	if err := os.WriteFile(input, []byte(waveCSV(changed)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := sim.run(t, "--input", input, "--out-dir", out)
	res.wantCode(t, reclaim.ExitUsage)
	if !strings.Contains(res.stderr, "--restart") || !strings.Contains(res.stderr, "another input") {
		t.Errorf("stderr does not explain the mismatch and name --restart:\n%s", tail(res.stderr, 5))
	}
	if after := sim.Stats(); after.GraphRequests != before.GraphRequests {
		t.Errorf("%d requests sent for a mismatched input, want 0", after.GraphRequests-before.GraphRequests)
	}

	res = sim.run(t, "--input", input, "--out-dir", out, "--restart", "--rate", "50")
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, changed)
	aside, _ := filepath.Glob(filepath.Join(out, "previous-*", reclaim.OutcomesFile))
	if len(aside) != 1 {
		t.Fatalf("outputs moved aside = %v, want one previous-* folder with outcomes.csv", aside)
	}
	if got := len(readOutcomes(t, filepath.Dir(aside[0]))); got != len(rows) {
		t.Errorf("moved-aside outcomes have %d lines, want %d", got, len(rows))
	}
}

func TestResumeRejectsDamagedCheckpoint(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{LatencyMin: 50 * time.Millisecond})
	rows := validWave(26, 40)
	input, out := writeWave(t, rows), t.TempDir()
	sim.run(t, "--input", input, "--out-dir", out, "--rate", "20", "--deadline", "1s").wantCode(t, reclaim.ExitStopped)
	before := sim.Stats()

	damages := map[string]func(string) string{
		"not JSON":   func(string) string { return "{\"version\": 1, \"input\": " },
		"empty":      func(string) string { return "" },
		"bad counts": func(s string) string { return strings.Replace(s, `"revoked": `, `"revoked": 1`, 1) },
	}
	path := filepath.Join(out, reclaim.CheckpointFile)
	original, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range damages {
		if err := os.WriteFile(path, []byte(damage(string(original))), 0o644); err != nil {
			t.Fatal(err)
		}
		res := sim.run(t, "--input", input, "--out-dir", out)
		if res.code != reclaim.ExitUsage || !strings.Contains(res.stderr, "damaged") {
			t.Errorf("%s: exit %d, want 2 with a message about the damaged checkpoint:\n%s", name, res.code, tail(res.stderr, 3))
		}
	}
	if after := sim.Stats(); after.GraphRequests != before.GraphRequests {
		t.Errorf("%d requests sent with a damaged checkpoint, want 0", after.GraphRequests-before.GraphRequests)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	res := sim.run(t, "--input", input, "--out-dir", out)
	if res.code != reclaim.ExitUsage || !strings.Contains(res.stderr, "--restart") {
		t.Errorf("missing checkpoint beside outcomes: exit %d, want 2 naming --restart:\n%s", res.code, tail(res.stderr, 3))
	}
}

func TestResumeBusyOutDir(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{LatencyMin: 100 * time.Millisecond})
	rows := validWave(27, 100)
	input, out := writeWave(t, rows), t.TempDir()
	args := []string{"--input", input, "--out-dir", out, "--rate", "20"}

	first := sim.command(t, args...)
	firstOut, firstErr := start(t, first)
	waitForOutcomes(t, out, 1)
	checkpoint, _ := os.ReadFile(filepath.Join(out, reclaim.CheckpointFile))

	second := sim.run(t, args...)
	second.wantCode(t, reclaim.ExitStopped)
	for _, want := range []string{"in use", "process " + strconv.Itoa(first.Process.Pid), "started"} {
		if !strings.Contains(second.stderr, want) {
			t.Errorf("busy message does not contain %q:\n%s", want, tail(second.stderr, 3))
		}
	}
	if after, _ := os.ReadFile(filepath.Join(out, reclaim.CheckpointFile)); len(checkpoint) == 0 || string(after) == "" {
		t.Errorf("checkpoint missing while the first run works")
	}

	// The lease names a process that has ended: a resume right after kill -9 takes it over at once.
	first.Process.Signal(syscall.SIGKILL)
	wait(t, first, firstOut, firstErr)
	res := sim.run(t, "--input", input, "--out-dir", out, "--rate", "100")
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
	revokedOnce(t, sim.Stats(), rows)
}

func TestResumeAfterOutage(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(28, 30)
	input, out := writeWave(t, rows), t.TempDir()
	sim.SetOutage(true)

	res := sim.run(t, "--input", input, "--out-dir", out, "--outage-after", "2s", "--max-attempts", "2")
	res.wantCode(t, reclaim.ExitStopped)
	if !strings.Contains(res.stderr, "outage") {
		t.Errorf("stderr does not name the outage:\n%s", tail(res.stderr, 5))
	}
	for n, o := range readOutcomes(t, out) {
		t.Errorf("row %d got %s during the outage, want it left pending", n, o.status)
	}

	sim.SetOutage(false)
	res = sim.run(t, "--input", input, "--out-dir", out, "--rate", "50")
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
	revokedOnce(t, sim.Stats(), rows)
}

func TestTokenEndpointUnreachableIsResumable(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(29, 5)
	input, out := writeWave(t, rows), t.TempDir()
	cmd := sim.command(t, "--input", input, "--out-dir", out)
	sim.Close()

	res := runProcess(t, cmd)
	res.wantCode(t, reclaim.ExitStopped)
	if !strings.Contains(res.stderr, "token endpoint could not be reached") {
		t.Errorf("stderr does not explain the stop:\n%s", tail(res.stderr, 3))
	}
	if strings.Count(res.stderr, "access token request failed") > 1 {
		t.Errorf("the error repeats itself:\n%s", tail(res.stderr, 3))
	}
}

func TestResumeDetectsHandEditedCheckpoint(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(30, 60)
	input, out := writeWave(t, rows), t.TempDir()
	sim.run(t, "--input", input, "--out-dir", out, "--rate", "20", "--deadline", "1s").wantCode(t, reclaim.ExitStopped)

	// Mark ten more rows finished and count them as revoked, so that the checkpoint still adds up.
	path := filepath.Join(out, reclaim.CheckpointFile)
	var cp reclaim.Checkpoint
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cp); err != nil {
		t.Fatal(err)
	}
	cp.DoneThrough += 10 + len(cp.DoneAfter)
	cp.DoneAfter = nil
	cp.Counts.Revoked = int64(cp.DoneThrough)
	data, _ = json.Marshal(cp)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}

	res := sim.run(t, "--input", input, "--out-dir", out, "--rate", "50")
	res.wantCode(t, reclaim.ExitUsage)
	if !strings.Contains(res.stderr, "has no line") {
		t.Errorf("stderr does not name the row without a line:\n%s", tail(res.stderr, 3))
	}
	if got := readSummary(t, out)["complete"]; got != "false" {
		t.Errorf("summary complete = %s, want false for a job whose outcomes do not add up", got)
	}
}

func TestStopsWhenCheckpointCannotBeSaved(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(31, 300)
	input, out := writeWave(t, rows), t.TempDir()
	state := filepath.Join(t.TempDir(), "state")
	args := []string{"--input", input, "--out-dir", out, "--checkpoint", filepath.Join(state, "wave.json"), "--rate", "5"}

	cmd := sim.command(t, args...)
	stdout, stderr := start(t, cmd)
	time.Sleep(1500 * time.Millisecond)
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	res := wait(t, cmd, stdout, stderr)
	res.wantCode(t, reclaim.ExitStopped)
	if !strings.Contains(res.stderr, "checkpoint could not be saved") {
		t.Errorf("stderr does not give the reason:\n%s", tail(res.stderr, 3))
	}
	if got := len(sim.Stats().RevokeCalls); got >= len(rows)/2 {
		t.Errorf("%d of %d rows were sent although no checkpoint could be saved; want the run stopped early", got, len(rows))
	}
}

func TestInputEditedDuringRun(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(32, 30)
	for i := range 20_000 {
		rows = append(rows, row{app: rows[i%30].app, device: rows[i%30].device, want: "duplicate"})
	}
	last := len(rows) - 1
	rows[last] = row{app: rows[0].app, device: guid(rand.New(rand.NewPCG(1, 1))), want: "revoked"}
	input, out := writeWave(t, rows), t.TempDir()

	cmd := sim.command(t, "--input", input, "--out-dir", out, "--rate", "10")
	stdout, stderr := start(t, cmd)
	// The input changes once the run has read it and is sending rows.
	waitForOutcomes(t, out, 1)
	// Change one hex digit of the last row in place: the size stays the same.
	data, err := os.ReadFile(input)
	if err != nil {
		t.Fatal(err)
	}
	at := len(data) - 2
	data[at] = "01"[(data[at]-'0'+1)%2]
	if err := os.WriteFile(input, data, 0o644); err != nil {
		t.Fatal(err)
	}

	res := wait(t, cmd, stdout, stderr)
	res.wantCode(t, reclaim.ExitUsage)
	if !strings.Contains(res.stderr, "changed while reclaim was reading it") {
		t.Errorf("stderr does not say the input changed:\n%s", tail(res.stderr, 3))
	}
	if got := readSummary(t, out)["complete"]; got != "false" {
		t.Errorf("summary complete = %s, want false", got)
	}
}

func TestUntrustedAuthorityCertificate(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	other := startSim(t, graphsim.Options{})
	rows := validWave(33, 3)
	cmd := sim.command(t, "--input", writeWave(t, rows), "--out-dir", t.TempDir())
	for i, kv := range cmd.Env {
		if strings.HasPrefix(kv, "SSL_CERT_FILE=") {
			cmd.Env[i] = "SSL_CERT_FILE=" + other.certFile
		}
	}

	res := runProcess(t, cmd)
	res.wantCode(t, reclaim.ExitUsage)
	if !strings.Contains(res.stderr, "SSL_CERT_FILE") {
		t.Errorf("stderr does not point to SSL_CERT_FILE:\n%s", tail(res.stderr, 3))
	}
	if got := sim.Stats().GraphRequests; got != 0 {
		t.Errorf("Graph requests = %d, want 0", got)
	}
}

func TestCompleteJobIsCheckedAgain(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(34, 5)
	input, out := writeWave(t, rows), t.TempDir()
	sim.run(t, "--input", input, "--out-dir", out).wantCode(t, reclaim.ExitOK)
	if err := os.Remove(filepath.Join(out, reclaim.OutcomesFile)); err != nil {
		t.Fatal(err)
	}

	res := sim.run(t, "--input", input, "--out-dir", out)
	res.wantCode(t, reclaim.ExitUsage)
	if !strings.Contains(res.stderr, "marked complete") {
		t.Errorf("stderr does not explain the missing outcomes:\n%s", tail(res.stderr, 3))
	}
}

func TestRestartWithBadInputLeavesJobInPlace(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(35, 5)
	input, out := writeWave(t, rows), t.TempDir()
	sim.run(t, "--input", input, "--out-dir", out).wantCode(t, reclaim.ExitOK)

	res := sim.run(t, "--input", input+".typo", "--out-dir", out, "--restart")
	res.wantCode(t, reclaim.ExitUsage)
	if aside, _ := filepath.Glob(filepath.Join(out, "previous-*")); len(aside) != 0 {
		t.Errorf("a restart that could not run moved the job aside into %v", aside)
	}
	checkOutcomes(t, out, rows)
}
