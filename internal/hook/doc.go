// Package hook is the bakery's front door for pushes: POST /hooks/{project}.
// None of it calls AWS.
//
//   - ParseDelivery verifies and parses one webhook delivery (GitHub
//     X-Hub-Signature-256, GitLab X-Gitlab-Token, or kiln's generic HMAC
//     format) into a Delivery: a ping, a push to bake, or an event to
//     ignore, with the reason.
//   - Handler serves POST /hooks/{project}: verify, dedupe, coalesce and
//     enqueue, answering in milliseconds. Its Backend is a Queue: the
//     store records the push (a delivery id seen before gives the same
//     bake; per project at most one bake is queued, and a newer push
//     replaces its commit) and a River job (JobArgs) is inserted in the
//     same transaction, for the bakery's workers to take.
package hook
