// Package bake is kiln's image bakery: projects (a base image, an init script
// and instance settings), signed webhooks that queue bakes, and the bake
// pipeline that turns a queued bake into an image.
//
// # Front door
//
// None of this calls AWS:
//
//   - ParseProject decodes and validates a project file (strict YAML, every
//     problem reported at once with file:line, as ProjectErrors);
//     ApplyProject stores it, generating a webhook secret when the file
//     gives none.
//   - ParseDelivery verifies and parses one webhook delivery (GitHub, GitLab
//     or kiln's generic HMAC format) into a Delivery.
//   - HookHandler serves POST /hooks/{project}: verify, dedupe, coalesce and
//     enqueue, answering in milliseconds. NewQueue adapts the store and a
//     River client to what the handler needs; the queued job is JobArgs.
//     Per project at most one bake runs and one is queued: a newer push
//     replaces the queued bake's commit, and a delivery id seen before
//     gives the same bake.
//
// # Pipeline
//
// Pipeline.Bake takes one bake (a Spec) through its steps, in order:
// resolve the base image, launch the builder (client token from the bake,
// tagged kiln:role=builder with the bake, project and bakery; the init script
// wrapped so that success prints a marker and powers off), wait until it
// stops, read its console to tell success from failure, create the image
// under a name unique to the bake, wait until it is available, tag the image
// and its snapshots, terminate the builder, apply retention (keep-N images,
// never one a launch template in use names), and optionally roll the image
// out. Every step is reported to a Recorder as it starts and ends.
//
// Every step is idempotent: a repeated Bake, after a crash or a restart at
// any moment, finds the image by its name and the builder by its tags and
// client token, and carries on, so a bake makes exactly one image and
// leaves no builder running however often it is interrupted. A failure for
// good (the script failed or timed out, the image failed) is a
// *FailedError, returned after the builder is terminated and any partial
// image removed; Cleanup does the same for a cancelled bake. Any other
// error is transient (call Bake again) or marked engine.Permanent. The
// pipeline keeps no state between calls: the store and the tags are the
// record. aws:ami (kiln run) bakes through the same Pipeline.
//
// # Service
//
// Service is the bakery in a process (kiln serve, kiln bake --local): River
// workers over the store's SQLite file take queued bakes through the
// pipeline, recording each step in the store and telling subscribers
// (Subscribe) of every change. Trigger queues a bake as a push does;
// Cancel stops one (its builder terminated, a partial image removed). Run
// re-queues bakes that a dead process left running, so a restart on the
// same database resumes them, and sweeps: at start and every
// SweepInterval, the builders of this bakery (kiln:bakery, the database's
// store.BakeryID) whose bake is over or unknown are terminated; another
// database's builders in the same account are left alone.
// Stopping Run stops the running bakes at a safe point; they resume on the
// next start. One Service per database file.
package bake
