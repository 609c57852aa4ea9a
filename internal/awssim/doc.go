// Package awssim is kiln's stand-in for AWS: EC2, Auto Scaling, Route 53, SQS, EventBridge,
// SSM Parameter Store and CloudWatch alarms, one http.Handler that speaks the EC2 Query
// protocol (Version 2016-11-15, form POST, XML in the EC2 namespace,
// errors as <Response><Errors><Error><Code>), the Auto Scaling awsquery
// protocol (Version 2011-01-01, <XResponse><XResult>, errors as
// <ErrorResponse><Error><Type/><Code/><Message/>), Route 53's REST-XML
// API (2013-04-01: method and path under /2013-04-01/, XML bodies, status
// codes such as 201, the same ErrorResponse shape) and the AWS JSON
// protocols of SQS, EventBridge, SSM and CloudWatch, and CloudWatch's
// Smithy RPC v2 CBOR (cloudwatch_cbor.go), exactly as aws-sdk-go-v2
// serializes and deserializes them, so the SDK's retries, paginators and
// waiters run unchanged against it.
//
// # Contract
//
// Behaviour follows the AWS documentation, not kiln's convenience: state
// machines with durations (pending→running, stopping→stopped,
// shutting-down→terminated, image pending→available|failed; terminated
// instances stay visible for an hour), ClientToken idempotency
// (IdempotentParameterMismatch), unique AMI names
// (InvalidAMIName.Duplicate), IncorrectInstanceState, NotFound and
// Malformed id errors, MaxResults/NextToken paging, tag filters with *
// and ? wildcards. Unknown actions answer InvalidAction (400); malformed
// input answers the AWS error, never a 500 and never a panic.
//
// Every simulated duration (Options.Durations) is multiplied by
// Options.TimeScale: 1 is realistic, 0.01 a hundred times faster, 0
// immediate. New starts no goroutine. On the real clock, Run fires
// transitions when due and delivers events; without Run, every request
// still first applies whatever fell due, so state is always current when
// observed. With Options.ManualClock time stands still until Advance(d),
// which runs the due transitions synchronously, in order, and then
// delivers queued events synchronously, so a test never sleeps.
//
// Faults and control, as Go methods and as JSON under /_sim/ (see
// serveControl): per-action call and throttle counts (Calls, Throttled);
// AWS's token buckets (Options.Throttle or SetThrottle:
// RequestLimitExceeded, 503); injected errors per action by count or
// rate (InjectFault); added latency (SetLatency); an eventual-consistency
// window in which new instance and image ids answer NotFound
// (Options.Consistency); images that fail (FailNextImages); and
// out-of-band changes (StopInstance, StartInstance, TerminateInstance,
// RebootInstance, SetTags). State changes are pushed as EventBridge events
// ("EC2 Instance State-change Notification", "EC2 AMI State Change") to
// Options.Events, as an API destination delivers them (JSON POST, API key
// header); delivery is best effort through a bounded queue.
//
// With Options.Policy (ParsePolicy; SetPolicy changes it) every request is
// authorized against that one IAM identity policy, as IAM would: denied
// calls get UnauthorizedOperation (EC2) or AccessDenied (Auto Scaling),
// HTTP 403; Authorized and Denied count per IAM action.
//
// # Guest model
//
// User data that starts with "#!" is run by the guest once, on the
// instance's first boot, when it reaches running, by a real shell: the
// parser and interpreter of mvdan.cc/sh/v3 (ec2_guest.go), so that a
// script's control flow, exit status and output are what a real instance
// shows. Each instance has a file system of its own in memory
// (ec2_guest_fs.go), reached through the interpreter's open, stat,
// read-dir and access handlers and by the file commands the guest
// implements (ec2_guest_cmds.go: cat, mkdir, cp, grep, ...), never the
// host's. Other commands are simulated: each takes Durations.Command and
// succeeds, unless SetGuestCommand says otherwise; sleep takes simulated
// time; poweroff, shutdown and halt -p power the OS off, and the instance
// goes stopping→stopped, or shutting-down→terminated when its
// InstanceInitiatedShutdownBehavior is terminate; reboot reboots. What the
// script writes to stdout, stderr or /dev/console is appended to the
// console at the simulated time it is written. The script runs as a
// coroutine of the simulator's timers, so Advance runs it exactly as far
// as the clock goes. A script that does not parse prints the parser's
// error (name:line:col) and exits 2.
//
// A stop, reboot or termination kills the script; it does not run again. A
// script that ends without powering off leaves the instance running (a
// failing status is logged by "cloud-init" on the console). Console output
// is buffered as on AWS: what GetConsoleOutput returns is posted
// Durations.Console after boot, reboot, stop and termination (Latest=true
// on a running instance returns it live); the last 64 KB are kept.
//
// # Regions
//
// Every AWS region is a world of its own (regions.go): the *Sim that New
// returns is the home region's (Options.Region), and the region a request
// is signed for (its SigV4 credential scope) picks the world that answers
// it; the other worlds are made on first use, each with its own state,
// stock images and ids, and an unknown region is AuthFailure. Counters,
// faults and the manual clock are the home world's, for all. CopyImage
// (ec2_copyimage.go) reads its source in another world; launch and
// create-volume permissions (ec2_imageattrs.go) are per world.
//
// # Services
//
// Every API the simulator serves is a service, and every service is one
// line of the services list (service.go), declared in its own file with
// its action table, one line per action: ec2Service in ec2_service.go,
// autoscalingService in autoscaling.go, sqsService in sqs.go,
// eventbridgeService in eventbridge.go, route53Service in route53.go
// (record sets and changes in route53_records.go), ssmService in ssm.go
// (Parameter Store), cloudwatchService and cloudwatchJSONService in
// cloudwatch.go (alarms; one action table, two protocols). A service names the
// requests that are its (the Query Version, or match), the protocol that
// writes its answers and errors (ec2Query or awsQuery in protocol.go,
// awsJSON in jsonproto.go, Route 53's REST-XML in restxml.go), its
// actions, and
// optionally its throttling (admit) and its control endpoints under
// /_sim/NAME/ (control). ServeHTTP decodes a request, picks the service,
// counts the call, applies faults, latency, throttling, the IAM policy
// (Options.Policy: authz.go says which resources and condition keys each
// action is authorized on; a new service's actions are authorized on "*"
// until it adds its rows to authzTables) and DryRun, and runs the action.
//
// To add a service, write NAME.go with its version constant, its
// *service and its actions, and add it to services. Actions read the
// request with the helpers in params.go (lists "Name.N" and
// "Name.member.N", structures, filters, tag specifications, paging), one
// helper per encoding, and use the shared state and helpers: lock / s.mu,
// launchLocked (launch from a launchSpec), terminateLocked,
// instanceLocked, setStateLocked, after (timers) and PublishEvent. A
// service that is not a Query API (Route 53's REST-XML under
// /2013-04-01/, the JSON protocols of SQS, EventBridge and SSM, routed by
// the X-Amz-Target header) sets match (which requests are its, judged
// from method, path and headers before the body is read) and decode (the
// request into Action and Params or Body) on its service, with a protocol
// for its wire format, so that ServeHTTP still picks it from the one list.
// The JSON protocols have both in jsonproto.go (jsonTarget, awsJSON), and
// their actions read the body with request.input (params.go).
package awssim
