package reclaim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// indexCase is one data line of a test input and the outcome that the index must give its row.
type indexCase struct {
	line          string
	wantDuplicate bool // for a valid row
	wantInvalid   bool
}

// writeIndexInput writes a file with header appId,deviceId and the lines of cases, and returns its path.
func writeIndexInput(t testing.TB, cases []indexCase) string {
	t.Helper()
	var content strings.Builder
	content.WriteString("appId,deviceId\n")
	for _, c := range cases {
		content.WriteString(c.line + "\n")
	}
	return writeInput(t, content.String())
}

// checkIndex checks every row of the file at path against cases: valid rows must be in the index and
// be duplicates exactly when the case expects it, and invalid rows must be invalid.
func checkIndex(t *testing.T, index *waveIndex, path string, cases []indexCase) {
	t.Helper()
	rows, err := readInput(t, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(cases) {
		t.Fatalf("read %d rows, want %d", len(rows), len(cases))
	}
	pairs := 0
	for n, row := range rows {
		want := cases[n]
		if (row.Invalid != "") != want.wantInvalid {
			t.Errorf("row %d (%s): Invalid = %q, want invalid %v", row.Index, want.line, row.Invalid, want.wantInvalid)
			continue
		}
		if row.Invalid != "" {
			if _, ok := index.findRow(row); ok {
				t.Errorf("row %d (%s): invalid row found in the index", row.Index, want.line)
			}
			continue
		}
		pair, duplicate, change := index.checkRow(row)
		if change != "" {
			t.Errorf("row %d (%s): checkRow change = %q, want none", row.Index, want.line, change)
		}
		if found, _ := index.findRow(row); pair != found {
			t.Errorf("row %d (%s): checkRow pair = %d, want the position %d that findRow gives", row.Index, want.line, pair, found)
		}
		if duplicate != want.wantDuplicate {
			t.Errorf("row %d (%s): duplicate = %v, want %v", row.Index, want.line, duplicate, want.wantDuplicate)
		}
		if !duplicate {
			pairs++
		}
	}
	if got := index.pairCount(); got != pairs {
		t.Errorf("pairCount() = %d, want %d", got, pairs)
	}
}

// duplicateCases are rows whose ids are written in several ways, with the outcome of each.
var duplicateCases = []indexCase{
	{line: app1 + "," + dev1},
	{line: app1 + "," + dev2},
	{line: app2 + "," + dev1},
	{line: strings.ToUpper(app1) + "," + dev1, wantDuplicate: true},
	{line: "{" + app1 + "}, " + strings.ToUpper(dev2) + " ", wantDuplicate: true},
	{line: "not-a-guid," + dev3, wantInvalid: true},
	{line: app1 + "," + dev3},
	{line: dev1 + "," + app1}, // the same GUIDs in the other roles are another pair
	{line: app1 + ",", wantInvalid: true},
	{line: app2 + "," + dev1, wantDuplicate: true},
	// Differs from (app1, dev1) in the last hex digit of the device id only.
	{line: app1 + ",7c9e6679-7425-40de-944b-e07fc1f90ae6"},
	// Differs from (app1, dev1) in the first hex digit of the app id only.
	{line: "1f8fad5b-d9cb-469f-a165-70867728950e," + dev1},
	{line: app1 + "," + dev3, wantDuplicate: true},
	{line: app1 + "," + dev1, wantDuplicate: true},
}

func TestIndexInputDuplicates(t *testing.T) {
	path := writeIndexInput(t, duplicateCases)
	scanned, err := ScanInput(path)
	if err != nil {
		t.Fatal(err)
	}

	// The hint changes how often the file is read, never the result.
	for _, hint := range []int{0, scanned.Rows, scanned.Rows + 50, scanned.Rows - 1, 1} {
		t.Run(fmt.Sprintf("hint %d", hint), func(t *testing.T) {
			summary, index, err := indexInput(path, hint, nil)
			if err != nil {
				t.Fatalf("indexInput() error = %v", err)
			}
			if summary != scanned {
				t.Errorf("indexInput() summary = %+v, want the ScanInput summary %+v", summary, scanned)
			}
			checkIndex(t, index, path, duplicateCases)
		})
	}
}

func TestIndexInputManyApps(t *testing.T) {
	const apps, devices = 300, 40
	r := rand.New(rand.NewPCG(3, 4))
	appIDs, deviceIDs := randomGUIDs(r, apps), randomGUIDs(r, devices)

	// Each app gets a random subset of the devices, some of them twice, in a random order of rows.
	type pair struct{ app, device int }
	var pairs []pair
	for a := range apps {
		for d := range devices {
			switch r.IntN(4) {
			case 0:
				pairs = append(pairs, pair{a, d})
			case 1:
				pairs = append(pairs, pair{a, d}, pair{a, d})
			}
		}
	}
	r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })

	cases := make([]indexCase, len(pairs))
	seen := make(map[pair]bool)
	wantDevices := make(map[int][]string)
	for i, p := range pairs {
		cases[i] = indexCase{line: appIDs[p.app] + "," + deviceIDs[p.device], wantDuplicate: seen[p]}
		if !seen[p] {
			wantDevices[p.app] = append(wantDevices[p.app], deviceIDs[p.device])
		}
		seen[p] = true
	}
	path := writeIndexInput(t, cases)

	_, index, err := indexInput(path, 0, nil)
	if err != nil {
		t.Fatalf("indexInput() error = %v", err)
	}
	checkIndex(t, index, path, cases)

	if got := len(index.appIDs()); got != len(wantDevices) {
		t.Errorf("len(appIDs()) = %d, want %d", got, len(wantDevices))
	}
	if !slices.IsSortedFunc(index.appIDs(), compareGUIDs) {
		t.Errorf("appIDs() is not sorted")
	}
	// Each app's range holds exactly its devices, sorted.
	for a, want := range wantDevices {
		app, _ := parseGUID(appIDs[a])
		lo, hi := index.appRange(app)
		var got []string
		for i := lo; i < hi; i++ {
			got = append(got, index.device(i).String())
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("devices of app %s = %v, want %v", appIDs[a], got, want)
		}
	}

	unknown, _ := parseGUID("00000000-0000-0000-0000-000000000001")
	if lo, hi := index.appRange(unknown); lo != 0 || hi != 0 {
		t.Errorf("appRange(unknown app) = %d, %d, want 0, 0", lo, hi)
	}
	device, _ := parseGUID(deviceIDs[0])
	if _, ok := index.find(unknown, device); ok {
		t.Errorf("find(unknown app, %s) = true, want false", deviceIDs[0])
	}
}

// randomGUIDs returns n distinct random GUIDs in normalised form.
func randomGUIDs(r *rand.Rand, n int) []string {
	ids := make([]string, 0, n)
	seen := make(map[guidKey]bool)
	for len(ids) < n {
		var g guidKey
		for i := range g {
			g[i] = byte(r.UintN(256))
		}
		if !seen[g] {
			seen[g] = true
			ids = append(ids, g.String())
		}
	}
	return ids
}

func TestIndexInputEmptyAndInvalidOnly(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{name: "header only", content: "appId,deviceId\n"},
		{name: "invalid rows only", content: "appId,deviceId\nx,y\n" + app1 + ",\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, tt.content)
			_, index, err := indexInput(path, 0, nil)
			if err != nil {
				t.Fatalf("indexInput() error = %v", err)
			}
			if got := index.pairCount(); got != 0 {
				t.Errorf("pairCount() = %d, want 0", got)
			}
			app, _ := parseGUID(app1)
			device, _ := parseGUID(dev1)
			if _, ok := index.find(app, device); ok {
				t.Errorf("find() = true in an empty index")
			}
		})
	}
}

func TestIndexInputChangedBetweenReads(t *testing.T) {
	base := []string{app1 + "," + dev1, app1 + "," + dev2, app2 + "," + dev1}
	tests := []struct {
		name       string
		edit       []string
		wantChange string
	}{
		{name: "row added", edit: append(slices.Clone(base), app2+","+dev2), wantChange: "it now has more than 3 rows"},
		{name: "row removed", edit: base[:2], wantChange: "its size changed"},
		{name: "device changed in place", edit: []string{app1 + "," + dev1, app1 + "," + dev3, app2 + "," + dev1},
			wantChange: "its content changed: the SHA-256 differs"},
		{name: "rows swapped", edit: []string{base[1], base[0], base[2]}, wantChange: "its content changed: the SHA-256 differs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, "appId,deviceId\n"+strings.Join(base, "\n")+"\n")
			counted, err := ScanInput(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("appId,deviceId\n"+strings.Join(tt.edit, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}

			_, index, err := indexCounted(path, counted, nil)
			if index != nil {
				t.Errorf("indexCounted() index = %v, want nil", index)
			}
			var usage *UsageError
			if !errors.As(err, &usage) {
				t.Fatalf("indexCounted() error = %v, want a UsageError", err)
			}
			if !strings.Contains(err.Error(), "changed while reclaim was reading it") || !strings.Contains(err.Error(), tt.wantChange) {
				t.Errorf("indexCounted() error = %q, want an input-changed error with %q", err, tt.wantChange)
			}
		})
	}
}

func TestFillIndexRowsOverMax(t *testing.T) {
	path := writeIndexInput(t, duplicateCases)
	scanned, err := ScanInput(path)
	if err != nil {
		t.Fatal(err)
	}

	var reserved []int64
	summary, index, err := fillIndex(path, scanned.Rows-1, func(n int64) { reserved = append(reserved, n) })
	if err != nil {
		t.Fatalf("fillIndex() error = %v", err)
	}
	if index != nil {
		t.Errorf("fillIndex() index = %v, want nil for a file with more rows than the maximum", index)
	}
	// The read goes on to the end, so that the summary can be compared with a checkpoint.
	if summary != scanned {
		t.Errorf("fillIndex() summary = %+v, want %+v", summary, scanned)
	}
	if want := []int64{indexBytesFor(scanned.Rows - 1)}; !slices.Equal(reserved, want) {
		t.Errorf("reserved %v bytes, want %v", reserved, want)
	}
}

func TestIndexInputReservesBeforeEachFill(t *testing.T) {
	path := writeIndexInput(t, duplicateCases)
	rows := len(duplicateCases)
	tests := []struct {
		hint int
		want []int64
	}{
		{hint: 0, want: []int64{indexBytesFor(rows)}},
		{hint: rows, want: []int64{indexBytesFor(rows)}},
		{hint: rows - 1, want: []int64{indexBytesFor(rows - 1), indexBytesFor(rows)}},
	}
	for _, tt := range tests {
		var reserved []int64
		if _, _, err := indexInput(path, tt.hint, func(n int64) { reserved = append(reserved, n) }); err != nil {
			t.Fatalf("indexInput(hint %d) error = %v", tt.hint, err)
		}
		if !slices.Equal(reserved, tt.want) {
			t.Errorf("indexInput(hint %d) reserved %v bytes, want %v", tt.hint, reserved, tt.want)
		}
	}
}

func TestIndexCheckRowAfterEdit(t *testing.T) {
	path := writeInput(t, "appId,deviceId\n"+app1+","+dev1+"\n"+app1+","+dev2+"\n"+app1+","+dev1+"\n")
	_, index, err := indexInput(path, 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		row        Row
		wantChange string
	}{
		{name: "pair not in the file", row: validRow(2, 3, app1, dev3),
			wantChange: "row 2, app " + app1 + " and device " + dev3 + ", was not in the file when the run started"},
		{name: "pair moved before its first row", row: validRow(1, 2, app1, dev2),
			wantChange: "row 1 has the app and device id that row 2 had first when the run started"},
		{name: "app and device swapped", row: validRow(1, 2, dev1, app1),
			wantChange: "was not in the file when the run started"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, duplicate, change := index.checkRow(tt.row)
			if duplicate || !strings.Contains(change, tt.wantChange) {
				t.Errorf("checkRow() = %v, %q, want false and a change with %q", duplicate, change, tt.wantChange)
			}
		})
	}
}

func TestIndexLicensedBits(t *testing.T) {
	// 100 devices for each of two apps: app1's pairs take positions 0-99, app2's 100-199, so the two
	// apps share the 64-bit word of positions 64-127.
	const devices = 100
	deviceIDs := randomGUIDs(rand.New(rand.NewPCG(7, 8)), devices)
	var content strings.Builder
	content.WriteString("appId,deviceId\n")
	for _, app := range []string{app1, app2} {
		for _, device := range deviceIDs {
			content.WriteString(app + "," + device + "\n")
		}
	}
	path := writeInput(t, content.String())
	_, index, err := indexInput(path, 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	// app1 gets the licenses of even devices, app2 of odd ones, each from its own goroutine, while a
	// third goroutine reads bits of both apps.
	licensedDevices := func(parity int) []string {
		var ids []string
		for d, id := range deviceIDs {
			if d%2 == parity {
				ids = append(ids, strings.ToUpper(id))
			}
		}
		return append(ids, "not-a-guid", dev1) // neither is a device of the index
	}
	var marked [2]int
	var wg sync.WaitGroup
	for a, app := range []string{app1, app2} {
		wg.Go(func() { marked[a] = index.markLicensed(app, licensedDevices(a)) })
	}
	wg.Go(func() {
		for i := range index.pairCount() {
			index.licensed(i)
		}
	})
	wg.Wait()

	for a, got := range marked {
		if got != devices/2 {
			t.Errorf("markLicensed(app %d) = %d, want %d", a+1, got, devices/2)
		}
	}
	for a, app := range []string{app1, app2} {
		appKey, _ := parseGUID(app)
		for d, id := range deviceIDs {
			device, _ := parseGUID(id)
			i, ok := index.find(appKey, device)
			if !ok {
				t.Fatalf("find(%s, %s) = false, want true", app, id)
			}
			if got, want := index.licensed(i), d%2 == a; got != want {
				t.Errorf("licensed(%s, %s) = %v, want %v", app, id, got, want)
			}
		}
	}

	// Marking again finds the same pairs but marks nothing new.
	if got := index.markLicensed(app1, licensedDevices(0)); got != 0 {
		t.Errorf("markLicensed() again = %d, want 0", got)
	}
	if got := index.markLicensed("not-a-guid", deviceIDs); got != 0 {
		t.Errorf("markLicensed(invalid app) = %d, want 0", got)
	}
	i, _ := index.find(mustGUID(t, app1), mustGUID(t, deviceIDs[1]))
	if !index.setLicensed(i) {
		t.Errorf("setLicensed() of an unmarked pair = false, want true")
	}
	if index.setLicensed(i) {
		t.Errorf("setLicensed() of a marked pair = true, want false")
	}
}

func mustGUID(t *testing.T, s string) guidKey {
	t.Helper()
	g, ok := parseGUID(s)
	if !ok {
		t.Fatalf("parseGUID(%q) = false", s)
	}
	return g
}

func TestIndexBuilderInvalidIDPanics(t *testing.T) {
	for _, ids := range [][2]string{{"not-a-guid", dev1}, {app1, ""}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("add(valid row with %q, %q) did not panic", ids[0], ids[1])
				}
			}()
			builder, err := newIndexBuilder("input.csv", 1)
			if err != nil {
				t.Fatal(err)
			}
			builder.add(validRow(1, 2, ids[0], ids[1]))
		}()
	}
}

// benchmarkRows returns n valid rows over four apps, with distinct devices spread over the id space.
func benchmarkRows(n int) []Row {
	apps := []string{app1, app2, dev1, dev2}
	rows := make([]Row, n)
	for i := range rows {
		device := fmt.Sprintf("%08x-7425-40de-944b-%012x", uint32(i)*2654435761, i)
		rows[i] = validRow(i+1, i+2, apps[i%len(apps)], device)
	}
	return rows
}

// BenchmarkWaveIndexMemory reports the heap that the index of 1,000,000 distinct pairs over four apps
// keeps, per row.
func BenchmarkWaveIndexMemory(b *testing.B) {
	rows := benchmarkRows(1_000_000)
	var bytesPerRow float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)

		builder, err := newIndexBuilder("input.csv", len(rows))
		if err != nil {
			b.Fatal(err)
		}
		for _, row := range rows {
			builder.add(row)
		}
		index := builder.build()

		runtime.GC()
		runtime.ReadMemStats(&after)
		if index.pairCount() != len(rows) {
			b.Fatalf("pairCount() = %d, want %d", index.pairCount(), len(rows))
		}
		bytesPerRow = float64(after.HeapAlloc-before.HeapAlloc) / float64(len(rows))
		runtime.KeepAlive(index)
	}
	b.ReportMetric(bytesPerRow, "bytes/row")
}

// BenchmarkWaveIndexBuild adds 1,000,000 parsed rows to a builder and builds the index: the parsing of
// the ids, the sort and the compaction, without reading a file.
func BenchmarkWaveIndexBuild(b *testing.B) {
	rows := benchmarkRows(1_000_000)
	built := 0
	for b.Loop() {
		builder, err := newIndexBuilder("input.csv", len(rows))
		if err != nil {
			b.Fatal(err)
		}
		for _, row := range rows {
			builder.add(row)
		}
		builder.build()
		built++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(built*len(rows)), "ns/row")
}

// BenchmarkIndexInput indexes a generated 100,000-row file without a hint, as a new job does: one read
// counts the rows and a second fills the index.
func BenchmarkIndexInput(b *testing.B) {
	const rows = 100_000
	path := writeBenchmarkInput(b, rows)
	files := 0
	for b.Loop() {
		if _, _, err := indexInput(path, 0, nil); err != nil {
			b.Fatal(err)
		}
		files++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(files*rows), "ns/row")
}

// BenchmarkWaveIndexCheckRow looks up rows in the index of 1,000,000 pairs, as the feed does for every
// valid row: in file order, which is a random order of index positions because the device ids are
// spread over the id space.
func BenchmarkWaveIndexCheckRow(b *testing.B) {
	rows := benchmarkRows(1_000_000)
	builder, err := newIndexBuilder("input.csv", len(rows))
	if err != nil {
		b.Fatal(err)
	}
	for _, row := range rows {
		builder.add(row)
	}
	index := builder.build()
	i := 0
	for b.Loop() {
		row := rows[i%len(rows)]
		if _, duplicate, change := index.checkRow(row); duplicate || change != "" {
			b.Fatalf("checkRow(row %d) = %v, %q", row.Index, duplicate, change)
		}
		i++
	}
}

func TestIndexChangedRow(t *testing.T) {
	const (
		app     = "6513270e-269e-4d37-b2a7-4de452e6b438"
		device1 = "36f675cc-81e7-4ef5-a8e2-5d940ed90475"
		device2 = "6cad4a26-8d11-4ece-9738-f7d93d9c1724"
	)
	path := writeInput(t, "appId,deviceId\n"+app+","+device1+"\n"+app+","+device2+"\n"+app+",not-a-guid\n")
	_, index, err := indexInput(path, 0, nil)
	if err != nil {
		t.Fatalf("indexInput() error = %v", err)
	}

	tests := []struct {
		name    string
		row     Row
		changed bool
	}{
		{"same valid row", Row{Index: 2, AppID: app, DeviceID: device2}, false},
		{"same invalid row", Row{Index: 3, AppID: app, DeviceID: "not-a-guid", Invalid: invalidReason(t, path, 3)}, false},
		{"copy of an earlier pair", Row{Index: 2, AppID: app, DeviceID: device1}, true},
		{"typo makes it invalid", Row{Index: 2, AppID: app, DeviceID: device2[:35] + "g", Invalid: "device id is not a GUID"}, true},
		{"invalid row made valid", Row{Index: 3, AppID: app, DeviceID: device2}, true},
		{"row past the end", Row{Index: 4, AppID: app, DeviceID: device2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			change := index.changedRow(tt.row)
			if got := change != ""; got != tt.changed {
				t.Errorf("changedRow(%+v) = %q, want changed %v", tt.row, change, tt.changed)
			}
		})
	}
}

// invalidReason returns the Invalid reason of row n of the file at path, as the reader gives it.
func invalidReason(t *testing.T, path string, n int) string {
	t.Helper()
	in, err := OpenInput(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for {
		row, err := in.Next()
		if err != nil {
			t.Fatalf("row %d not found: %v", n, err)
		}
		if row.Index == n {
			return row.Invalid
		}
	}
}
