package reclaim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestThrottlePauseHoldsEveryWorker(t *testing.T) {
	th := newThrottle(1000, 10)
	const pause = 300 * time.Millisecond
	start := time.Now()
	th.pause(pause)
	th.pause(pause / 3) // a shorter pause does not cut the running one

	var wg sync.WaitGroup
	waited := make([]time.Duration, 4)
	for i := range waited {
		wg.Go(func() {
			if err := th.wait(context.Background()); err != nil {
				t.Error(err)
			}
			waited[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, d := range waited {
		if d < pause {
			t.Errorf("worker %d started after %v, want at least the pause of %v", i, d, pause)
		}
	}
}

func TestThrottleWaitEndsWithContext(t *testing.T) {
	th := newThrottle(1000, 1)
	th.pause(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := th.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait during a pause = %v, want the context's error", err)
	}
}

func TestBackoff(t *testing.T) {
	base, maxWait := time.Second, time.Minute
	for attempt := 1; attempt <= 40; attempt++ {
		full := maxWait
		if attempt < 7 {
			full = base << (attempt - 1) // 1s, 2s, … 32s; 64s is over the maximum
		}
		for range 50 {
			got := backoff(attempt, base, maxWait)
			if got < full/2 || got > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, got, full/2, full)
			}
		}
	}
}

func TestHealthOutage(t *testing.T) {
	h := &health{outageAfter: 50 * time.Millisecond}
	start := time.Now()
	for range minOutageFaults {
		h.fault()
	}
	if h.outage() {
		t.Fatalf("outage before outageAfter has passed")
	}
	time.Sleep(60 * time.Millisecond)
	if !h.outage() {
		t.Fatalf("no outage after %d faults over %v", minOutageFaults, time.Since(start))
	}
	h.answered()
	if h.outage() || !h.answeredSince(start) {
		t.Errorf("after an answer: outage %v, answeredSince(start) %v; want false, true", h.outage(), h.answeredSince(start))
	}

	few := &health{outageAfter: time.Millisecond}
	few.fault()
	time.Sleep(5 * time.Millisecond)
	if few.outage() {
		t.Errorf("a single fault counts as an outage, want at least %d", minOutageFaults)
	}
}

func TestLockRun(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{OutDir: dir, Checkpoint: filepath.Join(dir, CheckpointFile)}
	lock, err := lockRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockRun(cfg)
	var busy *BusyError
	if !errors.As(err, &busy) {
		t.Fatalf("second lockOutDir = %v, want a BusyError", err)
	}
	host, _ := os.Hostname()
	for _, want := range []string{"process " + strconv.Itoa(os.Getpid()), host, "started"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("busy message %q does not contain %q", err, want)
		}
	}
	if ExitCode(err) != ExitStopped {
		t.Errorf("ExitCode(busy) = %d, want %d", ExitCode(err), ExitStopped)
	}

	lock.release()
	again, err := lockRun(cfg)
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
	first, err := lockRun(Config{OutDir: outA, Checkpoint: checkpointA})
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
	for name, spelling := range spellings {
		resolved, err := resolveCheckpoint(spelling)
		if err != nil {
			t.Fatalf("%s: resolveCheckpoint: %v", name, err)
		}
		_, err = lockRun(Config{OutDir: t.TempDir(), Checkpoint: resolved})
		var busy *BusyError
		if !errors.As(err, &busy) || !strings.Contains(err.Error(), "checkpoint") {
			t.Errorf("%s: lockRun from another out dir = %v, want a BusyError naming the checkpoint", name, err)
		}
	}
}
