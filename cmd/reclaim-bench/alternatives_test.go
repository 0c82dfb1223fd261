package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"reclaim/graphclient"
	"reclaim/graphclient/graphsim"
)

func TestSDKRetryWait(t *testing.T) {
	tests := []struct {
		retryAfter time.Duration
		retry      int
		want       time.Duration
	}{
		{0, 0, 3 * time.Second},
		{0, 1, 6 * time.Second},
		{0, 2, 12 * time.Second},
		{0, 3, 24 * time.Second},
		{249 * time.Millisecond, 0, 249 * time.Millisecond},
		{2 * time.Second, 2, 2 * time.Second},
	}
	for _, tt := range tests {
		if got := sdkRetryWait(tt.retryAfter, tt.retry); got != tt.want {
			t.Errorf("sdkRetryWait(%v, %d) = %v, want %v", tt.retryAfter, tt.retry, got, tt.want)
		}
	}
}

func TestSDKRetryAfter(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		wantWait      time.Duration
		wantRetryable bool
	}{
		{"429 with Retry-After", &graphclient.Error{StatusCode: http.StatusTooManyRequests, RetryAfter: 2 * time.Second}, 2 * time.Second, true},
		{"429 without Retry-After", &graphclient.Error{StatusCode: http.StatusTooManyRequests}, 0, true},
		{"503", &graphclient.Error{StatusCode: http.StatusServiceUnavailable, RetryAfter: time.Second}, time.Second, true},
		{"504", &graphclient.Error{StatusCode: http.StatusGatewayTimeout}, 0, true},
		{"wrapped 429", fmt.Errorf("send: %w", &graphclient.Error{StatusCode: http.StatusTooManyRequests}), 0, true},
		{"500", &graphclient.Error{StatusCode: http.StatusInternalServerError}, 0, false},
		{"404", &graphclient.Error{StatusCode: http.StatusNotFound}, 0, false},
		{"no response", &graphclient.TransportError{Err: errors.New("connection reset")}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait, retryable := sdkRetryAfter(tt.err)
			if wait != tt.wantWait || retryable != tt.wantRetryable {
				t.Errorf("sdkRetryAfter = %v, %v; want %v, %v", wait, retryable, tt.wantWait, tt.wantRetryable)
			}
		})
	}
}

// TestSDKModelGivesUp runs the SDK retry model against graphsim with a write limit far below what its
// workers send, so that some rows spend their retries and fail.
func TestSDKModelGivesUp(t *testing.T) {
	wv := &wave{seed: 7, rows: 60, licensed: everyRow}
	sim, err := startSimulator(graphsim.Options{Apps: wv.catalogue(), WriteLimit: 5, WriteWindow: 100 * time.Millisecond,
		RetryAfter: graphsim.RetryAfterDecimal}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	client, err := newGraphClient(sim)
	if err != nil {
		t.Fatal(err)
	}

	got := runSDKModel(context.Background(), client, wv.pairs(), 20)
	stats := sim.Stats()
	written := writes(stats)
	if got.rows != wv.rows || got.revoked+got.failed != wv.rows {
		t.Errorf("rows = %d, revoked %d + failed %d; want %d rows in all", got.rows, got.revoked, got.failed, wv.rows)
	}
	if got.failed == 0 {
		t.Errorf("failed rows = 0, want some: 20 workers against 5 writes per 100 ms should spend 3 retries on some rows")
	}
	if removed := stats.LicensesRemovedTotal; removed != got.revoked {
		t.Errorf("licenses removed = %d, want %d (the revoked rows)", removed, got.revoked)
	}
	// Each row gets one first attempt and at most sdkMaxRetries retries.
	if upper := wv.rows * (1 + sdkMaxRetries); written > upper {
		t.Errorf("write requests = %d, want at most %d", written, upper)
	}
	if want := got.revoked + got.failed*(1+sdkMaxRetries); written < want {
		t.Errorf("write requests = %d, want at least %d: each failed row must have been sent %d times", written, want, 1+sdkMaxRetries)
	}
	if stats.Throttled != written-got.revoked {
		t.Errorf("429 responses = %d, want %d (every write that did not revoke)", stats.Throttled, written-got.revoked)
	}
}

func TestSequentialLoopWaitsOutThrottling(t *testing.T) {
	wv := &wave{seed: 8, rows: 12, licensed: everyRow}
	sim, err := startSimulator(graphsim.Options{Apps: wv.catalogue(), WriteLimit: 4, WriteWindow: 200 * time.Millisecond,
		RetryAfter: graphsim.RetryAfterDecimal}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	client, err := newGraphClient(sim)
	if err != nil {
		t.Fatal(err)
	}

	got := runSequential(context.Background(), client, wv.pairs(), time.Minute)
	if got.rows != wv.rows || got.revoked != wv.rows || got.failed != 0 {
		t.Errorf("rows %d, revoked %d, failed %d; want all %d revoked", got.rows, got.revoked, got.failed, wv.rows)
	}
	if throttled := sim.Stats().Throttled; throttled == 0 {
		t.Errorf("429 responses = 0, want some: 12 rows in a row against 4 writes per 200 ms")
	}
}
