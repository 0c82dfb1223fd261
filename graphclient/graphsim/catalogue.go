package graphsim

import "strings"

// revokeOutcome is the result of one revoke request in the catalogue.
type revokeOutcome int

const (
	revokeRemoved       revokeOutcome = iota // the pair held a license, which is now gone
	revokeNoOp                               // known app and device, but no license to remove
	revokeUnknownApp                         // 404
	revokeNotVPP                             // 400: the app is not an iosVppApp
	revokeUnknownDevice                      // 404
)

// catalogue stores which apps and devices exist and which pairs hold a license. Ids are stored
// lowercase. It is not safe for concurrent use: the Server's mutex guards it.
type catalogue struct {
	open          bool
	unknownPrefix string

	apps    map[string]*catalogueApp
	devices map[string]bool
	// revokedOpen contains the pairs of open-catalogue apps whose license was removed. Every
	// other pair of such an app holds a license.
	revokedOpen map[Pair]bool
}

type catalogueApp struct {
	vpp      bool
	licensed map[string]bool // device id -> holds a license
}

func newCatalogue(opts Options) *catalogue {
	c := &catalogue{
		open:          opts.Open,
		unknownPrefix: strings.ToLower(opts.UnknownPrefix),
		apps:          map[string]*catalogueApp{},
		devices:       map[string]bool{},
		revokedOpen:   map[Pair]bool{},
	}
	for _, id := range opts.Devices {
		c.devices[strings.ToLower(id)] = true
	}
	for appID, app := range opts.Apps {
		entry := &catalogueApp{vpp: app.VPP, licensed: map[string]bool{}}
		for _, deviceID := range app.Licensed {
			deviceID = strings.ToLower(deviceID)
			entry.licensed[deviceID] = true
			c.devices[deviceID] = true
		}
		c.apps[strings.ToLower(appID)] = entry
	}
	return c
}

// revoke removes the license of pair if it holds one. Ids in pair are lowercase.
func (c *catalogue) revoke(pair Pair) revokeOutcome {
	app, explicit := c.apps[pair.AppID]
	if !explicit && !c.openContains(pair.AppID) {
		return revokeUnknownApp
	}
	if explicit && !app.vpp {
		return revokeNotVPP
	}
	if !c.devices[pair.DeviceID] && !c.openContains(pair.DeviceID) {
		return revokeUnknownDevice
	}

	if explicit {
		if !app.licensed[pair.DeviceID] {
			return revokeNoOp
		}
		delete(app.licensed, pair.DeviceID)
		return revokeRemoved
	}
	if c.revokedOpen[pair] {
		return revokeNoOp
	}
	c.revokedOpen[pair] = true
	return revokeRemoved
}

// openContains reports whether the open catalogue treats id as an existing app or device.
func (c *catalogue) openContains(id string) bool {
	return c.open && !strings.HasPrefix(id, c.unknownPrefix)
}
