package reclaim

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"reclaim/graphclient/graphsim"
	"reclaim/report"
)

const simSecret = "reclaim-test-secret-3c9e"

// simConfig starts a Graph simulator with an open catalogue, in which every device holds a license
// for every app, and returns a Config that runs input against it. The credential is a client secret
// credential for the simulator only, so no environment variable can point it elsewhere.
func simConfig(t *testing.T, input string) (Config, *graphsim.Server) {
	t.Helper()
	sim, err := graphsim.New(graphsim.Options{ClientSecret: simSecret, Open: true})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { sim.Close() })

	newCredential := func() (azcore.TokenCredential, error) {
		return azidentity.NewClientSecretCredential(sim.TenantID(), sim.ClientID(), simSecret,
			&azidentity.ClientSecretCredentialOptions{
				ClientOptions: azcore.ClientOptions{
					Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: sim.AuthorityHost()},
					Transport: sim.Client(),
				},
				DisableInstanceDiscovery: true,
			})
	}
	credential, err := newCredential()
	if err != nil {
		t.Fatal(err)
	}
	transport := sim.Client().Transport.(*http.Transport).Clone()
	return Config{
		Input:         input,
		OutDir:        t.TempDir(),
		GraphURL:      sim.GraphURL(),
		Target:        SimulatorTarget,
		Credential:    credential,
		NewCredential: newCredential,
		HTTPClient:    &http.Client{Transport: transport},
		Rate:          100,
		Burst:         4,
		Workers:       4,
		MaxAttempts:   3,
		Timeout:       10 * time.Second,
		OutageAfter:   time.Minute,
	}, sim
}

// readStatuses returns the status of each row in the outcomes file at path.
func readStatuses(t *testing.T, path string) map[int]report.Status {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := io.CopyN(io.Discard, file, int64(len(report.OutcomesHeader))); err != nil {
		t.Fatal(err)
	}
	statuses := make(map[int]report.Status)
	err = report.ScanOutcomes(file, func(row int, status report.Status) error {
		statuses[row] = status
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return statuses
}

func TestRunResumeCountsFinishedRowsForDuplicates(t *testing.T) {
	lines := []string{
		app1 + "," + dev1,                  // 1, finished by the earlier run
		app1 + "," + dev2,                  // 2, finished
		app2 + "," + dev1,                  // 3, finished
		strings.ToUpper(app1) + "," + dev1, // 4, duplicate of finished row 1
		app1 + "," + dev3,                  // 5
		"{" + app2 + "}," + dev1,           // 6, duplicate of finished row 3
		"x,y",                              // 7, invalid
		app1 + "," + dev3,                  // 8, duplicate of pending row 5
		app2 + "," + dev2,                  // 9
	}
	input := writeInput(t, "appId,deviceId\n"+strings.Join(lines, "\n")+"\n")
	cfg, sim := simConfig(t, input)

	// The checkpoint and outcomes.csv of an earlier run that finished rows 1 to 3.
	summary, err := ScanInput(input)
	if err != nil {
		t.Fatal(err)
	}
	absolute, err := filepath.Abs(input)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes strings.Builder
	outcomes.WriteString(report.OutcomesHeader)
	writer := report.NewOutcomeWriter(&outcomes)
	for row, pair := range [][2]string{{app1, dev1}, {app1, dev2}, {app2, dev1}} {
		if _, err := writer.Write(report.Outcome{Row: row + 1, AppID: pair[0], DeviceID: pair[1], Status: report.Revoked,
			HTTPStatus: 204, Attempts: 1, FinishedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cfg.OutDir, OutcomesFile), []byte(outcomes.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cp := &Checkpoint{
		Input:         InputIdentity{Path: absolute, Size: summary.Size, SHA256: summary.SHA256, Rows: summary.Rows},
		Target:        SimulatorTarget,
		URLForm:       "cast",
		DoneThrough:   3,
		OutcomesBytes: int64(outcomes.Len()),
		Counts:        report.Counts{Revoked: 3},
		Runs:          1,
	}
	if err := cp.save(filepath.Join(cfg.OutDir, CheckpointFile)); err != nil {
		t.Fatal(err)
	}

	result, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrRowsFailed) {
		t.Fatalf("Run() error = %v, want ErrRowsFailed for the invalid row", err)
	}
	wantCounts := report.Counts{Revoked: 5, Duplicate: 3, Invalid: 1}
	if got := result.Summary; got.Counts != wantCounts || got.Rows != 9 || !got.Complete || got.Runs != 2 {
		t.Errorf("Run() result summary = %+v, want counts %+v of 9 rows, complete after 2 runs", got, wantCounts)
	}

	want := map[int]report.Status{1: report.Revoked, 2: report.Revoked, 3: report.Revoked, 4: report.Duplicate,
		5: report.Revoked, 6: report.Duplicate, 7: report.Invalid, 8: report.Duplicate, 9: report.Revoked}
	got := readStatuses(t, cfg.outcomesPath())
	for row, status := range want {
		if got[row] != status {
			t.Errorf("row %d status = %q, want %q", row, got[row], status)
		}
	}
	if len(got) != len(want) {
		t.Errorf("outcomes has %d rows, want %d", len(got), len(want))
	}

	// Only the two pending pairs that are not duplicates reach Graph, each once.
	calls := sim.Stats().RevokeCalls
	wantCalls := map[graphsim.Pair]int{{AppID: app1, DeviceID: dev3}: 1, {AppID: app2, DeviceID: dev2}: 1}
	for pair, n := range wantCalls {
		if calls[pair] != n {
			t.Errorf("revoke calls for %s = %d, want %d", pair, calls[pair], n)
		}
	}
	if len(calls) != len(wantCalls) {
		t.Errorf("revoke calls = %v, want only %v", calls, wantCalls)
	}
}

func TestRunStopsAtRowChangedAfterIndexing(t *testing.T) {
	// One request per second and one worker hold the feed back to about one row per second. Each row
	// has a 64 KiB note, so that the reader's buffers reach row 7 only seconds after the run starts,
	// and row 7 is edited as soon as outcomes.csv appears.
	note := strings.Repeat("x", 64<<10)
	var lines []string
	for _, device := range randomGUIDs(rand.New(rand.NewPCG(9, 10)), 8) {
		lines = append(lines, app1+","+device+","+note)
	}
	content := "appId,deviceId,note\n" + strings.Join(lines, "\n") + "\n"
	input := writeInput(t, content)
	cfg, sim := simConfig(t, input)
	cfg.Rate, cfg.Burst, cfg.Workers = 1, 1, 1

	done := make(chan error, 1)
	go func() { _, err := Run(context.Background(), cfg); done <- err }()
	for !fileExists(cfg.outcomesPath()) {
		select {
		case err := <-done:
			t.Fatalf("Run() ended before it created outcomes.csv: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}

	// Change the first hex digit of row 7's device id in place, so that the size of the file stays the
	// same.
	device := strings.Split(lines[6], ",")[1]
	first := byte('f')
	if device[0] == 'f' {
		first = 'e'
	}
	edited := string(first) + device[1:]
	file, err := os.OpenFile(input, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = file.WriteAt([]byte(edited), int64(strings.Index(content, device)))
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		t.Fatal(err)
	}

	err = <-done
	var usage *UsageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "row 7 (line 8), now app \""+app1+"\" and device \""+edited+"\"") {
		t.Fatalf("Run() error = %v, want an input-changed error that names row 7", err)
	}
	calls := sim.Stats().RevokeCalls
	for _, device := range []string{device, edited, strings.Split(lines[7], ",")[1]} {
		if n := calls[graphsim.Pair{AppID: app1, DeviceID: device}]; n != 0 {
			t.Errorf("revoke calls for %s/%s = %d, want 0: the run must stop before it", app1, device, n)
		}
	}
}

func TestDryRunDuplicates(t *testing.T) {
	path := writeIndexInput(t, duplicateCases)
	cfg := Config{Input: path, OutDir: t.TempDir(), DryRun: true, Rate: 5, Burst: 1, Workers: 1, MaxAttempts: 1,
		Timeout: time.Second, OutageAfter: time.Minute}

	_, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrRowsFailed) {
		t.Fatalf("Run() error = %v, want ErrRowsFailed for the invalid rows", err)
	}

	got := readStatuses(t, filepath.Join(cfg.OutDir, DryRunDir, OutcomesFile))
	for n, c := range duplicateCases {
		want := report.Planned
		switch {
		case c.wantInvalid:
			want = report.Invalid
		case c.wantDuplicate:
			want = report.Duplicate
		}
		if got[n+1] != want {
			t.Errorf("row %d (%s) status = %q, want %q", n+1, c.line, got[n+1], want)
		}
	}
}

func TestCheckpointRowsHint(t *testing.T) {
	input := writeInput(t, "appId,deviceId\n"+app1+","+dev1+"\n"+app1+","+dev2+"\n")
	info, err := os.Stat(input)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cp   *Checkpoint // nil for no checkpoint
		want int
	}{
		{name: "no checkpoint", want: 0},
		{name: "same size", cp: &Checkpoint{Input: InputIdentity{Size: info.Size(), Rows: 2}}, want: 2},
		{name: "other size", cp: &Checkpoint{Input: InputIdentity{Size: info.Size() + 1, Rows: 2}}, want: 0},
		{name: "more rows than bytes allow", cp: &Checkpoint{Input: InputIdentity{Size: info.Size(), Rows: int(info.Size())}}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Input: input, Checkpoint: filepath.Join(t.TempDir(), CheckpointFile)}
			if tt.cp != nil {
				tt.cp.Input.SHA256 = strings.Repeat("0", 64)
				tt.cp.OutcomesBytes = int64(len(report.OutcomesHeader))
				if err := tt.cp.save(cfg.Checkpoint); err != nil {
					t.Fatal(err)
				}
			}
			if got := checkpointRows(cfg); got != tt.want {
				t.Errorf("checkpointRows() = %d, want %d", got, tt.want)
			}
		})
	}
}
