package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/rs/zerolog"

	"reclaim/graphclient"
	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

const (
	overheadRows    = 100000
	overheadWorkers = 32
	overheadSeed    = 47
	// minOverheadRatio is the target: the lowest rate of reclaim.Run as a share of the bare loop's.
	minOverheadRatio = 0.5
)

// overheadOrder is the order of the measurements, bare loop first and last, so that a steady drift in
// the machine's speed during the scenario weighs on both drivers alike.
var overheadOrder = []string{"bare", "reclaim", "reclaim", "bare"}

func runOverhead(ctx context.Context, b *bench) (*block, error) {
	wv := &wave{seed: overheadSeed, rows: b.scaled(overheadRows, 200), licensed: everyRow}
	if err := wv.write(filepath.Join(b.workDir, "overhead-wave.csv")); err != nil {
		return nil, err
	}
	pairs := wv.pairs()

	totals := map[string]time.Duration{}
	blk := &block{
		title: "Client overhead against an unthrottled simulator",
		table: table{header: []string{"measurement", "driver", "rows", "wall time", "rows per second"}},
	}
	for i, driver := range overheadOrder {
		var elapsed time.Duration
		var err error
		switch driver {
		case "reclaim":
			elapsed, err = b.measureRun(ctx, wv, i)
		default:
			elapsed, err = b.measureBareLoop(ctx, pairs, i)
		}
		if err != nil {
			return nil, fmt.Errorf("%s loop: %w", driver, err)
		}
		totals[driver] += elapsed
		rate := float64(wv.rows) / elapsed.Seconds()
		b.logf("overhead: %s: %d rows in %s, %.0f rows/s", driver, wv.rows, seconds(elapsed), rate)
		blk.table.add(strconv.Itoa(i+1), driver, thousands(wv.rows), seconds(elapsed), thousands(int(rate)))
	}

	runs := float64(len(overheadOrder) / 2)
	reclaimRate := runs * float64(wv.rows) / totals["reclaim"].Seconds()
	bareRate := runs * float64(wv.rows) / totals["bare"].Seconds()
	ratio := reclaimRate / bareRate
	blk.intro = []string{fmt.Sprintf("Both drivers run in the benchmark process against a graphsim with no write "+
		"limit, no latency and no faults, over HTTPS with HTTP/2, each with %d workers on a transport of its "+
		"own that is configured alike, and each against a new graphsim. `reclaim` is reclaim.Run with "+
		"--precheck=false and --rate %g, so that neither the precheck nor the rate limit holds it back: it "+
		"reads and hashes the CSV file of %s rows, sends a revoke request per row and writes outcomes.csv, "+
		"the checkpoint and summary.csv. Config.LimitMemory is off, as for any caller that shares its process: "+
		"the soft memory limit it sets is sized for a process of its own, and this one also holds graphsim. "+
		"`bare` is a loop of net/http requests with the same method, URL, "+
		"headers, JSON body and bearer token, one per row, that reads each response and keeps nothing. "+
		"The measurements run in the order bare, reclaim, reclaim, bare, and the ratio divides the total rows "+
		"per second of each driver's two measurements.", overheadWorkers, float64(reclaim.MaxRate), thousands(wv.rows))}
	blk.targets = []target{{
		goal:   "reclaim's rows per second at least 0.5 × the bare loop's",
		figure: fmt.Sprintf("%.2f (%s / %s rows/s)", ratio, thousands(int(reclaimRate)), thousands(int(bareRate))),
		met:    ratio >= minOverheadRatio,
	}}
	return blk, nil
}

// overheadSimulator starts a simulator with an open catalogue and no limit, latency or faults.
func (b *bench) overheadSimulator(name string) (*simulator, error) {
	dir, err := b.dir(name)
	if err != nil {
		return nil, err
	}
	// A logger that discards, so that neither driver pays for recording the responses, and stats that
	// do not grow with the requests.
	return startSimulator(graphsim.Options{Open: true, FixedSizeStats: true, Logger: slog.New(slog.DiscardHandler)}, dir)
}

// measureRun runs reclaim.Run over wv in this process and returns its wall time.
func (b *bench) measureRun(ctx context.Context, wv *wave, measurement int) (time.Duration, error) {
	sim, err := b.overheadSimulator(fmt.Sprintf("overhead-%d", measurement))
	if err != nil {
		return 0, err
	}
	defer sim.Close()
	credential, err := sim.credential()
	if err != nil {
		return 0, err
	}

	cfg := reclaim.Config{
		Input:         wv.path,
		OutDir:        filepath.Join(b.workDir, fmt.Sprintf("overhead-%d-out", measurement)),
		GraphURL:      sim.GraphURL(),
		Rate:          reclaim.MaxRate,
		Burst:         overheadWorkers,
		Workers:       overheadWorkers,
		MaxAttempts:   reclaim.DefaultMaxAttempts,
		Timeout:       graphclient.DefaultTimeout,
		OutageAfter:   reclaim.DefaultOutageAfter,
		Precheck:      false,
		Credential:    credential,
		NewCredential: sim.credential,
		HTTPClient:    sim.httpClient(),
		Version:       "bench",
		Logger:        zerolog.New(b.progress).Level(zerolog.WarnLevel).With().Timestamp().Logger(),
	}
	started := time.Now()
	if _, err := reclaim.Run(ctx, cfg); err != nil {
		return 0, fmt.Errorf("reclaim.Run: %w", err)
	}
	elapsed := time.Since(started)

	if removed := sim.Stats().LicensesRemovedTotal; removed != wv.rows {
		return 0, fmt.Errorf("graphsim removed %d licenses, want %d", removed, wv.rows)
	}
	return elapsed, nil
}

// measureBareLoop sends the revoke request of every pair with plain net/http and returns the wall time.
func (b *bench) measureBareLoop(ctx context.Context, pairs []pair, measurement int) (time.Duration, error) {
	sim, err := b.overheadSimulator(fmt.Sprintf("bare-%d", measurement))
	if err != nil {
		return 0, err
	}
	defer sim.Close()
	graphURL, err := graphclient.ParseGraphURL(sim.GraphURL())
	if err != nil {
		return 0, err
	}
	credential, err := sim.credential()
	if err != nil {
		return 0, err
	}
	token, err := credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{graphclient.Scope(graphURL)}})
	if err != nil {
		return 0, err
	}

	client := sim.httpClient()
	var next, failures atomic.Int64
	var firstErr atomic.Value
	started := time.Now()
	var wg sync.WaitGroup
	for range overheadWorkers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(pairs) {
					return
				}
				if err := sendBareRevoke(ctx, client, graphURL.String(), token.Token, pairs[i]); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(started)

	if n := failures.Load(); n > 0 {
		return 0, fmt.Errorf("%d requests failed, the first with: %v", n, firstErr.Load())
	}
	return elapsed, ctx.Err()
}

// sendBareRevoke sends one revokeDeviceLicense request as graphclient does, in the cast URL form.
func sendBareRevoke(ctx context.Context, client *http.Client, root, token string, p pair) error {
	body, err := json.Marshal(struct {
		ManagedDeviceID      string `json:"managedDeviceId"`
		NotifyManagedDevices bool   `json:"notifyManagedDevices"`
	}{p.device, false})
	if err != nil {
		return err
	}
	target := root + "/deviceAppManagement/mobileApps/" + url.PathEscape(p.app) + "/microsoft.graph.iosVppApp/revokeDeviceLicense"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("client-request-id", randomGUID())
	req.Header.Set("User-Agent", "reclaim-bench")

	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
