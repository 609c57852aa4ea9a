// Package resources holds kiln's local resource kinds: noop, file, exec,
// timer and print. Each kind is a struct decoded from the graph file (yaml
// tags), checked by Validate (config.FieldError per bad field), and driven by
// the engine through Watch and CheckApply. Resources are synchronous; the
// engine adds the concurrency, retries and timeouts.
package resources
