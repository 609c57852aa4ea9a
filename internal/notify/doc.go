// Package notify tells the world what the bakery did: it sends each event
// (a bake started, succeeded or failed; a promotion succeeded, failed or
// was rolled back; an image revoked) to the project's notify: targets, as
// signed JSON or in Slack's message shape, and reports a pushed bake's
// state on its commit through GitHub's or GitLab's commit status API.
//
// Every delivery is a durable River job, inserted once per event and
// target (a unique job) and retried with backoff; the store's delivery
// row makes a job that runs again after a crash skip what was delivered
// already, and shows each delivery's outcome on the project page. A
// target in the link-local range (169.254.0.0/16, fe80::/10, where cloud
// instance metadata answers) is refused when the project is applied
// (CheckURL) and again when a delivery connects (the dialer checks the
// address it reaches, so a name that resolves there later is refused
// too).
package notify
