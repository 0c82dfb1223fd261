package main

import (
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"reclaim/graphclient/graphsim"
)

// precheckCatalogue is a wave with one row per kind of app and license, and the simulator's catalogue
// for it: a VPP app whose license holders span several pages with user licenses among them, a second
// VPP app, an app that is not an iosVppApp, and an app that does not exist.
type precheckCatalogue struct {
	rows []row
	apps map[string]graphsim.App
	// devices are the devices of the wave that hold no license: they exist all the same.
	devices []string
	// licensed and unlicensed count the wave's rows of VPP apps by whether their device holds a license.
	licensed, unlicensed int
}

func newPrecheckCatalogue(seed uint64, perApp int) precheckCatalogue {
	r := rand.New(rand.NewPCG(seed, seed))
	vppA, vppB, store, missing := guid(r), guid(r), guid(r), guid(r)
	c := precheckCatalogue{apps: map[string]graphsim.App{
		vppA:  {VPP: true, UserLicenses: 5},
		vppB:  {VPP: true},
		store: {VPP: false},
	}}
	for i := range perApp {
		for _, app := range []string{vppA, vppB, store, missing} {
			device := guid(r)
			want := "not_found"
			switch app {
			case store:
				want = "failed"
			case vppA, vppB:
				// Every third device holds no license; devices outside the wave hold some too.
				entry := c.apps[app]
				if i%3 == 2 {
					want = "not_licensed"
					c.unlicensed++
					c.devices = append(c.devices, device)
				} else {
					want = "revoked"
					entry.Licensed = append(entry.Licensed, device)
					c.licensed++
				}
				entry.Licensed = append(entry.Licensed, guid(r))
				c.apps[app] = entry
			}
			c.rows = append(c.rows, row{app: app, device: device, want: want})
		}
	}
	return c
}

func TestPrecheckSkipsUnlicensedPairs(t *testing.T) {
	c := newPrecheckCatalogue(31, 12)
	sim := startSim(t, graphsim.Options{Apps: c.apps, Devices: c.devices, LicensePageSize: 4, LatencyMax: 5 * time.Millisecond})
	input := writeWave(t, c.rows)
	out := filepath.Join(t.TempDir(), "out")

	res := sim.run(t, "--input", input, "--out-dir", out, "--rate", "200", "--workers", "8")
	res.wantCode(t, 1) // not_found and failed rows
	outcomes := checkOutcomes(t, out, c.rows)

	stats := sim.Stats()
	revokedOnce(t, stats, c.rows)
	if stats.RevokeCallsTotal != c.licensed {
		t.Errorf("revoke requests = %d, want %d: one per licensed pair and none for other rows", stats.RevokeCallsTotal, c.licensed)
	}
	if stats.NoOpRevokesTotal != 0 {
		t.Errorf("revokes that removed nothing = %d, want 0", stats.NoOpRevokesTotal)
	}
	// Each VPP app lists 20 device licenses (8 of the wave's devices and 12 others) at 4 per page.
	if stats.LicensePages < 2*20/4 {
		t.Errorf("license pages served = %d, want several per VPP app", stats.LicensePages)
	}

	for i, r := range c.rows {
		got := outcomes[i+1]
		switch r.want {
		case "failed":
			if got.errorCode != "not_vpp_app" || got.attempts != "0" {
				t.Errorf("row %d of the store app: error code %q, attempts %s; want not_vpp_app and 0", i+1, got.errorCode, got.attempts)
			}
		case "not_found":
			if got.httpStatus != "404" || got.attempts != "0" {
				t.Errorf("row %d of the missing app: http status %s, attempts %s; want 404 and 0", i+1, got.httpStatus, got.attempts)
			}
		case "not_licensed":
			if got.httpStatus != "" || got.attempts != "0" {
				t.Errorf("row %d without license: http status %q, attempts %s; want none", i+1, got.httpStatus, got.attempts)
			}
		}
	}

	summary := readSummary(t, out)
	if got := summary["not_licensed"]; got != strconv.Itoa(c.unlicensed) {
		t.Errorf("summary not_licensed = %s, want %d", got, c.unlicensed)
	}
	if got := summary["reads"]; got != strconv.Itoa(stats.ReadRequests) {
		t.Errorf("summary reads = %s, want the %d read requests the simulator received", got, stats.ReadRequests)
	}
	if got := summary["requests"]; got != strconv.Itoa(c.licensed) {
		t.Errorf("summary requests = %s, want %d", got, c.licensed)
	}
}

func TestPrecheckNotLicensedCountsAsSuccess(t *testing.T) {
	c := newPrecheckCatalogue(32, 6)
	var rows []row
	apps := map[string]graphsim.App{}
	for _, r := range c.rows {
		if r.want == "revoked" || r.want == "not_licensed" {
			rows = append(rows, r)
			apps[r.app] = c.apps[r.app]
		}
	}
	sim := startSim(t, graphsim.Options{Apps: apps, Devices: c.devices, LicensePageSize: 3})
	out := filepath.Join(t.TempDir(), "out")

	res := sim.run(t, "--input", writeWave(t, rows), "--out-dir", out, "--rate", "200")
	res.wantCode(t, 0)
	checkOutcomes(t, out, rows)
}

func TestPrecheckOffSendsEveryRow(t *testing.T) {
	c := newPrecheckCatalogue(33, 6)
	sim := startSim(t, graphsim.Options{Apps: c.apps, Devices: c.devices})
	out := filepath.Join(t.TempDir(), "out")
	// Without the precheck, a revoke of a pair without license is accepted like any other.
	rows := make([]row, len(c.rows))
	for i, r := range c.rows {
		if r.want == "not_licensed" {
			r.want = "revoked"
		}
		rows[i] = r
	}

	res := sim.run(t, "--input", writeWave(t, rows), "--out-dir", out, "--rate", "200", "--precheck=false")
	res.wantCode(t, 1)
	checkOutcomes(t, out, rows)
	stats := sim.Stats()
	if stats.ReadRequests != 0 {
		t.Errorf("read requests = %d, want 0 with --precheck=false", stats.ReadRequests)
	}
	if stats.NoOpRevokesTotal != c.unlicensed {
		t.Errorf("revokes that removed nothing = %d, want %d", stats.NoOpRevokesTotal, c.unlicensed)
	}
	if got := readSummary(t, out)["reads"]; got != "0" {
		t.Errorf("summary reads = %s, want 0", got)
	}
}

func TestPrecheckRetriesThrottledReads(t *testing.T) {
	c := newPrecheckCatalogue(34, 9)
	sim := startSim(t, graphsim.Options{Apps: c.apps, Devices: c.devices, LicensePageSize: 2,
		ReadLimit: 4, ReadWindow: 500 * time.Millisecond, RetryAfter: graphsim.RetryAfterDecimal})
	out := filepath.Join(t.TempDir(), "out")

	res := sim.run(t, "--input", writeWave(t, c.rows), "--out-dir", out, "--rate", "200")
	res.wantCode(t, 1)
	checkOutcomes(t, out, c.rows)
	stats := sim.Stats()
	if stats.ReadThrottled == 0 {
		t.Fatalf("no read was throttled; the test needs a tighter read limit")
	}
	if stats.RevokeCallsTotal != c.licensed {
		t.Errorf("revoke requests = %d, want %d", stats.RevokeCallsTotal, c.licensed)
	}
	summary := readSummary(t, out)
	if got := summary["reads"]; got != strconv.Itoa(stats.ReadRequests) {
		t.Errorf("summary reads = %s, want %d, throttled reads included", got, stats.ReadRequests)
	}
	if got := summary["reads_throttled"]; got != strconv.Itoa(stats.ReadThrottled) {
		t.Errorf("summary reads_throttled = %s, want %d", got, stats.ReadThrottled)
	}
}
