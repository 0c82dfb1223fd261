package reclaim

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func TestParseGUID(t *testing.T) {
	tests := []struct {
		in   string
		want string // normalised form; "" when in is not a GUID
	}{
		{in: app1, want: app1},
		{in: strings.ToUpper(app1), want: app1},
		{in: "{" + app1 + "}", want: app1},
		{in: " \t{" + app1 + "}\n", want: app1},
		{in: "\u00a0" + app1 + "\u00a0", want: app1},
		{in: "00000000-0000-0000-0000-000000000000", want: "00000000-0000-0000-0000-000000000000"},
		{in: "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", want: "ffffffff-ffff-ffff-ffff-ffffffffffff"},
		{in: ""},
		{in: "   "},
		{in: "0f8fad5bd9cb469fa16570867728950e"},
		{in: "0f8fad5b-d9cb-469f-a165-70867728950"},
		{in: "0f8fad5b-d9cb-469f-a165-70867728950e0"},
		{in: "0f8fad5b-d9cb-469f-a16570867728950e-"},
		{in: "0f8fad5bd-9cb-469f-a165-70867728950e"},
		{in: "0f8fad5b-d9cb-469f-a165-70867728950g"},
		{in: "0f8fad5b-d9cb-469f-a165+70867728950e"},
		{in: "{" + app1},
		{in: app1 + "}"},
		{in: "(" + app1 + ")"},
		{in: "{ " + app1 + " }"},
		{in: "urn:uuid:" + app1},
		{in: "0f8fad5b-d9cb-469f-a165-7086772895é"},
		{in: "0x8fad5b-d9cb-469f-a165-70867728950e"},
	}
	for _, tt := range tests {
		g, ok := parseGUID(tt.in)
		if ok != (tt.want != "") {
			t.Errorf("parseGUID(%q) ok = %v, want %v", tt.in, ok, !ok)
			continue
		}
		if ok && g.String() != tt.want {
			t.Errorf("parseGUID(%q).String() = %q, want %q", tt.in, g.String(), tt.want)
		}
	}
}

func TestPairSetAdd(t *testing.T) {
	s := newPairSet()
	steps := []struct {
		appID, deviceID string
		wantAdded       bool
		wantLen         int
	}{
		{app1, dev1, true, 1},
		{app1, dev1, false, 1},
		{app1, dev2, true, 2},
		{app2, dev1, true, 3},
		{dev1, app1, true, 4}, // the same GUIDs in the other roles are another pair
		{strings.ToUpper(app1), "{" + dev2 + "}", false, 4},
		{app2, dev1, false, 4},
		// Differs from (app1, dev1) in the last hex digit of the device id only.
		{app1, "7c9e6679-7425-40de-944b-e07fc1f90ae6", true, 5},
		// Differs from (app1, dev1) in the first hex digit of the app id only.
		{"1f8fad5b-d9cb-469f-a165-70867728950e", dev1, true, 6},
	}
	for i, step := range steps {
		if got := s.Add(step.appID, step.deviceID); got != step.wantAdded {
			t.Errorf("step %d: Add(%s, %s) = %v, want %v", i+1, step.appID, step.deviceID, got, step.wantAdded)
		}
		if got := s.Len(); got != step.wantLen {
			t.Errorf("step %d: Len() = %d, want %d", i+1, got, step.wantLen)
		}
	}
}

func TestPairSetAddManyDevices(t *testing.T) {
	s := newPairSet()
	ids := pairIDs(10_000)
	for _, device := range ids {
		if !s.Add(app1, device) {
			t.Fatalf("Add(%s, %s) = false for a new pair", app1, device)
		}
	}
	for _, device := range ids {
		if s.Add(app1, device) {
			t.Fatalf("Add(%s, %s) = true for a pair already added", app1, device)
		}
	}
	if got, want := s.Len(), len(ids); got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
}

func TestPairSetAddInvalidIDPanics(t *testing.T) {
	for _, ids := range [][2]string{{"not-a-guid", dev1}, {app1, ""}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Add(%q, %q) did not panic", ids[0], ids[1])
				}
			}()
			newPairSet().Add(ids[0], ids[1])
		}()
	}
}

// pairIDs returns n distinct normalised GUIDs.
func pairIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-7425-40de-944b-%012x", i*2654435761%(1<<32), i)
	}
	return ids
}

// BenchmarkPairSetAdd adds new pairs to a set that grows to 1,000,000 pairs, so the figure includes
// map growth.
func BenchmarkPairSetAdd(b *testing.B) {
	apps := []string{app1, app2, dev1, dev2}
	devices := pairIDs(250_000)
	s := newPairSet()
	i := 0
	for b.Loop() {
		if i == len(apps)*len(devices) {
			s = newPairSet()
			i = 0
		}
		s.Add(apps[i%len(apps)], devices[i/len(apps)])
		i++
	}
}

// BenchmarkPairSetMemory reports the heap that a set of 1,000,000 pairs (4 apps with 250,000 devices
// each) keeps, per pair.
func BenchmarkPairSetMemory(b *testing.B) {
	apps := []string{app1, app2, dev1, dev2}
	devices := pairIDs(250_000)
	var bytesPerPair float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)

		s := newPairSet()
		for _, app := range apps {
			for _, device := range devices {
				s.Add(app, device)
			}
		}

		runtime.GC()
		runtime.ReadMemStats(&after)
		if s.Len() != 1_000_000 {
			b.Fatalf("Len() = %d, want 1000000", s.Len())
		}
		bytesPerPair = float64(after.HeapAlloc-before.HeapAlloc) / float64(s.Len())
		runtime.KeepAlive(s)
	}
	b.ReportMetric(bytesPerPair, "bytes/pair")
}
