// Package bakery is kiln's image bakery (kiln serve): the service whose
// River workers take each queued bake through
// the pipeline (package pipeline), record its steps in the store and roll
// the image out to the project's Auto Scaling group (awsres.RollOut). It
// sits above awsres and pipeline; nothing below it imports it.
//
// Project files are package project's (decode, the builder spec,
// validation, environments); webhooks are package hook's (signatures,
// payloads, dedupe and coalescing into queued bakes, whose River job is
// hook.JobArgs).
//
// # Service
//
// Service is the bakery in a process (kiln serve, kiln bake --local): River
// workers over the store's database take queued bakes through the
// pipeline, then the rollout when the project has one, recording each step
// in the store and telling subscribers (Subscribe) of every change. Trigger
// queues a bake as a push does; Cancel stops one (its builder terminated, a
// partial image removed). Run re-queues bakes that a dead process left
// unfinished, so a restart on the same database resumes them.
//
// Several Services on one database (several kiln serve on one PostgreSQL)
// are one bakery (cluster.go): a bake is claimed by one server and owned
// while it renews its lease (Options.Lease); the leader, one server at a
// time, hands the bakes of a server that stopped renewing to new jobs and
// runs the sweeper: at election and every SweepInterval, the builders of
// this bakery (kiln:bakery, the database's store.BakeryID) whose bake is
// over or unknown are terminated; another database's builders in the same
// account are left alone. Every change is published to the other servers
// (store.Publish), whose subscribers see it too, and a cancel reaches the
// server running the bake. Stopping Run stops the running bakes at a safe
// point and gives up their leases; they resume on the next start, or on
// another server.
package bakery
