package reclaim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
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
		record   *leaseRecord
		content  string
		mtimeAge time.Duration
		wantBusy bool
		wantLog  string
	}{
		{name: "other host, stale heartbeat",
			record:  &leaseRecord{Host: "node-gone", PID: 7, StartedAt: now.Add(-time.Hour), Heartbeat: now.Add(-10 * time.Minute), Token: "old"},
			wantLog: "heartbeat is stale"},
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
				writeLeaseRecord(t, path, *tt.record)
			} else if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.mtimeAge > 0 {
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
