package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

// writeFiles writes files into dir, each name with its content.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readIndexCSV returns the lines of index.csv in out as maps from column to cell, in file order.
func readIndexCSV(t *testing.T, out string) []map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, reclaim.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("index.csv is not CSV: %v", err)
	}
	var lines []map[string]string
	for _, record := range records[1:] {
		line := map[string]string{}
		for i, column := range records[0] {
			line[column] = record[i]
		}
		lines = append(lines, line)
	}
	return lines
}

// wantIndex fails unless index.csv in out lists exactly the waves of want, in that order, each with
// its "state exit_code".
func wantIndex(t *testing.T, out string, want [][2]string) []map[string]string {
	t.Helper()
	lines := readIndexCSV(t, out)
	if len(lines) != len(want) {
		t.Fatalf("index.csv has %d lines, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		got := lines[i]["file"] + " " + lines[i]["state"] + " " + lines[i]["exit_code"]
		if got != w[0]+" "+w[1] {
			t.Errorf("index.csv line %d = %q, want %q (error %q)", i+1, got, w[0]+" "+w[1], lines[i]["error"])
		}
	}
	return lines
}

// startedWaves returns the waves whose jobs logged "run started", in log order.
func startedWaves(t *testing.T, r result) []string {
	t.Helper()
	var waves []string
	for _, line := range r.logLines(t) {
		if line["message"] == "run started" {
			name, _ := line["wave"].(string)
			waves = append(waves, name)
		}
	}
	return waves
}

func TestFolderRunsWavesInNameOrder(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	waves := map[string][]row{
		"a.csv": validWave(60, 5),
		"b.csv": append(validWave(61, 4), row{cells: []string{"not", "ids"}, want: "invalid"}),
		"c.CSV": validWave(62, 3),
	}
	late := validWave(63, 3)
	in, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	files := map[string]string{"wave.csv.part": waveCSV(late), "notes.txt": "uploaded by the HR export\n"}
	for name, rows := range waves {
		files[name] = waveCSV(rows)
	}
	writeFiles(t, in, files)
	args := []string{"--input", in, "--out-dir", out, "--rate", "50"}

	res := sim.run(t, args...)
	res.wantCode(t, reclaim.ExitRowsFailed)
	if got := strings.Join(startedWaves(t, res), " "); got != "a.csv b.csv c.CSV" {
		t.Errorf("waves started = %q, want \"a.csv b.csv c.CSV\"", got)
	}
	for name, rows := range waves {
		checkOutcomes(t, filepath.Join(out, name), rows)
		revokedOnce(t, sim.Stats(), rows)
	}
	lines := wantIndex(t, out, [][2]string{{"a.csv", "complete 0"}, {"b.csv", "complete 1"}, {"c.CSV", "complete 0"}})
	if got := lines[1]; got["rows"] != "5" || got["revoked"] != "4" || got["invalid"] != "1" || got["pending"] != "0" {
		t.Errorf("index.csv line of b.csv = %v, want 5 rows, 4 revoked, 1 invalid, 0 pending", got)
	}
	if !strings.Contains(res.stdout, "wave b.csv\n") || !strings.Contains(res.stdout, "b.csv  complete  exit 1") {
		t.Errorf("stdout does not show each wave and the table:\n%s", res.stdout)
	}
	if !strings.Contains(res.stderr, "notes.txt") || !strings.Contains(res.stderr, "wave.csv.part") {
		t.Errorf("stderr does not name the ignored files:\n%s", tail(res.stderr, 10))
	}

	// Every wave is complete, so a second run checks them and sends nothing. The failed rows of b.csv
	// counted in the run that completed it, so this run exits 0 and a CronJob does not fail again.
	before := sim.Stats()
	res = sim.run(t, args...)
	res.wantCode(t, reclaim.ExitOK)
	after := sim.Stats()
	if after.GraphRequests != before.GraphRequests || after.TokenRequests != before.TokenRequests {
		t.Errorf("second run sent %d Graph and %d token requests, want none",
			after.GraphRequests-before.GraphRequests, after.TokenRequests-before.TokenRequests)
	}
	if got := startedWaves(t, res); len(got) != 0 {
		t.Errorf("second run started jobs for %q, want none", got)
	}
	wantIndex(t, out, [][2]string{{"a.csv", "complete 0"}, {"b.csv", "complete 1"}, {"c.CSV", "complete 0"}})

	// The finished upload is renamed, and the next run picks it up.
	if err := os.Rename(filepath.Join(in, "wave.csv.part"), filepath.Join(in, "wave.csv")); err != nil {
		t.Fatal(err)
	}
	res = sim.run(t, args...)
	res.wantCode(t, reclaim.ExitOK)
	if got := strings.Join(startedWaves(t, res), " "); got != "wave.csv" {
		t.Errorf("third run started %q, want only wave.csv", got)
	}
	checkOutcomes(t, filepath.Join(out, "wave.csv"), late)
	revokedOnce(t, sim.Stats(), late)
	wantIndex(t, out, [][2]string{{"a.csv", "complete 0"}, {"b.csv", "complete 1"}, {"c.CSV", "complete 0"},
		{"wave.csv", "complete 0"}})
}

func TestFolderEditedWaveStopsAlone(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	first, second, third := validWave(70, 2), validWave(71, 400), validWave(72, 2)
	in, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeFiles(t, in, map[string]string{"1.csv": waveCSV(first), "2.csv": waveCSV(second), "3.csv": waveCSV(third)})

	// At 20 rows per second the second wave needs 20 s, so the deadline stops the run inside it.
	res := sim.run(t, "--input", in, "--out-dir", out, "--rate", "20", "--deadline", "6s")
	res.wantCode(t, reclaim.ExitStopped)
	if !strings.Contains(res.stderr, "deadline") {
		t.Errorf("stderr does not name the deadline:\n%s", tail(res.stderr, 5))
	}
	wantIndex(t, out, [][2]string{{"1.csv", "complete 0"}, {"2.csv", "in_progress 4"}, {"3.csv", "pending "}})
	done := len(readOutcomes(t, filepath.Join(out, "2.csv")))
	if done >= len(second) {
		t.Fatalf("the second wave has %d of %d rows done, want it stopped before its end", done, len(second))
	}

	// New rows added to the wave that is in progress.
	added := append(second, validWave(73, 3)...)
	writeFiles(t, in, map[string]string{"2.csv": waveCSV(added)})
	before := sim.Stats()
	res = sim.run(t, "--input", in, "--out-dir", out, "--rate", "50")
	res.wantCode(t, reclaim.ExitUsage)

	lines := wantIndex(t, out, [][2]string{{"1.csv", "complete 0"}, {"2.csv", "error 2"}, {"3.csv", "complete 0"}})
	for _, part := range []string{"2.csv changed after work on it began", "new name", filepath.Join(out, "2.csv") + " out of the out dir"} {
		if !strings.Contains(lines[1]["error"], part) {
			t.Errorf("index.csv error of 2.csv = %q, want it to contain %q", lines[1]["error"], part)
		}
	}
	if !strings.Contains(res.stderr, "wave 2.csv: ") {
		t.Errorf("stderr does not name the wave in its error:\n%s", tail(res.stderr, 5))
	}
	checkOutcomes(t, filepath.Join(out, "3.csv"), third)
	if got := len(readOutcomes(t, filepath.Join(out, "2.csv"))); got != done {
		t.Errorf("the edited wave has %d outcome lines, want the %d of the first run", got, done)
	}
	after := sim.Stats()
	for _, r := range added {
		pair := graphsim.Pair{AppID: normalID(r.app), DeviceID: normalID(r.device)}
		if after.RevokeCalls[pair] != before.RevokeCalls[pair] {
			t.Errorf("the edited wave's pair %v was sent in the second run", pair)
		}
	}
}
