// Package project reads project files, the bakery's unit of work (kiln
// project apply -f FILE, the API's and the page's form): a base image, an
// init script and the builder's settings (one pipeline.Builder, checked by
// the rules aws:ami's follow too), the images to keep, the branch that
// triggers bakes, a rollout target or environments (each an Auto Scaling
// group with its configuration and promotion rule), and the distribution
// of each image to other regions and accounts.
//
// Parse decodes and validates a file (strict YAML, every problem reported
// at once with file:line, as Errors); Apply stores it, generating a
// webhook secret when the file gives none. Project.Record and FromRecord
// convert to and from the store's shape. UserData, ParameterName and
// Digest say what an environment's instances run and read. Nothing here
// calls AWS.
package project
