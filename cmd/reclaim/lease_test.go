package main

import (
	"encoding/json"
	"net/http"
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

// leaseFile is the out dir's lease file, as reclaim names it.
const leaseFile = ".reclaim.lease"

func TestLeaseTwoRunsAtOnce(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{LatencyMin: 100 * time.Millisecond, LatencyMax: 200 * time.Millisecond})
	rows := validWave(40, 60)
	input, out := writeWave(t, rows), t.TempDir()
	args := []string{"--input", input, "--out-dir", out, "--rate", "20"}

	first, second := sim.command(t, args...), sim.command(t, args...)
	firstOut, firstErr := start(t, first)
	secondOut, secondErr := start(t, second)
	results := []result{wait(t, first, firstOut, firstErr), wait(t, second, secondOut, secondErr)}
	pids := []int{first.Process.Pid, second.Process.Pid}

	winner, loser := 0, 1
	if results[0].code == reclaim.ExitStopped {
		winner, loser = 1, 0
	}
	results[winner].wantCode(t, reclaim.ExitOK)
	results[loser].wantCode(t, reclaim.ExitStopped)
	for _, want := range []string{"in use by another reclaim run", "process " + strconv.Itoa(pids[winner]), "started", "last heartbeat"} {
		if !strings.Contains(results[loser].stderr, want) {
			t.Errorf("busy run's log does not contain %q:\n%s", want, tail(results[loser].stderr, 3))
		}
	}
	if strings.Contains(results[loser].stderr, "run started") {
		t.Errorf("busy run started the job:\n%s", tail(results[loser].stderr, 5))
	}

	checkOutcomes(t, out, rows)
	revokedOnce(t, sim.Stats(), rows)
	if _, err := os.Stat(filepath.Join(out, leaseFile)); !os.IsNotExist(err) {
		t.Errorf("lease file after the run: stat error %v, want it removed", err)
	}
}

func TestLeaseResumeAfterKill(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{LatencyMin: 50 * time.Millisecond, LatencyMax: 100 * time.Millisecond})
	rows := validWave(41, 150)
	input, out := writeWave(t, rows), t.TempDir()
	args := []string{"--input", input, "--out-dir", out, "--rate", "30", "--workers", "4"}

	cmd := sim.command(t, args...)
	stdout, stderr := start(t, cmd)
	waitForOutcomes(t, out, 10)
	cmd.Process.Signal(syscall.SIGKILL)
	if res := wait(t, cmd, stdout, stderr); res.code != -int(syscall.SIGKILL) {
		t.Fatalf("first run ended with %d before the kill; the test needs it mid-wave", res.code)
	}

	res := sim.run(t, args...)
	res.wantCode(t, reclaim.ExitOK)
	takeover := findLog(t, res, "took over the lease: its holder's process has ended")
	if takeover == nil {
		t.Fatalf("rerun does not log a takeover from the killed run:\n%s", tail(res.stderr, 10))
	}
	if got, want := takeover["holder_pid"], float64(cmd.Process.Pid); got != want {
		t.Errorf("takeover holder_pid = %v, want the killed run's %v", got, want)
	}
	checkOutcomes(t, out, rows)
	revokedOnce(t, sim.Stats(), rows)
}

func TestLeaseFromOtherHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// heartbeatAge and fileAge date the heartbeat and the lease file's modification time that long
		// before now, or after now when negative.
		heartbeatAge time.Duration
		fileAge      time.Duration
		wantCode     int
		// wantLog is the message of the takeover, or parts of the busy run's log.
		wantLog []string
	}{
		{"stale heartbeat", 10 * time.Minute, 0, reclaim.ExitOK,
			[]string{"took over the lease: its heartbeat is stale"}},
		{"fresh heartbeat", 0, 0, reclaim.ExitStopped, nil},
		{"heartbeat a day ahead, stale file", -24 * time.Hour, 10 * time.Minute, reclaim.ExitOK,
			[]string{"took over the lease: its heartbeat lies ahead of this host's clock, and the lease file has not been written for longer than the stale period"}},
		{"heartbeat and file a day ahead", -24 * time.Hour, -24 * time.Hour, reclaim.ExitStopped,
			[]string{"last heartbeat dated 24h0m0s ahead", "the clock of host node-elsewhere runs ahead", "remove " + filepath.Join("OUT", leaseFile)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, graphsim.Options{})
			rows := validWave(42, 10)
			input, out := writeWave(t, rows), t.TempDir()
			now := time.Now().UTC()
			record := map[string]any{
				"host":       "node-elsewhere",
				"pid":        4242,
				"started_at": now.Add(-time.Hour),
				"heartbeat":  now.Add(-tt.heartbeatAge),
				"token":      "token-of-the-other-host",
			}
			data, err := json.Marshal(record)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, leaseFile), data, 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.fileAge != 0 {
				at := time.Now().Add(-tt.fileAge)
				if err := os.Chtimes(filepath.Join(out, leaseFile), at, at); err != nil {
					t.Fatal(err)
				}
			}

			res := sim.run(t, "--input", input, "--out-dir", out)
			res.wantCode(t, tt.wantCode)
			if tt.wantCode == reclaim.ExitStopped {
				if !strings.Contains(res.stderr, "process 4242 on host node-elsewhere") {
					t.Errorf("busy run's log does not name the holder:\n%s", tail(res.stderr, 3))
				}
				for _, want := range tt.wantLog {
					want = strings.ReplaceAll(want, "OUT", out)
					if !strings.Contains(res.stderr, want) {
						t.Errorf("busy run's log does not contain %q:\n%s", want, tail(res.stderr, 3))
					}
				}
				if got := sim.Stats().GraphRequests; got != 0 {
					t.Errorf("Graph requests of a busy run = %d, want 0", got)
				}
				return
			}
			takeover := findLog(t, res, tt.wantLog[0])
			if takeover == nil {
				t.Fatalf("run does not log the takeover:\n%s", tail(res.stderr, 10))
			}
			if got := takeover["holder_host"]; got != "node-elsewhere" {
				t.Errorf("takeover holder_host = %v, want node-elsewhere", got)
			}
			// The age is logged as a duration rounded to the second. It also counts the start of the run.
			text, _ := takeover["heartbeat_age"].(string)
			age, err := time.ParseDuration(text)
			if err != nil || age%time.Second != 0 {
				t.Fatalf("takeover heartbeat_age = %v, want a duration rounded to the second", takeover["heartbeat_age"])
			}
			if age < tt.heartbeatAge || age > tt.heartbeatAge+time.Minute {
				t.Errorf("takeover heartbeat_age = %s, want %s or up to a minute more", age, tt.heartbeatAge)
			}
			checkOutcomes(t, out, rows)
		})
	}
}

// findLog returns the first log line of r with message msg, or nil.
func findLog(t *testing.T, r result, msg string) map[string]any {
	t.Helper()
	for _, line := range r.logLines(t) {
		if line["message"] == msg {
			return line
		}
	}
	return nil
}

// leaseRenewLimit is how long a run of the command line goes without renewing its lease before it
// counts the lease as lost: the stale period of 60s, less two heartbeats of 10s and the drain time.
const leaseRenewLimit = 60*time.Second - 2*10*time.Second - reclaim.DefaultDrain

func TestLeasePausedRunWritesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses a run for longer than the lease's renew limit")
	}
	t.Parallel()
	sim := startSim(t, graphsim.Options{LatencyMin: 50 * time.Millisecond, LatencyMax: 100 * time.Millisecond})
	rows := validWave(43, 200)
	input, out := writeWave(t, rows), t.TempDir()
	args := []string{"--input", input, "--out-dir", out, "--rate", "20", "--workers", "4"}
	files := []string{filepath.Join(out, reclaim.OutcomesFile), filepath.Join(out, reclaim.CheckpointFile), filepath.Join(out, reclaim.SummaryFile)}
	leases := []string{filepath.Join(out, leaseFile), filepath.Join(out, reclaim.CheckpointFile) + ".lease"}

	// The paused run must not push either: the run that took its leases over reports the job.
	gateway := startPushgateway(t, http.StatusOK)
	cmd := sim.command(t, append(args, "--pushgateway-url", gateway.URL)...)
	stdout, stderr := start(t, cmd)
	waitForOutcomes(t, out, 10)
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	// While the run is paused, another run takes its leases over and works on.
	now := time.Now().UTC()
	record, err := json.Marshal(map[string]any{"host": "node-b", "pid": 4343, "started_at": now, "heartbeat": now, "token": "thief"})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range leases {
		if err := os.WriteFile(path, record, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := make(map[string]string)
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		before[path] = string(data)
	}
	time.Sleep(leaseRenewLimit + 2*time.Second)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	res := wait(t, cmd, stdout, stderr)
	res.wantCode(t, reclaim.ExitStopped)
	if !strings.Contains(res.stderr, "lost the lease") {
		t.Errorf("resumed run's log does not say it lost the lease:\n%s", tail(res.stderr, 5))
	}
	if got := len(gateway.received(t)); got != 0 {
		t.Errorf("the run that lost its lease pushed %d times, want none", got)
	}
	if !strings.Contains(res.stdout, "Another run took the job over") {
		t.Errorf("stdout does not say another run took the job over:\n%s", tail(res.stdout, 3))
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != before[path] {
			t.Errorf("%s changed after the pause:\nbefore %q\nafter  %q", filepath.Base(path), tail(before[path], 3), tail(string(data), 3))
		}
	}

	// Once the other run has ended, the next run completes the job with one line per row. Rows whose
	// requests were in flight during the pause may have been sent twice.
	for _, path := range leases {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	sim.run(t, args...).wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
}
