package graphsim

import (
	"bytes"
	"encoding/hex"
	"math/bits"
	"slices"
)

// guidKey is a GUID as 16 bytes in the order of its hex digits, so that comparing two keys
// compares their lowercase GUID strings. The catalogue stores ids as keys rather than strings,
// which take 36 bytes plus a 16-byte header each.
type guidKey [16]byte

// parseGUIDKey parses a GUID in the 8-4-4-4-12 hex form, in either case.
func parseGUIDKey(s string) (guidKey, bool) {
	var key guidKey
	if !isGUID(s) {
		return key, false
	}
	digits := make([]byte, 0, 32)
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			digits = append(digits, s[i])
		}
	}
	if _, err := hex.Decode(key[:], digits); err != nil {
		return key, false
	}
	return key, true
}

// String returns the key as a lowercase GUID.
func (k guidKey) String() string {
	var b [36]byte
	hex.Encode(b[0:8], k[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], k[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], k[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], k[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], k[10:16])
	return string(b[:])
}

func compareKeys(a, b guidKey) int { return bytes.Compare(a[:], b[:]) }

// sortedUniqueKeys sorts keys in place and returns them without duplicates.
func sortedUniqueKeys(keys []guidKey) []guidKey {
	slices.SortFunc(keys, compareKeys)
	return slices.Compact(keys)
}

// containsKey reports whether the sorted keys contain key.
func containsKey(keys []guidKey, key guidKey) bool {
	_, found := slices.BinarySearchFunc(keys, key, compareKeys)
	return found
}

// unionKeys returns the sorted union of two sorted slices without duplicates. It returns a when b
// adds nothing, b when a is empty, and otherwise a new slice. The catalogue never changes a slice
// of keys in place, so the result may share a or b.
func unionKeys(a, b []guidKey) []guidKey {
	if len(a) == 0 {
		return b
	}
	added := 0
	for _, key := range b {
		if !containsKey(a, key) {
			added++
		}
	}
	if added == 0 {
		return a
	}

	union := make([]guidKey, 0, len(a)+added)
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && compareKeys(a[i], b[j]) < 0):
			union = append(union, a[i])
			i++
		case i == len(a) || compareKeys(a[i], b[j]) > 0:
			union = append(union, b[j])
			j++
		default:
			union = append(union, a[i])
			i, j = i+1, j+1
		}
	}
	return union
}

// licenseSet is the set of devices that hold a license for one app.
//
// keys is sorted and contains every device that held the license at some point. current has one bit
// per key, set while the device holds the license. A revoke clears a bit instead of removing the
// key, so it costs one binary search and never moves the slice. A page of holders starts with a
// binary search for the key after the previous page and skips cleared bits 64 at a time. The set
// costs 16 bytes and 1 bit per device that ever held the license. keys is never changed in place,
// so other parts of the catalogue may share it.
//
// The zero licenseSet is empty and ready to use. It is not safe for concurrent use.
type licenseSet struct {
	keys    []guidKey
	current []uint64
}

// remove takes the license from device and reports whether it held one.
func (ls *licenseSet) remove(device guidKey) bool {
	i, found := slices.BinarySearchFunc(ls.keys, device, compareKeys)
	if !found || !ls.isHeld(i) {
		return false
	}
	ls.current[i/64] &^= 1 << (i % 64)
	return true
}

// add gives the license to every device in devices, which must be sorted and without duplicates.
// An empty set keeps devices as its keys, so the caller must not change the slice afterwards.
// Otherwise adding m devices to a set of n keys costs O(n + m) when a device is new to the set,
// because the slices are merged, and O(m log n) when none is.
func (ls *licenseSet) add(devices []guidKey) {
	if len(ls.keys) == 0 {
		ls.keys = devices
		ls.current = make([]uint64, (len(devices)+63)/64)
		for i := range devices {
			ls.current[i/64] |= 1 << (i % 64)
		}
		return
	}

	newDevices := 0
	for _, device := range devices {
		i, found := slices.BinarySearchFunc(ls.keys, device, compareKeys)
		switch {
		case !found:
			newDevices++
		case !ls.isHeld(i):
			ls.current[i/64] |= 1 << (i % 64)
		}
	}
	if newDevices == 0 {
		return
	}
	added := make([]guidKey, 0, newDevices)
	for _, device := range devices {
		if !containsKey(ls.keys, device) {
			added = append(added, device)
		}
	}

	oldKeys, oldCurrent := ls.keys, ls.current
	ls.keys = make([]guidKey, 0, len(oldKeys)+len(added))
	ls.current = make([]uint64, (len(oldKeys)+len(added)+63)/64)
	i, j := 0, 0
	for i < len(oldKeys) || j < len(added) {
		index := len(ls.keys)
		if j == len(added) || (i < len(oldKeys) && compareKeys(oldKeys[i], added[j]) < 0) {
			ls.keys = append(ls.keys, oldKeys[i])
			if oldCurrent[i/64]&(1<<(i%64)) != 0 {
				ls.current[index/64] |= 1 << (index % 64)
			}
			i++
			continue
		}
		ls.keys = append(ls.keys, added[j])
		ls.current[index/64] |= 1 << (index % 64)
		j++
	}
}

func (ls *licenseSet) isHeld(i int) bool { return ls.current[i/64]&(1<<(i%64)) != 0 }

// nextHeld returns the index of the first device at or after index i that holds the license, or
// len(keys) if none does.
func (ls *licenseSet) nextHeld(i int) int {
	for i < len(ls.keys) {
		word := ls.current[i/64] >> (i % 64)
		if word != 0 {
			return i + bits.TrailingZeros64(word)
		}
		i = (i/64 + 1) * 64
	}
	return len(ls.keys)
}
