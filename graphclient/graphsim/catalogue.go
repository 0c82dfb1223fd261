package graphsim

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
)

// OData types of mobile apps.
const (
	odataTypeIOSVPPApp = "#microsoft.graph.iosVppApp"
	// DefaultNonVPPType is the @odata.type of a non-VPP app whose App.ODataType is empty.
	DefaultNonVPPType = "#microsoft.graph.managedIOSStoreApp"
)

// revokeOutcome is the result of one revoke request in the catalogue.
type revokeOutcome int

const (
	revokeRemoved       revokeOutcome = iota // the pair held a license, which is now gone
	revokeNoOp                               // known app and device, but no license to remove
	revokeUnknownApp                         // 404
	revokeNotVPP                             // 400: the app is not an iosVppApp
	revokeUnknownDevice                      // 404
)

// pairKey is a license pair as keys, the form in which the catalogue stores pairs.
type pairKey struct {
	app, device guidKey
}

// catalogue stores which apps and devices exist and which pairs hold a license. It is not safe for
// concurrent use, so the Server's mutex guards it.
type catalogue struct {
	open          bool
	unknownPrefix string // lowercase

	apps map[guidKey]*catalogueApp
	// devices is sorted and contains Options.Devices and every device that held a license for an
	// explicit app. It costs 16 bytes per known device, unless it shares the keys of one app.
	devices []guidKey
	// listed is Options.Devices, sorted: the license holders that an open-catalogue app lists.
	listed []guidKey
	// revokedOpen contains the pairs of open-catalogue apps whose license was removed. Every
	// other pair of such an app holds a license.
	revokedOpen map[pairKey]struct{}
}

// catalogueApp is one app of the explicit catalogue.
type catalogueApp struct {
	vpp         bool
	odataType   string
	displayName string
	licenses    licenseSet
	users       []userLicense // sorted by key
}

// userLicense is a user license of a VPP app. The server lists user licenses among the device
// licenses but never changes them.
type userLicense struct {
	key    guidKey // the license id, which also sorts it among the device licenses
	userID guidKey
	number int // 1 to App.UserLicenses, for the user principal name
}

// appInfo is the part of an app that GET mobileApps/{appId} returns, or found false for an
// unknown app.
type appInfo struct {
	found       bool
	odataType   string
	displayName string
}

func newCatalogue(opts Options) (*catalogue, error) {
	c := &catalogue{
		open:          opts.Open,
		unknownPrefix: strings.ToLower(opts.UnknownPrefix),
		apps:          map[guidKey]*catalogueApp{},
		revokedOpen:   map[pairKey]struct{}{},
	}

	listed, err := parseGUIDKeys(opts.Devices, "Devices")
	if err != nil {
		return nil, err
	}
	c.listed = sortedUniqueKeys(listed)
	c.devices = c.listed

	for appID, app := range opts.Apps {
		appKey, ok := parseGUIDKey(appID)
		if !ok {
			return nil, fmt.Errorf("invalid app id %q in Apps: want a GUID", appID)
		}
		if _, duplicate := c.apps[appKey]; duplicate {
			return nil, fmt.Errorf("app id %s appears twice in Apps, in different case", appKey)
		}
		if err := validateApp(appKey, app); err != nil {
			return nil, err
		}
		devices, err := parseGUIDKeys(app.Licensed, fmt.Sprintf("Apps[%s].Licensed", appID))
		if err != nil {
			return nil, err
		}

		entry := newCatalogueApp(appKey, app.VPP)
		if app.ODataType != "" {
			entry.odataType = app.ODataType
		}
		if app.DisplayName != "" {
			entry.displayName = app.DisplayName
		}
		entry.users = newUserLicenses(appKey, app.UserLicenses)
		c.apps[appKey] = entry
		c.addLicenses(entry, sortedUniqueKeys(devices))
	}
	return c, nil
}

func validateApp(appKey guidKey, app App) error {
	if app.UserLicenses < 0 {
		return fmt.Errorf("invalid UserLicenses %d for app %s: want 0 or more", app.UserLicenses, appKey)
	}
	if app.VPP && app.ODataType != "" && app.ODataType != odataTypeIOSVPPApp {
		return fmt.Errorf("invalid ODataType %q for VPP app %s: want empty or %s", app.ODataType, appKey, odataTypeIOSVPPApp)
	}
	if !app.VPP && app.ODataType == odataTypeIOSVPPApp {
		return fmt.Errorf("invalid ODataType %q for app %s: set VPP for an iosVppApp", app.ODataType, appKey)
	}
	return nil
}

func newCatalogueApp(appKey guidKey, vpp bool) *catalogueApp {
	app := &catalogueApp{vpp: vpp, odataType: odataTypeIOSVPPApp, displayName: defaultDisplayName(appKey)}
	if !vpp {
		app.odataType = DefaultNonVPPType
	}
	return app
}

func defaultDisplayName(appKey guidKey) string {
	return "Simulated app " + appKey.String()[:8]
}

// newUserLicenses returns n user licenses whose ids derive from the app id, so that they are the
// same on every page and in every server run.
func newUserLicenses(appKey guidKey, n int) []userLicense {
	users := make([]userLicense, n)
	for i := range users {
		users[i] = userLicense{
			key:    derivedKey("user license", appKey, i),
			userID: derivedKey("user", appKey, i),
			number: i + 1,
		}
	}
	slices.SortFunc(users, func(a, b userLicense) int { return compareKeys(a.key, b.key) })
	return users
}

// derivedKey returns a version 4 GUID derived from label, key and n.
func derivedKey(label string, key guidKey, n int) guidKey {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%x/%d", label, key[:], n))
	var derived guidKey
	copy(derived[:], sum[:16])
	derived[6] = derived[6]&0x0f | 0x40
	derived[8] = derived[8]&0x3f | 0x80
	return derived
}

// parseGUIDKeys parses ids, and names field in the error for an id that is not a GUID.
func parseGUIDKeys(ids []string, field string) ([]guidKey, error) {
	keys := make([]guidKey, len(ids))
	for i, id := range ids {
		key, ok := parseGUIDKey(id)
		if !ok {
			return nil, fmt.Errorf("invalid device id %q in %s: want a GUID", id, field)
		}
		keys[i] = key
	}
	return keys, nil
}

// addLicenses gives app's license to devices, which must be sorted and without duplicates, and
// makes them known devices. The catalogue may keep devices, so the caller must not change it
// afterwards.
func (c *catalogue) addLicenses(app *catalogueApp, devices []guidKey) {
	app.licenses.add(devices)
	c.devices = unionKeys(c.devices, devices)
}

// ensureApp returns the explicit app appKey, and creates it if it does not exist. It fails when the
// app exists and vpp differs from its type.
func (c *catalogue) ensureApp(appKey guidKey, vpp bool) (*catalogueApp, error) {
	app, ok := c.apps[appKey]
	if !ok {
		app = newCatalogueApp(appKey, vpp)
		c.apps[appKey] = app
		return app, nil
	}
	if app.vpp != vpp {
		return nil, fmt.Errorf("app %s exists with the type %s: add its licenses with vpp = %t", appKey, app.odataType, app.vpp)
	}
	return app, nil
}

// revoke removes the license of the pair if it holds one.
func (c *catalogue) revoke(appKey, deviceKey guidKey) revokeOutcome {
	app, explicit := c.apps[appKey]
	if !explicit && !c.openContains(appKey) {
		return revokeUnknownApp
	}
	if explicit && !app.vpp {
		return revokeNotVPP
	}
	if !containsKey(c.devices, deviceKey) && !c.openContains(deviceKey) {
		return revokeUnknownDevice
	}

	if explicit {
		if !app.licenses.remove(deviceKey) {
			return revokeNoOp
		}
		return revokeRemoved
	}
	pair := pairKey{appKey, deviceKey}
	if _, revoked := c.revokedOpen[pair]; revoked {
		return revokeNoOp
	}
	c.revokedOpen[pair] = struct{}{}
	return revokeRemoved
}

// app returns what a read of the app appKey shows. An open-catalogue app is an iosVppApp.
func (c *catalogue) app(appKey guidKey) appInfo {
	if app, ok := c.apps[appKey]; ok {
		return appInfo{found: true, odataType: app.odataType, displayName: app.displayName}
	}
	if c.openContains(appKey) {
		return appInfo{found: true, odataType: odataTypeIOSVPPApp, displayName: defaultDisplayName(appKey)}
	}
	return appInfo{}
}

// openContains reports whether the open catalogue treats key as an existing app or device.
func (c *catalogue) openContains(key guidKey) bool {
	return c.open && !strings.HasPrefix(key.String(), c.unknownPrefix)
}

// licenseCursor is the position of one entry in the order of a license listing: by key, and a
// device license before a user license with the same key.
type licenseCursor struct {
	key  guidKey
	user bool
}

// licenseEntry is one entry of a page of license holders: a device license, or a user license
// when user is not nil.
type licenseEntry struct {
	device guidKey
	user   *userLicense
}

// cursor returns the position of e.
func (e licenseEntry) cursor() licenseCursor {
	if e.user != nil {
		return licenseCursor{key: e.user.key, user: true}
	}
	return licenseCursor{key: e.device}
}

// licensePage returns up to size license holders of the VPP app appKey, in key order, that come
// after the cursor, or from the start when after is nil. more reports whether entries remain after
// the page. The app must exist and be a VPP app. An open-catalogue app lists the devices of
// Options.Devices whose license it has not revoked.
//
// The cost is two binary searches, one step per entry on the page, and one step per revoked
// license skipped (per 64 of them for an explicit app), so it does not grow with the size of the
// set.
func (c *catalogue) licensePage(appKey guidKey, after *licenseCursor, size int) (page []licenseEntry, more bool) {
	var keys []guidKey
	var nextHeld func(int) int
	var users []userLicense
	if app, ok := c.apps[appKey]; ok {
		keys, nextHeld, users = app.licenses.keys, app.licenses.nextHeld, app.users
	} else {
		keys = c.listed
		nextHeld = func(i int) int {
			for i < len(keys) {
				if _, revoked := c.revokedOpen[pairKey{appKey, keys[i]}]; !revoked {
					return i
				}
				i++
			}
			return i
		}
	}

	// Device licenses start at the first key above the cursor's. User licenses start at the first
	// key at or above it when the cursor is a device license, which sorts first on a tie.
	device, user := 0, 0
	if after != nil {
		device, _ = slices.BinarySearchFunc(keys, after.key, compareKeys)
		if device < len(keys) && keys[device] == after.key {
			device++
		}
		user, _ = slices.BinarySearchFunc(users, after.key, func(u userLicense, key guidKey) int { return compareKeys(u.key, key) })
		if after.user && user < len(users) && users[user].key == after.key {
			user++
		}
	}

	page = make([]licenseEntry, 0, min(size, 1000))
	device = nextHeld(device)
	for len(page) < size && (device < len(keys) || user < len(users)) {
		if user == len(users) || (device < len(keys) && compareKeys(keys[device], users[user].key) <= 0) {
			page = append(page, licenseEntry{device: keys[device]})
			device = nextHeld(device + 1)
			continue
		}
		page = append(page, licenseEntry{user: &users[user]})
		user++
	}
	return page, device < len(keys) || user < len(users)
}
