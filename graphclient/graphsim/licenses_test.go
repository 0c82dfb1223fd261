package graphsim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestGUIDKeyRoundTrip(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{appVPP, appVPP, true},
		{"6513270E-269E-4D37-B2A7-4DE452E6B438", "6513270e-269e-4d37-b2a7-4de452e6b438", true},
		{"00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000", true},
		{"6513270e269e4d37b2a74de452e6b438", "", false},
		{"{6513270e-269e-4d37-b2a7-4de452e6b438}", "", false},
		{"6513270g-269e-4d37-b2a7-4de452e6b438", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		key, ok := parseGUIDKey(tt.in)
		if ok != tt.wantOK {
			t.Errorf("parseGUIDKey(%q) ok = %v, want %v", tt.in, ok, tt.wantOK)
			continue
		}
		if ok && key.String() != tt.want {
			t.Errorf("parseGUIDKey(%q).String() = %q, want %q", tt.in, key.String(), tt.want)
		}
	}
}

// TestGUIDKeyOrder checks that keys sort as their lowercase GUID strings do, which the paging
// order relies on.
func TestGUIDKeyOrder(t *testing.T) {
	ids := randomGUIDs(21, 200)
	keys, err := parseGUIDKeys(ids, "test")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(keys, compareKeys)
	slices.Sort(ids)
	for i := range ids {
		if keys[i].String() != ids[i] {
			t.Fatalf("sorted key %d = %s, want %s", i, keys[i], ids[i])
		}
	}
}

// licenseModel is the obvious implementation of one app's license listing, to compare the
// catalogue with.
type licenseModel struct {
	licensed map[guidKey]bool
	users    []guidKey
}

// entries returns every entry of the listing in order.
func (m licenseModel) entries() []licenseCursor {
	var all []licenseCursor
	for key, licensed := range m.licensed {
		if licensed {
			all = append(all, licenseCursor{key: key})
		}
	}
	for _, key := range m.users {
		all = append(all, licenseCursor{key: key, user: true})
	}
	slices.SortFunc(all, compareCursors)
	return all
}

func compareCursors(a, b licenseCursor) int {
	if c := compareKeys(a.key, b.key); c != 0 {
		return c
	}
	return cmp.Compare(boolInt(a.user), boolInt(b.user))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestLicensePageMatchesModel runs random adds, revokes and page reads on an explicit app and an
// open-catalogue app, and compares every page with the model.
func TestLicensePageMatchesModel(t *testing.T) {
	for _, open := range []bool{false, true} {
		t.Run(fmt.Sprintf("open=%v", open), func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, uint64(boolInt(open))))
			ids := randomGUIDs(17, 40)
			pool, _ := parseGUIDKeys(ids, "test")
			appKey, _ := parseGUIDKey(appVPP)

			opts := Options{Apps: map[string]App{appVPP: {VPP: true, UserLicenses: 6}}}
			if open {
				// Half the devices are listed, and an open app's listing starts with all of them.
				opts = Options{Open: true, UnknownPrefix: DefaultUnknownPrefix, Devices: ids[:20]}
			}
			c, err := newCatalogue(opts)
			if err != nil {
				t.Fatal(err)
			}
			model := licenseModel{licensed: map[guidKey]bool{}}
			if open {
				for _, key := range pool[:20] {
					model.licensed[key] = true
				}
			} else {
				for _, user := range c.apps[appKey].users {
					model.users = append(model.users, user.key)
				}
			}

			revokedOpen := map[guidKey]bool{}
			for step := range 2000 {
				switch op := r.IntN(10); {
				case op < 2 && !open:
					var added []guidKey
					for range r.IntN(6) {
						added = append(added, pool[r.IntN(len(pool))])
					}
					c.addLicenses(c.apps[appKey], sortedUniqueKeys(slices.Clone(added)))
					for _, key := range added {
						model.licensed[key] = true
					}
				case op < 4:
					device := pool[r.IntN(len(pool))]
					outcome := c.revoke(appKey, device)
					// In the open catalogue, devices outside the listing hold a license too.
					wantRemoved := model.licensed[device] || (open && !revokedOpen[device])
					if (outcome == revokeRemoved) != wantRemoved {
						t.Fatalf("step %d: revoke(%s) = %v, want removed %v", step, device, outcome, wantRemoved)
					}
					delete(model.licensed, device)
					revokedOpen[device] = true
				default:
					checkPage(t, step, c, model, appKey, pool, r)
				}
			}
		})
	}
}

// checkPage reads one page from a random cursor and compares it with the model.
func checkPage(t *testing.T, step int, c *catalogue, model licenseModel, appKey guidKey, pool []guidKey, r *rand.Rand) {
	t.Helper()
	var after *licenseCursor
	switch r.IntN(3) {
	case 1:
		after = &licenseCursor{key: pool[r.IntN(len(pool))], user: r.IntN(2) == 0}
	case 2:
		if len(model.users) > 0 {
			after = &licenseCursor{key: model.users[r.IntN(len(model.users))], user: r.IntN(2) == 0}
		}
	}
	size := 1 + r.IntN(8)

	want := model.entries()
	if after != nil {
		want = slices.DeleteFunc(want, func(e licenseCursor) bool { return compareCursors(e, *after) <= 0 })
	}
	wantMore := len(want) > size
	want = want[:min(size, len(want))]

	page, more := c.licensePage(appKey, after, size)
	got := make([]licenseCursor, len(page))
	for i, entry := range page {
		got[i] = entry.cursor()
	}
	if !slices.Equal(got, want) || more != wantMore {
		t.Fatalf("step %d: licensePage(after %v, size %d) = %v, more %v; want %v, more %v", step, after, size, got, more, want, wantMore)
	}
}

func TestUnionKeys(t *testing.T) {
	key := func(n byte) guidKey { return guidKey{15: n} }
	tests := []struct {
		a, b, want []byte
	}{
		{nil, nil, nil},
		{[]byte{1, 3}, nil, []byte{1, 3}},
		{nil, []byte{2}, []byte{2}},
		{[]byte{1, 3, 5}, []byte{2, 3, 6}, []byte{1, 2, 3, 5, 6}},
		{[]byte{1, 3}, []byte{1, 3}, []byte{1, 3}},
	}
	for _, tt := range tests {
		var a, b, want []guidKey
		for _, n := range tt.a {
			a = append(a, key(n))
		}
		for _, n := range tt.b {
			b = append(b, key(n))
		}
		for _, n := range tt.want {
			want = append(want, key(n))
		}
		if got := unionKeys(a, b); !slices.Equal(got, want) {
			t.Errorf("unionKeys(%v, %v) = %v, want %v", tt.a, tt.b, got, want)
		}
	}
}

// newLargeCatalogue returns a catalogue with one VPP app licensed to n random devices, and the
// app's key and the device keys.
func newLargeCatalogue(tb testing.TB, n int) (*catalogue, guidKey, []guidKey) {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	devices := make([]guidKey, n)
	for i := range devices {
		for j := range devices[i] {
			devices[i][j] = byte(r.Uint32())
		}
	}
	c, err := newCatalogue(Options{})
	if err != nil {
		tb.Fatal(err)
	}
	appKey, _ := parseGUIDKey(appVPP)
	app, _ := c.ensureApp(appKey, true)
	c.addLicenses(app, sortedUniqueKeys(slices.Clone(devices)))
	return c, appKey, devices
}

// BenchmarkLicensePage reads one page of 100 from a random position among 1,000,000 licensed
// devices, with none or 90% of them revoked.
func BenchmarkLicensePage(b *testing.B) {
	for _, revokedShare := range []int{0, 90} {
		b.Run(fmt.Sprintf("revoked=%d%%", revokedShare), func(b *testing.B) {
			c, appKey, devices := newLargeCatalogue(b, 1_000_000)
			for i := range len(devices) * revokedShare / 100 {
				c.revoke(appKey, devices[i])
			}
			r := rand.New(rand.NewPCG(3, 4))

			entries := 0
			for b.Loop() {
				after := licenseCursor{key: devices[r.IntN(len(devices))]}
				page, _ := c.licensePage(appKey, &after, DefaultLicensePageSize)
				entries += len(page)
			}
			// A cursor near the end of the set returns a short page, so this is below 100.
			b.ReportMetric(float64(entries)/float64(b.N), "entries/page")
		})
	}
}

// BenchmarkRevokeLarge revokes licenses of an app licensed to 1,000,000 devices.
func BenchmarkRevokeLarge(b *testing.B) {
	c, appKey, devices := newLargeCatalogue(b, 1_000_000)
	i := 0
	for b.Loop() {
		c.revoke(appKey, devices[i%len(devices)])
		i++
	}
}

// BenchmarkCatalogueMemory reports the heap that a catalogue of one app licensed to 1,000,000
// devices keeps, per license.
func BenchmarkCatalogueMemory(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c, _, devices := newLargeCatalogue(b, n)
		devices = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/license")
		runtime.KeepAlive(c)
		runtime.KeepAlive(devices)
	}
}

// BenchmarkAddLicenses adds 1,000,000 devices given as GUID strings, in one call.
func BenchmarkAddLicenses(b *testing.B) {
	ids := randomGUIDs(5, 1_000_000)
	for i := range ids {
		ids[i] = strings.ToUpper(ids[i])
	}
	for b.Loop() {
		s, err := New(Options{ClientSecret: testSecret})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.AddLicenses(appVPP, true, ids); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkReadLicensesHTTP follows next links through the assignedLicenses of an app licensed to
// 1,000,000 devices, one page of 100 per iteration, over HTTPS on loopback.
func BenchmarkReadLicensesHTTP(b *testing.B) {
	s, err := New(Options{ClientSecret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.AddLicenses(appVPP, true, randomGUIDs(8, 1_000_000)); err != nil {
		b.Fatal(err)
	}
	token := getToken(b, s)

	link := licensesPath(appVPP)
	for b.Loop() {
		got, err := graphCall{method: http.MethodGet, path: strings.TrimPrefix(link, s.URL()), token: token}.send(s)
		if err != nil || got.resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %v, %s", link, err, got.body)
		}
		var page testLicensePage
		if err := json.Unmarshal(got.body, &page); err != nil {
			b.Fatal(err)
		}
		link = page.NextLink
		if link == "" {
			link = licensesPath(appVPP)
		}
	}
}
