package notify

import (
	"fmt"
	"slices"
	"strconv"
)

// Event names, as targets list them in events:.
const (
	BakeStarted         = "bake.started"
	BakeSucceeded       = "bake.succeeded"
	BakeFailed          = "bake.failed"
	PromotionSucceeded  = "promotion.succeeded"
	PromotionFailed     = "promotion.failed"
	PromotionRolledBack = "promotion.rolled_back"
	ImageRevoked        = "image.revoked"
)

// Events is every event name, the default of a target's events:.
var Events = []string{BakeStarted, BakeSucceeded, BakeFailed,
	PromotionSucceeded, PromotionFailed, PromotionRolledBack, ImageRevoked}

// Known reports whether name is an event name.
func Known(name string) bool { return slices.Contains(Events, name) }

// Event is one thing that happened, as its JSON body carries it. Links is
// filled by the Notifier from its public URL.
type Event struct {
	Event       string `json:"event"`
	Project     string `json:"project"`
	Bake        int64  `json:"bake,omitempty"`
	Promotion   int64  `json:"promotion,omitempty"`
	Image       string `json:"image,omitempty"`
	Environment string `json:"environment,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Commit      string `json:"commit,omitempty"`
	Repo        string `json:"repo,omitempty"`
	Links       Links  `json:"links"`
}

// Links are the pages of what the event is about.
type Links struct {
	Project string `json:"project,omitempty"`
	Bake    string `json:"bake,omitempty"`
}

// ID names the event uniquely: what it is about and what happened, so
// that emitting it twice (a bake resumed after a restart) delivers it
// once.
func (e Event) ID() string {
	switch {
	case e.Bake != 0:
		return e.Project + "/bake/" + strconv.FormatInt(e.Bake, 10) + "/" + e.Event
	case e.Promotion != 0:
		return e.Project + "/promotion/" + strconv.FormatInt(e.Promotion, 10) + "/" + e.Event
	default:
		return fmt.Sprintf("%s/%s/%s/%s", e.Project, e.Image, e.Environment, e.Event)
	}
}
