package bakery

import (
	"fmt"

	"kiln/internal/project"
	"kiln/internal/store"
)

// EnvStatus is an environment as the API and the pages show it: where it
// is, what it runs, its rollout state and its recent promotions, newest
// first. Secrets are never in it: a secret's value is masked, with its
// SSM parameter and version.
type EnvStatus struct {
	project.Environment
	Image      string            // the image it runs ("" = none yet)
	State      string            // never, rolling, live, failed, soaking
	Detail     string            // the state's detail (why it failed, soak until)
	Config     []ConfigShown     // plain values, secrets masked
	Promotions []store.Promotion // newest first
	// Live is the group as it is now (LiveStatuses; nil: not read), and
	// Drift how it differs from what the last promotion left (State drifted).
	Live  *GroupLive
	Drift []string
}

// ConfigShown is one configuration key as shown: a secret's Value is the
// mask, and Parameter names where the instances read it.
type ConfigShown struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	Secret    bool   `json:"secret,omitempty"`
	Parameter string `json:"parameter,omitempty"`
	Version   int64  `json:"version,omitempty"`
}

// SecretMask stands for a secret's value wherever one is shown.
const SecretMask = "••••••••"

// Environment states.
const (
	EnvNever   = "never"   // no promotion yet
	EnvRolling = "rolling" // a rollout is running
	EnvLive    = "live"    // runs Image; the last rollout succeeded
	EnvFailed  = "failed"  // the last rollout failed (Image is what it ran before)
	EnvSoaking = "soaking" // runs Image, healthy so far, before the next environment's auto promotion
	// EnvDrifted (environments_watch.go): runs Image, but its group differs
	// from what the promotion left; the bakery puts it back.
)

// EnvStatuses describes project's environments from the records: promos
// are the project's promotions, newest first.
func EnvStatuses(projectName string, envs []project.Environment, promos []store.Promotion) []EnvStatus {
	out := make([]EnvStatus, len(envs))
	for i, e := range envs {
		st := EnvStatus{Environment: e, State: EnvNever}
		for _, c := range e.Config {
			cs := ConfigShown{Key: c.Key, Value: c.Value}
			if c.Secret {
				cs = ConfigShown{Key: c.Key, Value: SecretMask, Secret: true, Parameter: project.ParameterName(projectName, e.Name, c.Key), Version: c.Version}
			}
			st.Config = append(st.Config, cs)
		}
		st.Environment.Config = nil
		for _, p := range promos {
			if p.Env != e.Name {
				continue
			}
			st.Promotions = append(st.Promotions, p)
			if st.Image == "" && p.State == store.PromotionSucceeded {
				st.Image = p.ImageID
			}
		}
		if len(st.Promotions) > 0 {
			last := st.Promotions[0]
			switch {
			case last.State == store.PromotionRolling:
				st.State, st.Detail = EnvRolling, fmt.Sprintf("%s (%s)", last.ImageID, last.Cause)
			case last.State == store.PromotionFailed:
				st.State, st.Detail = EnvFailed, last.Reason
			case last.Soak == store.SoakRunning:
				st.State, st.Detail = EnvSoaking, "until "+last.SoakUntil.UTC().Format("15:04:05 MST")
			default:
				st.State = EnvLive
				if last.Soak == store.SoakFailed {
					st.Detail = "soak " + last.Reason
				}
			}
		}
		out[i] = st
	}
	markAwaiting(projectName, out) // approve.go
	return out
}
