// Package pipeline bakes one machine image: the steps from a base image
// and an init script to an available, tagged image, each idempotent and
// found again by tag, client token or image name after a crash. Both jobs
// use it: aws:ami (kiln run) and the bakery (kiln serve). It knows nothing
// of projects, webhooks or databases: a caller hands it a Spec and a
// Recorder, and StepState is its own.
//
// Pipeline.Bake takes one bake (a Spec) through its steps, in order:
// resolve the base image, launch the builder (client token from the bake,
// tagged kiln:role=builder with the bake, project and bakery; the init script
// wrapped so that success prints a marker and powers off), wait until it
// stops, read its console to tell success from failure, create the image
// under a name unique to the bake, wait until it is available, tag the image
// and its snapshots, terminate the builder, apply retention (keep-N images,
// never one a launch template in use names). The bakery then rolls
// the image out. Every step is reported to a Recorder as it starts and ends.
//
// Every step is idempotent: a repeated Bake, after a crash or a restart at
// any moment, finds the image by its name and the builder by its tags and
// client token, and carries on, so a bake makes exactly one image and
// leaves no builder running however often it is interrupted. A failure for
// good (the script failed or timed out, the image failed) is a
// *FailedError, returned after the builder is terminated and any partial
// image removed; Cleanup does the same for a cancelled bake. Any other
// error is transient (call Bake again) or marked engine.Permanent. The
// pipeline keeps no state between calls: the tags (and the caller's
// Recorder, the bakery's store) are the record.
//
// Builders, Terminate and SweepGraph find and remove builders that no bake
// owns any more; Retain applies keep-N to a set of images.
package pipeline
