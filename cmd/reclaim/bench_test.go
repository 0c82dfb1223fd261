package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

// BenchmarkWave100k runs a 100,000-row wave through the built binary against the simulator. The
// simulator has Intune's sliding-window throttling scaled up 100 times (500 writes per second instead
// of 5), 50-150 ms latency and 1% server faults, so the wave takes minutes instead of hours. The
// benchmark reports the achieved rate against that limit, the share of 429 responses and the binary's
// peak memory.
//
//	go test -run '^$' -bench Wave100k -benchtime 1x ./cmd/reclaim
func BenchmarkWave100k(b *testing.B) {
	const (
		rows       = 100_000
		limit      = 2500 // writes per window
		window     = 5 * time.Second
		limitPerS  = float64(limit) / 5
		rate       = "500"
		workers    = "96"
		burst      = "10"
		faultShare = 0.01
	)
	for range b.N {
		b.StopTimer()
		sim := startSim(b, graphsim.Options{WriteLimit: limit, WriteWindow: window, RetryAfter: graphsim.RetryAfterRotate,
			FaultRate: faultShare, LatencyMin: 50 * time.Millisecond, LatencyMax: 150 * time.Millisecond, Seed: 42})
		input := writeWave(b, validWave(99, rows))
		out := b.TempDir()
		b.StartTimer()

		started := time.Now()
		cmd := sim.command(b, "--input", input, "--out-dir", out, "--rate", rate, "--burst", burst,
			"--workers", workers, "--log-level", "warn")
		stdout, stderr := start(b, cmd)
		peak := watchPeakRSS(cmd.Process.Pid)
		res := wait(b, cmd, stdout, stderr)
		elapsed := time.Since(started)
		b.StopTimer()
		if res.code != reclaim.ExitOK {
			b.Fatalf("exit code = %d, want 0\n%s", res.code, tail(res.stderr, 20))
		}

		stats := sim.Stats()
		summary := readSummary(b, out)
		if summary["revoked"] != strconv.Itoa(rows) || summary["failed"] != "0" || summary["complete"] != "true" {
			b.Fatalf("summary = %v, want all %d rows revoked", summary, rows)
		}
		maxRSS := <-peak
		achieved := float64(rows) / elapsed.Seconds()
		b.ReportMetric(elapsed.Seconds(), "s/wave")
		b.ReportMetric(achieved, "rows/s")
		b.ReportMetric(achieved/limitPerS, "of-limit")
		b.ReportMetric(float64(stats.Throttled)/float64(stats.GraphRequests), "429-share")
		b.ReportMetric(float64(stats.GraphRequests), "requests")
		b.ReportMetric(float64(maxRSS)/(1<<20), "peak-MiB")
		b.Logf("GOMAXPROCS %d, %s; requests %d, throttled %d, faults %d", runtime.GOMAXPROCS(0), runtime.Version(),
			stats.GraphRequests, stats.Throttled, stats.Faults)
	}
}

// watchPeakRSS polls the high-water mark of the resident memory of process pid (VmHWM in
// /proc/PID/status) until the process is gone, and then sends the last value in bytes. The rusage of a
// child is no use here: it counts the test process's own memory, which the child shares between fork
// and exec.
func watchPeakRSS(pid int) <-chan int64 {
	peak := make(chan int64, 1)
	go func() {
		var last int64
		path := "/proc/" + strconv.Itoa(pid) + "/status"
		for {
			data, err := os.ReadFile(path)
			if err != nil {
				peak <- last
				return
			}
			for _, line := range strings.Split(string(data), "\n") {
				if value, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					kib, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
					last = max(last, kib*1024)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return peak
}
