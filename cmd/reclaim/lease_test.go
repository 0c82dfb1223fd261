package main

import (
	"encoding/json"
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
		name         string
		heartbeatAge time.Duration
		wantCode     int
	}{
		{"stale heartbeat", 10 * time.Minute, reclaim.ExitOK},
		{"fresh heartbeat", 0, reclaim.ExitStopped},
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

			res := sim.run(t, "--input", input, "--out-dir", out)
			res.wantCode(t, tt.wantCode)
			if tt.wantCode == reclaim.ExitStopped {
				if !strings.Contains(res.stderr, "process 4242 on host node-elsewhere") {
					t.Errorf("busy run's log does not name the holder:\n%s", tail(res.stderr, 3))
				}
				if got := sim.Stats().GraphRequests; got != 0 {
					t.Errorf("Graph requests of a busy run = %d, want 0", got)
				}
				return
			}
			takeover := findLog(t, res, "took over the lease: its heartbeat is stale")
			if takeover == nil {
				t.Fatalf("run does not log the takeover:\n%s", tail(res.stderr, 10))
			}
			if got := takeover["holder_host"]; got != "node-elsewhere" {
				t.Errorf("takeover holder_host = %v, want node-elsewhere", got)
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
