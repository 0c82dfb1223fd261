package main

import (
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/rs/zerolog"

	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

// startSimulator starts the Graph simulator in this process with its demo behaviour and points cfg at
// it, with a client secret credential that only the simulator accepts.
func startSimulator(cfg *reclaim.Config, log zerolog.Logger) (*graphsim.Server, error) {
	opts := graphsim.Demo()
	sim, err := graphsim.New(opts)
	if err != nil {
		return nil, err
	}

	newCredential := func() (azcore.TokenCredential, error) {
		return azidentity.NewClientSecretCredential(opts.TenantID, opts.ClientID, opts.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{
				ClientOptions: azcore.ClientOptions{
					Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: sim.AuthorityHost()},
					Transport: sim.Client(),
				},
				DisableInstanceDiscovery: true,
			})
	}
	credential, err := newCredential()
	if err != nil {
		sim.Close()
		return nil, err
	}

	licensed, unlicensed := seedLicenses(sim, cfg.Input)

	transport := sim.Client().Transport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	cfg.GraphURL = sim.GraphURL()
	cfg.Target = reclaim.SimulatorTarget
	cfg.Credential = credential
	cfg.NewCredential = newCredential
	cfg.HTTPClient = &http.Client{Transport: transport}
	log.Info().Str("graph_url", sim.GraphURL()).Int("write_limit", opts.WriteLimit).
		Stringer("write_window", opts.WriteWindow).Float64("fault_rate", opts.FaultRate).
		Int("licensed_pairs", licensed).Int("unlicensed_pairs", unlicensed).
		Msg("simulator started: Intune-like throttling, latency and faults, scaled for a demo")
	return sim, nil
}

// unlicensedEvery makes every so many distinct pairs of the input hold no license in the simulator, so
// that the demo shows not_licensed rows.
const unlicensedEvery = 8

// seedLicenses gives the simulator's apps a license for the input's pairs, except every
// unlicensedEvery-th one and the ids that the simulator treats as unknown. An input that cannot be
// read seeds nothing: the run reports the problem itself.
func seedLicenses(sim *graphsim.Server, path string) (licensed, unlicensed int) {
	input, err := reclaim.OpenInput(path, false)
	if err != nil {
		return 0, 0
	}
	defer input.Close()

	devicesByApp := map[string][]string{}
	seen := map[[2]string]bool{}
	for {
		row, err := input.Next()
		if err != nil {
			break
		}
		app, device := strings.ToLower(row.AppID), strings.ToLower(row.DeviceID)
		pair := [2]string{app, device}
		if row.Invalid != "" || seen[pair] ||
			strings.HasPrefix(app, graphsim.DefaultUnknownPrefix) || strings.HasPrefix(device, graphsim.DefaultUnknownPrefix) {
			continue
		}
		seen[pair] = true
		if len(seen)%unlicensedEvery == 0 {
			unlicensed++
			continue
		}
		devicesByApp[app] = append(devicesByApp[app], device)
		licensed++
	}
	for app, devices := range devicesByApp {
		if err := sim.AddLicenses(app, true, devices); err != nil {
			return 0, 0
		}
	}
	return licensed, unlicensed
}
