package reclaim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"reclaim/report"
)

// deadPID returns the id of a process that has ended: a run of this test binary that runs no test.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run a short-lived process: %v", err)
	}
	return cmd.Process.Pid
}

// livePID returns the id of a process that outlives the test, other than this one.
func livePID(t *testing.T) int {
	t.Helper()
	pid := os.Getppid()
	if pid == os.Getpid() || !processAlive(pid) {
		t.Skip("no live parent process to stand for another run")
	}
	return pid
}

// testLeaseOptions returns lease options that make tests fast, logging into log unless it is nil.
func testLeaseOptions(log *syncBuffer) leaseOptions {
	opts := leaseOptions{heartbeat: 20 * time.Millisecond, stale: 5 * time.Second, settle: 50 * time.Millisecond}
	if log != nil {
		opts.logger = zerolog.New(log)
	}
	return opts
}

// syncBuffer is a bytes.Buffer that a heartbeat goroutine may log into while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func writeLeaseRecord(t *testing.T, path string, record leaseRecord) {
	t.Helper()
	data, err := json.Marshal(record)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestJudgeLease(t *testing.T) {
	now := time.Now()
	const stale = time.Minute
	self := leaseRecord{Host: "node-a", PID: os.Getpid(), BootID: "boot-1", PIDNamespace: "pid:[1]", Token: "self-token"}
	dead, live := deadPID(t), livePID(t)
	holder := func(host string, pid int, heartbeatAge time.Duration, change func(*leaseRecord)) []byte {
		r := leaseRecord{Host: host, PID: pid, BootID: "boot-1", PIDNamespace: "pid:[1]",
			StartedAt: now.Add(-time.Hour), Heartbeat: now.Add(-heartbeatAge), Token: "holder-token"}
		if change != nil {
			change(&r)
		}
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	fresh, old := now.Add(-time.Second), now.Add(-2*stale)

	tests := []struct {
		name  string
		found leaseFile
		want  leaseVerdict
	}{
		{"absent", leaseFile{}, leaseAbsent},
		{"own pid, other token", leaseFile{data: holder("node-a", self.PID, 0, nil), modTime: fresh}, leaseHolderDead},
		{"same host, dead pid", leaseFile{data: holder("node-a", dead, 0, nil), modTime: fresh}, leaseHolderDead},
		{"same host, live pid, fresh", leaseFile{data: holder("node-a", live, time.Second, nil), modTime: fresh}, leaseHeld},
		{"same host, live pid, stale", leaseFile{data: holder("node-a", live, 2*stale, nil), modTime: old}, leaseStale},
		{"other host, fresh", leaseFile{data: holder("node-b", dead, time.Second, nil), modTime: fresh}, leaseHeld},
		{"other host, stale", leaseFile{data: holder("node-b", dead, 2*stale, nil), modTime: fresh}, leaseStale},
		{"other pid namespace, dead pid, fresh", leaseFile{data: holder("node-a", dead, time.Second,
			func(r *leaseRecord) { r.PIDNamespace = "pid:[2]" }), modTime: fresh}, leaseHeld},
		{"other boot, own pid, fresh", leaseFile{data: holder("node-a", self.PID, time.Second,
			func(r *leaseRecord) { r.BootID = "boot-0" }), modTime: fresh}, leaseHeld},
		{"no boot id or namespace, dead pid", leaseFile{data: holder("node-a", dead, time.Second,
			func(r *leaseRecord) { r.BootID, r.PIDNamespace = "", "" }), modTime: fresh}, leaseHolderDead},
		{"garbage, fresh mtime", leaseFile{data: []byte("{\"host\": \"node-b\", \"pi"), modTime: fresh}, leaseHeld},
		{"garbage, stale mtime", leaseFile{data: []byte("{\"host\": \"node-b\", \"pi"), modTime: old}, leaseStale},
		{"empty file, fresh mtime", leaseFile{data: []byte{}, modTime: fresh}, leaseHeld},
		{"empty file, stale mtime", leaseFile{data: []byte{}, modTime: old}, leaseStale},
		{"heartbeat ahead within stale", leaseFile{data: holder("node-b", dead, -stale/2, nil), modTime: fresh}, leaseHeld},
		{"heartbeat far ahead, stale mtime", leaseFile{data: holder("node-b", dead, -24*time.Hour, nil), modTime: old}, leaseStale},
		{"heartbeat far ahead, fresh mtime", leaseFile{data: holder("node-b", dead, -24*time.Hour, nil), modTime: fresh}, leaseHeld},
		{"heartbeat and mtime far ahead", leaseFile{data: holder("node-b", dead, -24*time.Hour, nil), modTime: now.Add(2 * stale)}, leaseHeld},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := judgeLease(tt.found, self, now, stale)
			if got != tt.want {
				t.Errorf("judgeLease = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestTakeLeaseBusyThenRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), leaseFileName)
	first, err := takeLease(path, "out dir x", testLeaseOptions(nil))
	if err != nil {
		t.Fatal(err)
	}

	other := testLeaseOptions(nil)
	other.pid = livePID(t)
	_, err = takeLease(path, "out dir x", other)
	var busy *BusyError
	if !errors.As(err, &busy) {
		t.Fatalf("second takeLease = %v, want a BusyError", err)
	}
	host, _ := os.Hostname()
	for _, want := range []string{"out dir x", "process " + strconv.Itoa(os.Getpid()), "host " + host, "started", "last heartbeat"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("busy message %q does not contain %q", err, want)
		}
	}
	if got := ExitCode(err); got != ExitStopped {
		t.Errorf("ExitCode(busy) = %d, want %d", got, ExitStopped)
	}

	first.release()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lease file after release: stat error %v, want not exist", err)
	}
	again, err := takeLease(path, "out dir x", other)
	if err != nil {
		t.Fatalf("takeLease after release: %v", err)
	}
	again.release()
}

func TestTakeLeaseFromFile(t *testing.T) {
	host, _ := os.Hostname()
	self := newLeaseRecord(os.Getpid())
	now := time.Now().UTC()
	tests := []struct {
		name string
		// record is written as the lease file, or content when record is nil.
		record  *leaseRecord
		content string
		// mtimeAge sets the file's modification time that long before now, or after now when negative.
		mtimeAge time.Duration
		wantBusy bool
		// wantText are parts of the busy message, or of the log of the takeover.
		wantText []string
		wantLog  string
	}{
		{name: "other host, stale heartbeat",
			record:   &leaseRecord{Host: "node-gone", PID: 7, StartedAt: now.Add(-time.Hour), Heartbeat: now.Add(-10 * time.Minute), Token: "old"},
			wantLog:  "heartbeat is stale",
			wantText: []string{`"heartbeat_age":"10m0s"`}},
		{name: "other host, heartbeat a day ahead, stale mtime",
			record:   &leaseRecord{Host: "node-fast", PID: 7, StartedAt: now, Heartbeat: now.Add(24 * time.Hour), Token: "old"},
			mtimeAge: 10 * time.Minute,
			wantLog:  "heartbeat lies ahead of this host's clock",
			wantText: []string{`"heartbeat_age":"-24h0m0s"`, `"lease_file_age":"10m0s"`}},
		{name: "other host, heartbeat a day ahead, fresh mtime",
			record:   &leaseRecord{Host: "node-fast", PID: 7, StartedAt: now, Heartbeat: now.Add(24 * time.Hour), Token: "old"},
			wantBusy: true,
			wantText: []string{"last heartbeat dated 24h0m0s ahead of this host's clock"}},
		{name: "other host, heartbeat and mtime a day ahead",
			record:   &leaseRecord{Host: "node-fast", PID: 7, StartedAt: now, Heartbeat: now.Add(24 * time.Hour), Token: "old"},
			mtimeAge: -24 * time.Hour,
			wantBusy: true,
			wantText: []string{"last heartbeat dated 24h0m0s ahead", "the clock of host node-fast runs ahead",
				"Once no reclaim runs on host node-fast, remove /", leaseFileName + ")"}},
		{name: "garbage, mtime a day ahead", content: "{\"host\":", mtimeAge: -24 * time.Hour, wantBusy: true,
			wantText: []string{"lease file last written dated", "Once no reclaim runs on its host, remove"}},
		{name: "other host, fresh heartbeat",
			record:   &leaseRecord{Host: "node-busy", PID: 7, StartedAt: now.Add(-time.Hour), Heartbeat: now, Token: "old"},
			wantBusy: true},
		{name: "same host, dead process",
			record: &leaseRecord{Host: host, PID: deadPID(t), BootID: self.BootID, PIDNamespace: self.PIDNamespace,
				StartedAt: now.Add(-time.Hour), Heartbeat: now, Token: "old"},
			wantLog: "process has ended"},
		{name: "garbage, fresh", content: "{\"host\":", wantBusy: true},
		{name: "garbage, stale", content: "{\"host\":", mtimeAge: 10 * time.Minute, wantLog: "heartbeat is stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), leaseFileName)
			if tt.record != nil {
				// The table's times count from now. Shifting them to this moment keeps the logged
				// ages exact to the second, however long the earlier cases took.
				record, shift := *tt.record, time.Since(now)
				record.StartedAt, record.Heartbeat = record.StartedAt.Add(shift), record.Heartbeat.Add(shift)
				writeLeaseRecord(t, path, record)
			} else if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.mtimeAge != 0 {
				at := time.Now().Add(-tt.mtimeAge)
				if err := os.Chtimes(path, at, at); err != nil {
					t.Fatal(err)
				}
			}
			log := &syncBuffer{}

			l, err := takeLease(path, "out dir x", testLeaseOptions(log))
			if tt.wantBusy {
				var busy *BusyError
				if !errors.As(err, &busy) {
					t.Fatalf("takeLease = %v, want a BusyError", err)
				}
				if tt.record != nil && !strings.Contains(err.Error(), tt.record.Host) {
					t.Errorf("busy message %q does not name the holder's host %s", err, tt.record.Host)
				}
				for _, want := range tt.wantText {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("busy message %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("takeLease = %v, want the lease taken over", err)
			}
			defer l.release()
			if !strings.Contains(log.String(), tt.wantLog) || !strings.Contains(log.String(), `"level":"warn"`) {
				t.Errorf("log does not warn %q:\n%s", tt.wantLog, log)
			}
			if tt.record != nil && !strings.Contains(log.String(), `"holder_host":"`+tt.record.Host+`"`) {
				t.Errorf("log does not name the old holder's host %s:\n%s", tt.record.Host, log)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(log.String(), want) {
					t.Errorf("log does not contain %s:\n%s", want, log)
				}
			}
		})
	}
}

func TestTakeLeaseLogsTake(t *testing.T) {
	log := &syncBuffer{}
	l, err := takeLease(filepath.Join(t.TempDir(), leaseFileName), "out dir x", testLeaseOptions(log))
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	if !strings.Contains(log.String(), `"level":"info"`) || !strings.Contains(log.String(), "took the lease") {
		t.Errorf("log does not say at info that the lease was taken:\n%s", log)
	}
}

func TestTakeLeaseRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), leaseFileName)
	// Two process ids that are both alive, so that each contender counts the other as a live holder.
	pids := []int{os.Getpid(), livePID(t)}
	const rounds = 20
	for round := range rounds {
		var start, done sync.WaitGroup
		start.Add(1)
		leases := make([]*lease, len(pids))
		errs := make([]error, len(pids))
		for i, pid := range pids {
			done.Go(func() {
				opts := testLeaseOptions(nil)
				opts.pid = pid
				start.Wait()
				leases[i], errs[i] = takeLease(path, "out dir x", opts)
			})
		}
		start.Done()
		done.Wait()

		winners := 0
		for i, err := range errs {
			var busy *BusyError
			switch {
			case err == nil:
				winners++
			case !errors.As(err, &busy):
				t.Fatalf("round %d: contender %d: takeLease = %v, want nil or a BusyError", round, i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d contenders hold the lease, want 1; errors %v", round, winners, errs)
		}
		for _, l := range leases {
			if l != nil {
				l.release()
			}
		}
	}
}

func TestLeaseHeartbeatRenews(t *testing.T) {
	path := filepath.Join(t.TempDir(), leaseFileName)
	l, err := takeLease(path, "out dir x", testLeaseOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	first := readRecord(t, path)

	for guard := time.Now(); time.Since(guard) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
		if now := readRecord(t, path); now.Heartbeat.After(first.Heartbeat) {
			if now.Token != first.Token || !now.StartedAt.Equal(first.StartedAt) {
				t.Errorf("renewed record = %+v, want token and start time of %+v", now, first)
			}
			return
		}
	}
	t.Fatalf("heartbeat still %v after 10s with a 20ms heartbeat interval", first.Heartbeat)
}

func readRecord(t *testing.T, path string) leaseRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	record := parseLeaseRecord(data)
	if record == nil {
		t.Fatalf("lease file %q is not a record", data)
	}
	return *record
}

// waitLost waits for l to be lost, failing the test if it is not within a generous time.
func waitLost(t *testing.T, l *lease) {
	t.Helper()
	select {
	case <-l.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("lease not lost after 10s")
	}
}

func TestLeaseLostWhenReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), leaseFileName)
	l, err := takeLease(path, "out dir x", testLeaseOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	ctx, stop := watchLeases(context.Background(), l)
	defer stop()

	now := time.Now().UTC()
	writeLeaseRecord(t, path, leaseRecord{Host: "node-thief", PID: 9, StartedAt: now, Heartbeat: now, Token: "thief"})
	waitLost(t, l)
	<-ctx.Done()

	cause := context.Cause(ctx)
	if !errors.Is(cause, errLeaseLost) || !strings.Contains(cause.Error(), "node-thief") {
		t.Errorf("context cause = %v, want errLeaseLost naming host node-thief", cause)
	}
	stopErr := stopErrorOf(ctx)
	if !strings.Contains(stopErr.Error(), "lost the lease on out dir x") {
		t.Errorf("stop error = %q, want it to say the lease was lost", stopErr)
	}
	if got := ExitCode(stopErr); got != ExitStopped {
		t.Errorf("ExitCode(stop error) = %d, want %d", got, ExitStopped)
	}
	l.release()
	if got := readRecord(t, path).Token; got != "thief" {
		t.Errorf("token after release of a lost lease = %q, want the new holder's %q", got, "thief")
	}
}

func TestLeaseLostWhenNotRenewed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := testLeaseOptions(nil)
	opts.stale = 300 * time.Millisecond
	l, err := takeLease(filepath.Join(dir, leaseFileName), "out dir x", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()

	// Without its folder the lease can be neither read nor rewritten.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitLost(t, l)
	if !errors.Is(l.lostErr, errLeaseLost) {
		t.Errorf("lost error = %v, want errLeaseLost", l.lostErr)
	}
}

func TestLeaseRenewLimit(t *testing.T) {
	opts := leaseOptions{heartbeat: 10 * time.Second, stale: 60 * time.Second, drain: 10 * time.Second}
	if got, want := opts.renewLimit(), 30*time.Second; got != want {
		t.Errorf("renewLimit() = %v, want %v", got, want)
	}
	opts.drain = time.Minute
	if got, want := opts.renewLimit(), 10*time.Second; got != want {
		t.Errorf("renewLimit() with a long drain = %v, want the heartbeat %v", got, want)
	}
}

func TestLockRunBusy(t *testing.T) {
	dir := t.TempDir()
	// A lock file of an older version, which held flock, is ignored.
	if err := os.WriteFile(filepath.Join(dir, ".reclaim.lock"), []byte(`{"pid":1,"host":"old"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{OutDir: dir, Checkpoint: filepath.Join(dir, CheckpointFile), lease: testLeaseOptions(nil)}
	lock, err := lockRun(cfg)
	if err != nil {
		t.Fatal(err)
	}

	other := cfg
	other.lease.pid = livePID(t)
	_, err = lockRun(other)
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Resource != "out dir "+dir {
		t.Fatalf("second lockRun = %v, want a BusyError on the out dir", err)
	}

	lock.release()
	again, err := lockRun(other)
	if err != nil {
		t.Fatalf("lockRun after release: %v", err)
	}
	again.release()
}

func TestLockRunSharedCheckpoint(t *testing.T) {
	outA := t.TempDir()
	checkpointA, err := resolveCheckpoint(filepath.Join(outA, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(checkpointA, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := lockRun(Config{OutDir: outA, Checkpoint: checkpointA, lease: testLeaseOptions(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer first.release()

	link := filepath.Join(t.TempDir(), "link.json")
	if err := os.Symlink(checkpointA, link); err != nil {
		t.Fatal(err)
	}
	spellings := map[string]string{
		"same path":        checkpointA,
		"dot-dot spelling": filepath.Join(outA, "..", filepath.Base(outA), CheckpointFile),
		"symbolic link":    link,
	}
	other := testLeaseOptions(nil)
	other.pid = livePID(t)
	for name, spelling := range spellings {
		resolved, err := resolveCheckpoint(spelling)
		if err != nil {
			t.Fatalf("%s: resolveCheckpoint: %v", name, err)
		}
		outB := t.TempDir()
		_, err = lockRun(Config{OutDir: outB, Checkpoint: resolved, lease: other})
		var busy *BusyError
		if !errors.As(err, &busy) || !strings.HasPrefix(busy.Resource, "checkpoint") {
			t.Errorf("%s: lockRun from another out dir = %v, want a BusyError naming the checkpoint", name, err)
		}
		if _, err := os.Stat(filepath.Join(outB, leaseFileName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: out dir lease after a busy lockRun: stat error %v, want it released", name, err)
		}
	}
}

func TestLockOutDirAlone(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{OutDir: dir, Checkpoint: filepath.Join(dir, "index.csv"), lease: testLeaseOptions(nil)}
	lock, err := lockOutDir(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.release()
	if _, err := os.Stat(filepath.Join(dir, leaseFileName)); err != nil {
		t.Errorf("out dir lease: %v", err)
	}
	if _, err := os.Stat(cfg.Checkpoint + leaseSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkpoint lease: stat error %v, want not exist", err)
	}

	other := cfg
	other.lease.pid = livePID(t)
	_, err = lockOutDir(other)
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Resource != "out dir "+dir {
		t.Errorf("second lockOutDir = %v, want a BusyError on the out dir", err)
	}
}

func TestLeaseHeld(t *testing.T) {
	// A heartbeat interval of an hour keeps the heartbeat goroutine from renewing during the test, so
	// the test alone decides when the lease was last renewed. The renew limit is then an hour.
	opts := leaseOptions{heartbeat: time.Hour, stale: 3 * time.Hour, settle: time.Millisecond}
	tests := []struct {
		name string
		// change makes the lease lose its hold, or leaves it held when nil.
		change   func(t *testing.T, l *lease)
		wantText string
	}{
		{name: "fresh"},
		{name: "renewed 2h ago", wantText: "last renewed 2h0m0s ago, longer than the renew limit 1h0m0s",
			change: func(t *testing.T, l *lease) {
				renewed := time.Now().Add(-2 * time.Hour)
				l.renewed.Store(&renewed)
			}},
		{name: "lost", wantText: "another run holds it now",
			change: func(t *testing.T, l *lease) { l.lose("another run holds it now") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := takeLease(filepath.Join(t.TempDir(), leaseFileName), "out dir x", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.release()
			if tt.change != nil {
				tt.change(t, l)
			}

			err = l.held()
			if tt.wantText == "" {
				if err != nil {
					t.Errorf("held() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, errLeaseLost) {
				t.Fatalf("held() = %v, want errLeaseLost", err)
			}
			if !strings.Contains(err.Error(), "out dir x") || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("held() = %q, want it to name out dir x and say %q", err, tt.wantText)
			}
		})
	}
}

func TestRunLockHeldStops(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{OutDir: dir, Checkpoint: filepath.Join(dir, CheckpointFile), lease: testLeaseOptions(nil)}
	lock, err := lockRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.release()
	if err := lock.held(); err != nil {
		t.Fatalf("held() right after lockRun = %v, want nil", err)
	}

	now := time.Now().UTC()
	writeLeaseRecord(t, cfg.Checkpoint+leaseSuffix, leaseRecord{Host: "node-b", PID: 9, StartedAt: now, Heartbeat: now, Token: "thief"})
	waitLost(t, lock.leases[1])

	err = lock.held()
	var stop *StopError
	if !errors.As(err, &stop) || !errors.Is(err, errLeaseLost) {
		t.Fatalf("held() = %v, want a StopError that wraps errLeaseLost", err)
	}
	if got := ExitCode(err); got != ExitStopped {
		t.Errorf("ExitCode(held()) = %d, want %d", got, ExitStopped)
	}
	for _, want := range []string{"writes nothing more", "lost the lease on checkpoint " + cfg.Checkpoint, "node-b"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("held() = %q, want it to contain %q", err, want)
		}
	}
}

func TestLedgerFinishFenced(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{OutDir: dir, Checkpoint: filepath.Join(dir, CheckpointFile), lease: testLeaseOptions(nil)}
	lock, err := lockRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.release()
	l := openTestLedger(t, dir, 3, newCheckpoint(3))
	l.fence = lock.held
	if err := l.finish(report.Outcome{Row: 1, Status: report.Revoked}); err != nil {
		t.Fatalf("finish(row 1) while the lease is held: %v", err)
	}
	outcomes := filepath.Join(dir, OutcomesFile)
	before, err := os.ReadFile(outcomes)
	if err != nil {
		t.Fatal(err)
	}

	// Another run takes the out dir over, as after a pause of this one longer than the stale period.
	now := time.Now().UTC()
	writeLeaseRecord(t, filepath.Join(dir, leaseFileName), leaseRecord{Host: "node-b", PID: 9, StartedAt: now, Heartbeat: now, Token: "thief"})
	waitLost(t, lock.leases[0])

	for _, row := range []int{2, 3} {
		err := l.finish(report.Outcome{Row: row, Status: report.Revoked})
		if !errors.Is(err, errLeaseLost) || ExitCode(err) != ExitStopped {
			t.Errorf("finish(row %d) after the takeover = %v, want a stop that wraps errLeaseLost", row, err)
		}
	}
	after, err := os.ReadFile(outcomes)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("outcomes.csv after the takeover = %q, want it unchanged %q", after, before)
	}
	if got := l.finished(); got != 1 {
		t.Errorf("finished() = %d, want 1: refused rows stay pending", got)
	}
}

func TestFolderWriteIndexFenced(t *testing.T) {
	out := t.TempDir()
	index := filepath.Join(out, IndexFile)
	if err := os.WriteFile(index, []byte("written by the run that holds the lease\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fenceErr := &StopError{Reason: "fenced", Err: errLeaseLost}
	f := &folderRun{base: Config{OutDir: out}, fence: func() error { return fenceErr }}
	f.waves = []*wave{{name: "a.csv"}}

	if err := f.writeIndex(); err != fenceErr {
		t.Errorf("writeIndex() = %v, want the fence error %v", err, fenceErr)
	}
	data, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), "written by the run that holds the lease\n"; got != want {
		t.Errorf("index.csv = %q, want it unchanged %q", got, want)
	}
}

// heldTransport passes the first pass revoke requests through and holds the response of every later
// one until release is closed, as a paused run holds the responses of its requests in flight. The
// revokes themselves reach the server.
type heldTransport struct {
	next     http.RoundTripper
	pass     int64
	sent     atomic.Int64
	holding  chan struct{}
	holdOnce sync.Once
	release  chan struct{}
}

func newHeldTransport(next http.RoundTripper, pass int64) *heldTransport {
	return &heldTransport{next: next, pass: pass, holding: make(chan struct{}), release: make(chan struct{})}
}

func (h *heldTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(req)
	if req.Method != http.MethodPost || h.sent.Add(1) <= h.pass {
		return resp, err
	}
	h.holdOnce.Do(func() { close(h.holding) })
	select {
	case <-h.release:
	case <-req.Context().Done():
	}
	return resp, err
}

// waveOf returns an input of rows rows, each with its own device for app1.
func waveOf(rows int) string {
	var text strings.Builder
	text.WriteString("appId,deviceId\n")
	for row := 1; row <= rows; row++ {
		fmt.Fprintf(&text, "%s,%08x-0000-4000-8000-000000000000\n", app1, row)
	}
	return text.String()
}

// runInBackground starts Run(cfg) and returns the channel that receives its error.
func runInBackground(cfg Config) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cfg)
		done <- err
	}()
	return done
}

// waitFor waits until ready is closed, and fails the test with the event name after 30 seconds.
func waitFor(t *testing.T, ready <-chan struct{}, event string) {
	t.Helper()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: timed out after 30s", event)
	}
}

// waitForLog waits until log contains text.
func waitForLog(t *testing.T, log *syncBuffer, text string) {
	t.Helper()
	for guard := time.Now(); time.Since(guard) < 30*time.Second; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(log.String(), text) {
			return
		}
	}
	t.Fatalf("log does not contain %q after 30s:\n%s", text, log)
}

// readFiles returns the content of each of paths, with "" for a missing file.
func readFiles(t *testing.T, paths ...string) map[string]string {
	t.Helper()
	contents := make(map[string]string, len(paths))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		contents[path] = string(data)
	}
	return contents
}

// takeOver writes the record of another run into the lease files at paths, as that run does when it
// takes them over from a run paused for longer than the stale period.
func takeOver(t *testing.T, paths ...string) {
	t.Helper()
	now := time.Now().UTC()
	for _, path := range paths {
		writeLeaseRecord(t, path, leaseRecord{Host: "node-b", PID: 9, StartedAt: now, Heartbeat: now, Token: "thief"})
	}
}

func TestRunWritesNothingAfterTakeover(t *testing.T) {
	const rows = 30
	cfg, _ := simConfig(t, writeInput(t, waveOf(rows)))
	log := &syncBuffer{}
	cfg.Logger = zerolog.New(log)
	cfg.Workers = 2
	cfg.Drain = 5 * time.Second
	cfg.lease = testLeaseOptions(nil)
	cfg.lease.stale = 30 * time.Second
	held := newHeldTransport(cfg.HTTPClient.Transport, 5)
	cfg.HTTPClient = &http.Client{Transport: held}
	checkpoint := filepath.Join(cfg.OutDir, CheckpointFile)
	files := []string{filepath.Join(cfg.OutDir, OutcomesFile), checkpoint, filepath.Join(cfg.OutDir, SummaryFile)}

	done := runInBackground(cfg)
	waitFor(t, held.holding, "a revoke response held")
	takeOver(t, filepath.Join(cfg.OutDir, leaseFileName), checkpoint+leaseSuffix)
	waitForLog(t, log, "lost the lease")
	before := readFiles(t, files...)
	close(held.release)

	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of the takeover")
	}
	if got := ExitCode(err); got != ExitStopped {
		t.Errorf("Run() exit code = %d (%v), want %d", got, err, ExitStopped)
	}
	if err == nil || !strings.Contains(err.Error(), "lost the lease on") {
		t.Errorf("Run() = %v, want a stop naming the lost lease", err)
	}
	if !LeaseLost(err) {
		t.Errorf("LeaseLost(%v) = false, want true", err)
	}
	after := readFiles(t, files...)
	for _, path := range files {
		if after[path] != before[path] {
			t.Errorf("%s changed after the takeover:\nbefore %q\nafter  %q", filepath.Base(path), before[path], after[path])
		}
	}
	if got := readRecord(t, filepath.Join(cfg.OutDir, leaseFileName)).Token; got != "thief" {
		t.Errorf("out dir lease token = %q, want the new holder's %q", got, "thief")
	}

	// Once the other run has ended, the next run resumes the job and finds one line per row.
	for _, path := range []string{filepath.Join(cfg.OutDir, leaseFileName), checkpoint + leaseSuffix} {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("Run() after the other run ended = %v, want nil", err)
	}
	statuses := readStatuses(t, files[0])
	if len(statuses) != rows {
		t.Errorf("outcomes.csv has %d rows, want %d", len(statuses), rows)
	}
	for row, status := range statuses {
		if status != report.Revoked {
			t.Errorf("row %d status = %s, want %s", row, status, report.Revoked)
		}
	}
}

func TestRunFolderWritesNoIndexAfterTakeover(t *testing.T) {
	input := writeFolder(t, map[string]string{"a.csv": waveOf(1), "b.csv": waveOf(20)})
	cfg, _ := simConfig(t, input)
	log := &syncBuffer{}
	cfg.Logger = zerolog.New(log)
	cfg.Workers = 2
	cfg.Drain = 5 * time.Second
	cfg.lease = testLeaseOptions(nil)
	cfg.lease.stale = 30 * time.Second
	// Wave a.csv passes, and wave b.csv holds at its first response.
	held := newHeldTransport(cfg.HTTPClient.Transport, 1)
	cfg.HTTPClient = &http.Client{Transport: held}
	index := filepath.Join(cfg.OutDir, IndexFile)

	done := runInBackground(cfg)
	waitFor(t, held.holding, "a revoke response of wave b.csv held")
	takeOver(t, filepath.Join(cfg.OutDir, leaseFileName))
	waitForLog(t, log, "lost the lease")
	before := readFiles(t, index)
	close(held.release)

	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of the takeover")
	}
	if got := ExitCode(err); got != ExitStopped {
		t.Errorf("Run() exit code = %d (%v), want %d", got, err, ExitStopped)
	}
	if err == nil || !strings.Contains(err.Error(), "lost the lease on out dir "+cfg.OutDir) {
		t.Errorf("Run() = %v, want a stop naming the lost lease on the top out dir", err)
	}
	if !strings.Contains(before[index], "a.csv") {
		t.Errorf("index.csv before the takeover = %q, want the line of wave a.csv", before[index])
	}
	if after := readFiles(t, index); after[index] != before[index] {
		t.Errorf("index.csv changed after the takeover:\nbefore %q\nafter  %q", before[index], after[index])
	}
}
