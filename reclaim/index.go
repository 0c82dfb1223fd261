package reclaim

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sync/atomic"
)

// indexEntry is one valid row in a waveIndex, in 24 bytes.
type indexEntry struct {
	// deviceHigh and deviceLow are the device id's 16 bytes read as two big-endian numbers, so that
	// entries sort in the byte order of guidKey.
	deviceHigh, deviceLow uint64
	app                   uint32 // position of the app id in waveIndex.apps
	row                   uint32 // Row.Index
}

// entryBytes is the size of an indexEntry.
const entryBytes = 24

// waveIndex contains every distinct (app id, device id) pair of an input file with the number of the
// first row that has it, sorted by app and device, and one licensed bit per pair. It is built once,
// before any row is sent, from a full read of the file (indexInput). A row is a duplicate when its
// pair's first row is an earlier row, whether that row is finished or not.
//
// Memory: 24 bytes per row of the file, because the entries slice is sized for the row count before the
// read, and duplicates are removed only after it. The buckets add about one byte per distinct pair, the
// licensed bits one bit, and each distinct app 28 bytes and at least 8 bytes of buckets.
//
// Concurrency: the pairs never change after the build, so every method is safe for concurrent use.
// setLicensed and licensed use atomic operations on 64-bit words, so goroutines may set and read bits
// at the same time, even bits of different apps that share a word. A reader sees every bit of an app
// only once the writer that fills that app has finished and the reader has synchronized with it, for
// example through a channel that the writer closes. Before that, licensed may return false for a pair
// whose bit is set a moment later.
type waveIndex struct {
	entries []indexEntry
	// apps lists the distinct app ids in ascending order, and spans[a] locates the pairs of apps[a].
	// spans has one more element, whose start is len(entries).
	apps  []guidKey
	spans []appSpan
	// buckets holds, for each app, the positions where its buckets start, and the end of its pairs.
	buckets []uint32
	// licensedBits has bit i%64 of word i/64 set when entries[i] is licensed.
	licensedBits []atomic.Uint64
	// prints has the rowPrint of every row, valid or not, at the row's index minus one.
	prints []uint32
}

// appSpan locates the pairs of one app. Its pairs are split into 2^bits buckets by the first bits of the
// device id, with about four pairs in each, so that a lookup reads the bucket bounds and a few pairs
// instead of binary searching the whole app. The feed looks rows up in file order, which is random
// order for the index, so each step of a binary search over a large app is a cache miss.
type appSpan struct {
	start  uint32 // position of the app's first pair
	bucket uint32 // position in buckets of the start of the app's first bucket
	bits   uint8
}

// pairsPerBucket is the number of pairs per bucket that bucketBits aims at.
const pairsPerBucket = 4

// bucketBits returns the number of leading device id bits that select a bucket in an app of n pairs:
// the largest b with 2^b * pairsPerBucket <= n, or 0.
func bucketBits(n int) uint8 {
	var bits uint8
	for n >= pairsPerBucket<<(bits+1) {
		bits++
	}
	return bits
}

// bucketOf returns the bucket of a device id whose first 8 bytes are high, in an app whose buckets use
// bits bits. With bits 0, the shift by 64 yields bucket 0.
func bucketOf(high uint64, bits uint8) uint64 { return high >> (64 - bits) }

// pairCount returns the number of distinct pairs.
func (x *waveIndex) pairCount() int { return len(x.entries) }

// appIDs returns the distinct app ids in ascending order. The caller must not change the slice.
func (x *waveIndex) appIDs() []guidKey { return x.apps }

// appRange returns the positions of app's pairs: lo to hi, hi excluded, sorted by device. It returns
// 0, 0 when no valid row has app.
func (x *waveIndex) appRange(app guidKey) (lo, hi int) {
	a, ok := slices.BinarySearchFunc(x.apps, app, compareGUIDs)
	if !ok {
		return 0, 0
	}
	return int(x.spans[a].start), int(x.spans[a+1].start)
}

// find returns the position of the pair (app, device), and false when no valid row has that pair.
func (x *waveIndex) find(app, device guidKey) (int, bool) {
	a, ok := slices.BinarySearchFunc(x.apps, app, compareGUIDs)
	if !ok {
		return 0, false
	}
	span := x.spans[a]
	high, low := splitGUID(device)
	at := span.bucket + uint32(bucketOf(high, span.bits))
	lo, hi := int(x.buckets[at]), int(x.buckets[at+1])
	i, ok := slices.BinarySearchFunc(x.entries[lo:hi], [2]uint64{high, low}, func(e indexEntry, d [2]uint64) int {
		if c := cmp.Compare(e.deviceHigh, d[0]); c != 0 {
			return c
		}
		return cmp.Compare(e.deviceLow, d[1])
	})
	return lo + i, ok
}

// findRow returns the position of a row's pair, and false when the row is invalid or its pair is not in
// the index.
func (x *waveIndex) findRow(row Row) (int, bool) {
	app, ok := parseGUID(row.AppID)
	if !ok {
		return 0, false
	}
	device, ok := parseGUID(row.DeviceID)
	if !ok {
		return 0, false
	}
	return x.find(app, device)
}

// firstRow returns the number of the first row that has the pair at position i.
func (x *waveIndex) firstRow(i int) int { return int(x.entries[i].row) }

// device returns the device id of the pair at position i.
func (x *waveIndex) device(i int) guidKey {
	var g guidKey
	binary.BigEndian.PutUint64(g[:8], x.entries[i].deviceHigh)
	binary.BigEndian.PutUint64(g[8:], x.entries[i].deviceLow)
	return g
}

// setLicensed marks the pair at position i as licensed, and reports whether it was not marked before.
func (x *waveIndex) setLicensed(i int) bool {
	bit := uint64(1) << (i % 64)
	return x.licensedBits[i/64].Or(bit)&bit == 0
}

// licensed reports whether the pair at position i is marked as licensed.
func (x *waveIndex) licensed(i int) bool {
	return x.licensedBits[i/64].Load()&(uint64(1)<<(i%64)) != 0
}

// markLicensed marks the pairs of appID with each device of deviceIDs as licensed, and returns how many
// pairs it marked that were not marked before. Devices without a pair of appID, and ids that are not
// GUIDs, are skipped, so deviceIDs may be a page of an app's license holders as Graph lists them.
func (x *waveIndex) markLicensed(appID string, deviceIDs []string) int {
	app, ok := parseGUID(appID)
	if !ok {
		return 0
	}
	marked := 0
	for _, id := range deviceIDs {
		device, ok := parseGUID(id)
		if !ok {
			continue
		}
		if i, ok := x.find(app, device); ok && x.setLicensed(i) {
			marked++
		}
	}
	return marked
}

// rowPrint returns a 32-bit hash of what a row means for the run: its ids, or its cells and the reason
// it is invalid. The notify value is left out, because its default differs between the reads.
func rowPrint(row Row) uint32 {
	h := fnv.New32a()
	h.Write([]byte(row.AppID))
	h.Write([]byte{0})
	h.Write([]byte(row.DeviceID))
	h.Write([]byte{0})
	h.Write([]byte(row.Invalid))
	return h.Sum32()
}

// changedRow describes how row differs from the row with its number when the index was built, or
// returns "" when it is the same. It catches an edit that keeps a row valid and its pair known, such as
// a row made into a copy of an earlier one, which checkRow alone would take for a duplicate.
func (x *waveIndex) changedRow(row Row) string {
	if row.Index < 1 || row.Index > len(x.prints) {
		return fmt.Sprintf("row %d was not in the file when the run started", row.Index)
	}
	if x.prints[row.Index-1] != rowPrint(row) {
		return fmt.Sprintf("row %d (line %d), now app %q and device %q, is not what it was when the run started",
			row.Index, row.Line, row.AppID, row.DeviceID)
	}
	return ""
}

// checkRow returns the position of a valid row's pair and whether the row is a duplicate of an earlier
// row. When the row does not match the index, which happens only when the file changed after the index
// was built, checkRow returns a description of the change for an input-changed error instead.
func (x *waveIndex) checkRow(row Row) (pair int, duplicate bool, change string) {
	i, ok := x.findRow(row)
	if !ok {
		return 0, false, fmt.Sprintf("row %d, app %s and device %s, was not in the file when the run started",
			row.Index, row.AppID, row.DeviceID)
	}
	first := x.firstRow(i)
	if first > row.Index {
		return 0, false, fmt.Sprintf("row %d has the app and device id that row %d had first when the run started",
			row.Index, first)
	}
	return i, first < row.Index, ""
}

// indexBytesFor returns the size in bytes of the index of a file of rows rows with few apps: the
// entries, the buckets and the licensed bits.
func indexBytesFor(rows int) int64 {
	return int64(rows)*(entryBytes+4) + int64(rows)/pairsPerBucket*4 + int64(rows+63)/64*8
}

// indexBuilder collects the valid rows of one read of an input file into a waveIndex. Its entries
// slice is allocated once, for the number of rows the file is expected to have, and never grows, so
// the rows after that number set overflow instead.
type indexBuilder struct {
	maxRows  int
	overflow bool
	entries  []indexEntry
	prints   []uint32
	// apps lists the app ids in order of first appearance, and appNumbers maps each to its position.
	apps       []guidKey
	appNumbers map[guidKey]uint32
	// lastApp and lastNumber repeat the latest app lookup, because rows usually come grouped by app.
	lastApp    guidKey
	lastNumber uint32
}

// newIndexBuilder returns a builder for a file of maxRows rows, or an error when row numbers that
// large do not fit the index.
func newIndexBuilder(path string, maxRows int) (*indexBuilder, error) {
	if maxRows > math.MaxUint32 {
		return nil, &InputError{Path: path, Problem: fmt.Sprintf("the file has %d rows, more than the %d that reclaim can index", maxRows, uint32(math.MaxUint32)),
			Fix: "split the file into smaller waves"}
	}
	return &indexBuilder{maxRows: maxRows, entries: make([]indexEntry, 0, maxRows), prints: make([]uint32, 0, maxRows),
		appNumbers: make(map[guidKey]uint32)}, nil
}

// add records row, which comes from Input.Next in row order.
func (b *indexBuilder) add(row Row) {
	if row.Index > b.maxRows {
		b.overflow = true
		return
	}
	b.prints = append(b.prints, rowPrint(row))
	if row.Invalid != "" {
		return
	}

	// Input.Next normalises the ids of a valid row, so a parse failure is a bug in the reader.
	app, ok := parseGUID(row.AppID)
	if !ok {
		panic(fmt.Sprintf("reclaim: indexBuilder.add: app id %q of valid row %d is not a GUID", row.AppID, row.Index))
	}
	device, ok := parseGUID(row.DeviceID)
	if !ok {
		panic(fmt.Sprintf("reclaim: indexBuilder.add: device id %q of valid row %d is not a GUID", row.DeviceID, row.Index))
	}

	number := b.lastNumber
	if len(b.apps) == 0 || app != b.lastApp {
		var known bool
		number, known = b.appNumbers[app]
		if !known {
			number = uint32(len(b.apps))
			b.apps = append(b.apps, app)
			b.appNumbers[app] = number
		}
		b.lastApp, b.lastNumber = app, number
	}
	high, low := splitGUID(device)
	b.entries = append(b.entries, indexEntry{deviceHigh: high, deviceLow: low, app: number, row: uint32(row.Index)})
}

// build sorts and compacts the entries into the index. The builder must not be used afterwards.
func (b *indexBuilder) build() *waveIndex {
	// Number the apps in ascending id order, so that the index can look an app up by binary search
	// and drop the map.
	order := make([]uint32, len(b.apps))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(p, q uint32) int { return compareGUIDs(b.apps[p], b.apps[q]) })
	renumber := make([]uint32, len(b.apps))
	apps := make([]guidKey, len(b.apps))
	for rank, old := range order {
		renumber[old] = uint32(rank)
		apps[rank] = b.apps[old]
	}
	entries := b.entries
	for i := range entries {
		entries[i].app = renumber[entries[i].app]
	}

	// Sort by app, device and row, then keep the first entry of each pair: the one with its first row.
	slices.SortFunc(entries, func(p, q indexEntry) int {
		if c := cmp.Compare(p.app, q.app); c != 0 {
			return c
		}
		if c := cmp.Compare(p.deviceHigh, q.deviceHigh); c != 0 {
			return c
		}
		if c := cmp.Compare(p.deviceLow, q.deviceLow); c != 0 {
			return c
		}
		return cmp.Compare(p.row, q.row)
	})
	entries = slices.CompactFunc(entries, func(p, q indexEntry) bool {
		return p.app == q.app && p.deviceHigh == q.deviceHigh && p.deviceLow == q.deviceLow
	})

	spans, buckets := bucketApps(entries, len(apps))

	prints := b.prints
	b.entries, b.prints, b.apps, b.appNumbers = nil, nil, nil, nil
	return &waveIndex{
		prints:       prints,
		entries:      entries,
		apps:         apps,
		spans:        spans,
		buckets:      buckets,
		licensedBits: make([]atomic.Uint64, (len(entries)+63)/64),
	}
}

// bucketApps returns the spans and buckets of the sorted, compacted entries of apps apps.
func bucketApps(entries []indexEntry, apps int) ([]appSpan, []uint32) {
	// Every app has a valid row, so the first entry of each app sets its start.
	spans := make([]appSpan, apps+1)
	for i := len(entries) - 1; i >= 0; i-- {
		spans[entries[i].app].start = uint32(i)
	}
	spans[apps].start = uint32(len(entries))

	total := 0
	for a := range apps {
		spans[a].bits = bucketBits(int(spans[a+1].start - spans[a].start))
		spans[a].bucket = uint32(total)
		total += 1<<spans[a].bits + 1
	}
	buckets := make([]uint32, total)
	for a := range apps {
		span, end := spans[a], spans[a+1].start
		count := uint64(1) << span.bits
		i := span.start
		for k := range count {
			for i < end && bucketOf(entries[i].deviceHigh, span.bits) < k {
				i++
			}
			buckets[span.bucket+uint32(k)] = i
		}
		buckets[span.bucket+uint32(count)] = end
	}
	return spans, buckets
}

// splitGUID returns the 16 bytes of g as two big-endian numbers.
func splitGUID(g guidKey) (high, low uint64) {
	return binary.BigEndian.Uint64(g[:8]), binary.BigEndian.Uint64(g[8:])
}

func compareGUIDs(a, b guidKey) int { return bytes.Compare(a[:], b[:]) }

// indexInput reads the file at path and returns its summary and its index. rowsHint is the number of
// rows the file is expected to have, from the checkpoint of the job, or 0 when unknown. reserve, unless
// nil, is called with the size of the index before each read that fills one.
//
// The index's entries are allocated once for the number of rows, so that the memory is known before
// the read and no slice doubles while it grows. With a hint the file is read once. Without one, or
// when the file has more rows than the hint because the checkpoint belongs to another input, a first
// read counts the rows and a second one fills the index. A file that changes between those two reads
// is an input-changed error.
func indexInput(path string, rowsHint int, reserve func(indexBytes int64)) (InputSummary, *waveIndex, error) {
	if rowsHint > 0 {
		summary, index, err := fillIndex(path, rowsHint, reserve)
		if err != nil || index != nil {
			return summary, index, err
		}
		// The file has more rows than the hint. The caller compares the summary with the checkpoint,
		// and the index must still be complete when it goes on, as it does after --restart.
		return indexCounted(path, summary, reserve)
	}

	counted, err := ScanInput(path)
	if err != nil {
		return InputSummary{}, nil, err
	}
	return indexCounted(path, counted, reserve)
}

// indexCounted fills the index in a second read of the file, after a read that returned counted.
func indexCounted(path string, counted InputSummary, reserve func(indexBytes int64)) (InputSummary, *waveIndex, error) {
	summary, index, err := fillIndex(path, counted.Rows, reserve)
	if err != nil {
		return InputSummary{}, nil, err
	}
	if index == nil {
		return InputSummary{}, nil, inputChangedError(path, fmt.Sprintf("it now has more than %d rows", counted.Rows))
	}
	if change := summaryChange(counted, summary); change != "" {
		return InputSummary{}, nil, inputChangedError(path, change)
	}
	return summary, index, nil
}

// fillIndex reads the file at path once and returns its summary and the index of its first maxRows
// rows. The index is nil when the file has more rows than maxRows.
func fillIndex(path string, maxRows int, reserve func(indexBytes int64)) (InputSummary, *waveIndex, error) {
	builder, err := newIndexBuilder(path, maxRows)
	if err != nil {
		return InputSummary{}, nil, err
	}
	if reserve != nil {
		reserve(indexBytesFor(maxRows))
	}
	summary, err := scanInput(path, builder.add)
	if err != nil {
		return InputSummary{}, nil, err
	}
	if builder.overflow {
		return summary, nil, nil
	}
	return summary, builder.build(), nil
}

// summaryChange describes how after differs from before, or returns "" when they are the same.
func summaryChange(before, after InputSummary) string {
	switch {
	case before.Size != after.Size:
		return fmt.Sprintf("its size changed from %d to %d bytes", before.Size, after.Size)
	case before.Rows != after.Rows:
		return fmt.Sprintf("it now has %d rows instead of %d", after.Rows, before.Rows)
	case before.SHA256 != after.SHA256:
		return "its content changed: the SHA-256 differs"
	}
	return ""
}

// inputChangedError returns the error for an input file that changed while reclaim was reading it.
func inputChangedError(path, change string) error {
	return usageErrorf("input %s changed while reclaim was reading it (%s); leave the file alone during a run, "+
		"then run again: reclaim will ask for --restart if the content differs from the job's", path, change)
}
