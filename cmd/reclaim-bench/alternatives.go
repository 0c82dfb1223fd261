package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"reclaim/graphclient"
)

// The SDK retry model, a per-request retry policy like that of the Graph SDKs' retry handlers. Each
// request on its own waits out its Retry-After, or sdkBaseDelay doubled for every earlier retry when the
// response has none, and gives up after sdkMaxRetries retries. Nothing is shared between requests.
//
// NOTE: this is a model written from that description, not from an SDK's code. The real handlers'
// defaults and the statuses they retry may differ between SDKs and versions.
const (
	sdkMaxRetries = 3
	sdkBaseDelay  = 3 * time.Second
)

// sequentialBudget is how long the one-worker loop runs, times the scale, before its wall time for
// the whole wave is projected from its rate.
const sequentialBudget = 30 * time.Second

// sdkRetryWait returns the wait before retry number retry (0 for the first) of a request whose
// response asked for retryAfter, or sent no Retry-After when retryAfter is 0: 3 s, 6 s, 12 s.
func sdkRetryWait(retryAfter time.Duration, retry int) time.Duration {
	if retryAfter > 0 {
		return retryAfter
	}
	return sdkBaseDelay << retry
}

// sdkRetryAfter returns the Retry-After of err and whether the SDK retry model retries the response:
// 429, 503 and 504. It does not retry a request that got no response.
func sdkRetryAfter(err error) (time.Duration, bool) {
	var graphErr *graphclient.Error
	if !errors.As(err, &graphErr) {
		return 0, false
	}
	switch graphErr.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return graphErr.RetryAfter, true
	}
	return 0, false
}

// loopResult is the outcome of a loop of revoke requests sent from this process.
type loopResult struct {
	// rows counts the rows the loop finished, revoked or failed.
	rows    int
	revoked int
	failed  int
	elapsed time.Duration
}

// newGraphClient returns the project's Graph client for sim, with connections of its own.
func newGraphClient(sim *simulator) (*graphclient.Client, error) {
	graphURL, err := graphclient.ParseGraphURL(sim.GraphURL())
	if err != nil {
		return nil, err
	}
	credential, err := sim.credential()
	if err != nil {
		return nil, err
	}
	return graphclient.New(graphclient.Options{
		GraphURL:   graphURL,
		Credential: credential,
		HTTPClient: sim.httpClient(),
		UserAgent:  "reclaim-bench",
		Form:       graphclient.FormCast,
	})
}

// runSDKModel revokes every pair with workers goroutines that follow the SDK retry model.
func runSDKModel(ctx context.Context, client *graphclient.Client, pairs []pair, workers int) loopResult {
	var next, revoked, failed atomic.Int64
	started := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(pairs) {
					return
				}
				if revokeSDKStyle(ctx, client, pairs[i]) {
					revoked.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return loopResult{rows: int(revoked.Load() + failed.Load()), revoked: int(revoked.Load()),
		failed: int(failed.Load()), elapsed: time.Since(started)}
}

// revokeSDKStyle sends the revoke request of p with the retries of the SDK retry model and reports
// whether it succeeded.
func revokeSDKStyle(ctx context.Context, client *graphclient.Client, p pair) bool {
	for retry := 0; ; retry++ {
		_, err := client.RevokeDeviceLicense(ctx, p.app, p.device, false)
		if err == nil {
			return true
		}
		retryAfter, retryable := sdkRetryAfter(err)
		if !retryable || retry == sdkMaxRetries {
			return false
		}
		if sleep(ctx, sdkRetryWait(retryAfter, retry)) != nil {
			return false
		}
	}
}

// runSequential revokes pairs one after another until they are done or budget has passed. It waits out
// every Retry-After, or the SDK retry model's wait for a response without one, and never gives up on
// throttling.
func runSequential(ctx context.Context, client *graphclient.Client, pairs []pair, budget time.Duration) loopResult {
	started := time.Now()
	result := loopResult{}
	for _, p := range pairs {
		if ctx.Err() != nil || time.Since(started) >= budget {
			break
		}
		for retry := 0; ; retry++ {
			_, err := client.RevokeDeviceLicense(ctx, p.app, p.device, false)
			if err == nil {
				result.revoked++
				break
			}
			// The wait without Retry-After stops doubling at 96 s.
			retryAfter, retryable := sdkRetryAfter(err)
			if !retryable || sleep(ctx, sdkRetryWait(retryAfter, min(retry, 5))) != nil {
				result.failed++
				break
			}
		}
		result.rows++
	}
	result.elapsed = time.Since(started)
	return result
}

// sleep waits for d or until ctx ends, and then returns ctx's error.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// alternativeRun is one way of driving the 1x wave, with graphsim's counts.
type alternativeRun struct {
	loop      loopResult
	requests  int
	throttled int
}

// runAlternative starts a simulator for the 1x wave and runs drive against it with the project's
// Graph client.
func (b *bench) runAlternative(ctx context.Context, wv *wave, name string, drive func(*graphclient.Client) loopResult) (alternativeRun, error) {
	dir, err := b.dir(name)
	if err != nil {
		return alternativeRun{}, err
	}
	sim, err := startSimulator(waveOptions(wv, 1), dir)
	if err != nil {
		return alternativeRun{}, err
	}
	defer sim.Close()
	client, err := newGraphClient(sim)
	if err != nil {
		return alternativeRun{}, err
	}
	if err := client.CheckToken(ctx); err != nil {
		return alternativeRun{}, err
	}

	loop := drive(client)
	if ctx.Err() != nil {
		return alternativeRun{}, ctx.Err()
	}
	stats := sim.Stats()
	if removed := stats.LicensesRemovedTotal; removed != loop.revoked {
		return alternativeRun{}, fmt.Errorf("%s counted %d revoked rows, but graphsim removed %d licenses", name, loop.revoked, removed)
	}
	return alternativeRun{loop: loop, requests: stats.GraphRequests, throttled: stats.Throttled + stats.ReadThrottled}, nil
}

func (a alternativeRun) throttledShare() float64 {
	return float64(a.throttled) / float64(max(a.requests, 1))
}

func runAlternatives(ctx context.Context, b *bench) (*block, error) {
	wv, err := b.throughputWave()
	if err != nil {
		return nil, err
	}
	reclaimRun := b.wave1x
	if reclaimRun == nil {
		b.logf("alternatives: running reclaim on the 1x wave, since the throughput scenario did not run")
		if reclaimRun, err = b.runWave(ctx, wv, 1); err != nil {
			return nil, err
		}
	}
	pairs := wv.pairs()

	b.logf("alternatives: SDK retry model, %d workers", waveWorkers)
	sdk, err := b.runAlternative(ctx, wv, "sdk-model", func(client *graphclient.Client) loopResult {
		return runSDKModel(ctx, client, pairs, waveWorkers)
	})
	if err != nil {
		return nil, fmt.Errorf("SDK retry model: %w", err)
	}
	b.logf("alternatives: SDK retry model: %d revoked, %d failed in %s, 429 share %.2f%%",
		sdk.loop.revoked, sdk.loop.failed, seconds(sdk.loop.elapsed), 100*sdk.throttledShare())

	budget := b.scaledDuration(sequentialBudget, 3*time.Second)
	b.logf("alternatives: one-worker loop for at most %s", budget)
	seq, err := b.runAlternative(ctx, wv, "sequential", func(client *graphclient.Client) loopResult {
		return runSequential(ctx, client, pairs, budget)
	})
	if err != nil {
		return nil, fmt.Errorf("one-worker loop: %w", err)
	}
	seqRate := float64(seq.loop.rows) / seq.loop.elapsed.Seconds()
	seqWall := seconds(seq.loop.elapsed)
	seqProjected := time.Duration(float64(wv.rows) / seqRate * float64(time.Second))
	seqWallVsReclaim := fmt.Sprintf("%.2f", seq.loop.elapsed.Seconds()/reclaimRun.elapsed.Seconds())
	if seq.loop.rows < wv.rows {
		seqWall = fmt.Sprintf("%s projected (%.1f rows/s over %s rows in %s)", seconds(seqProjected), seqRate, thousands(seq.loop.rows), seconds(seq.loop.elapsed))
		seqWallVsReclaim = fmt.Sprintf("%.1f projected", seqProjected.Seconds()/reclaimRun.elapsed.Seconds())
	}
	b.logf("alternatives: one-worker loop: %d rows in %s, %.1f rows/s", seq.loop.rows, seconds(seq.loop.elapsed), seqRate)

	blk := &block{
		title: "Against the usual retry policies, on the same wave",
		intro: []string{fmt.Sprintf("The 1x wave of the throughput scenario (%s rows, a write limit of %g per "+
			"second, equal to --rate), driven three ways, each against a new graphsim with the same settings. "+
			"The reclaim row is the binary's run from the throughput scenario, or a run of its own when that "+
			"scenario is not chosen. The SDK retry model runs in the benchmark process on the project's Graph "+
			"client, with %d workers and no rate limit. It retries 429, 503 and 504 responses: each request "+
			"waits out its own Retry-After, or 3, 6 and 12 s when the response has none, and the row fails after "+
			"%d retries. No pause is shared between workers. The one-worker loop sends the rows one after "+
			"another and waits out every 429 without a retry limit. It runs for at most %s, and its wall time "+
			"for the whole wave is projected from its rate when it cannot finish in that time.",
			thousands(wv.rows), reclaimRun.limit, waveWorkers, sdkMaxRetries, seconds(budget))},
		table: table{header: []string{"driver", "workers", "wall time", "wall time / reclaim's", "rows revoked",
			"rows failed", "Graph requests", "429 share"}},
	}
	blk.table.add("reclaim (adaptive rate, shared pause)", strconv.Itoa(waveWorkers), seconds(reclaimRun.elapsed), "1",
		thousands(int(reclaimRun.revoked)), thousands(int(reclaimRun.failed)),
		thousands(reclaimRun.requests), percent(reclaimRun.throttledShare()))
	blk.table.add("SDK retry model", strconv.Itoa(waveWorkers), seconds(sdk.loop.elapsed),
		fmt.Sprintf("%.2f", sdk.loop.elapsed.Seconds()/reclaimRun.elapsed.Seconds()),
		thousands(sdk.loop.revoked), thousands(sdk.loop.failed), thousands(sdk.requests), percent(sdk.throttledShare()))
	blk.table.add("one-worker loop", "1", seqWall, seqWallVsReclaim, thousands(seq.loop.revoked),
		thousands(seq.loop.failed), thousands(seq.requests), percent(seq.throttledShare()))
	if seq.loop.rows < wv.rows {
		blk.notes = append(blk.notes, fmt.Sprintf("The one-worker loop's wall time is projected. It finished %s of %s "+
			"rows in its %s budget, and its rows and requests in the table are those of that budget.", thousands(seq.loop.rows), thousands(wv.rows), seconds(budget)))
	}
	return blk, nil
}
