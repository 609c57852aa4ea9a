package bake

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"kiln/internal/awsapi"
	"kiln/internal/store"
)

// Step names, as recorded in the store (store.Step.Name), in order.
const (
	StepResolve     = "resolve base image"
	StepLaunch      = "launch builder"
	StepWaitStopped = "wait for builder to stop"
	StepResult      = "read script result"
	StepCreateImage = "create image"
	StepWaitImage   = "wait for image"
	StepTagImage    = "tag image"
	StepTerminate   = "terminate builder"
	StepRetention   = "retention"
	StepRecord      = "record image"
	StepCleanup     = "clean up"
)

// PipelineOptions tune the waits of a bake.
type PipelineOptions struct {
	// ConsoleWait is how long to keep asking for the builder's console
	// output before concluding the marker is absent (AWS posts it a while
	// after the stop). Default 5 minutes.
	ConsoleWait time.Duration
	// ScriptTimeout and ImageTimeout apply when a Spec gives none.
	ScriptTimeout, ImageTimeout time.Duration
}

func (o *PipelineOptions) fill() {
	if o.ConsoleWait <= 0 {
		o.ConsoleWait = 5 * time.Minute
	}
	if o.ScriptTimeout <= 0 {
		o.ScriptTimeout = DefaultScriptTimeout
	}
	if o.ImageTimeout <= 0 {
		o.ImageTimeout = DefaultImageTimeout
	}
}

// Spec is one bake as the pipeline needs it.
type Spec struct {
	ID        string // the bake's identity: console marker, kiln:bake tag, client token
	ImageName string // unique per account and region: the image's idempotency key
	Region    string // "" = the default region
	Base      Base
	Type      string
	Script    string
	// SecurityGroups, Subnet, IAMProfile of the builder (optional).
	SecurityGroups []string
	Subnet         string
	IAMProfile     string
	// Match are the tags that identify this bake's builder and image (found
	// again by them after a crash); they are put on builder, image and
	// snapshots. kiln:bake = ID is always among them.
	Match map[string]string
	// Tags are put on builder, image and snapshots too (the project's tags).
	Tags     map[string]string
	Timeouts Timeouts
}

// Result is what a successful bake made.
type Result struct {
	ImageID     string
	SourceImage string // the base image id
	BuilderID   string
	Snapshots   []string
	ConsoleTail string
}

// Recorder receives a bake's progress. The Service's records steps in the
// store; aws:ami's logs them. A non-nil error from StartStep stops the bake
// with that error (the Service returns one when a cancel was requested).
type Recorder interface {
	StartStep(ctx context.Context, name, detail string) error
	FinishStep(ctx context.Context, name string, state store.StepState, detail string) error
	// Builder and Image are called as soon as the builder's or image's id is
	// known, before waiting on it.
	Builder(ctx context.Context, instanceID string) error
	Image(ctx context.Context, imageID string) error
}

// FailedError is a bake that ended for good: the script failed or timed
// out, or the image failed. The builder has been terminated and a partial
// image removed before it is returned.
type FailedError struct {
	Reason      string
	ConsoleTail string
}

func (e *FailedError) Error() string { return "bake failed: " + e.Reason }

// Pipeline runs bakes against EC2 through the region hubs. It is stateless
// between calls and safe for concurrent use.
type Pipeline struct {
	hubs *awsapi.Hubs
	log  *slog.Logger
	o    PipelineOptions
}

// NewPipeline returns a pipeline over hubs (hubs.Run must be running while it
// bakes). log may be nil.
func NewPipeline(hubs *awsapi.Hubs, log *slog.Logger, o PipelineOptions) *Pipeline {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o.fill()
	return &Pipeline{hubs: hubs, log: log, o: o}
}

// Bake runs every step of spec, each idempotent: a repeated call (after a
// crash) finds the builder by its tags and client token and the image by
// its name, and carries on from there. It blocks until the image is
// available and tagged and the builder terminated, or the bake failed.
// Errors: *FailedError (for good; cleaned up), an error marked
// engine.Permanent (a bad spec or a permission: retrying will not help; not
// cleaned up, call Cleanup), ctx's error, or a transient AWS error (run
// Bake again later).
func (p *Pipeline) Bake(ctx context.Context, spec Spec, rec Recorder) (Result, error) {
	return Result{}, errors.New("bake: not implemented yet")
}

// Cleanup terminates the bake's builder and deregisters its image (and
// deletes the image's snapshots) when there is one; for a cancelled or
// failed bake. It is idempotent and blocks until the calls are made (not
// until the builder is gone).
func (p *Pipeline) Cleanup(ctx context.Context, spec Spec) error {
	return errors.New("cleanup: not implemented yet")
}
