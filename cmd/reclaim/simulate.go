package main

import (
	"net/http"

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

	transport := sim.Client().Transport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	cfg.GraphURL = sim.GraphURL()
	cfg.Target = reclaim.SimulatorTarget
	cfg.Credential = credential
	cfg.NewCredential = newCredential
	cfg.HTTPClient = &http.Client{Transport: transport}
	log.Info().Str("graph_url", sim.GraphURL()).Int("write_limit", opts.WriteLimit).
		Stringer("write_window", opts.WriteWindow).Float64("fault_rate", opts.FaultRate).
		Msg("simulator started: Intune-like throttling, latency and faults, scaled for a demo")
	return sim, nil
}
